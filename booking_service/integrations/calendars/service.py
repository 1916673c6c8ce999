"""iCalendar use cases (API.md, "Integrations"): an appointment's `.ics`, and revocable feed
URLs of a hospital's (or a doctor's) appointments. Plain functions over the booking context and
the feeds repository; no Flask.

A feed URL is its own credential: `/api/feeds/{feed_id}.ics?token=<secret>`. The secret
(`secrets.token_urlsafe(32)`: 43 characters of A-Z a-z 0-9 - _) is shown once, when the feed is
made; only its SHA-256 is stored, compared in constant time. A missing or malformed token, a
wrong one, an unknown feed and a revoked one all get the same `404 feed_not_found`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bson import ObjectId

from booking_service.adapters.repository import AppointmentSearch, epoch_ms
from booking_service.core import places
from booking_service.core.context import Context
from booking_service.integrations.calendars.ics import (
    UID_DOMAIN,
    Venue,
    appointment_calendar,
    feed_calendar,
)
from shared.auth import Principal
from shared.configurations import Configuration
from shared.errors import DomainError, HospitalNotFound
from shared.ids import is_appointment_id
from shared.slots import LATEST_DATE, iso_utc

TOKEN_BYTES = 32
# What secrets.token_urlsafe(32) gives: 43 characters of the URL-safe base64 alphabet.
TOKEN_PATTERN = "[A-Za-z0-9_-]{43}"
_TOKEN = re.compile(TOKEN_PATTERN)
# At most this many events in one feed (the earliest first): a feed's answer stays bounded
# however busy the hospital and however long its booking window.
FEED_MAX_EVENTS = 2000


class FeedNotFound(DomainError):
    """No live feed answers to that id and secret (which of the two is never said)."""

    status = 404
    reason = "feed_not_found"


def new_token() -> str:
    """A feed's secret."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What is stored of a secret: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def is_token(value: object) -> bool:
    """True for a string in the secret's form (and nothing else: no other length, no
    non-ASCII character)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def token_matches(stored: object, given: object) -> bool:
    """Whether `given` is the secret whose hash is `stored` (constant time)."""
    if not isinstance(stored, str) or not stored or not is_token(given):
        return False
    return hmac.compare_digest(stored, token_hash(given))


def feed_path(feed_id: str, token: str) -> str:
    """The feed's URL, relative to the gateway."""
    return f"/api/feeds/{feed_id}.ics?token={token}"


def venue_of(ctx: Context, hospital_id: str) -> tuple[Configuration, Venue]:
    """The hospital's current configuration and the venue it makes (404 hospital_not_found)."""
    configuration = places.current_configuration(ctx, hospital_id)
    return configuration, Venue.of(configuration.doc, configuration.schedule)


def appointment_ics(ctx: Context, who: Principal, appointment_id: str) -> bytes:
    """The `.ics` of an appointment its caller may see (someone else's is 404)."""
    doc = places.find_visible(ctx, who, appointment_id)
    _, venue = venue_of(ctx, doc["hospital_id"])
    return appointment_calendar(doc, venue)


def public_feed(doc: dict) -> dict:
    """A feed as the API shows it (never its secret nor its hash)."""
    out = {
        "feed_id": str(doc["_id"]),
        "hospital_id": doc["hospital_id"],
        "practitioner_id": doc.get("practitioner_id"),
        "created_at": iso_utc(doc["created_at"]),
        "created_by": doc["created_by"],
    }
    if doc.get("revoked_at"):
        out["revoked_at"] = doc["revoked_at"]
    return out


def create_feed(
    ctx: Context, feeds, who: Principal, body: dict, now: datetime, base_url: str = ""
) -> dict:
    """Make a feed of a hospital's appointments (a doctor's with `practitioner_id`): its
    answer, with the URL that carries the secret (absolute when `base_url` is given)."""
    hospital_id, practitioner_id = body["hospital_id"], body.get("practitioner_id")
    configuration = places.current_configuration(ctx, hospital_id)
    if practitioner_id is not None:
        configuration.practitioner(practitioner_id)  # 404 practitioner_not_found
    token = new_token()
    doc = {
        "_id": ObjectId(),
        "hospital_id": hospital_id,
        "practitioner_id": practitioner_id,
        "token_sha256": token_hash(token),
        "created_at": now,
        "created_ms": epoch_ms(now),
        "created_by": who.user_id,
        "revoked_ms": None,
    }
    feeds.insert(doc)
    answer = public_feed(doc)
    answer["url"] = base_url + feed_path(answer["feed_id"], token)
    return answer


def _find(feeds, feed_id: str) -> dict:
    doc = feeds.get(ObjectId(feed_id)) if is_appointment_id(feed_id) else None
    if doc is None:
        raise FeedNotFound(f"No feed {feed_id!r}")
    return doc


def get_feed(feeds, feed_id: str) -> dict:
    """One feed (revoked ones too), without its secret."""
    return public_feed(_find(feeds, feed_id))


def list_feeds(feeds, query: dict) -> dict:
    """A page of live feeds, newest first, filtered by hospital and doctor."""
    filters = {name: query[name] for name in ("hospital_id", "practitioner_id") if name in query}
    page, per_page = query["page"], query["per_page"]
    docs, total = feeds.search(filters, page, per_page)
    return {
        "feeds": [public_feed(d) for d in docs],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


def revoke_feed(feeds, who: Principal, feed_id: str, now: datetime) -> None:
    """Revoke a feed (idempotent): its URL answers 404 from now on."""
    doc = _find(feeds, feed_id)
    if doc.get("revoked_ms") is None:
        feeds.revoke(
            doc["_id"],
            {"revoked_ms": epoch_ms(now), "revoked_at": iso_utc(now), "revoked_by": who.user_id},
        )


def feed_window(configuration: Configuration, now: datetime) -> tuple[date, date]:
    """Today and the last day of the booking window, in the hospital's zone."""
    schedule = configuration.schedule
    today = schedule.today(now)
    last = min(LATEST_DATE, today + timedelta(days=schedule.advance_booking_days))
    return today, last


@dataclass(frozen=True)
class FeedAnswer:
    """A feed's calendar, and whether events were left out (more than FEED_MAX_EVENTS); its
    `etag` (unquoted) and `last_modified`; `not_modified`: the caller has it already (no
    body)."""

    body: bytes
    events: int
    truncated: bool
    etag: str = ""
    last_modified: datetime | None = None
    not_modified: bool = False


class FeedBuilds:
    """Feeds' bodies built once per change: the last body of each feed with its ETag (the
    `size` feeds read last), and one build of a feed at a time (fetches of a feed that changed
    wait for the one build, then share it)."""

    def __init__(self, size: int = 256):
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, FeedAnswer] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}

    def _kept_answer(self, feed_id: str, etag: str) -> FeedAnswer | None:
        with self._lock:
            kept = self._kept.get(feed_id)
            if kept is None or kept.etag != etag:
                return None
            self._kept.move_to_end(feed_id)
            return kept

    def build(self, feed_id: str, etag: str, make: Callable[[], FeedAnswer]) -> FeedAnswer:
        """The feed's answer for `etag`: the one kept, or `make()`'s, kept."""
        kept = self._kept_answer(feed_id, etag)
        if kept is not None:
            return kept
        with self._lock:
            building = self._building.setdefault(feed_id, threading.Lock())
        with building:
            kept = self._kept_answer(feed_id, etag)  # built meanwhile by another fetch
            if kept is not None:
                return kept
            answer = make()
            with self._lock:
                self._kept[feed_id] = answer
                self._kept.move_to_end(feed_id)
                while len(self._kept) > self.size:
                    gone, _ = self._kept.popitem(last=False)
                    self._building.pop(gone, None)
            return answer


def feed_etag(
    feed_id: str, version: int, first: date, last: date, marks: list[tuple[str, int, int]]
) -> str:
    """What a feed's body depends on, hashed: the feed, the configuration's version (the
    venue, the slots' times), the window, and each appointment's id and version (every change
    of an appointment grows its version)."""
    digest = hashlib.sha256(f"{feed_id}|{version}|{first}|{last}|{FEED_MAX_EVENTS}".encode())
    for appointment_id, changes, _ in sorted(marks):
        digest.update(f"|{appointment_id}:{changes}".encode())
    return digest.hexdigest()[:32]


def read_feed(
    ctx: Context,
    feeds,
    feed_id: str,
    tokens: list[str],
    now: datetime,
    cached: Callable[[str], bool] | None = None,
    builds: FeedBuilds | None = None,
) -> FeedAnswer:
    """The feed's calendar: every visible appointment (cancelled ones too, so a subscribed
    calendar drops them) of its hospital, or doctor, from today through the booking window.
    Anything but exactly one right token for a live feed is 404, saying nothing more.
    `cached(etag)`: whether the caller has the body of that ETag (If-None-Match), then
    answered `not_modified`; `builds`: where bodies are kept between changes."""
    missing = FeedNotFound(f"No feed {feed_id!r}")
    if len(tokens) != 1 or not is_token(tokens[0]) or not is_appointment_id(feed_id):
        raise missing
    doc = feeds.get(ObjectId(feed_id))
    if (
        doc is None
        or doc.get("revoked_ms") is not None
        or not token_matches(doc.get("token_sha256"), tokens[0])
    ):
        raise missing
    try:
        configuration, venue = venue_of(ctx, doc["hospital_id"])
    except HospitalNotFound:
        raise missing from None
    first, last = feed_window(configuration, now)
    name = venue.name
    practitioner_id = doc.get("practitioner_id")
    search = AppointmentSearch(
        hospital_id=doc["hospital_id"],
        practitioner_id=practitioner_id,
        date_from=first.isoformat(),
        date_to=last.isoformat(),
    )
    if practitioner_id is not None:
        known = configuration.practitioners.get(practitioner_id)
        name += f" - {known.name if known is not None else practitioner_id}"
    marks = ctx.appointments.marks(search)
    etag = feed_etag(feed_id, configuration.schedule.version, first, last, marks)
    changed_ms = max((m[2] for m in marks), default=0) or doc.get("created_ms", 0)
    last_modified = datetime.fromtimestamp(changed_ms // 1000, tz=UTC)
    if cached is not None and cached(etag):
        return FeedAnswer(b"", 0, False, etag, last_modified, not_modified=True)

    def make() -> FeedAnswer:
        found, total = ctx.appointments.search(search, 1, FEED_MAX_EVENTS)
        body = feed_calendar(
            found, venue, name=name, uid=f"feed-{feed_id}@{UID_DOMAIN}", first=first, last=last
        )
        return FeedAnswer(body, len(found), total > len(found), etag, last_modified)

    return builds.build(feed_id, etag, make) if builds is not None else make()
