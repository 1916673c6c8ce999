"""iCalendar (RFC 5545), API.md "Integrations": the HTTP layer.

- `GET /api/appointments/{id}/calendar.ics` (its owner, staff, admin; anyone else 404): one
  VCALENDAR with the appointment's VEVENT (calendars/ics.py says what it holds
  and why).
- Admin: `POST /api/feeds {"hospital_id", "practitioner_id"?}` -> `201 {"feed_id", "url", ...}`,
  `GET /api/feeds` (live feeds, no secrets), `GET` / `DELETE /api/feeds/{feed_id}` (revoke:
  204, idempotent).
- `GET /api/feeds/{feed_id}.ics?token=<secret>`: no bearer token, the URL is the credential;
  every visible appointment from today through the booking window (at most
  `service.FEED_MAX_EVENTS`, the earliest; `X-Feed-Truncated: true` when some were
  left out). Anything wrong is the same `404 feed_not_found`. Query parameters other than
  `token` are ignored (calendar clients add their own).

A feed id has the appointments' canonical form (24 lowercase hex digits), checked by the
`feed_id` path converter before any lookup. Every answer is `Cache-Control: no-store` but a
feed's own: it carries `ETag` and `Last-Modified`, answers `If-None-Match` with `304`, and is
`Cache-Control: private, no-cache`. Its body is built once per change of its appointments
(or of the configuration, or of its window) and kept (`service.FeedBuilds`). A feed's
answer is expensive (a first build of 2,000 appointments takes a second or more): at most
EXPENSIVE_CONCURRENCY of them (with the FHIR searches) are under way at once per process, and
one more is `503 service_unavailable` with `Retry-After` at once (shared/concurrency.py).

`url` is relative to the gateway unless FEEDS_BASE_URL (shared/config.py, checked at start)
gives the public origin to make it absolute: the Host a request arrives with is the client's
to choose, so it never goes into a URL we hand out.
"""

from __future__ import annotations

import re

from flask import Flask, Response, current_app, request
from flask.views import MethodView
from marshmallow import Schema, fields
from werkzeug.http import http_date

from booking_service.core.context import Context
from booking_service.integrations.calendars import service
from booking_service.integrations.calendars.ics import ICS_CONTENT_TYPE
from booking_service.integrations.calendars.store import FeedRepository
from shared import concurrency
from shared.auth import current_principal, require_auth
from shared.clock import utcnow
from shared.config import Config
from shared.ids import APPOINTMENT_ID_PATTERN, AppointmentIdConverter, Identifier
from shared.schemas import PageArgsSchema, StrictSchema
from shared.web import SlotbookBlueprint, no_store

# The public origin (and path prefix, if any) feed URLs are made absolute with, e.g.
# `https://api.example.org`; empty: URLs relative to the gateway. (A setting of this module
# for now: shared/config.py is where it belongs.)
_BASE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")

FEEDS_EXTENSION = "calendars.feeds"
BUILDS_EXTENSION = "calendars.builds"
# A feed's answers: its subscriber's calendar may keep one and ask again with If-None-Match;
# no shared cache keeps it (personal data, and its URL is a credential).
FEED_CACHING = "private, no-cache"


class FeedIdConverter(AppointmentIdConverter):
    """`<feed_id:feed_id>`: 24 lowercase hex digits, else 404 feed_not_found."""

    reason = "feed_not_found"
    label = "feed"


def _id_param_schema(converter) -> dict:
    return {"type": "string", "pattern": f"^{APPOINTMENT_ID_PATTERN}$"}


class FeedCreateSchema(StrictSchema):
    """A feed to make: a hospital's appointments, or one doctor's."""

    hospital_id = Identifier(required=True, metadata={"example": "gomoti"})
    practitioner_id = Identifier(metadata={"description": "only this doctor's appointments"})


class FeedSchema(Schema):
    """A calendar feed (its secret only in `url`, and only in the answer that made it)."""

    feed_id = fields.Str(required=True)
    hospital_id = fields.Str(required=True)
    practitioner_id = fields.Str(allow_none=True)
    created_at = fields.Str(required=True)
    created_by = fields.Str(required=True)
    revoked_at = fields.Str()
    url = fields.Str(
        metadata={
            "description": "/api/feeds/{feed_id}.ics?token=<secret>: shown once (relative to "
            "the gateway unless the service knows its public URL)"
        }
    )


class FeedListArgsSchema(PageArgsSchema):
    """Filters and pagination of the live feeds."""

    hospital_id = Identifier()
    practitioner_id = Identifier()


class FeedListSchema(Schema):
    """A page of live feeds, newest first."""

    feeds = fields.List(fields.Nested(FeedSchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


ICS_DOC = {"type": "string", "description": "an iCalendar object (RFC 5545)"}
TOKEN_DOC = [
    {
        "in": "query",
        "name": "token",
        "required": True,
        "description": "the feed's secret, as its URL gives it",
        "schema": {"type": "string", "pattern": f"^{service.TOKEN_PATTERN}$"},
    }
]

calendars_blp = SlotbookBlueprint(
    "calendars",
    __name__,
    url_prefix="/api",
    description="iCalendar (RFC 5545): an appointment's .ics, and revocable feed URLs",
)


@calendars_blp.after_request
def _no_store(response):
    """Personal data, and URLs that are credentials: no cache on the way keeps them (a feed's
    own answers: FEED_CACHING)."""
    if response.headers.get("Cache-Control") == FEED_CACHING:
        return response
    return no_store(response)


def _ctx() -> Context:
    return current_app.extensions["booking.ctx"]


def _feeds() -> FeedRepository:
    return current_app.extensions[FEEDS_EXTENSION]


def _calendar(body: bytes, headers: dict | None = None) -> Response:
    return Response(body, status=200, content_type=ICS_CONTENT_TYPE, headers=headers)


@calendars_blp.route("/appointments/<appointment_id:appointment_id>/calendar.ics")
class AppointmentCalendar(MethodView):
    @require_auth()
    @calendars_blp.response(200, ICS_DOC, content_type="text/calendar")
    @calendars_blp.error_answers(401, 404, 503)
    def get(self, appointment_id):
        """The appointment as an iCalendar event (its owner, staff, admin): a stable UID, a
        SEQUENCE that grows with every change, STATUS:CANCELLED once cancelled."""
        return _calendar(service.appointment_ics(_ctx(), current_principal(), appointment_id))


@calendars_blp.route("/feeds")
class Feeds(MethodView):
    @require_auth("admin")
    @calendars_blp.arguments(FeedCreateSchema())
    @calendars_blp.response(201, FeedSchema)
    @calendars_blp.error_answers(400, 401, 403, 404, 503)
    def post(self, body):
        """Make a feed URL (admin): the secret is in `url`, shown this once."""
        base = current_app.extensions.get("calendars.base_url", "")
        return service.create_feed(_ctx(), _feeds(), current_principal(), body, utcnow(), base)

    @require_auth("admin")
    @calendars_blp.arguments(FeedListArgsSchema(), location="query")
    @calendars_blp.response(200, FeedListSchema)
    @calendars_blp.error_answers(400, 401, 403, 503)
    def get(self, args):
        """Live feeds (admin), newest first, without their secrets."""
        return service.list_feeds(_feeds(), args)


@calendars_blp.route("/feeds/<feed_id:feed_id>")
class FeedById(MethodView):
    @require_auth("admin")
    @calendars_blp.response(200, FeedSchema)
    @calendars_blp.error_answers(401, 403, 404, 503)
    def get(self, feed_id):
        """One feed (admin), revoked or not, without its secret."""
        return service.get_feed(_feeds(), feed_id)

    @require_auth("admin")
    @calendars_blp.response(204)
    @calendars_blp.error_answers(401, 403, 404, 503)
    def delete(self, feed_id):
        """Revoke a feed (admin; idempotent): its URL answers 404 from now on."""
        service.revoke_feed(_feeds(), current_principal(), feed_id, utcnow())


@calendars_blp.route("/feeds/<feed_id:feed_id>.ics")
class FeedCalendar(MethodView):
    @calendars_blp.doc(parameters=TOKEN_DOC)
    @calendars_blp.response(200, ICS_DOC, content_type="text/calendar")
    @calendars_blp.error_answers(404, 503)
    def get(self, feed_id):
        """The feed (no bearer token: the URL is the credential): the appointments from
        today through the booking window, cancelled ones as STATUS:CANCELLED. ETag and
        Last-Modified; If-None-Match -> 304. An expensive answer: over the process's
        EXPENSIVE_CONCURRENCY, 503 service_unavailable with Retry-After at once."""
        tokens = request.args.getlist("token")
        with current_app.extensions[concurrency.EXTENSION].slot("calendar feeds"):
            answer = service.read_feed(
                _ctx(),
                _feeds(),
                feed_id,
                tokens,
                utcnow(),
                cached=request.if_none_match.contains_weak,
                builds=current_app.extensions[BUILDS_EXTENSION],
            )
        headers = {
            "ETag": f'"{answer.etag}"',
            "Last-Modified": http_date(answer.last_modified),
            "Cache-Control": FEED_CACHING,
        }
        if answer.not_modified:
            return Response(status=304, headers=headers)
        if answer.truncated:
            headers["X-Feed-Truncated"] = "true"
        return _calendar(answer.body, headers)


def feeds_base_url(value: str) -> str:
    """FEEDS_BASE_URL checked: empty, or http(s)://host[:port][/path] (no query, no
    fragment), without its trailing slash; ValueError otherwise (a startup error)."""
    if value and _BASE_URL.fullmatch(value) is None:
        raise ValueError(
            f"FEEDS_BASE_URL must be like https://api.example.org (no query), got {value!r}"
        )
    return value.rstrip("/")


def init_app(app: Flask, api, feeds: FeedRepository, cfg: Config) -> None:
    """Register this integration's routes over `feeds` (the feed store, built by
    booking_service/bootstrap.py); it has no background work. No I/O here."""
    app.extensions["calendars.base_url"] = feeds_base_url(cfg.feeds_base_url)
    app.extensions[FEEDS_EXTENSION] = feeds
    app.extensions[BUILDS_EXTENSION] = service.FeedBuilds()
    concurrency.install(app.extensions, cfg.expensive_concurrency)
    app.url_map.converters["feed_id"] = FeedIdConverter
    api.register_converter(FeedIdConverter, _id_param_schema)
    api.register_blueprint(calendars_blp)
