"""The relay over fakes: each outbox event queued once per subscribed webhook, never lost."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from booking_service.adapters import outbox
from booking_service.integrations.webhooks import service as webhooks_service
from booking_service.integrations.webhooks.delivery import deliver_due
from booking_service.integrations.webhooks.relay import (
    event_ms,
    relay_document,
)
from booking_service.integrations.webhooks.store import DEAD
from tests.unit.fakes import FakeDeliveries
from tests.unit.webhooks.webhook_support import (
    T0,
    event,
    make_service,
    ms,
    relay_all,
    subscribe,
)

# --- Relay ---------------------------------------------------------------------------------


def test_the_relay_queues_each_event_once_per_subscribed_webhook(clock):
    svc = make_service()
    every = subscribe(svc, outbox.EVENT_TYPES)
    cancels = subscribe(svc, ["appointment.cancelled"])
    svc.sources.push("appointment", event("appointment.created", 1))
    svc.sources.push("appointment", event("appointment.cancelled", 2))
    (doc,) = svc.sources.pending("appointment", 10)
    hooks = svc.hooks.active()
    # Two processes relay the same outbox: the second queues nothing.
    assert relay_document(svc.deliveries, svc.sources, hooks, "appointment", doc, ms(T0)) == 3
    assert relay_document(svc.deliveries, svc.sources, hooks, "appointment", doc, ms(T0)) == 0
    assert relay_all(svc) == 0
    queued = sorted(
        (d["webhook_id"], d["event_type"], d["seq"]) for d in svc.deliveries.docs.values()
    )
    assert queued == sorted(
        [
            (every["webhook_id"], "appointment.created", 1),
            (every["webhook_id"], "appointment.cancelled", 2),
            (cancels["webhook_id"], "appointment.cancelled", 2),
        ]
    )
    assert svc.sources.pending("appointment", 10) == []
    for delivery in svc.deliveries.docs.values():
        assert delivery["_id"] == f"{delivery['event_id']}:{delivery['webhook_id']}"
        assert orjson.loads(delivery["payload"])["id"] == delivery["event_id"]


def test_a_webhook_made_after_an_event_does_not_get_it(clock):
    svc = make_service()
    at = T0 + timedelta(milliseconds=400)
    svc.sources.push("appointment", event("appointment.created", 1, at=at))
    subscribe(svc, ["appointment.created"], at=at + timedelta(milliseconds=1))
    subscribe(svc, ["appointment.created"], at=at + timedelta(seconds=1))
    same_ms = subscribe(svc, ["appointment.created"], at=at)
    assert relay_all(svc, T0 + timedelta(seconds=5)) == 1
    (delivery,) = svc.deliveries.docs.values()
    assert delivery["webhook_id"] == same_ms["webhook_id"]  # events carry milliseconds


def test_an_event_of_whole_seconds_from_before_the_change_is_still_read():
    # Outboxes written before events carried milliseconds
    stamped = {"type": "appointment.created", "timestamp": "2026-11-28T10:00:05Z"}
    assert event_ms(stamped, 0) == 1_795_860_005_000
    assert event_ms({**stamped, "timestamp": "2026-11-28T10:00:05.250Z"}, 0) == 1_795_860_005_250
    for bad in (None, 5, "yesterday", "2026-11-28T10:00:05"):
        assert event_ms({**stamped, "timestamp": bad}, 42) == 42
    assert event_ms({"type": "appointment.created"}, 42) == 42


def test_a_deleted_webhook_gets_nothing_more(clock):
    svc = make_service()
    hook = subscribe(svc, ["appointment.created", "appointment.cancelled"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    webhooks_service.delete(svc, hook["webhook_id"], T0)
    webhooks_service.delete(svc, hook["webhook_id"], T0)  # idempotent
    svc.sources.push("appointment", event("appointment.cancelled", 2))
    assert relay_all(svc) == 0
    assert deliver_due(svc, "me") == 0
    assert svc.sender.sent == []
    (dead,) = svc.deliveries.docs.values()
    assert (dead["state"], dead["dead_reason"]) == (DEAD, "webhook deleted")


def test_a_broken_outbox_entry_is_dropped_not_retried_forever(clock):
    svc = make_service()
    subscribe(svc, ["appointment.created"])
    doc = svc.sources.push("appointment", event("appointment.created", 1))
    doc["outbox"].insert(0, "not json")
    assert relay_all(svc) == 1
    assert svc.sources.pending("appointment", 10) == []


def test_a_relay_that_fails_leaves_the_events_in_their_outbox(clock):
    class Failing(FakeDeliveries):
        def insert(self, doc):
            raise RuntimeError("database down")

    svc = make_service()
    svc.deliveries = Failing()
    subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    with pytest.raises(RuntimeError):
        relay_all(svc)
    assert svc.sources.pending("appointment", 10)  # the event stays in its outbox
