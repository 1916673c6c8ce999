"""The appointment queries a rebuild and the queue make, against the session's real MongoDB
(nx-27017, or $MONGO_URL): what they find, and a move committing between a rebuild's two
queries."""

from __future__ import annotations

import uuid

import pytest
from bson import ObjectId

from booking_service.adapters.repository import (
    ACTIVE,
    CANCELLED,
    CONFIRMED,
    PENDING,
    PLACED,
    AppointmentRepository,
)

DAY, OTHER = "2026-12-07", "2026-12-08"


@pytest.fixture
def repo(db):
    return AppointmentRepository(db)


@pytest.fixture
def hid():
    return f"h-{uuid.uuid4().hex[:8]}"


def add(repo: AppointmentRepository, hid: str, day: str, slot: str, status: str, **more) -> str:
    oid = ObjectId()
    repo.col.insert_one(
        {
            "_id": oid,
            "hospital_id": hid,
            "date": day,
            "slot_start": slot,
            "serial": 1,
            "status": status,
            "units": 1,
            "dup_guard": str(oid),
            "serial_guard": str(oid),
            **more,
        }
    )
    return str(oid)


def ids(docs: list[dict]) -> list[str]:
    return sorted(str(d["_id"]) for d in docs)


def test_on_day_finds_the_statuses_asked_of_that_hospital_day_only(repo, hid):
    confirmed = add(repo, hid, DAY, "09:00", CONFIRMED)
    pending = add(repo, hid, DAY, "09:00", PENDING)
    add(repo, hid, DAY, "10:00", CANCELLED)
    add(repo, hid, OTHER, "09:00", CONFIRMED)
    add(repo, f"{hid}x", DAY, "09:00", CONFIRMED)
    assert ids(repo.on_day(hid, DAY, ACTIVE)) == sorted([confirmed, pending])
    assert ids(repo.on_day(hid, DAY, PLACED)) == [confirmed]
    (doc,) = repo.on_day(hid, DAY, PLACED)
    assert "dup_guard" not in doc and doc["slot_start"] == "09:00"


def test_for_rebuild_finds_active_and_arriving_appointments_each_once(repo, hid):
    here = add(repo, hid, DAY, "09:00", CONFIRMED)
    add(repo, hid, DAY, "09:00", CANCELLED)
    arriving = add(repo, hid, OTHER, "11:00", CONFIRMED, moving={"hospital_id": hid, "date": DAY})
    within = add(repo, hid, DAY, "12:00", CONFIRMED, moving={"hospital_id": hid, "date": DAY})
    # A cancelled appointment's stale intent is no move.
    add(repo, hid, OTHER, "11:00", CANCELLED, moving={"hospital_id": hid, "date": DAY})
    found = repo.for_rebuild(hid, DAY)
    assert ids(found) == sorted([here, arriving, within])
    assert all("moving" in d or str(d["_id"]) == here for d in found)


def test_a_move_committing_between_the_two_queries_is_found(repo, hid):
    moved = add(repo, hid, OTHER, "11:00", CONFIRMED, moving={"hospital_id": hid, "date": DAY})
    collection = repo.col

    class CommitAfterFirstRead:
        """The collection, but the move commits right after the first query is read."""

        def __init__(self):
            self.reads = 0

        def find(self, *args, **kwargs):
            docs = list(collection.find(*args, **kwargs))
            self.reads += 1
            if self.reads == 1:
                collection.update_one(
                    {"_id": ObjectId(moved)},
                    {"$set": {"date": DAY, "slot_start": "09:00"}, "$unset": {"moving": ""}},
                )
            return docs

    repo.col = CommitAfterFirstRead()
    (found,) = repo.for_rebuild(hid, DAY)
    assert repo.col.reads == 2
    assert str(found["_id"]) == moved
    assert (found["date"], found["slot_start"]) == (DAY, "09:00") and "moving" not in found
