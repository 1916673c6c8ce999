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

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from booking_service.adapters.outbox import with_event
from booking_service.adapters.records import Records, insert_new
from shared.ids import is_appointment_id, phone_digits

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


# A waitlist entry's: `offering` while a hold is being made for it (a process that dies
# there leaves it to the reconciler, which puts it back to waiting).


def epoch_ms(moment: datetime) -> int:
    """An instant as integer milliseconds. Times written by updates are kept as numbers:
    nx-27017 turns datetimes written by `$set` into strings, which no range query matches."""
    return int(moment.timestamp() * 1000)


def has_started(doc: dict, now: datetime) -> bool:
    """Whether the appointment's slot has started by `now` (`starts_ms` once it was moved:
    nx-27017 keeps a date only as `insert` writes it)."""
    if doc.get("starts_ms") is not None:
        return doc["starts_ms"] <= epoch_ms(now)
    return doc["starts_at"] <= now


def ensure_indexes(db: Database) -> None:
    """Create the indexes of this module's collections (idempotent); the whole service's,
    these among them, are made by booking_service.bootstrap.ensure_indexes."""
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
    db.appointments.create_index([("moving.hospital_id", ASCENDING), ("moving.date", ASCENDING)])
    # Documents whose outbox holds webhook events not relayed yet (adapters/outbox.py).
    db.appointments.create_index("outbox_pending")
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
        "hold_id",
    )
}


@dataclass(frozen=True)
class AppointmentSearch:
    """Which appointments a list shows: each field given narrows it (None: any). Dates are
    YYYY-MM-DD texts, `date` exact or `date_from`/`date_to` inclusive; `statuses` one or more
    (visible ones by default); `own_schedule`: only the hospital's own (no doctor's); `ids`:
    only these (canonical ids). `moving`: appointments on their way to a new place, the place
    fields (hospital, doctor, slot, dates) naming where they are moving to."""

    booked_by: str | None = None
    hospital_id: str | None = None
    practitioner_id: str | None = None
    own_schedule: bool = False
    slot_start: str | None = None
    date: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    statuses: tuple[str, ...] = VISIBLE
    ids: tuple[str, ...] | None = None
    moving: bool = False

    def query(self) -> dict:
        """The MongoDB filter."""
        out = self._place_query()
        if self.moving:  # (only a confirmed appointment moves)
            out = {f"moving.{name}": value for name, value in out.items()}
            out = out or {"moving": {"$ne": None}}
        if self.booked_by is not None:
            out["booked_by"] = self.booked_by
        if self.ids is not None:
            out["_id"] = {"$in": [ObjectId(i) for i in self.ids]}
        one = len(self.statuses) == 1
        out["status"] = self.statuses[0] if one else {"$in": list(self.statuses)}
        return out

    def _place_query(self) -> dict:
        """The filter of the place fields: hospital, doctor, slot, date or dates."""
        out = {
            name: value
            for name, value in (
                ("hospital_id", self.hospital_id),
                ("practitioner_id", self.practitioner_id),
                ("slot_start", self.slot_start),
                ("date", self.date),
            )
            if value is not None
        }
        if self.own_schedule:
            out["practitioner_id"] = None
        if self.date is None and (self.date_from or self.date_to):
            bounds = (("$gte", self.date_from), ("$lte", self.date_to))
            out["date"] = {op: value for op, value in bounds if value}
        return out


class AppointmentRepository(Records):
    """The `appointments` collection (majority write concern: it is the source of truth)."""

    collection = "appointments"

    def insert_pending(self, doc: dict) -> None:
        """Write the appointment ahead of its reservation; DuplicateKeyError on a duplicate."""
        self.insert(doc)

    def confirm(
        self, oid: ObjectId, serial: int, guard: str, now: datetime, event: dict | None = None
    ) -> dict | None:
        """pending -> confirmed with its serial (and its webhook `event`, written with it);
        None when the reconciler abandoned it."""
        update = {
            "$set": {
                "status": CONFIRMED,
                "serial": serial,
                "serial_guard": guard,
                "updated_ms": epoch_ms(now),
            },
            "$inc": {"version": 1},
        }
        return self.col.find_one_and_update(
            {"_id": oid, "status": PENDING},
            with_event(update, event),
            return_document=ReturnDocument.AFTER,
        )

    def close(
        self,
        oid: ObjectId,
        from_status: str,
        to_status: str,
        now: datetime,
        event: dict | None = None,
        **extra,
    ) -> dict | None:
        """Move an appointment out of the active set, freeing both guards; None if it moved."""
        update = {
            "$set": {
                "status": to_status,
                "dup_guard": f"x:{oid}",
                "serial_guard": f"x:{oid}",
                "updated_ms": epoch_ms(now),
                **extra,
            },
            "$inc": {"version": 1},
        }
        return self.col.find_one_and_update(
            {"_id": oid, "status": from_status},
            with_event(update, event),
            return_document=ReturnDocument.AFTER,
        )

    def move(
        self,
        oid: ObjectId,
        from_statuses: tuple[str, ...],
        to_status: str,
        changes: dict,
        event: dict | None = None,
    ) -> dict | None:
        """A visit step: from one of `from_statuses` to `to_status`, atomically (None when the
        appointment is in none of them: another desk moved it first)."""
        update = {"$set": {"status": to_status, **changes}, "$inc": {"version": 1}}
        return self.col.find_one_and_update(
            {"_id": oid, "status": {"$in": list(from_statuses)}},
            with_event(update, event),
            return_document=ReturnDocument.AFTER,
        )

    def on_day(self, hospital_id: str, day: str, statuses: tuple[str, ...]) -> list[dict]:
        """A hospital-day's appointments in `statuses` (ACTIVE for a rebuild, PLACED for the
        queue), every doctor's, with what those need and no personal data.

        Found by hospital and date alone, and the statuses picked here: with a `$in` on the
        status, nx-27017 scans the whole collection instead of using the index (73 ms
        against 6 ms with 5,000 appointments). A day's closed appointments are few."""
        wanted = set(statuses)
        found = self.col.find(
            {"hospital_id": hospital_id, "date": day},
            {**DAY_FIELDS, "hospital_id": 1, "date": 1, "moving": 1},
        )
        return [doc for doc in found if doc.get("status") in wanted]

    def for_rebuild(self, hospital_id: str, day: str) -> list[dict]:
        """A hospital-day's active appointments, and the appointments being moved into it
        right now (their target place is taken in Redis before MongoDB records the move: a
        rebuild keeps it); each once, as last read.

        Two queries, each on an index: one `$or` is a full scan on nx-27017 (99 ms against
        10 ms for both with 5,000 appointments). The moves are read first: a move into the
        day that commits in between is then seen by one query or the other."""
        arriving = list(
            self.col.find(
                {"moving.hospital_id": hospital_id, "moving.date": day, "status": CONFIRMED},
                {**DAY_FIELDS, "hospital_id": 1, "date": 1, "moving": 1},
            )
        )
        here = self.on_day(hospital_id, day, ACTIVE)
        seen = {doc["_id"] for doc in here}
        return here + [doc for doc in arriving if doc["_id"] not in seen]

    def begin_move(self, oid: ObjectId, at: tuple[str, str], move: dict) -> dict | None:
        """Record a reschedule's intent on a confirmed appointment still at `at` (date,
        slot start) that is not moving already; None otherwise."""
        return self.col.find_one_and_update(
            {
                "_id": oid,
                "status": CONFIRMED,
                "date": at[0],
                "slot_start": at[1],
                "moving": None,
                "release_pending": None,
            },
            {"$set": {"moving": move}},
            return_document=ReturnDocument.AFTER,
        )

    def commit_move(
        self, oid: ObjectId, token: str, changes: dict, event: dict | None = None
    ) -> dict | None:
        """Move the appointment to its new place, if its move `token` is still the current
        one (the reconciler has not abandoned it); DuplicateKeyError when a guard refuses."""
        update = {"$set": changes, "$unset": {"moving": ""}, "$inc": {"version": 1}}
        return self.col.find_one_and_update(
            {"_id": oid, "status": CONFIRMED, "moving.token": token},
            with_event(update, event),
            return_document=ReturnDocument.AFTER,
        )

    def abort_move(self, oid: ObjectId, token: str) -> bool:
        """Forget a move that did not happen; False when it is not the current one."""
        result = self.col.update_one(
            {"_id": oid, "moving.token": token}, {"$unset": {"moving": ""}}
        )
        return result.modified_count == 1

    def source_released(self, oid: ObjectId, token: str) -> None:
        """A move's old place is free: nothing of the move is left to finish."""
        self.col.update_one(
            {"_id": oid, "release_pending.token": token}, {"$unset": {"release_pending": ""}}
        )

    def stale_moves(self, before_ms: int, limit: int = 500) -> list[dict]:
        """Moves begun before `before_ms` and never committed: their process died."""
        return list(self.col.find({"moving.started_ms": {"$lt": before_ms}}).limit(limit))

    def unreleased_sources(self, limit: int = 500) -> list[dict]:
        """Appointments moved whose old place may still be held (the mover died between its
        commit and the release)."""
        return list(
            self.col.find({"release_pending": {"$exists": True}}, {"release_pending": 1}).limit(
                limit
            )
        )

    def mark_released(self, oids: list[ObjectId]) -> None:
        """Record that these closed appointments' places are free (the sweep skips them)."""
        if oids:
            self.col.update_many({"_id": {"$in": oids}}, {"$set": {"released": True}})

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

    def uses_hold(self, hold_id: str) -> bool:
        """Whether an active appointment took (or is taking) this hold's place."""
        found = self.col.find_one({"hold_id": hold_id, "status": {"$in": list(ACTIVE)}}, {"_id": 1})
        return found is not None

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

    def search(self, search: AppointmentSearch, page: int, per_page: int) -> tuple[list[dict], int]:
        """A page of the appointments `search` names, ordered by date, slot and serial."""
        query = search.query()
        total = self.col.count_documents(query)
        cursor = (
            self.col.find(query)
            .sort([("date", ASCENDING), ("slot_start", ASCENDING), ("serial", ASCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total

    def marks(self, search: AppointmentSearch) -> list[tuple[str, int, int]]:
        """(id, version, updated_ms) of every appointment `search` names: what changes when
        any of them changes (every change grows `version`), read without their bodies."""
        fields = {"_id": 1, "version": 1, "updated_ms": 1}
        return [
            (str(d["_id"]), d.get("version", 0), d.get("updated_ms", 0))
            for d in self.col.find(search.query(), fields)
        ]


class UserRepository:
    """The `users` collection."""

    def __init__(self, db: Database):
        self.col = db.users

    def by_email(self, email: str) -> dict | None:
        """A user by (case-insensitive) email."""
        return self.col.find_one({"email": email.strip().lower()})

    def insert(self, doc: dict) -> bool:
        """Create a user; False when the email is taken."""
        return insert_new(self.col, doc)


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

    def forget(self, key: str) -> None:
        """Forget a key whose request failed transiently, so a retry runs anew."""
        self.col.delete_one({"_id": key, "state": "in_progress"})
