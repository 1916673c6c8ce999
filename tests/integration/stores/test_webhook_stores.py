"""The integrations' stores and their fakes (tests/unit/fakes.py): the same cases against the
real ones, on the session's MongoDB (tests/conftest.py; a database of this module's own, its
indexes made by the one `booking_service.bootstrap.ensure_indexes`), and against the fakes the
unit tests build the app from. A fake that answers otherwise fails here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from bson import ObjectId
from pymongo import MongoClient

from booking_service.adapters import outbox
from booking_service.bootstrap import ensure_indexes
from booking_service.integrations.calendars.store import FeedRepository
from booking_service.integrations.webhooks.store import (
    DEAD,
    PENDING,
    DeliveryStore,
    OutboxSources,
    WebhookStore,
)
from tests.unit.builders import NOW
from tests.unit.fakes import FakeDeliveries, FakeFeeds, FakeHooks, FakeSources


@dataclass
class Stores:
    """One side of the contract: the stores, and how a change writes an event to an outbox."""

    hooks: WebhookStore | FakeHooks
    deliveries: DeliveryStore | FakeDeliveries
    sources: OutboxSources | FakeSources
    feeds: FeedRepository | FakeFeeds
    push: Callable[[str, ObjectId, dict], None]


@pytest.fixture(scope="module")
def contract_db(mongo_url, mongo_db_name) -> Iterator:
    client = MongoClient(mongo_url, tz_aware=True)
    name = f"{mongo_db_name}_stores"
    db = client[name]
    ensure_indexes(db)
    yield db
    client.drop_database(name)
    client.close()


def _real(db) -> Stores:
    for name in ("webhooks", "webhook_deliveries", "feeds", "appointments", "waitlist"):
        db[name].delete_many({})

    def push(kind: str, oid: ObjectId, event: dict) -> None:
        """A change with its event, as the repositories write it (a waitlist entry has no
        version)."""
        col = db.appointments if kind == "appointment" else db.waitlist
        if col.find_one({"_id": oid}) is None:
            col.insert_one({"_id": oid, "version": 0} if kind == "appointment" else {"_id": oid})
        update = {"$inc": {"version": 1}} if kind == "appointment" else {"$set": {}}
        col.update_one({"_id": oid}, outbox.with_event(update, event))

    return Stores(WebhookStore(db), DeliveryStore(db), OutboxSources(db), FeedRepository(db), push)


def _fake() -> Stores:
    sources = FakeSources()

    def push(kind: str, oid: ObjectId, event: dict) -> None:
        sources.push(kind, event, oid)

    return Stores(FakeHooks(), FakeDeliveries(), sources, FakeFeeds(), push)


@pytest.fixture(params=["real", "fake"])
def stores(request, contract_db) -> Stores:
    return _real(contract_db) if request.param == "real" else _fake()


def delivery(webhook_id: str, n: int, seq: int = 1, due_ms: int = 1000, subject="s") -> dict:
    return {
        "_id": f"evt_{n}:{webhook_id}",
        "webhook_id": webhook_id,
        "event_id": f"evt_{n}",
        "event_type": "appointment.created",
        "subject": f"appointment:{subject}",
        "seq": seq,
        "payload": "{}",
        "state": PENDING,
        "attempt_count": 0,
        "attempts": [],
        "lease_until_ms": 0,
        "next_attempt_ms": due_ms,
        "created_ms": due_ms,
    }


def test_webhooks_active_oldest_first_and_deleted_without_secret(stores):
    ids = [ObjectId() for _ in range(3)]
    for n, oid in enumerate(ids):
        stores.hooks.insert(
            {"_id": oid, "url": "http://r/", "events": [], "active": True, "created_ms": 3 - n}
            | {"secret_salt": "salt"}
        )
    assert [d["_id"] for d in stores.hooks.active()] == ids[::-1]
    assert stores.hooks.deactivate(str(ids[0]), 50) and stores.hooks.count_active() == 2
    gone = stores.hooks.get(str(ids[0]))
    assert (gone["active"], gone["deleted_ms"], "secret_salt" in gone) == (False, 50, False)
    assert not stores.hooks.deactivate(str(ObjectId()), 50)
    assert stores.hooks.get(str(ObjectId())) is None


def test_deliveries_queue_once_come_due_in_order_and_skip_busy_webhooks(stores):
    queue = stores.deliveries
    assert queue.insert(delivery("w1", 1, due_ms=300))
    assert not queue.insert(delivery("w1", 1, due_ms=300))  # the same event, the same webhook
    queue.insert(delivery("w1", 2, seq=2, due_ms=100))
    queue.insert(delivery("w2", 3, due_ms=200))
    queue.insert(delivery("w2", 4, due_ms=5000))
    assert [d["_id"] for d in queue.due(1000, 10)] == ["evt_2:w1", "evt_3:w2", "evt_1:w1"]
    assert [d["_id"] for d in queue.due(1000, 2)] == ["evt_2:w1", "evt_3:w2"]
    assert [d["_id"] for d in queue.due(1000, 10, exclude={"w1"})] == ["evt_3:w2"]
    assert queue.earlier_pending("w1", "appointment:s", 2)["_id"] == "evt_1:w1"
    assert queue.earlier_pending("w1", "appointment:s", 1) is None
    queue.defer("evt_3:w2", 4000, 1000)
    assert [d["_id"] for d in queue.due(1000, 10)] == ["evt_2:w1", "evt_1:w1"]


def test_a_lease_is_taken_once_recorded_by_its_owner_or_expired_by_another(stores):
    queue = stores.deliveries
    queue.insert(delivery("w1", 1))
    (due,) = queue.due(1000, 10)
    claimed = queue.claim(due, 1000, 500, "me")
    assert (claimed["lease_owner"], claimed["lease_until_ms"]) == ("me", 1500)
    assert queue.claim(due, 1000, 500, "other") is None
    assert queue.due(1200, 10) == []  # leased
    assert queue.expire_lease(claimed, "lost", {}, 1200) is None  # not run out yet
    assert not queue.record(claimed, "other", "{}", {})
    assert queue.record(claimed, "me", '{"attempt": 1}', {"next_attempt_ms": 3000})
    assert not queue.record(claimed, "me", "{}", {})  # the attempt count moved on
    (again,) = queue.due(3000, 10)
    assert (again["attempt_count"], again["attempts"], "lease_owner" in again) == (
        1,
        ['{"attempt": 1}'],
        False,
    )
    leased = queue.claim(again, 3000, 500, "dead-process")
    expired = queue.expire_lease(leased, "lost", {"state": DEAD, "ended_ms": 4000}, 4000)
    assert (expired["state"], expired["attempt_count"], expired["lease_until_ms"]) == (DEAD, 2, 0)


def test_ending_a_webhooks_deliveries_leaves_one_in_flight_and_the_log_pages(stores):
    queue = stores.deliveries
    for n in range(3):
        queue.insert(delivery("w1", n, seq=n, due_ms=1000 + n))
    queue.insert(delivery("w2", 9))
    queue.claim(queue.due(1000, 1)[0], 1000, 10_000, "me")  # evt_0 in flight
    assert queue.end_for_webhook("w1", "webhook deleted", 2000) == 2
    queue.end_unsent("evt_9:w2", "webhook deleted", 2000)
    docs, total = queue.page("w1", None, 1, 2)
    assert (total, [d["_id"] for d in docs]) == (3, ["evt_2:w1", "evt_1:w1"])
    assert all("payload" not in d for d in docs)
    dead, total = queue.page("w1", DEAD, 1, 10)
    assert total == 2 and {d["dead_reason"] for d in dead} == {"webhook deleted"}
    assert [d["_id"] for d in queue.page("w1", PENDING, 1, 10)[0]] == ["evt_0:w1"]
    assert queue.page("w2", DEAD, 1, 10)[1] == 1


@pytest.mark.parametrize("kind", OutboxSources.KINDS)
def test_an_outbox_is_cleared_of_what_was_relayed_never_of_what_came_since(stores, kind):
    oid = ObjectId()
    first, second = (outbox.event("appointment.created", {"n": n}, NOW) for n in (1, 2))
    stores.push(kind, oid, first)
    (read,) = stores.sources.pending(kind, 10)
    assert outbox.events_of(read) == [first]
    stores.push(kind, oid, second)  # a change after the relay read the document
    stores.sources.clear(kind, read, read["outbox"])
    (left,) = stores.sources.pending(kind, 10)
    assert outbox.events_of(left) == [second]
    stores.sources.clear(kind, left, left["outbox"])
    assert stores.sources.pending(kind, 10) == []


def test_feeds_live_newest_first_filtered_and_revoked_once(stores):
    ids = [ObjectId() for _ in range(3)]
    for n, (oid, hospital) in enumerate(zip(ids, ("h1", "h1", "h2"), strict=True)):
        stores.feeds.insert(
            {"_id": oid, "hospital_id": hospital, "practitioner_id": None, "created_ms": n}
            | {"token_sha256": "hash", "created_by": "a1", "revoked_ms": None}
        )
    found, _ = stores.feeds.search({}, 1, 10)
    assert [d["_id"] for d in found] == ids[::-1]
    assert all("token_sha256" not in d for d in found)
    assert [d["_id"] for d in stores.feeds.search({"hospital_id": "h1"}, 1, 10)[0]] == ids[1::-1]
    assert stores.feeds.revoke(ids[1], {"revoked_ms": 5, "revoked_by": "a1"})
    assert not stores.feeds.revoke(ids[1], {"revoked_ms": 6, "revoked_by": "a1"})
    revoked = stores.feeds.get(ids[1])
    assert (revoked["revoked_ms"], revoked["token_sha256"]) == (5, None)
    assert [d["_id"] for d in stores.feeds.search({"hospital_id": "h1"}, 1, 10)[0]] == [ids[0]]
