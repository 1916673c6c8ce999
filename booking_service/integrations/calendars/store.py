"""The `feeds` collection: revocable calendar feed URLs (calendars/service.py).

A feed's secret is never stored: only its SHA-256 (hex), and not even that once revoked.
Documents: `_id` (ObjectId: the feed id's canonical form is its 24 lowercase hex digits),
`hospital_id`, `practitioner_id` (or None), `token_sha256`, `created_at` (written by insert:
a real date), `created_ms`, `created_by`, and once revoked `revoked_ms` / `revoked_at` /
`revoked_by`. A feed is read by `_id`; an admin lists the live ones (`revoked_ms: None`),
newest first, of every hospital or of one: the two indexes of `ensure_indexes`.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from booking_service.adapters.records import Records


def ensure_indexes(db: Database) -> None:
    """Create the feeds' indexes (idempotent; called by booking_service.bootstrap's, the one
    that makes every index of the service): the live feeds newest first, of every hospital
    (`search` without filters) or of one (and its doctors). No `_id` in a compound index:
    nx-27017 then refuses every insert."""
    db.feeds.create_index([("revoked_ms", ASCENDING), ("created_ms", DESCENDING)])
    db.feeds.create_index(
        [("hospital_id", ASCENDING), ("revoked_ms", ASCENDING), ("created_ms", DESCENDING)]
    )


class FeedRepository(Records):
    """The `feeds` collection (majority write concern: a revocation must not be lost)."""

    collection = "feeds"  # `get`: a feed revoked or not

    def revoke(self, oid: ObjectId, changes: dict) -> bool:
        """Revoke a live feed (its hash forgotten); False when it was revoked already."""
        result = self.col.update_one(
            {"_id": oid, "revoked_ms": None},
            {"$set": {**changes, "token_sha256": None}},
        )
        return result.modified_count == 1

    def search(self, filters: dict, page: int, per_page: int) -> tuple[list[dict], int]:
        """Live feeds matching `filters`, newest first, without their hashes."""
        query = {**filters, "revoked_ms": None}
        # `$in: [None]` matches what `None` does (null or missing) on MongoDB, and is counted
        # right by nx-27017, whose count_documents answers 0 for a `None` filter.
        total = self.col.count_documents({**filters, "revoked_ms": {"$in": [None]}})
        cursor = (
            self.col.find(query, {"token_sha256": 0})
            .sort([("created_ms", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total
