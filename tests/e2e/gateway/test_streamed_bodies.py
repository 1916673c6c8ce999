"""Issue 26: streamed (chunked) request bodies at the gateway (a real Caddy on gateway/Caddyfile)
against recording upstreams. Every one of them goes through the buffering hop, whatever the
service: it arrives whole, with its length and with the X-Request-ID the caller gets back, and
(a request with a body) its failures are never counted by the passive health checks.

Before: a chunked body to /display/* or /desk/* took the live service's counting route (the
gateway's test for a body only saw a declared length), and the hop made an X-Request-ID of its
own for a request that came without one, so the service logged another ID than the caller got."""

from __future__ import annotations

import re

import requests

from tests.upstream import Upstream

GENERATED_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _headers(record: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in record["headers"]}


def test_a_streamed_body_to_a_live_page_is_read_whole_and_never_counted(make_gateway):
    with Upstream() as sick, Upstream() as healthy:
        gateway = make_gateway(
            booking=[healthy], LIVE_UPSTREAMS=f"to {sick.address} {healthy.address}",
            GATEWAY_LB_POLICY="round_robin", BREAKER_THRESHOLD="1",
            BREAKER_COOLDOWN_SECONDS="60", UPSTREAM_HEALTH_INTERVAL="3600",
        )  # fmt: skip
        sick.set_answer(503)  # a failure, had it been counted
        for n in range(4):
            requests.post(
                gateway.url + "/display/h1", data=iter([b'{"n": ', str(n).encode(), b"}"]),
                timeout=10,
            )  # fmt: skip
        posted = [r for r in sick.received + healthy.received if r["method"] == "POST"]
        assert len(posted) == 4
        assert all(r["whole"] and "content-length" in _headers(r) for r in posted), posted
        assert any(r["method"] == "POST" for r in sick.received)  # its 503 reached the gateway
        # Not counted: the sick process still gets its share of the pages.
        for _ in range(4):
            requests.get(gateway.url + "/display/h1", timeout=10)
        assert any(r["method"] == "GET" for r in sick.received)


def test_a_streamed_body_keeps_the_request_id_through_the_buffering_hop(make_gateway):
    with Upstream() as up:
        gateway = make_gateway(schedule=[up], booking=[up])
        for headers in ({}, {"X-Request-ID": "bad id"}, {"X-Request-ID": "caller-7"}):
            resp = requests.post(
                gateway.url + "/api/appointments", data=iter([b'{"a":', b" 1}"]),
                headers=headers, timeout=10,
            )  # fmt: skip
            assert resp.status_code == 201, resp.text
            rid = resp.headers["X-Request-ID"]
            if headers.get("X-Request-ID") == "caller-7":
                assert rid == "caller-7"
            else:
                assert GENERATED_ID.match(rid), rid
            seen = _headers(up.received[-1])
            assert seen["x-request-id"] == rid
            assert seen["content-length"] == "8"
