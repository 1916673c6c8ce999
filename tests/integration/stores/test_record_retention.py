"""Ended holds and waitlist entries are kept RECORD_RETENTION_DAYS, then deleted (issue 22),
against the session's real MongoDB (nx-27017, or $MONGO_URL): what the stores delete, with
the indexes the one ensure_indexes makes."""

from __future__ import annotations

import uuid

from bson import ObjectId

from booking_service.adapters.hold_store import HoldRepository, HoldState
from booking_service.adapters.waitlist_store import EntryStatus, WaitlistRepository

CUTOFF = 1_795_000_000_000


def a_hold(holds: HoldRepository, state: str, **more) -> ObjectId:
    oid = ObjectId()
    holds.insert({"_id": oid, "hospital_id": f"h-{uuid.uuid4().hex[:8]}", "state": state, **more})
    return oid


def test_holds_that_ended_before_the_cutoff_are_deleted(db):
    holds = HoldRepository(db)
    old = a_hold(holds, HoldState.EXPIRED, ended_ms=CUTOFF - 1)
    used = a_hold(holds, HoldState.USED, ended_ms=CUTOFF - 86_400_000)
    recent = a_hold(holds, HoldState.RELEASED, ended_ms=CUTOFF)
    live = a_hold(holds, HoldState.HELD, expires_ms=CUTOFF - 5)
    assert holds.delete_ended(CUTOFF) >= 2
    assert holds.get(old) is None and holds.get(used) is None
    assert holds.get(recent) is not None and holds.get(live) is not None


def test_entries_that_ended_are_deleted_once_their_events_are_relayed(db):
    entries = WaitlistRepository(db)
    phone = uuid.uuid4().hex[:10]

    def an_entry(status: str, **more) -> ObjectId:
        oid = ObjectId()
        entries.insert({"_id": oid, "status": status, "wait_guard": f"{phone}|{oid}", **more})
        return oid

    old = an_entry(EntryStatus.EXPIRED, ended_ms=CUTOFF - 1)
    unrelayed = an_entry(EntryStatus.ACCEPTED, ended_ms=CUTOFF - 1, outbox_pending=1)
    recent = an_entry(EntryStatus.CANCELLED, ended_ms=CUTOFF + 1)
    waiting = an_entry(EntryStatus.WAITING)
    assert entries.delete_ended(CUTOFF) >= 1
    assert entries.get(old) is None
    assert all(entries.get(oid) is not None for oid in (unrelayed, recent, waiting))


def test_an_entry_that_ends_is_stamped_with_when(db):
    entries = WaitlistRepository(db)
    oid = ObjectId()
    entries.insert({"_id": oid, "status": EntryStatus.WAITING, "wait_guard": f"g|{oid}"})
    assert "ended_ms" not in entries.get(oid)
    ended = entries.move(oid, EntryStatus.WAITING, EntryStatus.CANCELLED, {})
    assert ended["ended_ms"] > CUTOFF and ended["wait_guard"] == f"x:{oid}"
