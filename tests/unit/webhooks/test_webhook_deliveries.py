"""The deliveries over fakes: backoff, retries, order per subject, leases, and attempts
made at once in a pool."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import orjson
from standardwebhooks.webhooks import Webhook

from booking_service.integrations.webhooks import delivery as webhooks_delivery
from booking_service.integrations.webhooks import service as webhooks_service
from booking_service.integrations.webhooks.delivery import backoff_seconds, deliver_due
from booking_service.integrations.webhooks.signing import secret_of
from booking_service.integrations.webhooks.store import DEAD, DELIVERED, PENDING
from booking_service.integrations.webhooks.transport import (
    HttpSender,
)
from shared.config import Config
from tests.unit.fakes import FakeSender
from tests.unit.webhooks.webhook_support import (
    T0,
    GatedSender,
    attempts,
    event,
    make_service,
    ms,
    queue,
    relay_all,
    states,
    subscribe,
    the_delivery,
    wait_for,
)

# --- Backoff -------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_with_jitter_between_half_and_all_of_it():
    assert [backoff_seconds(n, 2, 3600, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert [backoff_seconds(n, 2, 3600, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    for n in range(1, 12):
        wait = backoff_seconds(n, 2, 3600)
        assert 2 ** (n - 1) <= wait <= 2**n


def test_backoff_is_capped_and_never_overflows():
    assert backoff_seconds(30, 2, 3600, rand=lambda: 1.0) == 3600
    assert backoff_seconds(10_000, 2, 3600, rand=lambda: 0.0) == 1800
    assert backoff_seconds(0, 2, 3600, rand=lambda: 1.0) == 2  # as the first


# --- Deliveries ----------------------------------------------------------------------------


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(clock, monkeypatch):
    monkeypatch.setattr(webhooks_delivery.random, "random", lambda: 1.0)
    svc = make_service(FakeSender(500, None, 200), backoff=2.0)
    hook = subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    assert deliver_due(svc, "me") == 1
    doc = the_delivery(svc)
    assert (doc["state"], doc["next_attempt_ms"]) == (PENDING, ms(T0) + 2000)
    clock.advance(1.9)
    assert deliver_due(svc, "me") == 0  # not before its time
    clock.advance(0.1)
    assert deliver_due(svc, "me") == 1
    assert the_delivery(svc)["next_attempt_ms"] == ms(clock.now) + 4000
    clock.advance(4)
    assert deliver_due(svc, "me") == 1
    doc = the_delivery(svc)
    assert doc["state"] == DELIVERED and doc["attempt_count"] == 3
    assert [(a["status_code"], a["error"]) for a in attempts(doc)] == [
        (500, "HTTP 500"),
        (None, "connection error: refused"),
        (200, None),
    ]
    # Every attempt: the same webhook-id, a valid signature, the event's exact text.
    secret = secret_of(svc.config, svc.hooks.docs[hook["webhook_id"]])
    for url, body, headers in svc.sender.sent:
        assert url == "http://r/" and headers["webhook-id"] == doc["event_id"]
        assert body.decode() == doc["payload"]
        assert (
            Webhook(secret).sign(
                headers["webhook-id"],
                datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC),
                body.decode(),
            )
            == headers["webhook-signature"]
        )
    log = webhooks_service.delivery_log(svc, hook["webhook_id"], {"page": 1, "per_page": 50})
    assert log["total"] == 1 and log["deliveries"][0]["state"] == "delivered"
    assert [a["attempt"] for a in log["deliveries"][0]["attempts"]] == [1, 2, 3]


def test_a_delivery_is_dead_after_the_last_attempt_and_stays_in_the_log(clock):
    svc = make_service(FakeSender(*[503] * 10), max_attempts=3, backoff=1.0)
    hook = subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    for _ in range(10):
        deliver_due(svc, "me")
        clock.advance(60)
    doc = the_delivery(svc)
    assert (doc["state"], doc["attempt_count"], doc["dead_reason"]) == (DEAD, 3, "max attempts")
    assert len(svc.sender.sent) == 3
    log = webhooks_service.delivery_log(
        svc, hook["webhook_id"], {"page": 1, "per_page": 50, "state": "dead"}
    )
    assert log["total"] == 1 and log["deliveries"][0]["next_attempt_at"] is None


def test_a_subjects_deliveries_go_in_order_one_at_a_time(clock):
    svc = make_service(FakeSender(500, 200, 200, 200), backoff=2.0)
    subscribe(svc, ["appointment.created", "appointment.rescheduled", "appointment.cancelled"])
    svc.sources.push("appointment", event("appointment.created", 1))
    svc.sources.push("appointment", event("appointment.rescheduled", 2))
    svc.sources.push("appointment", event("appointment.cancelled", 3))
    relay_all(svc)
    deliver_due(svc, "me")  # the first fails: the others wait behind it
    assert len(svc.sender.sent) == 1
    clock.advance(10)
    deliver_due(svc, "me")
    sent = [orjson.loads(body)["type"] for _, body, _ in svc.sender.sent]
    assert sent == [
        "appointment.created",
        "appointment.created",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    assert {d["state"] for d in svc.deliveries.docs.values()} == {DELIVERED}


def test_a_lease_held_by_another_process_is_left_alone_until_it_runs_out(clock):
    svc = make_service(webhook_lease_seconds=30)
    hook = subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    doc = the_delivery(svc)
    assert svc.deliveries.claim(doc, ms(clock.now), 30_000, "other:123:x") is not None
    assert deliver_due(svc, "me") == 0  # the other process is attempting it
    clock.advance(29)
    assert deliver_due(svc, "me") == 0
    clock.advance(1)  # the other process died: its lease ran out
    assert deliver_due(svc, "me") == 1
    doc = the_delivery(svc)
    assert doc["state"] == DELIVERED and doc["attempt_count"] == 2
    lost, done = attempts(doc)
    assert lost["status_code"] is None and "lease expired" in lost["error"]
    assert lost["duration_ms"] == 30_000 and done["status_code"] == 200
    # An outcome from the process whose lease ran out is not recorded over the new one's.
    assert not svc.deliveries.record(doc, "other:123:x", "{}", {"state": DEAD})
    assert webhooks_service.find(svc, hook["webhook_id"])["active"]


def test_the_lease_is_always_longer_than_an_attempt():
    cfg = Config(webhook_lease_seconds=1, webhook_timeout_seconds=5)
    assert webhooks_delivery.lease_ms(cfg) == 11_000
    assert webhooks_delivery.lease_ms(Config()) == 30_000


# --- Attempts at once ----------------------------------------------------------------------


def test_a_hanging_receiver_holds_up_no_other_webhook(clock):
    sender = GatedSender("http://slow/")
    svc = make_service(sender)
    slow = subscribe(svc, ["appointment.created"], url="http://slow/")
    fast = subscribe(svc, ["appointment.created"], url="http://fast/")
    queue(svc, slow, ["s1", "s2", "s3"])
    queue(svc, fast, ["f1", "f2", "f3"])
    pool = webhooks_delivery.Concurrent(4)

    def fast_delivered() -> bool:  # (a pass may stop while the pool is full: pass again)
        deliver_due(svc, "me", attempts=pool)
        return states(svc, fast) == [DELIVERED] * 3

    try:
        # The slow webhook gets at most half the pool; the fast one's attempts are all made.
        wait_for(fast_delivered)
        wait_for(lambda: sender.hanging == 2)
        assert pool.busy() == {slow["webhook_id"]}
        assert deliver_due(svc, "me", attempts=pool) == 0  # its third waits for a turn
        assert states(svc, slow) == [PENDING] * 3
    finally:
        sender.gate.set()
        pool.shutdown()
    assert states(svc, slow) == [DELIVERED, DELIVERED, PENDING]
    assert deliver_due(svc, "me") == 1
    assert states(svc, slow) == [DELIVERED] * 3


def test_a_full_pool_starts_no_more_attempts(clock):
    sender = GatedSender("http://slow/")
    svc = make_service(sender)
    hooks = [subscribe(svc, ["appointment.created"], url="http://slow/") for _ in range(3)]
    for n, hook in enumerate(hooks):
        queue(svc, hook, [f"a{n}", f"b{n}"])
    pool = webhooks_delivery.Concurrent(2)  # one attempt per webhook at a time
    try:
        assert deliver_due(svc, "me", attempts=pool) == 2
        wait_for(lambda: sender.hanging == 2)
        assert pool.full() and deliver_due(svc, "me", attempts=pool) == 0
    finally:
        sender.gate.set()
        pool.shutdown()
    assert deliver_due(svc, "me") == 4
    assert all(d["state"] == DELIVERED for d in svc.deliveries.docs.values())


def test_an_attempt_that_crashes_frees_its_place_in_the_pool():
    pool = webhooks_delivery.Concurrent(2)

    def boom() -> None:
        raise RuntimeError("a bug")

    try:
        pool.submit("w1", boom)
        wait_for(lambda: not pool.running)
        assert pool.busy() == set() and not pool.full()
    finally:
        pool.shutdown()


def test_each_thread_has_its_own_session():
    sender = HttpSender(guarded=False)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(sender.session)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 3
    assert sender.session is sender.session


def test_a_busy_webhooks_backlog_does_not_hide_the_others_deliveries(clock, monkeypatch):
    monkeypatch.setattr(webhooks_delivery, "DUE_BATCH", 5)
    sender = GatedSender("http://slow/")
    svc = make_service(sender)
    slow = subscribe(svc, ["appointment.created"], url="http://slow/")
    fast = subscribe(svc, ["appointment.created"], url="http://fast/")
    queue(svc, slow, [f"s{n}" for n in range(12)])  # due first: more than a batch
    clock.advance(1)
    queue(svc, fast, ["f1"], at=clock.now)
    pool = webhooks_delivery.Concurrent(4)
    try:
        assert deliver_due(svc, "me", attempts=pool) == 3
        wait_for(lambda: states(svc, fast) == [DELIVERED])
    finally:
        sender.gate.set()
        pool.shutdown()
