"""What the gateway passes on, both ways, against an echoing upstream on loopback."""

from __future__ import annotations

import socket

import pytest
import requests
from aiohttp import web

import gateway
from shared.config import Config
from tests.helpers import assert_error_shape, serve_in_thread


def _echo_app() -> web.Application:
    """An upstream that answers with what it received, a cookie pair and an ETag."""

    async def echo(request: web.Request) -> web.Response:
        resp = web.json_response(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": (await request.read()).decode(),
            },
            status=201 if request.method == "POST" else 200,
        )
        resp.headers["ETag"] = '"v7"'
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/")
        resp.headers["X-Request-ID"] = "from-upstream"
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture(scope="module")
def base():
    with serve_in_thread(_echo_app()) as upstream:
        cfg = Config(
            schedule_service_url=upstream, booking_service_url=upstream, max_body_bytes=1024
        )
        with serve_in_thread(gateway.create_app(cfg)) as url:
            yield url


def _headers(answer: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in answer["headers"]}


def test_a_request_goes_on_byte_for_byte_without_hop_by_hop_headers(base):
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
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert "x-hop" not in headers
    assert "user-agent" in headers  # the client's own (requests'), not replaced
    assert headers["user-agent"].startswith("python-requests")


def test_the_answer_comes_back_with_its_headers_and_the_gateway_request_id(base):
    resp = requests.get(base + "/api/dynamic-slots/hospitals", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["ETag"] == '"v7"'
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    rid = resp.headers["X-Request-ID"]
    assert rid != "from-upstream" and len(rid) == 32
    assert _headers(resp.json())["x-request-id"] == rid  # the same id went upstream


def test_an_unsafe_request_id_is_replaced(base):
    resp = requests.get(
        base + "/api/dynamic-slots/hospitals", headers={"X-Request-ID": "bad id\t"}, timeout=10
    )
    assert resp.headers["X-Request-ID"] != "bad id\t"
    assert len(resp.headers["X-Request-ID"]) == 32


def test_no_cookie_of_one_client_reaches_the_next(base):
    requests.get(base + "/api/dynamic-slots/hospitals", timeout=10)
    seen = requests.get(base + "/api/dynamic-slots/hospitals", timeout=10).json()
    assert "cookie" not in _headers(seen)


@pytest.mark.parametrize("path", ["/api/unknown", "/api/", "/nowhere", "/api"])
def test_unknown_paths_are_404_in_the_error_shape(base, path):
    resp = requests.get(base + path, timeout=10)
    assert_error_shape(resp, 404, "not_found")
    assert resp.headers["X-Request-ID"]


def test_an_unknown_method_is_405_with_allow(base):
    resp = requests.request("TRACE", base + "/api/appointments", timeout=10)
    assert_error_shape(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    resp = requests.post(base + "/healthz", timeout=10)
    assert_error_shape(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


def test_bodies_over_the_limit_are_413_with_a_length_or_streamed(base):
    big = b"x" * 2048
    assert_error_shape(
        requests.post(base + "/api/auth/register", data=big, timeout=10), 413, "payload_too_large"
    )
    streamed = requests.post(
        base + "/api/auth/register", data=iter([big[:1000], big[1000:]]), timeout=10
    )
    assert_error_shape(streamed, 413, "payload_too_large")
    small = requests.post(base + "/api/auth/register", data=b"y" * 1000, timeout=10)
    assert small.status_code == 201 and small.json()["body"] == "y" * 1000


def test_a_malformed_request_line_does_not_reach_a_service(base):
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/appointments HTTP/9.9 nonsense\r\n\r\n")
        first = sock.recv(1024)
    assert first.startswith(b"HTTP/1.") and b" 400 " in first.split(b"\r\n")[0] + b" "
