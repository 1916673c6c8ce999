"""Every hospital there is, and its doctors: what the Location, Practitioner and Schedule
searches without _id list. Read from the schedule service's `GET /api/dynamic-slots/hospitals`
(the hospitals' owner); the list is kept with its ETag, so an unchanged list is a `304`
and no body.

Only the keys are kept (hospital ids, doctor ids and whether each doctor takes
appointments): a listed page's resources are read like every read, through the
configuration cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import requests

from shared.errors import ServiceUnavailable
from shared.ids import is_id


@dataclass(frozen=True)
class Listed:
    """A hospital as a listing sees it: its id, and its doctors' (id, active), by id."""

    hospital_id: str
    doctors: tuple[tuple[str, bool], ...] = ()


class Directory(Protocol):
    """Where the listings come from."""

    def hospitals(self) -> tuple[Listed, ...]:
        """Every hospital, ordered by id."""
        ...


def listed(docs: Iterable[object]) -> tuple[Listed, ...]:
    """The keys of hospital documents, ordered by id (anything that is not a hospital with
    a canonical id is left out)."""
    found: dict[str, Listed] = {}
    for doc in docs:
        if not isinstance(doc, dict) or not is_id(doc.get("hospital_id")):
            continue
        raw = doc.get("practitioners")
        doctors = raw.items() if isinstance(raw, dict) else ()
        found[doc["hospital_id"]] = Listed(
            doc["hospital_id"],
            tuple(
                sorted(
                    (pid, bool(value.get("active", True)))
                    for pid, value in doctors
                    if is_id(pid) and isinstance(value, dict)
                )
            ),
        )
    return tuple(found[hid] for hid in sorted(found))


class HospitalList:
    """`GET /api/dynamic-slots/hospitals` on the schedule service, kept with its ETag."""

    def __init__(self, session: requests.Session, base_url: str, timeout: tuple[float, float]):
        self.session = session
        self.url = base_url.rstrip("/") + "/api/dynamic-slots/hospitals"
        self.timeout = timeout
        self._kept: tuple[str, tuple[Listed, ...]] | None = None  # (ETag, the list)

    def hospitals(self) -> tuple[Listed, ...]:
        """Every hospital, ordered by id; ServiceUnavailable when the list cannot be read."""
        kept = self._kept
        headers = {"If-None-Match": kept[0]} if kept is not None else {}
        try:
            resp = self.session.get(self.url, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailable("The schedule service is unavailable") from exc
        if resp.status_code == 304 and kept is not None:
            return kept[1]
        if resp.status_code != 200:
            raise ServiceUnavailable(f"The schedule service answered {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise ServiceUnavailable("The schedule service answered badly") from exc
        if not isinstance(body, dict) or not isinstance(body.get("hospitals"), list):
            raise ServiceUnavailable("The schedule service answered badly")
        found = listed(body["hospitals"])
        etag = resp.headers.get("ETag")
        if etag:
            self._kept = (etag, found)  # one assignment: threads see the old or the new
        return found
