"""MongoDB adapters of the webhooks: the subscriptions, the delivery queue (which is also the
delivery log), and the outboxes the relay reads.

Built for both MongoDB and the nx-27017 wire server: single-document conditional updates
only, strings pushed (an attempt is pushed as its JSON text), times as integer milliseconds,
no partial indexes, no transactions.

- `webhooks`: `{_id: ObjectId, url, events, secret_salt, active, created_ms, created_by}`
  (the signing secret is derived from the salt: signing.secret_of; webhooks made before
  that have `secret`); a deleted webhook stays, `active: false`, without either.
- `webhook_deliveries`: one document per (event, webhook), `_id` = "<event id>:<webhook id>",
  so relaying an event twice is a DuplicateKeyError, not a second delivery. `state` is
  `pending`, `delivered` or `dead`; a pending one is due at `next_attempt_ms` and is being
  attempted by `lease_owner` until `lease_until_ms`.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database

from booking_service.adapters.records import MAJORITY, Records, insert_new

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATES = (PENDING, DELIVERED, DEAD)


def ensure_indexes(db: Database) -> None:
    """Create the webhooks' indexes (idempotent; called by booking_service.bootstrap's, the
    one that makes every index of the service)."""
    db.webhooks.create_index([("active", ASCENDING), ("created_ms", ASCENDING)])
    deliveries = db.webhook_deliveries
    deliveries.create_index([("state", ASCENDING), ("next_attempt_ms", ASCENDING)])
    deliveries.create_index(
        [
            ("webhook_id", ASCENDING),
            ("subject", ASCENDING),
            ("state", ASCENDING),
            ("seq", ASCENDING),
        ]
    )
    deliveries.create_index([("webhook_id", ASCENDING), ("created_ms", DESCENDING)])


class WebhookStore(Records):
    """The `webhooks` collection."""

    collection = "webhooks"

    def get(self, webhook_id: str) -> dict | None:
        """One webhook (deleted ones too) by its 24-hex id."""
        return self.col.find_one({"_id": ObjectId(webhook_id)})

    def active(self) -> list[dict]:
        """The webhooks that receive deliveries, oldest first."""
        return list(self.col.find({"active": True}).sort([("created_ms", ASCENDING)]))

    def count_active(self) -> int:
        """How many webhooks receive deliveries."""
        return self.col.count_documents({"active": True})

    def deactivate(self, webhook_id: str, now_ms: int) -> bool:
        """Stop a webhook (its secret is forgotten); False when there is no such webhook."""
        result = self.col.update_one(
            {"_id": ObjectId(webhook_id)},
            {
                "$set": {"active": False, "deleted_ms": now_ms},
                "$unset": {"secret": "", "secret_salt": ""},
            },
        )
        return result.matched_count == 1


class DeliveryStore(Records):
    """The `webhook_deliveries` collection: the queue and the log."""

    collection = "webhook_deliveries"

    def insert(self, doc: dict) -> bool:
        """Queue a delivery; False when it was queued already (same event, same webhook)."""
        return insert_new(self.col, doc)

    def due(self, now_ms: int, limit: int, exclude: set[str] | None = None) -> list[dict]:
        """Pending deliveries whose time has come and that no live lease holds, except those
        to the webhooks `exclude` names."""
        query: dict = {
            "state": PENDING,
            "next_attempt_ms": {"$lte": now_ms},
            "lease_until_ms": {"$lte": now_ms},
        }
        if exclude:
            query["webhook_id"] = {"$nin": sorted(exclude)}
        return list(
            self.col.find(query)
            .sort([("next_attempt_ms", ASCENDING), ("seq", ASCENDING)])
            .limit(limit)
        )

    def earlier_pending(self, webhook_id: str, subject: str, seq: int) -> dict | None:
        """A pending delivery to the same webhook about the same thing, from before `seq`:
        it goes first."""
        return self.col.find_one(
            {"webhook_id": webhook_id, "subject": subject, "state": PENDING, "seq": {"$lt": seq}},
            {"next_attempt_ms": 1},
            sort=[("seq", ASCENDING)],
        )

    def defer(self, delivery_id: str, until_ms: int, now_ms: int) -> None:
        """Not before `until_ms` (an earlier delivery of its subject is still pending)."""
        self.col.update_one(
            {"_id": delivery_id, "state": PENDING, "lease_until_ms": {"$lte": now_ms}},
            {"$set": {"next_attempt_ms": until_ms}},
        )

    def claim(self, doc: dict, now_ms: int, lease_ms: int, owner: str) -> dict | None:
        """Take the next attempt of a due delivery for `lease_ms`; None when another process
        took it (or it changed) first."""
        return self.col.find_one_and_update(
            {
                "_id": doc["_id"],
                "state": PENDING,
                "attempt_count": doc["attempt_count"],
                "lease_until_ms": {"$lte": now_ms},
            },
            {
                "$set": {
                    "lease_until_ms": now_ms + lease_ms,
                    "lease_owner": owner,
                    "lease_at_ms": now_ms,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    def expire_lease(self, doc: dict, attempt_text: str, changes: dict, now_ms: int) -> dict | None:
        """Log the attempt of a lease that ran out without an outcome (its process died or
        hung) and free the delivery; the delivery after it, or None when it changed."""
        return self.col.find_one_and_update(
            {
                "_id": doc["_id"],
                "state": PENDING,
                "attempt_count": doc["attempt_count"],
                "lease_owner": doc["lease_owner"],
                "lease_until_ms": {"$lte": now_ms},
            },
            {
                "$push": {"attempts": attempt_text},
                "$inc": {"attempt_count": 1},
                "$set": {**changes, "lease_until_ms": 0},
                "$unset": {"lease_owner": ""},
            },
            return_document=ReturnDocument.AFTER,
        )

    def record(self, doc: dict, owner: str, attempt_text: str, changes: dict) -> bool:
        """Log the attempt made under this lease and set the outcome; False when the lease
        was lost (expired and taken over): that process logs its own attempt."""
        result = self.col.update_one(
            {
                "_id": doc["_id"],
                "state": PENDING,
                "attempt_count": doc["attempt_count"],
                "lease_owner": owner,
            },
            {
                "$push": {"attempts": attempt_text},
                "$inc": {"attempt_count": 1},
                "$set": {**changes, "lease_until_ms": 0},
                "$unset": {"lease_owner": ""},
            },
        )
        return result.modified_count == 1

    def end_unsent(self, delivery_id: str, reason: str, now_ms: int) -> None:
        """A pending delivery that will never be sent (its webhook is deleted) is dead."""
        self.col.update_one(
            {"_id": delivery_id, "state": PENDING, "lease_until_ms": {"$lte": now_ms}},
            {"$set": {"state": DEAD, "dead_reason": reason, "ended_ms": now_ms}},
        )

    def end_for_webhook(self, webhook_id: str, reason: str, now_ms: int) -> int:
        """Every pending delivery of a webhook not being attempted right now is dead (one in
        flight ends when its worker next looks at it)."""
        result = self.col.update_many(
            {"webhook_id": webhook_id, "state": PENDING, "lease_until_ms": {"$lte": now_ms}},
            {"$set": {"state": DEAD, "dead_reason": reason, "ended_ms": now_ms}},
        )
        return result.modified_count

    def page(
        self, webhook_id: str, state: str | None, page: int, per_page: int
    ) -> tuple[list[dict], int]:
        """A webhook's deliveries, newest first (queued in one relay pass: later changes of
        one subject first), and how many there are."""
        query: dict = {"webhook_id": webhook_id}
        if state is not None:
            query["state"] = state
        total = self.col.count_documents(query)
        cursor = (
            self.col.find(query, {"payload": 0})
            .sort([("created_ms", DESCENDING), ("seq", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total


class OutboxSources:
    """The documents whose outbox holds events not relayed yet (booking_service/adapters/outbox.py):
    appointments (each change `$inc`s their `version`) and waitlist entries (no version)."""

    KINDS = ("appointment", "waitlist")

    def __init__(self, db: Database):
        self.cols = {
            "appointment": db.get_collection("appointments", write_concern=MAJORITY),
            "waitlist": db.get_collection("waitlist", write_concern=MAJORITY),
        }

    def pending(self, kind: str, limit: int) -> list[dict]:
        """Documents of `kind` with events to relay (their outbox, their version)."""
        return list(
            self.cols[kind].find({"outbox_pending": 1}, {"outbox": 1, "version": 1}).limit(limit)
        )

    def clear(self, kind: str, doc: dict, relayed: list[str]) -> None:
        """Take the relayed events out of their document, never one pushed since it was read.

        An appointment whose `version` is still the one read has had no change since: its
        outbox is exactly what was relayed, and goes at once. Otherwise (and for waitlist
        entries, which have no version) the relayed texts are pulled, then the pending mark
        is cleared only if the outbox is empty in that same conditional update: an event
        pushed in between keeps (or sets again) the mark.
        """
        col = self.cols[kind]
        if kind == "appointment":
            done = col.update_one(
                {"_id": doc["_id"], "version": doc.get("version"), "outbox_pending": 1},
                {"$unset": {"outbox": "", "outbox_pending": ""}},
            )
            if done.matched_count == 1:
                return
        if relayed:
            col.update_one({"_id": doc["_id"]}, {"$pull": {"outbox": {"$in": relayed}}})
        col.update_one(
            {"_id": doc["_id"], "outbox": {"$size": 0}, "outbox_pending": 1},
            {"$unset": {"outbox_pending": ""}},
        )
