"""What the gateway (a real Caddy on gateway/Caddyfile) passes on, both ways, and the answers
it makes itself, against recording upstreams on loopback."""

from __future__ import annotations

import re
import socket

import pytest
import requests

from tests.helpers import assert_error_shape
from tests.upstream import Upstream

GENERATED_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def pair(make_gateway):
    """(gateway base URL, schedule upstream, booking upstream), body limit 1024 bytes."""
    with Upstream() as schedule, Upstream() as booking:
        gateway = make_gateway(schedule=[schedule], booking=[booking], MAX_BODY_BYTES="1024")
        yield gateway.url, schedule, booking


def _headers(answer: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in answer["headers"]}


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/dynamic-slots/hospitals", "schedule"),
        ("/api/dynamic-slots/available/gomoti/2026-11-28", "schedule"),
        ("/api/appointments", "booking"),
        ("/api/appointments/665f1c2e9b1e8a0001a1b2c3", "booking"),
        ("/api/availability/gomoti/2026-11-28", "booking"),
        ("/api/availability/bulk", "booking"),
        ("/api/auth/login", "booking"),
    ],
)
def test_the_route_table(pair, path, service):
    base, schedule, booking = pair
    assert requests.get(base + path, timeout=10).status_code == 200
    upstream = {"schedule": schedule, "booking": booking}[service]
    other = booking if upstream is schedule else schedule
    assert [r["raw_path"] for r in upstream.received] == [path]
    assert other.received == []


def test_a_request_goes_on_byte_for_byte_without_hop_by_hop_headers(pair):
    base, _, booking = pair
    resp = requests.post(
        base + "/api/appointments/a%2Fb?x=1&y=%20z",
        data=b'{"k":"v"}',
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer t",
            "Idempotency-Key": "key-1",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "secret",
            "X-Request-ID": "client-id-1",
            "X-Forwarded-For": "203.0.113.9",
        },
        timeout=10,
    )
    assert resp.status_code == 201
    seen = resp.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/api/appointments/a%2Fb?x=1&y=%20z"
    assert seen["body"] == '{"k":"v"}'
    headers = _headers(seen)
    assert headers["authorization"] == "Bearer t"
    assert headers["idempotency-key"] == "key-1"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"] == "client-id-1"
    # From a trusted proxy (loopback by default) the chain is extended.
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert "x-hop" not in headers
    assert headers["user-agent"].startswith("python-requests")
    assert resp.headers["X-Request-ID"] == "client-id-1"


def test_x_forwarded_for_from_an_untrusted_peer_is_replaced(make_gateway):
    with Upstream() as up:
        gateway = make_gateway(schedule=[up], booking=[up], TRUSTED_PROXIES="192.0.2.0/24")
        seen = requests.get(
            gateway.url + "/api/auth/x", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10
        ).json()
    assert _headers(seen)["x-forwarded-for"] == "127.0.0.1"


def test_the_answer_comes_back_with_its_headers_and_the_gateway_request_id(pair):
    base, _, _ = pair
    resp = requests.get(base + "/api/dynamic-slots/hospitals", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["ETag"] == '"v7"'
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    rid = resp.headers["X-Request-ID"]
    assert rid != "from-upstream" and GENERATED_ID.match(rid)
    assert _headers(resp.json())["x-request-id"] == rid  # the same id went upstream


@pytest.mark.parametrize("bad", ["bad id", "x" * 129, "a/b", "é"])
def test_an_unsafe_request_id_is_replaced(pair, bad):
    base, schedule, _ = pair
    resp = requests.get(
        base + "/api/dynamic-slots/hospitals",
        headers={"X-Request-ID": bad.encode()},
        timeout=10,
    )
    assert GENERATED_ID.match(resp.headers["X-Request-ID"])
    assert _headers(schedule.received[-1])["x-request-id"] == resp.headers["X-Request-ID"]


def test_no_cookie_of_one_client_reaches_the_next(pair):
    base, _, _ = pair
    requests.get(base + "/api/dynamic-slots/hospitals", timeout=10)
    seen = requests.get(base + "/api/dynamic-slots/hospitals", timeout=10).json()
    assert "cookie" not in _headers(seen)


def test_no_version_banner(pair):
    base, _, _ = pair
    for path in ("/api/dynamic-slots/hospitals", "/api/nowhere", "/healthz", "/docs"):
        resp = requests.get(base + path, timeout=10)
        assert "Server" not in resp.headers, (path, resp.headers)
        assert "Via" not in resp.headers, (path, resp.headers)


@pytest.mark.parametrize("path", ["/api/unknown", "/api/", "/nowhere", "/api", "/metrics"])
def test_unknown_paths_are_404_in_the_error_shape(pair, path):
    base, schedule, booking = pair
    resp = requests.get(base + path, timeout=10)
    assert_error_shape(resp, 404, "not_found")
    assert resp.headers["X-Request-ID"]
    assert schedule.received == booking.received == []


def test_an_unknown_method_is_405_with_allow(pair):
    base, _, booking = pair
    resp = requests.request("TRACE", base + "/api/appointments", timeout=10)
    assert_error_shape(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    resp = requests.post(base + "/healthz", timeout=10)
    assert_error_shape(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]
    assert booking.received == []


def test_bodies_over_the_limit_are_413_with_a_length_or_streamed_and_never_reach_a_service(pair):
    base, _, booking = pair
    big = b"x" * 2048
    assert_error_shape(
        requests.post(base + "/api/auth/register", data=big, timeout=10), 413, "payload_too_large"
    )
    streamed = requests.post(
        base + "/api/auth/register", data=iter([big[:1000], big[1000:]]), timeout=10
    )
    assert_error_shape(streamed, 413, "payload_too_large")
    assert booking.received == []  # not even truncated
    small = requests.post(base + "/api/auth/register", data=b"y" * 1000, timeout=10)
    assert small.status_code == 201 and small.json()["body"] == "y" * 1000
    # A streamed body within the limit arrives whole, with its length.
    chunked = requests.post(
        base + "/api/auth/register", data=iter([b"z" * 500, b"z" * 400]), timeout=10
    )
    assert chunked.status_code == 201, chunked.text
    assert chunked.json()["body"] == "z" * 900
    assert _headers(chunked.json())["content-length"] == "900"
    assert all(r["whole"] for r in booking.received)


def test_a_malformed_request_line_does_not_reach_a_service(pair):
    base, schedule, booking = pair
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/appointments HTTP/9.9 nonsense\r\n\r\n")
        first = sock.recv(1024)
    assert first.startswith(b"HTTP/1.") and b" 400 " in first.split(b"\r\n")[0] + b" "
    assert schedule.received == booking.received == []


def test_cors_for_configured_origins_only(make_gateway):
    with Upstream() as up:
        gateway = make_gateway(
            schedule=[up], booking=[up], CORS_ORIGINS="https://app.example,https://b.example"
        )
        allowed = requests.get(
            gateway.url + "/api/dynamic-slots/hospitals",
            headers={"Origin": "https://app.example"},
            timeout=10,
        )
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
        other = requests.get(
            gateway.url + "/api/dynamic-slots/hospitals",
            headers={"Origin": "https://evil.example"},
            timeout=10,
        )
        assert "Access-Control-Allow-Origin" not in other.headers
        preflight = requests.options(
            gateway.url + "/api/appointments",
            headers={"Origin": "https://b.example", "Access-Control-Request-Method": "POST"},
            timeout=10,
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://b.example"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        # An error the gateway makes carries them too.
        missing = requests.get(
            gateway.url + "/api/nowhere", headers={"Origin": "https://app.example"}, timeout=10
        )
        assert missing.status_code == 404
        assert missing.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert not any(r["method"] == "OPTIONS" for r in up.received)


def test_no_cors_headers_without_cors_origins(pair):
    base, _, _ = pair
    resp = requests.get(
        base + "/api/dynamic-slots/hospitals", headers={"Origin": "https://app.example"}, timeout=10
    )
    assert "Access-Control-Allow-Origin" not in resp.headers
