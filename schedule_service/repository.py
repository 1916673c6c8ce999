"""MongoDB adapter of the schedule service: `hospital_schedules` and its change history."""

from __future__ import annotations

from datetime import datetime

from pymongo import DESCENDING, ReturnDocument
from pymongo.database import Database

from shared.slots import iso_utc

# Parts of a configuration that may be absent (a v1 hospital has none of them): an edit
# that leaves one out removes it.
OPTIONAL_FIELDS = (
    "practitioners",
    "appointment_types",
    "default_appointment_type",
    "hold_seconds",
)


def ensure_indexes(db: Database) -> None:
    """Create the indexes the schedule service relies on (idempotent)."""
    db.hospital_schedule_history.create_index(
        [("hospital_id", 1), ("version", DESCENDING)], unique=True
    )


def _public(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    doc = {k: v for k, v in doc.items() if k not in ("_id", "created_at")}
    if isinstance(doc.get("updated_at"), datetime):
        doc["updated_at"] = iso_utc(doc["updated_at"])
    return doc


class HospitalRepository:
    """Hospital configurations, one document each, `_id` = hospital_id."""

    def __init__(self, db: Database):
        self.col = db.hospital_schedules
        self.history = db.hospital_schedule_history

    def get(self, hospital_id: str) -> dict | None:
        """One hospital's configuration, or None."""
        return _public(self.col.find_one({"_id": hospital_id}))

    def version(self, hospital_id: str) -> int | None:
        """Only the current version number of a hospital, or None."""
        doc = self.col.find_one({"_id": hospital_id}, {"version": 1})
        return None if doc is None else int(doc["version"])

    def list(self) -> list[dict]:
        """Every hospital's configuration, ordered by id."""
        return [_public(d) for d in self.col.find({}).sort("_id", 1)]

    def insert(self, doc: dict, now: datetime) -> dict | None:
        """Create a hospital at version 1; None when the id is taken."""
        from pymongo.errors import DuplicateKeyError

        record = dict(
            doc, _id=doc["hospital_id"], version=1, updated_at=iso_utc(now), created_at=now
        )
        try:
            self.col.insert_one(record)
        except DuplicateKeyError:
            return None
        return _public(record)

    def replace(self, doc: dict, expected_version: int, now: datetime) -> dict | None:
        """Replace the configuration if it is still at `expected_version`; None otherwise."""
        # An ISO string, not a datetime: nx-27017 stores `$set` datetimes as strings.
        record = dict(doc, version=expected_version + 1, updated_at=iso_utc(now))
        update: dict = {"$set": record}
        absent = {name: "" for name in OPTIONAL_FIELDS if name not in doc}
        if absent:
            update["$unset"] = absent
        result = self.col.find_one_and_update(
            {"_id": doc["hospital_id"], "version": expected_version},
            update,
            return_document=ReturnDocument.AFTER,
        )
        return _public(result)

    def record_change(self, entry: dict) -> None:
        """Append one entry to the audit trail."""
        self.history.insert_one(dict(entry))

    def changes(self, hospital_id: str) -> list[dict]:
        """The audit trail of a hospital, newest first."""
        out = []
        for entry in self.history.find({"hospital_id": hospital_id}).sort("version", DESCENDING):
            entry.pop("_id", None)
            if isinstance(entry.get("changed_at"), datetime):
                entry["changed_at"] = iso_utc(entry["changed_at"])
            out.append(entry)
        return out
