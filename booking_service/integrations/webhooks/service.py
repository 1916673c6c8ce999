"""Webhooks' admin use cases: subscriptions and their delivery logs (no Flask here).

The relay from the outboxes is in relay.py, the deliveries and their worker in delivery.py,
secrets and signatures in signing.py, the storage in store.py, the URL and address rules and
the HTTP client in transport.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from bson import ObjectId

from booking_service.adapters.repository import epoch_ms
from booking_service.integrations.webhooks.signing import new_salt, secret_of
from booking_service.integrations.webhooks.store import (
    PENDING,
    DeliveryStore,
    OutboxSources,
    WebhookStore,
)
from booking_service.integrations.webhooks.transport import Sender, UrlRefused, check_destination
from shared.auth import Principal
from shared.config import Config
from shared.errors import DomainError, ValidationError
from shared.slots import iso_utc_ms

# At most this many webhooks receive deliveries at once (each costs work on every change).
MAX_ACTIVE_WEBHOOKS = 100


class WebhookNotFound(DomainError):
    status = 404
    reason = "webhook_not_found"


class TooManyWebhooks(DomainError):
    status = 409
    reason = "too_many_webhooks"


@dataclass
class Webhooks:
    """What the webhooks' functions work with, built once per process
    (booking_service/bootstrap.py) or from fakes (tests/unit/fakes.py)."""

    config: Config
    hooks: WebhookStore
    deliveries: DeliveryStore
    sources: OutboxSources
    sender: Sender

    @property
    def destinations_checked(self) -> bool:
        """Whether receivers must be public addresses."""
        return destinations_checked(self.config)


def destinations_checked(cfg: Config) -> bool:
    """Receivers must be public addresses in production, unless WEBHOOK_ALLOW_PRIVATE=1."""
    return cfg.production and not cfg.webhook_allow_private


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds and `Z`."""
    return iso_utc_ms(datetime.fromtimestamp(ms / 1000, tz=UTC))


def public_webhook(doc: dict) -> dict:
    """A webhook as the API shows it (never its secret)."""
    return {
        "webhook_id": str(doc["_id"]),
        "url": doc["url"],
        "events": list(doc["events"]),
        "active": bool(doc.get("active")),
        "created_at": iso_ms(doc["created_ms"]),
    }


def create(svc: Webhooks, who: Principal, body: dict, now: datetime) -> dict:
    """A new webhook (the URL's form and the events are checked by the schema); its secret
    is in this answer only."""
    url = body["url"]
    if svc.destinations_checked:
        try:
            check_destination(url, svc.config.webhook_timeout_seconds)
        except UrlRefused as exc:
            raise ValidationError(
                "The webhook URL is not allowed", errors={"url": [f"URL {exc}"]}
            ) from exc
    if svc.hooks.count_active() >= MAX_ACTIVE_WEBHOOKS:
        raise TooManyWebhooks(f"At most {MAX_ACTIVE_WEBHOOKS} webhooks at once")
    doc = {
        "_id": ObjectId(),
        "url": url,
        "events": list(body["events"]),
        "secret_salt": new_salt(),
        "active": True,
        "created_ms": epoch_ms(now),
        "created_by": who.user_id,
    }
    svc.hooks.insert(doc)
    return {**public_webhook(doc), "secret": secret_of(svc.config, doc)}


def list_webhooks(svc: Webhooks) -> dict:
    """The webhooks receiving deliveries."""
    return {"webhooks": [public_webhook(d) for d in svc.hooks.active()]}


def find(svc: Webhooks, webhook_id: str) -> dict:
    """One webhook (a deleted one too); WebhookNotFound when there never was one."""
    doc = svc.hooks.get(webhook_id)
    if doc is None:
        raise WebhookNotFound(f"No webhook {webhook_id!r}")
    return doc


def delete(svc: Webhooks, webhook_id: str, now: datetime) -> None:
    """Stop a webhook (idempotent): nothing more is queued or sent to it; its log stays."""
    if not svc.hooks.deactivate(webhook_id, epoch_ms(now)):
        raise WebhookNotFound(f"No webhook {webhook_id!r}")
    svc.deliveries.end_for_webhook(webhook_id, "webhook deleted", epoch_ms(now))


def public_delivery(doc: dict) -> dict:
    """A delivery as the log shows it: its event, state and every attempt."""
    attempts = []
    for text in doc.get("attempts") or ():
        entry = orjson.loads(text) if isinstance(text, str | bytes) else dict(text)
        attempts.append(
            {
                "attempt": entry.get("attempt"),
                "at": iso_ms(entry["at_ms"]),
                "status_code": entry.get("status_code"),
                "error": entry.get("error"),
                "duration_ms": entry.get("duration_ms"),
            }
        )
    pending = doc["state"] == PENDING
    return {
        "delivery_id": doc["_id"],
        "event_id": doc["event_id"],
        "event_type": doc["event_type"],
        "state": doc["state"],
        "attempt_count": doc.get("attempt_count", 0),
        "attempts": attempts,
        "created_at": iso_ms(doc["created_ms"]),
        "next_attempt_at": iso_ms(doc["next_attempt_ms"]) if pending else None,
        "ended_at": iso_ms(doc["ended_ms"]) if doc.get("ended_ms") else None,
        "dead_reason": doc.get("dead_reason"),
    }


def delivery_log(svc: Webhooks, webhook_id: str, query: dict) -> dict:
    """A page of a webhook's deliveries, newest first (`state` filters)."""
    find(svc, webhook_id)
    page, per_page = query["page"], query["per_page"]
    docs, total = svc.deliveries.page(webhook_id, query.get("state"), page, per_page)
    return {
        "deliveries": [public_delivery(d) for d in docs],
        "page": page,
        "per_page": per_page,
        "total": total,
    }
