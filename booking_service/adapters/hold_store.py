"""The `holds` collection: the record of every hold (a place kept for a while, a waitlist
offer), from which a rebuild restores the live ones; its states."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database

from booking_service.adapters.records import Records
from booking_service.adapters.repository import epoch_ms


def ensure_indexes(db: Database) -> None:
    """Create the indexes of the `holds` collection (idempotent)."""
    db.holds.create_index([("state", ASCENDING), ("expires_ms", ASCENDING)])
    db.holds.create_index([("hospital_id", ASCENDING), ("date", ASCENDING), ("state", ASCENDING)])
    db.holds.create_index("ended_ms")  # ended holds, deleted past their retention


# A hold's states: live until used by a booking, given back, or past its time.
class HoldState(StrEnum):
    """A hold's state (as the API shows it)."""

    HELD = "held"
    USED = "used"
    RELEASED = "released"
    EXPIRED = "expired"


def kept_until_ms(hold: dict) -> int:
    """When the gate gives a hold's place back: at its time, or for a waitlist offer at the
    end of its grace (holds.offer_grace_ms), when the place passes to the next entry."""
    return hold.get("kept_until_ms") or hold["expires_ms"]


class HoldRepository(Records):
    """The `holds` collection: places held for a while, each a record written after the
    gate took its place (a hold the gate never took is never written; one written and lost
    by Redis is restored by a rebuild while it lives)."""

    collection = "holds"

    def end(self, oid: ObjectId, state: str, now: datetime, **extra) -> dict | None:
        """A live hold becomes `used`, `released` or `expired`, once; None if it ended
        already."""
        return self.col.find_one_and_update(
            {"_id": oid, "state": HoldState.HELD},
            {"$set": {"state": state, "ended_ms": epoch_ms(now), **extra}},
            return_document=ReturnDocument.AFTER,
        )

    def delete_ended(self, before_ms: int) -> int:
        """Delete the holds that ended before `before_ms` (their retention is over); how many.
        Only an ended hold has `ended_ms`."""
        return self.col.delete_many({"ended_ms": {"$lt": before_ms}}).deleted_count

    def live_on(self, hospital_id: str, day: str, now_ms: int) -> list[dict]:
        """A hospital-day's holds whose places the gate still keeps at `now_ms` (every
        doctor's; `kept_until_ms`), oldest first."""
        found = self.col.find({"hospital_id": hospital_id, "date": day, "state": HoldState.HELD})
        return [d for d in found.sort("created_ms", ASCENDING) if kept_until_ms(d) > now_ms]

    def live_days(self, now_ms: int) -> set[tuple[str, str | None, str]]:
        """(hospital_id, practitioner_id or None, date) with holds whose places the gate
        still keeps (holds are `held` only until they end, so these are few)."""
        fields = ("hospital_id", "practitioner_id", "date", "expires_ms", "kept_until_ms")
        return {
            (d["hospital_id"], d.get("practitioner_id"), d["date"])
            for d in self.col.find({"state": HoldState.HELD}, dict.fromkeys(fields, 1))
            if kept_until_ms(d) > now_ms
        }

    def search(
        self, query: dict, now_ms: int, page: int, per_page: int, live: bool = False
    ) -> tuple[list[dict], int]:
        """A page of the holds `query` (a MongoDB filter of plain fields) names, oldest
        first, and their total. `live`: only those whose places the gate keeps at `now_ms`
        (few: a hold lives minutes), counted here rather than by the database, since an
        offer's place outlives its time (`kept_until_ms`)."""
        cursor = self.col.find(query).sort([("created_ms", ASCENDING), ("_id", ASCENDING)])
        if live:
            found = [d for d in cursor if kept_until_ms(d) > now_ms]
            return found[(page - 1) * per_page : page * per_page], len(found)
        total = self.col.count_documents(query)
        return list(cursor.skip((page - 1) * per_page).limit(per_page)), total

    def live(self, now_ms: int, user_id: str | None = None) -> list[dict]:
        """The holds whose places the gate keeps at `now_ms` (of one user, when given)."""
        query = (
            {"state": HoldState.HELD}
            if user_id is None
            else {"state": HoldState.HELD, "user_id": user_id}
        )
        return [d for d in self.col.find(query) if kept_until_ms(d) > now_ms]

    def expired(self, now_ms: int, limit: int = 500) -> list[dict]:
        """Holds past their time still recorded as live: their places are given back."""
        return list(
            self.col.find({"state": HoldState.HELD, "expires_ms": {"$lte": now_ms}}).limit(limit)
        )
