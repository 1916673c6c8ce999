"""Several processes of a service behind the gateway (SCHEDULE_REPLICAS / BOOKING_REPLICAS of
`make run`): all of them get traffic, and the gateway keeps answering when one dies."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from devstack.stack import Stack
from tests.helpers import Api, next_weekday, whole_system


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, mongo_url, redis_url, mongo_db_name) -> Iterator[Stack]:
    """A system with two booking processes (one worker each)."""
    with whole_system(
        tmp_path_factory.mktemp("scaled"),
        mongo_url,
        redis_url,
        mongo_db_name,
        workers=1,
        replicas={"booking": 2},
        gateway_env={"UPSTREAM_HEALTH_INTERVAL": "0.5"},
    ) as running:
        yield running


def _served_by(stack: Stack) -> Counter:
    """Requests counted by each booking process's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: Counter = Counter()
    for url in stack.replica_urls("booking"):
        text = requests.get(url + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "http_requests_total" and sample.labels.get(
                    "route", ""
                ).startswith("/api/availability"):
                    counts[url] += sample.value
    return counts


def test_every_booking_process_gets_traffic_and_one_dying_costs_no_answer(scaled):
    gateway = Api(scaled.gateway_url)
    day = next_weekday(3)
    before = _served_by(scaled)
    for _ in range(40):
        assert gateway.get(f"/api/availability/gomoti/{day}").status_code == 200
    after = _served_by(scaled)
    assert all(after[url] > before[url] for url in scaled.replica_urls("booking")), (before, after)

    # Clients keep asking while the second process is killed: the ones that were in flight on
    # it may fail; every later one is answered by the first process.
    stop, statuses = threading.Event(), []

    def client():
        session = requests.Session()
        for _ in range(10_000):  # bounded; stop ends it
            if stop.is_set():
                return
            try:
                resp = session.get(
                    f"{scaled.gateway_url}/api/availability/gomoti/{day}", timeout=10
                )
                statuses.append(resp.status_code)
            except requests.RequestException:
                statuses.append(0)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        while len(statuses) < 30:
            threading.Event().wait(0.05)
        scaled.services["booking-2"].kill()
        killed_at = len(statuses)
        while len(statuses) < killed_at + 60:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    failures = [s for s in statuses if s != 200]
    # at most the requests in flight at the kill (one per client)
    assert len(failures) <= len(threads), Counter(statuses)
    assert statuses[-20:] == [200] * 20
