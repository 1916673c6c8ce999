"""Idempotency-Key: a retry with the same key and body replays the first answer."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from booking_service.adapters.repository import IdempotencyRepository
from shared.errors import (
    DomainError,
    IdempotencyKeyReused,
    ServiceUnavailable,
    ValidationError,
    error_body,
)
from shared.ids import is_idempotency_key

MAX_KEY_LENGTH = 255
STALE_AFTER = timedelta(seconds=60)


class IdempotencyInProgress(DomainError):
    """The first request with this key is still running."""

    status = 409
    reason = "idempotency_key_in_progress"


def fingerprint(body: dict) -> str:
    """A digest of a request body, independent of key order."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def run_once(
    repo: IdempotencyRepository,
    user_id: str,
    key: str,
    digest: str,
    now: datetime,
    action: Callable[[], dict],
    wait_seconds: float = 5.0,
) -> tuple[int, dict, bool]:
    """(status, body, replayed): run `action` once per key; replay its answer on retries of the
    same request (`digest`: its `fingerprint`)."""
    if not is_idempotency_key(key):
        raise ValidationError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    scoped = f"{user_id}:{key}"
    try:
        existing = repo.claim(scoped, digest, now)
        deadline = time.monotonic() + wait_seconds
        while existing is not None:
            if existing["fingerprint"] != digest:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was used with a different request body"
                )
            if existing["state"] == "done":
                return existing["status"], existing["body"], True
            if repo.take_over(scoped, digest, now - STALE_AFTER, now):
                break
            if time.monotonic() > deadline:
                raise IdempotencyInProgress("A request with this Idempotency-Key is in progress")
            time.sleep(0.05)
            existing = repo.claim(scoped, digest, now)
    except PyMongoError as exc:
        raise ServiceUnavailable("Booking is unavailable: the database is down") from exc
    try:
        answer = action()
    except DomainError as exc:
        if exc.status >= 500 or exc.status == 429:
            # Transient (a failure, or a limit that passes): a retry must run anew.
            _forget(repo, scoped)
            raise
        repo.complete(
            scoped,
            exc.status,
            error_body(exc.status, exc.reason, exc.message, exc.errors, **exc.extra),
        )
        raise
    except Exception:
        _forget(repo, scoped)
        raise
    repo.complete(scoped, 201, answer)
    return 201, answer, False


def _forget(repo: IdempotencyRepository, scoped: str) -> None:
    try:
        repo.forget(scoped)
    except PyMongoError:
        pass  # it goes stale and a retry takes it over
