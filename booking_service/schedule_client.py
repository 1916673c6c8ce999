"""The booking service's view of hospital configurations: the schedule service's API,
cached per process and revalidated on every booking by the published version."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import quote

import requests

from shared.errors import HospitalNotFound, ServiceUnavailable
from shared.ids import is_id
from shared.slots import Schedule, compile_schedule

log = logging.getLogger(__name__)


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
        """The current schedule; the cached copy only when it is the published version.

        `hospital_id` is checked against the canonical rule before it goes into a URL (and
        quoted all the same), and an answer about any other hospital is refused: the
        caller's keys and records are built from the id it asked about, so that id and the
        configuration must be one hospital's.
        """
        if not is_id(hospital_id):
            raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
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
                f"{self.base_url}/api/dynamic-slots/hospitals/{quote(hospital_id, safe='')}",
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
        try:
            doc = resp.json()
            schedule = compile_schedule(doc)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ServiceUnavailable("The schedule service answered badly") from exc
        if schedule.hospital_id != hospital_id:
            log.error(
                "asked for hospital %r, the schedule service answered %r",
                hospital_id,
                schedule.hospital_id,
            )
            raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
        with self._lock:
            self._cache[hospital_id] = Cached(schedule, resp.headers.get("ETag"))
        return schedule
