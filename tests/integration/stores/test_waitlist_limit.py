"""WAITLIST_LIMIT is exact under concurrent joins (issue 22: 60 concurrent joins gave one
patient 7 live entries of 5), against the session's real MongoDB (nx-27017, or $MONGO_URL):
each live entry of a limited patient takes one of the limit's numbered marks, unique in
MongoDB, and gives it back when it ends."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from booking_service.adapters.waitlist_store import LIVE_ENTRIES, EntryStatus, WaitlistRepository
from booking_service.core import waitlist

LIMIT = 5


def an_entry(user_id: str, phone: str) -> dict:
    return {
        "_id": ObjectId(),
        "user_id": user_id,
        "status": EntryStatus.WAITING,
        "wait_guard": f"h1|2026-12-12|{phone}",
        "created_ms": 1,
    }


def live(entries: WaitlistRepository, user_id: str) -> int:
    return entries.col.count_documents({"user_id": user_id, "status": {"$in": list(LIVE_ENTRIES)}})


def test_sixty_concurrent_joins_leave_at_most_the_limit_live(db):
    entries = WaitlistRepository(db)
    ctx = SimpleNamespace(waitlist=entries)
    user = f"u-{uuid.uuid4().hex[:8]}"
    docs = [an_entry(user, f"{uuid.uuid4().hex[:6]}{n}") for n in range(60)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        counted = list(pool.map(lambda d: waitlist._insert_counted(ctx, d, LIMIT), docs))
    assert counted.count(True) == LIMIT
    assert live(entries, user) == LIMIT


def test_an_ended_entry_gives_its_mark_back_and_a_duplicate_phone_is_told_apart(db):
    entries = WaitlistRepository(db)
    ctx = SimpleNamespace(waitlist=entries)
    user = f"u-{uuid.uuid4().hex[:8]}"
    docs = [an_entry(user, f"{uuid.uuid4().hex[:6]}{n}") for n in range(LIMIT + 1)]
    assert [waitlist._insert_counted(ctx, d, LIMIT) for d in docs] == [True] * LIMIT + [False]
    first = docs[0]
    entries.move(first["_id"], EntryStatus.WAITING, EntryStatus.CANCELLED, {})
    assert waitlist._insert_counted(ctx, docs[-1], LIMIT) is True
    again = {**docs[1], "_id": ObjectId()}  # the same phone waits already
    with pytest.raises(DuplicateKeyError):
        waitlist._insert_counted(ctx, again, LIMIT)
    # a desk's entries are not limited and take no mark
    desk = [an_entry(user, f"{uuid.uuid4().hex[:6]}d{n}") for n in range(LIMIT + 2)]
    assert all(waitlist._insert_counted(ctx, d, None) for d in desk)
