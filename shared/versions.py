"""The schedule version keys: how every process learns, on each request, that a config changed.

Protocol (the schedule service is the only writer):
- an edit first sets the key to the sentinel `editing` (expiring), then writes MongoDB,
  then publishes the new version number (max-wins, so concurrent edits never go back);
- a reader uses its cached copy only when the key holds exactly the cached version; a
  missing key or the sentinel sends it to the source (MongoDB, or the schedule service's
  API), so no stale copy is ever used after an edit, even across a Redis restart;
- a reader that finds the key missing restores it with SET NX, which never overwrites an
  edit's sentinel;
- edits of one hospital run one at a time (`edit_lock`), so one edit lifting its fence
  never lifts another's.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from . import keys

EDIT_LOCK_TTL_MS = 30_000
EDIT_LOCK_WAIT_SECONDS = 5.0
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

EDITING = b"editing"
EDITING_TTL_SECONDS = 60

_PUBLISH = """
local cur = redis.call('GET', KEYS[1])
local new = tonumber(ARGV[1])
if cur then
  local n = tonumber(cur)
  if n and n >= new then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Published:
    """What a reader found in a hospital's version key."""

    version: int | None  # the version to use a cached copy of; None: go to the source
    missing: bool  # the key was absent (a reader restores it after reading the source)

    @classmethod
    def from_raw(cls, raw) -> Published:
        """From the key's raw value (None when absent)."""
        return cls(parse_version(raw), raw is None)

    @classmethod
    def unknown(cls) -> Published:
        """Redis could not be read: go to the source, restore nothing."""
        return cls(None, False)


def parse_version(raw) -> int | None:
    """The version a key holds, or None when it is missing or an edit is in progress."""
    if raw is None or raw == EDITING:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def mark_editing(client: redis.Redis, hospital_id: str) -> None:
    """Before an edit: make every reader go to the source until the edit is published."""
    client.set(keys.schedule_version_key(hospital_id), EDITING, ex=EDITING_TTL_SECONDS)


def publish(client: redis.Redis, hospital_id: str, version: int) -> None:
    """After an edit: the new version, never lower than one already published."""
    client.eval(_PUBLISH, 1, keys.schedule_version_key(hospital_id), version)


def restore(client: redis.Redis, hospital_id: str, version: int) -> None:
    """A reader found the key missing: put back the version it just read from the source."""
    client.set(keys.schedule_version_key(hospital_id), version, nx=True)


class EditInProgress(Exception):
    """Another edit of the hospital held the lock for longer than we wait."""


@contextlib.contextmanager
def edit_lock(client: redis.Redis, hospital_id: str) -> Iterator[None]:
    """Hold the hospital's edit lock (waits up to EDIT_LOCK_WAIT_SECONDS; the lock expires
    by itself should its holder die). Raises EditInProgress when it stays taken."""
    key, token = keys.edit_lock_key(hospital_id), uuid.uuid4().hex
    deadline = time.monotonic() + EDIT_LOCK_WAIT_SECONDS
    while not client.set(key, token, nx=True, px=EDIT_LOCK_TTL_MS):
        if time.monotonic() > deadline:
            raise EditInProgress(hospital_id)
        time.sleep(0.02)
    try:
        yield
    finally:
        client.eval(_UNLOCK, 1, key, token)
