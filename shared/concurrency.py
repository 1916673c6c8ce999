"""A per-process limit on expensive requests (calendar feeds, FHIR searches): at most `limit`
of them are under way at once in a process; one more is refused at once with
`503 service_unavailable` and `Retry-After`, instead of taking a thread that cheap requests
need and waiting behind the others until the gateway gives up on it (a `504`). A burst of
expensive requests is so answered or refused on its own, and the cheap ones keep their
threads (EXPENSIVE_CONCURRENCY; README, "Configuration").

No Flask here: an app keeps one limit for all its expensive routes
(`app.extensions[EXTENSION]`, made by `install`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from shared.errors import ServiceUnavailable

EXTENSION = "expensive.limit"
# Seconds a refused client is asked to wait: about one expensive answer's time.
RETRY_AFTER_SECONDS = 1


class ConcurrencyLimit:
    """At most `limit` holders at once; `slot(what)` is one, or raises the refusal."""

    def __init__(self, limit: int, retry_after: int = RETRY_AFTER_SECONDS):
        if limit < 1:
            raise ValueError(f"a concurrency limit must be at least 1, got {limit}")
        self.limit = limit
        self.retry_after = retry_after
        self._slots = threading.BoundedSemaphore(limit)

    def refusal(self, what: str) -> ServiceUnavailable:
        """The answer to one request too many: 503 service_unavailable, Retry-After."""
        exc = ServiceUnavailable(
            f"Too many {what} are being answered right now: retry in a moment",
            retry_after=self.retry_after,
        )
        exc.headers["Retry-After"] = str(self.retry_after)
        return exc

    @contextmanager
    def slot(self, what: str) -> Iterator[None]:
        """Hold one of the slots for the block; none free: the refusal, at once."""
        if not self._slots.acquire(blocking=False):
            raise self.refusal(what)
        try:
            yield
        finally:
            self._slots.release()


def install(extensions: MutableMapping, limit: int) -> ConcurrencyLimit:
    """The app's limit (`extensions`: its `app.extensions`), made on the first call: every
    expensive route of the app shares it."""
    found = extensions.get(EXTENSION)
    if found is None:
        found = extensions[EXTENSION] = ConcurrencyLimit(limit)
    return found
