"""Webhooks: subscriptions, the relay from the outboxes, and the deliveries (no Flask here).

Every change a webhook reports is written with its event, in one single-document update
(booking_service/adapters/outbox.py). From there, at least once:

1. **Relay** (`relay`): documents marked `outbox_pending` are read; each event is queued for
   every active webhook subscribed to its type that existed when it happened, as the delivery
   `<event id>:<webhook id>` (a second relay of the same event is a duplicate key: nothing),
   in the outbox's order; then the relayed events are taken out of their document without
   ever losing one pushed meanwhile (`OutboxSources.clear`). A process that dies anywhere
   in between leaves the events in the outbox, and the next relay (any process) queues what
   is missing.
2. **Delivery** (`deliver_due`): a due delivery is claimed with a lease (a conditional update,
   so one process makes an attempt at a time; a dead process's lease runs out and another
   attempts it again), POSTed, signed as Standard Webhooks, with a timeout, and the attempt
   logged. 2xx: `delivered`. Otherwise it is due again after an exponential backoff with
   jitter, and `dead` after WEBHOOK_MAX_ATTEMPTS attempts (it stays in the log).
   Deliveries about one appointment (or waitlist entry) reach a webhook in the order of the
   changes: one waits while an earlier one to the same webhook is pending.

Each booking-service process that runs the reconciler runs one `DeliveryWorker` thread doing
both, every WEBHOOK_POLL_SECONDS; its attempts run in a pool of WEBHOOK_CONCURRENCY threads
(`Concurrent`), so a slow receiver holds up no other webhook.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import random
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import orjson
import requests
from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import PyMongoError
from standardwebhooks.webhooks import Webhook

from booking_service.adapters.repository import epoch_ms
from booking_service.integrations.webhooks.store import (
    DEAD,
    DELIVERED,
    PENDING,
    DeliveryStore,
    OutboxSources,
    WebhookStore,
    ensure_indexes,
)
from booking_service.integrations.webhooks.transport import (
    UrlRefused,
    check_destination,
    describe_failure,
    new_session,
)
from shared.auth import Principal
from shared.clock import utcnow
from shared.config import Config
from shared.errors import DomainError, ValidationError
from shared.slots import iso_utc_ms

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SALT_BYTES = 16
USER_AGENT = "slotbook-webhooks/1"
# At most this many webhooks receive deliveries at once (each costs work on every change).
MAX_ACTIVE_WEBHOOKS = 100
# Documents read per collection per relay round; due deliveries read per round; attempts
# made per pass before the worker looks at the outboxes again.
RELAY_BATCH = 200
DUE_BATCH = 50
ATTEMPTS_PER_PASS = 200


class WebhookNotFound(DomainError):
    status = 404
    reason = "webhook_not_found"


class TooManyWebhooks(DomainError):
    status = 409
    reason = "too_many_webhooks"


class Sender(Protocol):
    """Sends one attempt: (status code, None) when an answer came, else (None, why)."""

    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int | None, str | None]: ...


class HttpSender:
    """Attempts over HTTP: never a redirect followed, never a proxy, a timeout on each step;
    with `guarded`, every connection goes only to a public address checked when it opens."""

    def __init__(self, guarded: bool):
        self.guarded = guarded
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """This thread's session (attempts run in a pool's threads: requests does not promise
        that one session is safe to share between them)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session(self.guarded)
        return session

    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int | None, str | None]:
        """POST `body`; the answer's status code, or why there was none."""
        try:
            resp = self.session.post(
                url,
                data=body,
                headers=headers,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,  # the answer's body is not wanted: it is never read
            )
        except (requests.RequestException, ValueError, OSError) as exc:
            return None, describe_failure(exc)
        resp.close()
        return resp.status_code, None


@dataclass
class Webhooks:
    """What the webhooks' functions work with, built once per process (`build`)."""

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


def build(db: Database, cfg: Config) -> Webhooks:
    """The webhooks' context over MongoDB `db`."""
    return Webhooks(
        config=cfg,
        hooks=WebhookStore(db),
        deliveries=DeliveryStore(db),
        sources=OutboxSources(db),
        sender=HttpSender(guarded=destinations_checked(cfg)),
    )


# --- Pure helpers ------------------------------------------------------------------------


def secret_of(cfg: Config, hook: dict) -> str | None:
    """A webhook's signing secret (Standard Webhooks' `whsec_` and 32 bytes): HMAC-SHA256 of
    its id and its random `secret_salt` under WEBHOOK_SECRETS_KEY (JWT_SECRET's when unset).
    MongoDB keeps the salt only, so a copy of the database signs nothing. A webhook made
    before secrets were derived keeps its stored `secret`; a deleted one has neither (None)."""
    if hook.get("secret"):
        return hook["secret"]
    salt = hook.get("secret_salt")
    if not salt:
        return None
    key = (cfg.webhook_secrets_key or cfg.jwt_secret).encode()
    message = f"webhook-secret:{hook['_id']}:{salt}".encode()
    return SECRET_PREFIX + base64.b64encode(hmac.digest(key, message, "sha256")).decode()


def backoff_seconds(
    failures: int, base: float, cap: float, rand: Callable[[], float] | None = None
) -> float:
    """The wait after the `failures`-th failed attempt: base x 2^(failures-1), at most `cap`,
    with "equal jitter" (between half of it and all of it), so receivers that came back are
    not hit by every retry at once."""
    ceiling = min(cap, base * 2 ** min(max(failures, 1) - 1, 62))
    return ceiling / 2 + (rand or random.random)() * ceiling / 2


def signed_headers(secret: str, msg_id: str, body: str, at: float) -> dict[str, str]:
    """The headers of one attempt: Standard Webhooks' `webhook-id` (the event id: the same on
    every retry), `webhook-timestamp` (the attempt's, in seconds) and `webhook-signature`."""
    stamp = datetime.fromtimestamp(int(at), tz=UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
    }


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


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds and `Z`."""
    return iso_utc_ms(datetime.fromtimestamp(ms / 1000, tz=UTC))


# --- Subscriptions -----------------------------------------------------------------------


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
        "secret_salt": secrets.token_urlsafe(SALT_BYTES),
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


# --- Relay -------------------------------------------------------------------------------


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


# --- Delivery ----------------------------------------------------------------------------


def lease_ms(cfg: Config) -> int:
    """How long a claimed attempt is its process's: WEBHOOK_LEASE_SECONDS, and always longer
    than an attempt can take (connect and read timeouts, and a second)."""
    return int(max(cfg.webhook_lease_seconds, 2 * cfg.webhook_timeout_seconds + 1) * 1000)


class Inline:
    """Attempts made one after another, in the caller's thread."""

    def busy(self) -> set[str]:
        """The webhooks that take no more attempts now."""
        return set()

    def full(self) -> bool:
        """Whether no attempt can start now."""
        return False

    def submit(self, webhook_id: str, work: Callable[[], object]) -> None:
        work()


class Concurrent:
    """Attempts made by a pool of `size` threads, at most half of them (and one at least) for
    any one webhook: a slow or hanging receiver (an attempt waits up to its timeouts) never
    holds up the deliveries to the others."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.per_webhook = max(1, self.size // 2)
        self.pool = ThreadPoolExecutor(self.size, thread_name_prefix="webhook-attempt")
        self.running: Counter[str] = Counter()
        self.lock = threading.Lock()

    def busy(self) -> set[str]:
        with self.lock:
            return {w for w, n in self.running.items() if n >= self.per_webhook}

    def full(self) -> bool:
        with self.lock:
            return self.running.total() >= self.size

    def submit(self, webhook_id: str, work: Callable[[], object]) -> None:
        with self.lock:
            self.running[webhook_id] += 1

        def run() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001 - one attempt's failure is its own
                log.exception("webhook attempt crashed (its lease expires; it is retried)")
            finally:
                with self.lock:
                    self.running[webhook_id] -= 1
                    if self.running[webhook_id] <= 0:
                        del self.running[webhook_id]

        self.pool.submit(run)

    def shutdown(self, wait: bool = True) -> None:
        """Start no more attempts (and wait for those under way)."""
        self.pool.shutdown(wait=wait)


def deliver_due(
    svc: Webhooks,
    owner: str,
    budget: int = ATTEMPTS_PER_PASS,
    attempts: Inline | Concurrent | None = None,
) -> int:
    """Start the attempts of the deliveries that are due (at most `budget`; `attempts`: how
    they run, one after another by default); returns the attempts started. A webhook with
    as many attempts under way as it may have is skipped until one ends."""
    runner = attempts or Inline()
    made = 0
    poll_ms = int(svc.config.webhook_poll_seconds * 1000)
    for _ in range(budget):
        if runner.full():
            break
        now_ms = epoch_ms(utcnow())
        batch = svc.deliveries.due(now_ms, DUE_BATCH, exclude=runner.busy())
        if not batch:
            break
        before = made
        for doc in batch:
            if made >= budget or runner.full():
                return made
            webhook_id = doc["webhook_id"]
            if webhook_id in runner.busy():
                continue
            hook = svc.hooks.get(webhook_id)  # read each time: a deletion stops it at once
            if hook is None or not hook.get("active") or secret_of(svc.config, hook) is None:
                svc.deliveries.end_unsent(doc["_id"], "webhook deleted", now_ms)
                continue
            earlier = svc.deliveries.earlier_pending(webhook_id, doc["subject"], doc["seq"])
            if earlier is not None:
                # In order per subject: not before the earlier one's next attempt.
                until = max(earlier["next_attempt_ms"], now_ms + poll_ms)
                svc.deliveries.defer(doc["_id"], until, now_ms)
                continue
            if doc.get("lease_owner"):
                doc = lost_attempt(svc, doc, now_ms)
                if doc is None or doc["state"] != PENDING:
                    continue
            claimed = svc.deliveries.claim(doc, epoch_ms(utcnow()), lease_ms(svc.config), owner)
            if claimed is not None:
                runner.submit(webhook_id, partial(attempt, svc, claimed, hook, owner))
                made += 1
        if made == before and len(batch) < DUE_BATCH:
            break  # nothing more could start now
    return made


def outcome(cfg: Config, made: int, delivered: bool, end_ms: int) -> dict:
    """What a delivery becomes after its `made`-th attempt: delivered, dead (the last one
    failed), or due again after the backoff."""
    if delivered:
        return {"state": DELIVERED, "ended_ms": end_ms}
    if made >= max(1, cfg.webhook_max_attempts):
        return {"state": DEAD, "ended_ms": end_ms, "dead_reason": "max attempts"}
    wait = backoff_seconds(made, cfg.webhook_backoff_seconds, cfg.webhook_backoff_max_seconds)
    return {"next_attempt_ms": end_ms + int(wait * 1000)}


def lost_attempt(svc: Webhooks, doc: dict, now_ms: int) -> dict | None:
    """A lease that ran out without an outcome: its process died (or hung) during the attempt.
    The receiver may have had it: it is logged as an attempt with no outcome, and the
    delivery is due again at once (or dead, when it was the last)."""
    made = doc["attempt_count"] + 1
    entry = {
        "attempt": made,
        "at_ms": doc.get("lease_at_ms") or now_ms,
        "status_code": None,
        "error": "no outcome: its process stopped during the attempt (lease expired)",
        "duration_ms": max(0, now_ms - (doc.get("lease_at_ms") or now_ms)),
    }
    changes = outcome(svc.config, made, False, now_ms)
    if "next_attempt_ms" in changes:
        changes["next_attempt_ms"] = now_ms
    return svc.deliveries.expire_lease(doc, orjson.dumps(entry).decode(), changes, now_ms)


def attempt(svc: Webhooks, doc: dict, hook: dict, owner: str) -> str:
    """Make one attempt of a claimed delivery and log it; returns the delivery's state."""
    cfg = svc.config
    at = utcnow()
    secret = secret_of(cfg, hook) or ""  # (deliver_due only attempts webhooks that have one)
    headers = signed_headers(secret, doc["event_id"], doc["payload"], time.time())
    started = time.monotonic()
    status, error = svc.sender.post(
        hook["url"], doc["payload"].encode(), headers, cfg.webhook_timeout_seconds
    )
    duration_ms = int((time.monotonic() - started) * 1000)
    made = doc["attempt_count"] + 1
    delivered = status is not None and 200 <= status < 300
    if status is not None and not delivered:
        error = "redirect not followed" if 300 <= status < 400 else f"HTTP {status}"
    changes = outcome(cfg, made, delivered, epoch_ms(utcnow()))
    entry = {
        "attempt": made,
        "at_ms": epoch_ms(at),
        "status_code": status,
        "error": error,
        "duration_ms": duration_ms,
    }
    if not svc.deliveries.record(doc, owner, orjson.dumps(entry).decode(), changes):
        log.warning("webhook delivery %s: lease lost during the attempt", doc["_id"])
        return PENDING
    if changes.get("state") == DEAD:
        log.warning("webhook delivery %s is dead after %d attempts", doc["_id"], made)
    return changes.get("state", PENDING)


class DeliveryWorker:
    """The relay and the deliveries of one process, in a daemon thread; start() once per
    process, after gunicorn forked it."""

    def __init__(self, svc: Webhooks, db: Database):
        self.svc = svc
        self.db = db
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.attempts = Concurrent(svc.config.webhook_concurrency)
        self._indexed = False

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; the attempts under way end on their own."""
        self._stop.set()
        self.attempts.shutdown(wait=False)

    def run_once(self) -> int:
        """One pass: relay every outbox, then attempt what is due; returns attempts made."""
        if not self._indexed:
            ensure_indexes(self.db)
            self._indexed = True
        relay(self.svc, epoch_ms(utcnow()))
        return deliver_due(self.svc, self.owner, attempts=self.attempts)

    def _run(self) -> None:
        while not self._stop.is_set():
            made = 0
            try:
                made = self.run_once()
            except PyMongoError as exc:
                log.warning("webhooks pass failed: %s", exc)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                log.exception("webhooks pass crashed")
            if made < ATTEMPTS_PER_PASS:  # a full pass: more may be due at once
                self._stop.wait(max(0.05, self.svc.config.webhook_poll_seconds))
