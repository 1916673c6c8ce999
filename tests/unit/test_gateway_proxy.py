"""gateway/proxy.py (hop-by-hop headers, circuit breaker) and gateway/routes.py (route table)."""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict

from gateway.proxy import RESPONSE_HOP_BY_HOP, Breaker, strip_hop_by_hop
from gateway.routes import BOOKING, SCHEDULE, route

# --- strip_hop_by_hop ---------------------------------------------------------------------


def test_strip_hop_by_hop_drops_transport_headers_and_keeps_end_to_end():
    headers = {
        "Connection": "keep-alive, X-Secret-Hop",
        "Keep-Alive": "timeout=5",
        "Transfer-Encoding": "chunked",
        "Host": "gateway:8000",
        "Content-Length": "42",
        "X-Secret-Hop": "1",
        "Upgrade": "h2c",
        "TE": "trailers",
        "Proxy-Authorization": "Basic xyz",
        "Authorization": "Bearer abc",
        "ETag": '"v3"',
        "X-Request-ID": "req-1",
        "Content-Type": "application/json",
        "If-None-Match": '"v2"',
    }
    assert dict(strip_hop_by_hop(headers)) == {
        "Authorization": "Bearer abc",
        "ETag": '"v3"',
        "X-Request-ID": "req-1",
        "Content-Type": "application/json",
        "If-None-Match": '"v2"',
    }


def test_strip_hop_by_hop_is_case_insensitive():
    headers = {
        "connection": "X-FOO,  x-bar ",
        "HOST": "h",
        "content-length": "1",
        "x-foo": "1",
        "X-Bar": "2",
        "x-request-id": "r",
    }
    assert dict(strip_hop_by_hop(headers)) == {"x-request-id": "r"}


def test_strip_hop_by_hop_keeps_repeated_headers():
    headers = CIMultiDict(
        [
            ("Host", "x"),
            ("Connection", "close"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Request-ID", "abc"),
        ]
    )
    kept = strip_hop_by_hop(headers)
    assert kept.getall("Set-Cookie") == ["a=1", "b=2"]
    assert [key for key, _ in kept.items()] == ["Set-Cookie", "Set-Cookie", "X-Request-ID"]


def test_responses_keep_their_content_encoding_requests_do_not():
    headers = {"Content-Encoding": "gzip", "Content-Length": "10", "ETag": "e"}
    assert dict(strip_hop_by_hop(headers)) == {"ETag": "e"}
    assert dict(strip_hop_by_hop(headers, RESPONSE_HOP_BY_HOP)) == {
        "Content-Encoding": "gzip",
        "ETag": "e",
    }


def test_strip_hop_by_hop_does_not_modify_input():
    headers = {"Host": "x", "ETag": "e"}
    strip_hop_by_hop(headers)
    assert headers == {"Host": "x", "ETag": "e"}


# --- Breaker ------------------------------------------------------------------------------


def test_breaker_stays_closed_below_threshold():
    breaker = Breaker(threshold=3, cooldown=60)
    for _ in range(2):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.state == "closed"
    assert breaker.allow()


def test_breaker_success_resets_the_consecutive_count():
    breaker = Breaker(threshold=3, cooldown=60)
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    breaker.record(False)
    assert breaker.state == "closed"
    assert breaker.allow()


def test_breaker_opens_after_threshold_and_fails_fast():
    breaker = Breaker(threshold=3, cooldown=60)
    for _ in range(3):
        breaker.record(False)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert not breaker.allow()


def test_breaker_lets_one_trial_through_after_cooldown_then_closes_on_success():
    breaker = Breaker(threshold=2, cooldown=0.05)
    breaker.record(False)
    breaker.record(False)
    assert not breaker.allow()
    time.sleep(0.08)
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one while the trial is out
    breaker.record(True)
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.allow()


def test_breaker_failed_trial_reopens_for_another_cooldown():
    breaker = Breaker(threshold=2, cooldown=0.05)
    breaker.record(False)
    breaker.record(False)
    time.sleep(0.08)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state == "open"
    assert not breaker.allow()
    time.sleep(0.08)
    assert breaker.allow()


def test_breakers_are_independent():
    first, second = Breaker(threshold=1, cooldown=60), Breaker(threshold=1, cooldown=60)
    first.record(False)
    assert not first.allow()
    assert second.allow()


# --- routes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/dynamic-slots/hospitals", SCHEDULE),
        ("/api/dynamic-slots/hospitals/gomoti", SCHEDULE),
        ("/api/dynamic-slots/available/gomoti/2026-11-28", SCHEDULE),
        ("/api/dynamic-slots/calendar/gomoti", SCHEDULE),
        ("/api/dynamic-slots/hospitals/gomoti/history", SCHEDULE),
        ("/api/appointments", BOOKING),
        ("/api/appointments/x", BOOKING),
        ("/api/appointments/665f1c2e9b1e8a0001a1b2c3", BOOKING),
        ("/api/availability/gomoti/2026-11-28", BOOKING),
        ("/api/availability/bulk", BOOKING),
        ("/api/auth/login", BOOKING),
        ("/api/auth/register", BOOKING),
    ],
)
def test_route_maps_contract_prefixes(path, service):
    assert route(path) == service


def test_schedule_and_booking_are_different_services():
    assert SCHEDULE != BOOKING


@pytest.mark.parametrize(
    "path",
    ["/api/other", "/api", "/", "/api/dynamic", "/healthz", "/dynamic-slots/hospitals", ""],
)
def test_route_unknown_paths(path):
    assert route(path) is None
