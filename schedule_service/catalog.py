"""Hospital configurations, cached per process and revalidated by version on every request."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis

from shared import versions
from shared.errors import HospitalNotFound
from shared.slots import Schedule, compile_schedule

from .repository import HospitalRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """A configuration document and its compiled schedule."""

    doc: dict
    schedule: Schedule

    @property
    def version(self) -> int:
        """The configuration's version."""
        return self.schedule.version


class Catalog:
    """Answers 'the current configuration of hospital X' with at most one MongoDB read."""

    def __init__(self, repo: HospitalRepository, client: redis.Redis | None):
        self.repo = repo
        self.redis = client
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def cached(self, hospital_id: str) -> Entry | None:
        """The cached entry, without any check (to compute dates before the round trip)."""
        return self._entries.get(hospital_id)

    def resolve(self, hospital_id: str, version_raw, *, redis_ok: bool = True) -> Entry:
        """The current entry, given the raw value of the hospital's version key."""
        published = versions.parse_version(version_raw) if redis_ok else None
        entry = self._entries.get(hospital_id)
        if entry is not None and published is not None and entry.version == published:
            return entry
        doc = self.repo.get(hospital_id)
        if doc is None:
            raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
        entry = Entry(doc, compile_schedule(doc))
        with self._lock:
            self._entries[hospital_id] = entry
        if redis_ok and version_raw is None and self.redis is not None:
            try:
                versions.restore(self.redis, hospital_id, entry.version)
            except redis.RedisError:
                log.warning("could not restore the version key of %s", hospital_id)
        return entry

    def forget(self, hospital_id: str) -> None:
        """Drop a cached entry (after this process edited it)."""
        with self._lock:
            self._entries.pop(hospital_id, None)
