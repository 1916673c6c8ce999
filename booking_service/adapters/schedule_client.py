"""Where the booking service reads hospital configurations: the schedule service's API.

Used as the source of the booking service's ConfigurationCache (shared/configurations.py),
which checks the answer is about the hospital asked for.
"""

from __future__ import annotations

from urllib.parse import quote

import requests

from shared.errors import ServiceUnavailable


class ScheduleSource:
    """`GET /api/dynamic-slots/hospitals/{id}` on the schedule service."""

    def __init__(self, session: requests.Session, base_url: str, timeout: tuple[float, float]):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def load(self, hospital_id: str) -> dict | None:
        """The configuration document, None when there is no such hospital."""
        url = f"{self.base_url}/api/dynamic-slots/hospitals/{quote(hospital_id, safe='')}"
        try:
            resp = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailable("The schedule service is unavailable") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ServiceUnavailable(f"The schedule service answered {resp.status_code}")
        try:
            doc = resp.json()
        except ValueError as exc:
            raise ServiceUnavailable("The schedule service answered badly") from exc
        if not isinstance(doc, dict):
            raise ServiceUnavailable("The schedule service answered badly")
        return doc
