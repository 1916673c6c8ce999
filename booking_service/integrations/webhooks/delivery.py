"""The deliveries: each queued delivery (relay.py) attempted until delivered or dead, and the
worker thread that relays and delivers (no Flask here).

A due delivery is claimed with a lease (a conditional update, so one process makes an attempt
at a time; a dead process's lease runs out and another attempts it again), POSTed, signed as
Standard Webhooks, with a timeout, and the attempt logged. 2xx: `delivered`. Otherwise it is
due again after an exponential backoff with jitter, and `dead` after WEBHOOK_MAX_ATTEMPTS
attempts (it stays in the log). Deliveries about one appointment (or waitlist entry) reach a
webhook in the order of the changes: one waits while an earlier one to the same webhook is
pending.

Each booking-service process that runs the reconciler runs one `DeliveryWorker` thread doing
both the relay and the deliveries, every WEBHOOK_POLL_SECONDS; its attempts run in a pool of
WEBHOOK_CONCURRENCY threads (`Concurrent`), so a slow receiver holds up no other webhook.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import orjson
from pymongo.errors import PyMongoError

from booking_service.adapters.repository import epoch_ms
from booking_service.integrations.webhooks.relay import relay
from booking_service.integrations.webhooks.service import Webhooks
from booking_service.integrations.webhooks.signing import secret_of, signed_headers
from booking_service.integrations.webhooks.store import DEAD, DELIVERED, PENDING
from shared.clock import utcnow
from shared.config import Config

log = logging.getLogger(__name__)

# Due deliveries read per round; attempts made per pass before the worker looks at the
# outboxes again.
DUE_BATCH = 50
ATTEMPTS_PER_PASS = 200


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


def backoff_seconds(
    failures: int, base: float, cap: float, rand: Callable[[], float] | None = None
) -> float:
    """The wait after the `failures`-th failed attempt: base x 2^(failures-1), at most `cap`,
    with "equal jitter" (between half of it and all of it), so receivers that came back are
    not hit by every retry at once."""
    ceiling = min(cap, base * 2 ** min(max(failures, 1) - 1, 62))
    return ceiling / 2 + (rand or random.random)() * ceiling / 2


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

    def __init__(self, svc: Webhooks):
        self.svc = svc
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.attempts = Concurrent(svc.config.webhook_concurrency)

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
