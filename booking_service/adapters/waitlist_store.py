"""The `waitlist` collection: entries waiting for a place, first come first served, and the
offers made to them; their statuses and the searches of a list."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database

from booking_service.adapters.outbox import with_event
from booking_service.adapters.records import Records
from booking_service.adapters.repository import epoch_ms
from shared.clock import utcnow


def ensure_indexes(db: Database) -> None:
    """Create the indexes of the `waitlist` collection (idempotent)."""
    # Entries whose outbox holds webhook events not relayed yet (adapters/outbox.py).
    db.waitlist.create_index("outbox_pending")
    db.waitlist.create_index("wait_guard", unique=True)
    # A patient's live entries, one numbered mark each (core/waitlist.py, `_insert_counted`).
    db.waitlist.create_index("quota_guard", unique=True, sparse=True)
    db.waitlist.create_index(
        [("hospital_id", ASCENDING), ("date", ASCENDING), ("status", ASCENDING)]
    )
    db.waitlist.create_index([("status", ASCENDING), ("offer_expires_ms", ASCENDING)])
    db.waitlist.create_index([("user_id", ASCENDING), ("created_ms", DESCENDING)])
    db.waitlist.create_index("ended_ms")  # ended entries, deleted past their retention


class EntryStatus(StrEnum):
    """A waitlist entry's status (as the API shows it); `offering` while a hold is being made
    for it (a process that dies there leaves it to the reconciler, which puts it back)."""

    WAITING = "waiting"
    OFFERING = "offering"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"  # withdrawn by its owner (or a desk)
    EXPIRED = "expired"


LIVE_ENTRIES = (EntryStatus.WAITING, EntryStatus.OFFERING, EntryStatus.OFFERED)


@dataclass(frozen=True)
class EntrySearch:
    """Which waitlist entries a list shows: each field given narrows it (None: any)."""

    user_id: str | None = None
    hospital_id: str | None = None
    practitioner_id: str | None = None
    date: str | None = None
    status: str | None = None

    def query(self) -> dict:
        """The MongoDB filter."""
        fields = ("user_id", "hospital_id", "practitioner_id", "date", "status")
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}


class WaitlistRepository(Records):
    """The `waitlist` collection. `wait_guard` (unique) keeps one live entry per phone,
    hospital, doctor (or none) and date: `dup_guard`'s value while waiting or offered,
    "x:<id>" after; `quota_guard` (unique) keeps a patient's live entries within its limit."""

    collection = "waitlist"  # an insert: DuplicateKeyError when the phone waits already

    def waits(self, wait_guard: str) -> bool:
        """Whether a live entry holds this `wait_guard` (a phone waiting already)."""
        return self.col.find_one({"wait_guard": wait_guard}, {"_id": 1}) is not None

    def waiting(self, hospital_id: str, practitioner_id: str | None, day: str) -> list[dict]:
        """The waiting entries of one hospital, doctor (or none) and date, first come first."""
        return list(
            self.col.find(
                {
                    "hospital_id": hospital_id,
                    "date": day,
                    "practitioner_id": practitioner_id,
                    "status": EntryStatus.WAITING,
                }
            ).sort([("created_ms", ASCENDING), ("_id", ASCENDING)])
        )

    def move(
        self,
        oid: ObjectId,
        from_status: str,
        to_status: str,
        changes: dict,
        event: dict | None = None,
        **match,
    ) -> dict | None:
        """From one status to another, atomically, with its webhook `event` if any (None when
        the entry is not in it)."""
        if to_status not in LIVE_ENTRIES:  # ended: its phone may wait again; kept a while
            ended_ms = changes.get("updated_ms") or epoch_ms(utcnow())  # the change's own time
            changes = {
                **changes,
                "wait_guard": f"x:{oid}",
                "quota_guard": f"x:{oid}",
                "ended_ms": ended_ms,
            }
        return self.col.find_one_and_update(
            {"_id": oid, "status": from_status, **match},
            with_event({"$set": {"status": to_status, **changes}}, event),
            return_document=ReturnDocument.AFTER,
        )

    def delete_ended(self, before_ms: int, limit: int = 1000) -> int:
        """Delete the entries that ended before `before_ms` (their retention is over) and
        whose webhook events were all relayed, `limit` at most; how many."""
        ended = {"ended_ms": {"$lt": before_ms}, "outbox_pending": {"$ne": 1}}
        # Found, then deleted by id: nx-27017's delete_many deletes nothing for a filter with
        # `$ne` (its find matches it). An ended entry gets no new event meanwhile.
        ids = [doc["_id"] for doc in self.col.find(ended, {"_id": 1}).limit(limit)]
        return self.col.delete_many({"_id": {"$in": ids}}).deleted_count if ids else 0

    def days_waiting(self, since: str) -> list[tuple[str, str | None, str]]:
        """(hospital, doctor or None, date) with waiting entries from `since` on."""
        seen = set()
        for doc in self.col.find(
            {"status": EntryStatus.WAITING, "date": {"$gte": since}},
            {"hospital_id": 1, "practitioner_id": 1, "date": 1},
        ):
            seen.add((doc["hospital_id"], doc.get("practitioner_id"), doc["date"]))
        return sorted(seen, key=lambda t: (t[0], t[1] or "", t[2]))

    def stale(self, status: str, field: str, before_ms: int, limit: int = 500) -> list[dict]:
        """Entries in `status` whose `field` (a time, ms) is before `before_ms`."""
        return list(self.col.find({"status": status, field: {"$lt": before_ms}}).limit(limit))

    def search(self, search: EntrySearch, page: int, per_page: int) -> tuple[list[dict], int]:
        """A page of the entries `search` names, newest first."""
        query = search.query()
        total = self.col.count_documents(query)
        cursor = (
            self.col.find(query)
            .sort([("created_ms", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total
