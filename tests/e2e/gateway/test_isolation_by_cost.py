"""Issue 23, isolation by cost, at the gateway (a real Caddy on gateway/Caddyfile) against
recording upstreams: a burst of slow or refused expensive requests (calendar feeds, FHIR,
stream opens) is answered or refused on its own and never takes a service out for the cheap
routes.

Caddy keeps one failure count per upstream address, shared by every route that names it, so
these tests put every service on the same upstream: a failure counted on any route would take
it out for all of them. Before: the feeds' 504s counted, the breaker opened after
BREAKER_THRESHOLD of them, and `/api/availability` was 503 for the cooldown."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers import assert_error_shape, wait_until
from tests.upstream import Upstream

FEED = "/api/feeds/0123456789abcdef01234567.ics?token=" + "t" * 43
CHEAP = (
    "/api/availability/h1/2026-11-28",
    "/api/dynamic-slots/available/h1/2026-11-28",
    "/api/queue/h1/2026-11-28",
    "/display/h1",
    "/desk/h1",
)
# Expensive requests the services are slow to answer (the gateway's 504) or refuse (503, 429).
COSTLY = (
    [(FEED + "&delay=3", 504)] * 6
    + [(FEED + "&status=503", 503)] * 4
    + [("/fhir/R4/Appointment?_count=200&delay=3", 504)] * 4
    + [("/fhir/R4/Slot?schedule=Schedule/h1&status=503", 503)] * 4
    + [("/fhir/R4/Appointment/abc?delay=3", 504)] * 2
    + [("/api/live/h1/2026-11-28/stream?delay=3", 504)] * 6
    + [("/api/live/h1/2026-11-28?status=503", 503)] * 4
    + [("/api/live/h1/2026-11-28?status=429", 429)] * 4
)
READ_TIMEOUT = 0.5


def _gateway(make_gateway, up: Upstream, **env: str):
    """A gateway whose three services are all `up`; a breaker of 2 failures for a minute."""
    settings = {
        "LIVE_UPSTREAMS": f"to {up.address}",
        "BREAKER_THRESHOLD": "2",
        "BREAKER_COOLDOWN_SECONDS": "60",
        "UPSTREAM_READ_TIMEOUT": str(READ_TIMEOUT),
        "EXPENSIVE_READ_TIMEOUT": str(READ_TIMEOUT),
        "UPSTREAM_HEALTH_INTERVAL": "3600",
        **env,
    }
    return make_gateway(schedule=[up], booking=[up], **settings)


def test_a_burst_of_expensive_requests_never_takes_the_services_out_for_the_cheap_routes(
    make_gateway,
):
    with Upstream() as up:
        gateway = _gateway(make_gateway, up)
        stop = threading.Event()
        cheap: Counter[tuple[str, int]] = Counter()

        def poll() -> None:
            with requests.Session() as http:
                while not stop.is_set():
                    for path in CHEAP:
                        cheap[path, http.get(gateway.url + path, timeout=30).status_code] += 1

        def costly(item: tuple[str, int]) -> tuple[str, int, int, float]:
            path, expected = item
            started = time.monotonic()
            resp = requests.get(gateway.url + path, timeout=60)
            if resp.status_code == 504 and path.startswith("/fhir/"):  # the gateway's own
                assert resp.json()["resourceType"] == "OperationOutcome"
            elif resp.status_code == 504:
                assert_error_shape(resp, 504, "gateway_timeout")
            return path, expected, resp.status_code, time.monotonic() - started

        poller = threading.Thread(target=poll)
        poller.start()
        answers = []
        try:
            for _ in range(2):  # two bursts, each many times the breaker's threshold
                with ThreadPoolExecutor(len(COSTLY)) as pool:
                    answers += pool.map(costly, COSTLY)
            # ... and afterwards too: nothing was counted, nothing is skipped.
            after = sum(cheap.values())
            wait_until(lambda: sum(cheap.values()) >= after + 3 * len(CHEAP), timeout=30)
        finally:
            stop.set()
            poller.join(timeout=60)
        assert {status for _, status in cheap} == {200}, cheap
        assert all(cheap[path, 200] >= 3 for path in CHEAP), cheap
        for path, expected, status, took in answers:
            # Answered or refused on its own, with its own status; never held past the
            # gateway's timeout (a generous bound: the machine may be loaded).
            assert status == expected, (path, status)
            assert took < READ_TIMEOUT + 10, (path, took)


def test_the_expensive_routes_still_skip_a_process_the_cheap_routes_took_out(make_gateway):
    """They add nothing to a process's failures, but they do not ignore them: a process that
    the counting routes found failing gets none of their requests either."""
    with Upstream() as sick, Upstream() as healthy:
        gateway = make_gateway(
            booking=[sick, healthy], LIVE_UPSTREAMS=f"to {sick.address} {healthy.address}",
            GATEWAY_LB_POLICY="round_robin", BREAKER_THRESHOLD="1",
            BREAKER_COOLDOWN_SECONDS="60", UPSTREAM_HEALTH_INTERVAL="3600",
        )  # fmt: skip
        sick.set_answer(503)  # the process itself says it cannot serve
        for path in ("/api/auth/x", "/display/h1") * 3:
            requests.get(gateway.url + path, timeout=10)
        before = len(sick.received)
        assert before >= 1
        for path in (
            FEED,
            "/fhir/R4/Appointment",
            "/fhir/R4/metadata",
            "/api/live/h1/d/stream?events=1",
        ):
            for _ in range(4):
                assert requests.get(gateway.url + path, timeout=10).status_code == 200, path
        assert len(sick.received) == before


def test_the_expensive_routes_wait_longer_for_their_answers(make_gateway):
    """EXPENSIVE_READ_TIMEOUT: a feed or a FHIR search that takes longer than the cheap
    routes' timeout is still answered (the service bounds how many run at once); the cheap
    routes keep their own timeout."""
    with Upstream() as up:
        gateway = _gateway(make_gateway, up, EXPENSIVE_READ_TIMEOUT="10")
        for path in (FEED + "&delay=1.5", "/fhir/R4/Appointment?delay=1.5"):
            assert requests.get(gateway.url + path, timeout=30).status_code == 200, path
        resp = requests.get(gateway.url + "/api/availability/h1/2026-11-28?delay=1.5", timeout=30)
        assert_error_shape(resp, 504, "gateway_timeout")
