"""The relay: the events of the outboxes queued as deliveries (no Flask here).

Every change a webhook reports is written with its event, in one single-document update
(booking_service/adapters/outbox.py). From there, at least once: documents marked
`outbox_pending` are read; each event is queued for every active webhook subscribed to its
type that existed when it happened, as the delivery `<event id>:<webhook id>` (a second relay
of the same event is a duplicate key: nothing), in the outbox's order; then the relayed events
are taken out of their document without ever losing one pushed meanwhile
(`OutboxSources.clear`). A process that dies anywhere in between leaves the events in the
outbox, and the next relay (any process) queues what is missing. The deliveries themselves:
delivery.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from booking_service.adapters.repository import epoch_ms
from booking_service.integrations.webhooks.service import Webhooks
from booking_service.integrations.webhooks.store import PENDING, DeliveryStore, OutboxSources

log = logging.getLogger(__name__)

# Documents read per collection per relay round.
RELAY_BATCH = 200


def event_ms(event: dict, default: int) -> int:
    """When the event happened, in milliseconds since the epoch (`default` when it does not
    say). Events made before this read whole seconds."""
    stamp = event.get("timestamp")
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            moment = datetime.strptime(stamp, layout).replace(tzinfo=UTC)
        except (TypeError, ValueError):
            continue
        return epoch_ms(moment)
    return default


def subscribed(hook: dict, event: dict, happened_ms: int) -> bool:
    """Whether `hook` gets `event`: subscribed to its type, and existing when it happened."""
    return event.get("type") in hook.get("events", ()) and hook["created_ms"] <= happened_ms


def order_of(event: dict, happened_ms: int) -> int:
    """Its place among its subject's events: an appointment's version (one more with each
    change), else when it happened."""
    version = (event.get("data") or {}).get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return happened_ms


def relay(svc: Webhooks, now_ms: int) -> int:
    """Queue the events of every outbox for their webhooks, then empty those outboxes;
    returns how many deliveries were queued."""
    hooks = svc.hooks.active()
    queued = 0
    for kind in OutboxSources.KINDS:
        for doc in svc.sources.pending(kind, RELAY_BATCH):
            queued += relay_document(svc.deliveries, svc.sources, hooks, kind, doc, now_ms)
    return queued


def relay_document(
    deliveries: DeliveryStore,
    sources: OutboxSources,
    hooks: list[dict],
    kind: str,
    doc: dict,
    now_ms: int,
) -> int:
    """Queue one document's events, oldest first (so a later event's delivery never exists
    without the earlier one's), then take them out of it. Any failure stops before the
    outbox is touched: the next relay does it again, and the duplicates are nothing."""
    stored = list(doc.get("outbox") or ())
    subject = f"{kind}:{doc['_id']}"
    queued = 0
    for value in stored:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            log.warning("outbox of %s holds an event that is not one: dropped", subject)
            continue
        happened = event_ms(event, now_ms)
        for hook in hooks:
            if subscribed(hook, event, happened):
                seq = order_of(event, happened)
                queued += deliveries.insert(new_delivery(hook, event, text, subject, seq, now_ms))
    sources.clear(kind, doc, stored)
    return queued


def new_delivery(hook: dict, event: dict, text: str, subject: str, seq: int, now_ms: int) -> dict:
    """A delivery of `event` (its exact JSON text is what is sent and signed) to `hook`, due
    at once."""
    webhook_id = str(hook["_id"])
    return {
        "_id": f"{event['id']}:{webhook_id}",
        "webhook_id": webhook_id,
        "event_id": event["id"],
        "event_type": event.get("type"),
        "subject": subject,
        "seq": seq,
        "payload": text,
        "state": PENDING,
        "attempt_count": 0,
        "attempts": [],
        "lease_until_ms": 0,
        "next_attempt_ms": now_ms,
        "created_ms": now_ms,
    }
