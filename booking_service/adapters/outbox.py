"""Webhook events, written with the change itself: a transactional outbox in MongoDB.

Every change a webhook can be told about is one conditional single-document update (a
confirm, a cancel, a move, a visit step, a waitlist offer). The event is pushed into that same
document's `outbox` list by that same update, so it exists exactly when the change does: no
process can die between the two. `outbox_pending` (1) marks documents whose outbox holds
events not yet relayed; the relay (integrations/webhooks/) copies each event, once, by its
id, into the delivery queue, then takes it out of the document.

An event is stored as its JSON text (`$push` of a string: the MongoDB wire server of `make
run` keeps pushed strings exactly, and so does MongoDB). Its shape is the Standard Webhooks
payload: `{"id", "type", "timestamp", "data"}`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson

from shared.slots import iso_utc_ms

APPOINTMENT_CREATED = "appointment.created"
APPOINTMENT_CANCELLED = "appointment.cancelled"
APPOINTMENT_RESCHEDULED = "appointment.rescheduled"
APPOINTMENT_STATUS_CHANGED = "appointment.status_changed"
WAITLIST_OFFERED = "waitlist.offered"
EVENT_TYPES = (
    APPOINTMENT_CREATED,
    APPOINTMENT_CANCELLED,
    APPOINTMENT_RESCHEDULED,
    APPOINTMENT_STATUS_CHANGED,
    WAITLIST_OFFERED,
)


def event(kind: str, data: dict, now: datetime) -> dict:
    """A new event of `kind` about `data` (an id that names it forever: deliveries dedupe
    on it)."""
    # To the millisecond (as Standard Webhooks' example payloads): a webhook made after an
    # event, within the same second, can tell it never gets it.
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": kind,
        "timestamp": iso_utc_ms(now),
        "data": data,
    }


def with_event(update: dict, recorded: dict | None) -> dict:
    """A MongoDB update that also records `recorded` (an `event(...)`) in the document's
    outbox, in the same single-document write."""
    if recorded is None:
        return update
    out = dict(update)
    out["$push"] = {**update.get("$push", {}), "outbox": orjson.dumps(recorded).decode()}
    out["$set"] = {**update.get("$set", {}), "outbox_pending": 1}
    return out


def events_of(doc: dict) -> list[dict]:
    """The events a document's outbox holds, oldest first."""
    return [orjson.loads(text) for text in doc.get("outbox") or ()]
