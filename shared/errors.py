"""One error shape for every layer: {code, status, error, message[, errors]}."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from flask import Flask, Response, request
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A failure the API reports to its caller; subclasses set status and reason."""

    status = 400
    reason = "bad_request"

    def __init__(self, message: str, errors: dict | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.extra = extra
        self.headers: dict[str, str] = {}


# The table of every reason the API answers with (status, `error`).


class ValidationError(DomainError):
    status = 400
    reason = "validation_error"


class InvalidDate(DomainError):
    status = 400
    reason = "invalid_date"


class InvalidDays(DomainError):
    status = 400
    reason = "invalid_days"


class Unauthorized(DomainError):
    status = 401
    reason = "unauthorized"


class InvalidCredentials(DomainError):
    status = 401
    reason = "invalid_credentials"


class Forbidden(DomainError):
    status = 403
    reason = "forbidden"


class NotFound(DomainError):
    status = 404
    reason = "not_found"


class HospitalNotFound(DomainError):
    status = 404
    reason = "hospital_not_found"


class AppointmentNotFound(DomainError):
    status = 404
    reason = "appointment_not_found"


class PractitionerNotFound(DomainError):
    status = 404
    reason = "practitioner_not_found"


class PractitionerInactive(DomainError):
    status = 422
    reason = "practitioner_inactive"


class AppointmentTypeNotFound(DomainError):
    status = 422
    reason = "appointment_type_not_found"


class HoldNotFound(DomainError):
    status = 404
    reason = "hold_not_found"


class WaitlistEntryNotFound(DomainError):
    status = 404
    reason = "waitlist_entry_not_found"


class HoldExpired(DomainError):
    status = 410
    reason = "hold_expired"


class HoldMismatch(DomainError):
    status = 409
    reason = "hold_mismatch"


class WaitlistDuplicate(DomainError):
    status = 409
    reason = "already_waiting"


class TooManyHolds(DomainError):
    status = 429
    reason = "too_many_holds"


class TooManyWaitlistEntries(DomainError):
    """Over WAITLIST_LIMIT live entries: the contract answers it as the hold limit."""

    status = 429
    reason = "too_many_holds"


class InvalidTransition(DomainError):
    status = 409
    reason = "invalid_transition"


class AppointmentChanged(DomainError):
    """Another request changed the appointment (a cancel, a visit step) while this one was
    changing it: this one changed nothing."""

    status = 409
    reason = "appointment_changed"


class NotVisitDay(DomainError):
    status = 422
    reason = "not_visit_day"


class SlotFull(DomainError):
    status = 409
    reason = "slot_full"


class DuplicateBooking(DomainError):
    status = 409
    reason = "duplicate_booking"


class EmailTaken(DomainError):
    status = 409
    reason = "email_taken"


class HospitalExists(DomainError):
    status = 409
    reason = "hospital_exists"


class ScheduleConflict(DomainError):
    status = 409
    reason = "schedule_conflict"


class ScheduleChanged(DomainError):
    status = 409
    reason = "schedule_changed"


class EditConflict(DomainError):
    status = 409
    reason = "edit_conflict"


class PreconditionFailed(DomainError):
    status = 412
    reason = "precondition_failed"


class HospitalClosed(DomainError):
    status = 422
    reason = "hospital_closed"


class SlotNotFound(DomainError):
    status = 422
    reason = "slot_not_found"


class OutsideBookingWindow(DomainError):
    status = 422
    reason = "outside_booking_window"


class SlotInPast(DomainError):
    status = 422
    reason = "slot_in_past"


class AppointmentInPast(DomainError):
    status = 422
    reason = "appointment_in_past"


class IdempotencyKeyReused(DomainError):
    status = 422
    reason = "idempotency_key_reused"


class InvalidSchedule(DomainError):
    status = 422
    reason = "invalid_schedule"


class RateLimited(DomainError):
    status = 429
    reason = "rate_limited"


class ServiceUnavailable(DomainError):
    status = 503
    reason = "service_unavailable"


# werkzeug's HTTP errors -> our reasons (anything else: its own name in snake_case).
_HTTP_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def http_reason(status: int) -> str:
    """The `error` reason of a plain HTTP failure with this status (e.g. 405)."""
    words = "".join(c if c.isalnum() else " " for c in HTTPStatus(status).phrase.lower())
    return _HTTP_REASONS.get(status) or "_".join(words.split())


def error_body(
    status: int, reason: str, message: str, errors: dict | None = None, /, **extra
) -> dict:
    """The contract's error document."""
    body = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "error": reason,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def error_response(
    status: int,
    reason: str,
    message: str,
    errors: dict | None = None,
    headers: dict | None = None,
    /,
    **extra,
) -> Response:
    """A JSON error response in the contract's shape."""
    resp = Response(
        json.dumps(error_body(status, reason, message, errors, **extra)),
        status=status,
        mimetype="application/json",
    )
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _handle_domain(exc: DomainError) -> Response:
    return error_response(exc.status, exc.reason, exc.message, exc.errors, exc.headers, **exc.extra)


def _handle_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    # A reason of the exception's own (shared.ids.IdNotFound), else the status's.
    reason = getattr(exc, "reason", None) or http_reason(status)
    message = data.get("message") or exc.description or HTTPStatus(status).phrase
    if status == 422 and errors is not None:
        # Request parsing failed (webargs/marshmallow): the contract says 400.
        status, reason, message = 400, "validation_error", "The request is not valid"
        errors = _flatten_location(errors)
    elif status == 400 and (
        "JSON" in str(exc.description or "") or errors == {"json": ["Invalid JSON body."]}
    ):
        reason = "malformed_json"
        description = str(exc.description or "")
        # shared.request_parsing raises "Malformed JSON: <why>"; the answer says why.
        why = description.removeprefix("Malformed JSON: ")
        message = why if why != description else "The request body is not valid JSON"
    headers = {}
    if status == 405 and exc.get_headers():
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    headers.update(data.get("headers") or {})
    return error_response(status, reason, message, errors, headers)


def _flatten_location(errors: dict) -> dict:
    """webargs nests errors under 'json'/'query'/...; the contract wants field names."""
    flat: dict = {}
    for location, fields in errors.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def _handle_database_down(exc: Exception) -> Response:
    # A database error no layer turned into a domain error: the dependency is unavailable.
    which = "Redis" if isinstance(exc, RedisError) else "the database"
    log.warning("%s unavailable on %s %s: %s", which, request.method, request.path, exc)
    return error_response(503, "service_unavailable", f"Temporarily unavailable: {which} is down")


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "An unexpected error occurred")


def register_error_handlers(app: Flask) -> None:
    """Route every error, from every layer, to the one JSON shape."""
    app.register_error_handler(DomainError, _handle_domain)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(PyMongoError, _handle_database_down)
    app.register_error_handler(RedisError, _handle_database_down)
    app.register_error_handler(Exception, _handle_unexpected)
