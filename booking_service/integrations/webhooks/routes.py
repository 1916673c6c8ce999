"""Webhooks (API.md, "Integrations"), admin only: subscriptions and their delivery logs.

`POST /api/webhooks {"url", "events"}` -> `201` with the signing secret (shown once);
`GET /api/webhooks`; `GET /api/webhooks/{id}`; `GET /api/webhooks/{id}/deliveries` (the log,
paged); `DELETE /api/webhooks/{id}` (stops the deliveries; idempotent). The use cases are in
service.py, the relay in relay.py, the deliveries in delivery.py, their storage in store.py,
the URL and address rules in transport.py.
"""

from __future__ import annotations

import re

from flask import Flask, current_app
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates
from werkzeug.routing import BaseConverter

from booking_service.adapters import outbox
from booking_service.integrations.webhooks import service
from booking_service.integrations.webhooks.delivery import DeliveryWorker
from booking_service.integrations.webhooks.store import STATES
from booking_service.integrations.webhooks.transport import MAX_URL_LENGTH, UrlRefused, check_url
from shared.auth import current_principal, require_auth
from shared.clock import utcnow
from shared.ids import APPOINTMENT_ID_PATTERN, IdNotFound
from shared.schemas import PageArgsSchema, StrictSchema
from shared.web import SlotbookBlueprint, no_store

EXTENSION = "booking.webhooks"
WORKER_EXTENSION = "booking.webhooks_worker"


class WebhookIdConverter(BaseConverter):
    """`<webhook_id:webhook_id>`: 24 lowercase hex digits, else 404 webhook_not_found."""

    _matcher = re.compile(APPOINTMENT_ID_PATTERN)

    def to_python(self, value: str) -> str:
        if not self._matcher.fullmatch(value):
            raise IdNotFound("webhook_not_found", f"No webhook {value!r}")
        return value


def _converter_schema(converter) -> dict:
    return {"type": "string", "pattern": f"^{APPOINTMENT_ID_PATTERN}$"}


# --- Schemas -----------------------------------------------------------------------------


class WebhookCreateSchema(StrictSchema):
    """A new webhook: where to send, and which events."""

    url = fields.Str(
        required=True,
        metadata={
            "description": "http(s) receiver URL, at most 2000 characters, no userinfo; in "
            "production only public addresses",
            "example": "https://hooks.example.com/slotbook",
            "maxLength": MAX_URL_LENGTH,
        },
    )
    events = fields.List(
        fields.Str(validate=validate.OneOf(outbox.EVENT_TYPES)),
        required=True,
        validate=validate.Length(1, len(outbox.EVENT_TYPES)),
        metadata={"example": [outbox.APPOINTMENT_CREATED, outbox.APPOINTMENT_CANCELLED]},
    )

    @validates("url")
    def _url(self, value: str, **kwargs) -> None:
        try:
            check_url(value)
        except UrlRefused as exc:
            raise ValidationError(f"URL {exc}") from exc

    @validates("events")
    def _events(self, value: list, **kwargs) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("must not name an event twice")


class WebhookSchema(Schema):
    """A webhook (never its secret)."""

    webhook_id = fields.Str(required=True)
    url = fields.Str(required=True)
    events = fields.List(fields.Str(metadata={"enum": list(outbox.EVENT_TYPES)}), required=True)
    active = fields.Bool(required=True, metadata={"description": "false once deleted"})
    created_at = fields.Str(required=True)


class WebhookCreatedSchema(WebhookSchema):
    """A new webhook, with its signing secret: shown this once."""

    secret = fields.Str(
        required=True,
        metadata={"description": "whsec_ + base64 of 32 bytes: verify `webhook-signature`"},
    )


class WebhookListSchema(Schema):
    """The webhooks receiving deliveries, oldest first."""

    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)


class AttemptSchema(Schema):
    """One attempt of a delivery."""

    attempt = fields.Int(required=True)
    at = fields.Str(required=True)
    status_code = fields.Int(required=True, allow_none=True)
    error = fields.Str(required=True, allow_none=True)
    duration_ms = fields.Int(required=True)


class DeliverySchema(Schema):
    """One event's delivery to one webhook."""

    delivery_id = fields.Str(required=True)
    event_id = fields.Str(required=True, metadata={"description": "also its webhook-id"})
    event_type = fields.Str(required=True)
    state = fields.Str(required=True, metadata={"enum": list(STATES)})
    attempt_count = fields.Int(required=True)
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)
    created_at = fields.Str(required=True)
    next_attempt_at = fields.Str(required=True, allow_none=True)
    ended_at = fields.Str(required=True, allow_none=True)
    dead_reason = fields.Str(required=True, allow_none=True)


class DeliveryListArgsSchema(PageArgsSchema):
    """Pagination, and a state to filter by."""

    state = fields.Str(validate=validate.OneOf(STATES))


class DeliveryListSchema(Schema):
    """A page of a webhook's deliveries, newest first."""

    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


# --- Views -------------------------------------------------------------------------------

webhooks_blp = SlotbookBlueprint(
    "webhooks",
    __name__,
    url_prefix="/api/webhooks",
    description="Webhooks (admin): signed (Standard Webhooks) deliveries of appointment and "
    "waitlist events, at least once, with retries",
)


@webhooks_blp.after_request
def _no_store(response):
    """A secret, URLs and personal data: no cache on the way keeps them."""
    return no_store(response)


def _svc() -> service.Webhooks:
    return current_app.extensions[EXTENSION]


@webhooks_blp.route("")
class Webhooks(MethodView):
    @require_auth("admin")
    @webhooks_blp.arguments(WebhookCreateSchema())
    @webhooks_blp.response(201, WebhookCreatedSchema)
    @webhooks_blp.error_answers(400, 401, 403, 409, 503)
    def post(self, body):
        """Subscribe a URL to events (admin); the answer's `secret` signs every delivery."""
        return service.create(_svc(), current_principal(), body, utcnow())

    @require_auth("admin")
    @webhooks_blp.response(200, WebhookListSchema)
    @webhooks_blp.error_answers(401, 403, 503)
    def get(self):
        """The webhooks receiving deliveries (admin; no secrets)."""
        return service.list_webhooks(_svc())


@webhooks_blp.route("/<webhook_id:webhook_id>")
class WebhookById(MethodView):
    @require_auth("admin")
    @webhooks_blp.response(200, WebhookSchema)
    @webhooks_blp.error_answers(401, 403, 404, 503)
    def get(self, webhook_id):
        """One webhook (a deleted one says `active: false`)."""
        return service.public_webhook(service.find(_svc(), webhook_id))

    @require_auth("admin")
    @webhooks_blp.response(204)
    @webhooks_blp.error_answers(401, 403, 404, 503)
    def delete(self, webhook_id):
        """Stop a webhook's deliveries (idempotent); its delivery log stays."""
        service.delete(_svc(), webhook_id, utcnow())


@webhooks_blp.route("/<webhook_id:webhook_id>/deliveries")
class Deliveries(MethodView):
    @require_auth("admin")
    @webhooks_blp.arguments(DeliveryListArgsSchema(), location="query")
    @webhooks_blp.response(200, DeliveryListSchema)
    @webhooks_blp.error_answers(400, 401, 403, 404, 503)
    def get(self, args, webhook_id):
        """A webhook's delivery log, newest first: each event's state (pending, delivered,
        dead) and every attempt (time, status code or error, duration)."""
        return service.delivery_log(_svc(), webhook_id, args)


def init_app(app: Flask, api, webhooks: service.Webhooks, run_workers: bool) -> None:
    """Register this integration's routes over `webhooks` (its stores, built by
    booking_service/bootstrap.py) and start its delivery worker when `run_workers`."""
    app.url_map.converters["webhook_id"] = WebhookIdConverter
    api.register_converter(WebhookIdConverter, _converter_schema)
    api.register_blueprint(webhooks_blp)
    app.extensions[EXTENSION] = webhooks
    if run_workers:
        worker = DeliveryWorker(webhooks)
        worker.start()
        app.extensions[WORKER_EXTENSION] = worker
