"""The booking service's view of hospital configurations: the schedule service's API,
cached per process and revalidated on every booking by the published version."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import requests

from shared.errors import HospitalNotFound, ServiceUnavailable
from shared.slots import Schedule, compile_schedule


@dataclass(frozen=True)
class Cached:
    """A compiled configuration and the ETag it came with."""

    schedule: Schedule
    etag: str | None


class ScheduleClient:
    """Fetches configurations over HTTP, with If-None-Match when a copy is cached."""

    def __init__(self, session: requests.Session, base_url: str, timeout: tuple[float, float]):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._cache: dict[str, Cached] = {}
        self._lock = threading.Lock()

    def get(self, hospital_id: str, published_version: int | None) -> Schedule:
        """The current schedule; the cached copy only when it is the published version."""
        cached = self._cache.get(hospital_id)
        if (
            cached is not None
            and published_version is not None
            and cached.schedule.version == published_version
        ):
            return cached.schedule
        headers = {"If-None-Match": cached.etag} if cached and cached.etag else {}
        try:
            resp = self.session.get(
                f"{self.base_url}/api/dynamic-slots/hospitals/{hospital_id}",
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ServiceUnavailable("The schedule service is unavailable") from exc
        if resp.status_code == 304 and cached is not None:
            return cached.schedule
        if resp.status_code == 404:
            raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
        if resp.status_code != 200:
            raise ServiceUnavailable(f"The schedule service answered {resp.status_code}")
        schedule = compile_schedule(resp.json())
        with self._lock:
            self._cache[hospital_id] = Cached(schedule, resp.headers.get("ETag"))
        return schedule
