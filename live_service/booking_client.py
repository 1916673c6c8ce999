"""The booking service's public read answers, over HTTP (aiohttp's client, one session per
process): a day's availability and its queue, the states the live events carry."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import orjson

from .streams import Topic


@dataclass(frozen=True)
class Answer:
    """One answer of the booking service: its status and its JSON document."""

    status: int
    body: object


class BookingUnavailable(Exception):
    """The booking service did not answer (refused, too slow, 5xx, or not JSON)."""


class BookingClient:
    """GET /api/availability/... and /api/queue/... of the booking service."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str):
        self.session = session
        self.base_url = base_url.rstrip("/")

    async def availability(self, topic: Topic, request_id: str | None = None) -> Answer:
        """The day's `GET /api/availability/{hospital}/{date}[?practitioner_id=]` answer."""
        return await self._get("/api/availability", topic, request_id)

    async def queue(self, topic: Topic, request_id: str | None = None) -> Answer:
        """The day's `GET /api/queue/{hospital}/{date}[?practitioner_id=]` answer."""
        return await self._get("/api/queue", topic, request_id)

    async def _get(self, prefix: str, topic: Topic, request_id: str | None) -> Answer:
        # The ids and the date were checked (shared.ids.is_id, shared.slots.parse_date):
        # nothing in them needs quoting.
        url = f"{self.base_url}{prefix}/{topic.hospital_id}/{topic.day}"
        params = {"practitioner_id": topic.practitioner_id} if topic.practitioner_id else None
        headers = {"X-Request-ID": request_id} if request_id else None
        try:
            async with self.session.get(url, params=params, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BookingUnavailable(f"{prefix}: {type(exc).__name__}: {exc}") from exc
        if status >= 500:
            raise BookingUnavailable(f"{prefix}: status {status}")
        try:
            return Answer(status, orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise BookingUnavailable(f"{prefix}: status {status}, not JSON") from exc
