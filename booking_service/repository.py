"""MongoDB adapters of the booking service: appointments, users, idempotency keys.

MongoDB is the source of truth. Two unique indexes are the last guard, built so that
both MongoDB and the nx-27017 wire server honour them (no partial indexes):
- `dup_guard`: "hospital|date|phone-digits" (and "|doctor" for a doctor's appointment) while
  an appointment is pending or confirmed, "x:<id>" after, so one phone holds one active
  appointment per hospital, doctor (or none) and date;
- `serial_guard`: "hospital|date|slot|serial" (and "|doctor") while confirmed, "x:<id>"
  otherwise.
"""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from shared.ids import is_appointment_id, phone_digits
from shared.slots import iso_utc

PENDING, CONFIRMED, CANCELLED = "pending", "confirmed", "cancelled"
ABANDONED, REJECTED = "abandoned", "rejected"
# The visit, on the appointment's own date (API.md, "Day of the visit").
CHECKED_IN, IN_CONSULTATION = "checked_in", "in_consultation"
COMPLETED, NO_SHOW = "completed", "no_show"
VISIT = (CHECKED_IN, IN_CONSULTATION, COMPLETED, NO_SHOW)
# Confirmed, or on its way through the visit: the appointment has its place and serial.
PLACED = (CONFIRMED, *VISIT)
# Holding a place (pending: written ahead of its reservation).
ACTIVE = (PENDING, *PLACED)
VISIBLE = (CANCELLED, *PLACED)


def epoch_ms(moment: datetime) -> int:
    """An instant as integer milliseconds. Times written by updates are kept as numbers:
    nx-27017 turns datetimes written by `$set` into strings, which no range query matches."""
    return int(moment.timestamp() * 1000)


def ensure_indexes(db: Database) -> None:
    """Create the booking service's indexes (idempotent)."""
    db.appointments.create_index("dup_guard", unique=True)
    db.appointments.create_index("serial_guard", unique=True)
    db.appointments.create_index(
        [
            ("hospital_id", ASCENDING),
            ("date", ASCENDING),
            ("slot_start", ASCENDING),
            ("serial", ASCENDING),
        ]
    )
    db.appointments.create_index([("booked_by", ASCENDING), ("created_at", DESCENDING)])
    db.appointments.create_index([("status", ASCENDING), ("updated_ms", ASCENDING)])
    db.users.create_index("email", unique=True)
    # Answers are replayed for a day, then MongoDB's TTL monitor removes them.
    db.idempotency_keys.create_index("created_at", expireAfterSeconds=86400)


def dup_guard(hospital_id: str, day: str, phone: str, practitioner_id: str | None = None) -> str:
    """The value that keeps one active appointment per phone, hospital, doctor (or none) and
    date (the phone in its canonical form, checked by the schema; `+8801712...` and
    `8801712...` are one phone)."""
    guard = f"{hospital_id}|{day}|{phone_digits(phone)}"
    return guard if practitioner_id is None else f"{guard}|{practitioner_id}"


def serial_guard(
    hospital_id: str, day: str, slot: str, serial: int, practitioner_id: str | None = None
) -> str:
    """The value that keeps serials unique among a slot's confirmed appointments."""
    guard = f"{hospital_id}|{day}|{slot}|{serial}"
    return guard if practitioner_id is None else f"{guard}|{practitioner_id}"


def to_object_id(appointment_id: str) -> ObjectId | None:
    """An appointment id in its canonical form (24 lowercase hex) as an ObjectId, else None."""
    if not is_appointment_id(appointment_id):
        return None
    try:
        return ObjectId(appointment_id)
    except (InvalidId, TypeError):
        return None


# When each step happened (ISO 8601 UTC), as the API shows them.
VISIT_STAMPS = ("cancelled_at", "checked_in_at", "started_at", "completed_at", "no_show_at")


# What a rebuild and a queue read of an appointment (no name, no phone).
DAY_FIELDS = {
    name: 1
    for name in (
        "slot_start",
        "serial",
        "status",
        "created_at",
        "units",
        "appointment_type",
        "practitioner_id",
        "started_ms",
        "started_at",
        "completed_at",
    )
}


def public(doc: dict) -> dict:
    """An appointment as the API shows it."""
    out = {
        "appointment_id": str(doc["_id"]),
        "status": doc["status"],
        "hospital_id": doc["hospital_id"],
        "date": doc["date"],
        "slot": doc["slot"],
        "serial": doc.get("serial"),
        "patient": doc["patient"],
        "reason": doc.get("reason"),
        "booked_by": doc["booked_by"],
        "created_at": iso_utc(doc["created_at"]),
    }
    for stamp in VISIT_STAMPS:
        if doc.get(stamp):
            out[stamp] = doc[stamp]
    if doc.get("practitioner"):
        out["practitioner"] = doc["practitioner"]
    if doc.get("appointment_type"):
        out["appointment_type"] = doc["appointment_type"]
        out["units"] = doc.get("units", 1)
    return out


class AppointmentRepository:
    """The `appointments` collection (majority write concern: it is the source of truth)."""

    def __init__(self, db: Database):
        self.col = db.get_collection(
            "appointments", write_concern=WriteConcern(w="majority", wtimeout=5000)
        )

    def insert_pending(self, doc: dict) -> None:
        """Write the appointment ahead of its reservation; DuplicateKeyError on a duplicate."""
        self.col.insert_one(doc)

    def confirm(self, oid: ObjectId, serial: int, guard: str, now: datetime) -> dict | None:
        """pending -> confirmed with its serial; None when the reconciler abandoned it."""
        return self.col.find_one_and_update(
            {"_id": oid, "status": PENDING},
            {
                "$set": {
                    "status": CONFIRMED,
                    "serial": serial,
                    "serial_guard": guard,
                    "updated_ms": epoch_ms(now),
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    def close(
        self, oid: ObjectId, from_status: str, to_status: str, now: datetime, **extra
    ) -> dict | None:
        """Move an appointment out of the active set, freeing both guards; None if it moved."""
        return self.col.find_one_and_update(
            {"_id": oid, "status": from_status},
            {
                "$set": {
                    "status": to_status,
                    "dup_guard": f"x:{oid}",
                    "serial_guard": f"x:{oid}",
                    "updated_ms": epoch_ms(now),
                    **extra,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    def move(
        self, oid: ObjectId, from_statuses: tuple[str, ...], to_status: str, changes: dict
    ) -> dict | None:
        """A visit step: from one of `from_statuses` to `to_status`, atomically (None when the
        appointment is in none of them: another desk moved it first)."""
        return self.col.find_one_and_update(
            {"_id": oid, "status": {"$in": list(from_statuses)}},
            {"$set": {"status": to_status, **changes}},
            return_document=ReturnDocument.AFTER,
        )

    def on_day(self, hospital_id: str, day: str, statuses: tuple[str, ...]) -> list[dict]:
        """A hospital-day's appointments in `statuses` (ACTIVE for a rebuild, PLACED for the
        queue), every doctor's, with what those need and no personal data."""
        return list(
            self.col.find(
                {"hospital_id": hospital_id, "date": day, "status": {"$in": list(statuses)}},
                DAY_FIELDS,
            )
        )

    def mark_released(self, oids: list[ObjectId]) -> None:
        """Record that these closed appointments' places are free (the sweep skips them)."""
        if oids:
            self.col.update_many({"_id": {"$in": oids}}, {"$set": {"released": True}})

    def get(self, oid: ObjectId) -> dict | None:
        """One appointment by id."""
        return self.col.find_one({"_id": oid})

    def active_days(self, since: str) -> list[tuple[str, str | None, str]]:
        """(hospital_id, practitioner_id or None, date) with active appointments from `since`
        on: each names one set of capacity records."""
        seen = set()
        for doc in self.col.find(
            {"date": {"$gte": since}, "status": {"$in": list(ACTIVE)}},
            {"hospital_id": 1, "date": 1, "practitioner_id": 1},
        ):
            seen.add((doc["hospital_id"], doc.get("practitioner_id"), doc["date"]))
        return sorted(seen, key=lambda t: (t[0], t[1] or "", t[2]))

    def stale_pending(self, before: datetime, limit: int = 500) -> list[dict]:
        """Pending appointments older than `before`: their process died or stalled."""
        return list(self.col.find({"status": PENDING, "created_at": {"$lt": before}}).limit(limit))

    def closed_since(self, since: datetime, limit: int = 5000) -> list[dict]:
        """Appointments that left the active set since `since` and whose places are not known
        to be free yet (`released`: the reconciler freed them, or they never held one)."""
        return list(
            self.col.find(
                {
                    "status": {"$in": [CANCELLED, ABANDONED, REJECTED]},
                    "updated_ms": {"$gte": epoch_ms(since)},
                    "released": {"$ne": True},
                },
                {"hospital_id": 1, "date": 1, "slot_start": 1, "practitioner_id": 1},
            ).limit(limit)
        )

    def search(self, filters: dict, page: int, per_page: int) -> tuple[list[dict], int]:
        """Visible appointments matching `filters`, ordered by date, slot and serial."""
        query = dict(filters)
        query.setdefault("status", {"$in": list(VISIBLE)})
        total = self.col.count_documents(query)
        cursor = (
            self.col.find(query)
            .sort([("date", ASCENDING), ("slot_start", ASCENDING), ("serial", ASCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total


class UserRepository:
    """The `users` collection."""

    def __init__(self, db: Database):
        self.col = db.users

    def by_email(self, email: str) -> dict | None:
        """A user by (case-insensitive) email."""
        return self.col.find_one({"email": email.strip().lower()})

    def insert(self, doc: dict) -> bool:
        """Create a user; False when the email is taken."""
        try:
            self.col.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True


class IdempotencyRepository:
    """Answers already given, by (user, Idempotency-Key)."""

    def __init__(self, db: Database):
        self.col = db.idempotency_keys

    def claim(self, key: str, fingerprint: str, now: datetime) -> dict | None:
        """Claim a key for a new request; the existing record when it was claimed before."""
        try:
            self.col.insert_one(
                {
                    "_id": key,
                    "fingerprint": fingerprint,
                    "state": "in_progress",
                    "created_ms": epoch_ms(now),
                    "created_at": now,  # for the TTL index (written by insert: a real date)
                }
            )
            return None
        except DuplicateKeyError:
            return self.col.find_one({"_id": key})

    def take_over(self, key: str, fingerprint: str, stale_before: datetime, now: datetime) -> bool:
        """Take a key whose first request died while in progress."""
        result = self.col.update_one(
            {"_id": key, "state": "in_progress", "created_ms": {"$lt": epoch_ms(stale_before)}},
            {"$set": {"fingerprint": fingerprint, "created_ms": epoch_ms(now)}},
        )
        return result.modified_count == 1

    def complete(self, key: str, status: int, body: dict) -> None:
        """Store the answer a retry replays."""
        self.col.update_one(
            {"_id": key}, {"$set": {"state": "done", "status": status, "body": body}}
        )

    def release(self, key: str) -> None:
        """Forget a key whose request failed transiently, so a retry runs anew."""
        self.col.delete_one({"_id": key, "state": "in_progress"})
