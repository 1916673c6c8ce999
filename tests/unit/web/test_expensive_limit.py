"""Issue 23, isolation by cost: the per-process limit on expensive answers
(shared/concurrency.py, EXPENSIVE_CONCURRENCY). Calendar feeds and FHIR searches share one
limit per process; over it a request is refused at once (503 service_unavailable with
Retry-After; on FHIR an OperationOutcome), never queued; everything else is not limited."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from shared import concurrency
from shared.config import Config
from shared.errors import ServiceUnavailable
from tests.unit.fhir.fhir_support import bearer, check_outcome, fhir_json, make_app


def test_a_limit_refuses_one_more_at_once_and_frees_its_slots():
    limit = concurrency.ConcurrencyLimit(2)
    with limit.slot("feeds"), limit.slot("feeds"):
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as refused, limit.slot("feeds"):
            pass
        assert time.monotonic() - started < 0.5  # at once, not after a wait
    exc = refused.value
    assert (exc.status, exc.reason) == (503, "service_unavailable")
    assert exc.headers == {"Retry-After": "1"} and exc.extra == {"retry_after": 1}
    assert "feeds" in exc.message
    # an error inside the block gives its slot back too
    with pytest.raises(KeyError), limit.slot("feeds"):
        raise KeyError("x")
    with limit.slot("feeds"), limit.slot("feeds"):
        pass


def test_concurrent_requests_never_hold_more_than_the_limit():
    limit = concurrency.ConcurrencyLimit(3)
    lock = threading.Lock()
    under_way, most = 0, 0

    def request(_: int) -> str:
        nonlocal under_way, most
        try:
            with limit.slot("searches"):
                with lock:
                    under_way += 1
                    most = max(most, under_way)
                time.sleep(0.05)
                with lock:
                    under_way -= 1
            return "served"
        except ServiceUnavailable:
            return "refused"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(request, range(48)))
    assert most <= 3
    assert outcomes.count("served") >= 3 and len(outcomes) == 48


def test_the_setting_is_read_and_at_least_one():
    assert Config.from_env({}).expensive_concurrency == 1
    assert Config.from_env({"EXPENSIVE_CONCURRENCY": "5"}).expensive_concurrency == 5
    assert Config.from_env({"EXPENSIVE_CONCURRENCY": "0"}).expensive_concurrency == 1
    with pytest.raises(ValueError, match="EXPENSIVE_CONCURRENCY"):
        Config.from_env({"EXPENSIVE_CONCURRENCY": "two"})
    with pytest.raises(ValueError):
        concurrency.ConcurrencyLimit(0)


def test_feeds_and_fhir_searches_share_the_limit_and_nothing_else_is_limited():
    app = make_app()[0]
    client = app.test_client()
    limit = app.extensions[concurrency.EXTENSION]
    assert limit.limit == 1  # one limit for the app, made once, from the setting
    made = client.post("/api/feeds", json={"hospital_id": "h_1"}, headers=bearer(app, "admin"))
    assert made.status_code == 201, made.json
    feed_url = made.json["url"]
    assert client.get(feed_url).status_code == 200
    assert fhir_json(client.get("/fhir/R4/Location"))["resourceType"] == "Bundle"

    with ExitStack() as held:  # as many expensive answers under way as the limit
        for _ in range(limit.limit):
            held.enter_context(limit.slot("test"))
        feed = client.get(feed_url)
        assert (feed.status_code, feed.json["error"]) == (503, "service_unavailable")
        assert feed.headers["Retry-After"] == "1" and feed.json["retry_after"] == 1
        for search in (
            "/fhir/R4/Location",
            "/fhir/R4/Practitioner",
            "/fhir/R4/Schedule?actor=Location/h..1",
            "/fhir/R4/Appointment",
            "/fhir/R4/Slot?schedule=Schedule/h..1",
        ):
            resp = client.get(search, headers=bearer(app, "admin"))
            check_outcome(resp, 503, "service_unavailable")
            assert resp.headers["Retry-After"] == "1", search
        # Cheap answers are not limited: reads by id, the CapabilityStatement, the REST reads.
        assert fhir_json(client.get("/fhir/R4/Location/h..1"))["name"] == "H One"
        fhir_json(client.get("/fhir/R4/metadata"))
        assert client.get("/api/availability/h_1/2030-01-01").status_code in (200, 422)
        assert client.get("/api/feeds", headers=bearer(app, "admin")).status_code == 200

    assert client.get(feed_url).status_code == 200
    assert fhir_json(client.get("/fhir/R4/Location"))["total"] >= 1
