"""HTTP layer of the booking service: accounts, appointments, availability."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import redis
from flask import current_app, request
from flask.views import MethodView

from shared import keys, metrics, versions
from shared.auth import current_principal, require_auth
from shared.availability import counts_json, json_text
from shared.clock import utcnow
from shared.counts import read_day_counts
from shared.errors import DomainError, InvalidDate
from shared.schemas import ApiErrorSchema
from shared.slots import Day, parse_date
from shared.web import SlotbookBlueprint, json_response, json_text_response, no_store

from . import accounts, booking
from .idempotency import run_once
from .repository import ACTIVE, public
from .schemas import (
    AppointmentCreateSchema,
    AppointmentListArgsSchema,
    AppointmentListSchema,
    AppointmentSchema,
    AvailabilitySchema,
    BulkRequestSchema,
    BulkSchema,
    LoginSchema,
    RegisterSchema,
    TokenSchema,
    UserSchema,
)

# Request schemas are given to `arguments` as instances: given a class, webargs builds a new
# schema (fields and nested schemas deep-copied) on every request, ~100 us of a booking's CPU.
auth_blp = SlotbookBlueprint("auth", __name__, url_prefix="/api/auth", description="Accounts")
appointments_blp = SlotbookBlueprint(
    "appointments",
    __name__,
    url_prefix="/api/appointments",
    description="Booking and cancelling appointments",
)
availability_blp = SlotbookBlueprint(
    "availability",
    __name__,
    url_prefix="/api/availability",
    description="Counts only: the lightweight availability answers",
)


@auth_blp.after_request
@appointments_blp.after_request
def _no_store(response):
    """Tokens and personal data (names, phones) are never kept by a cache on the way."""
    return no_store(response)


def _ctx() -> booking.Context:
    return current_app.extensions["booking.ctx"]


@auth_blp.route("/register")
class Register(MethodView):
    @auth_blp.arguments(RegisterSchema())
    @auth_blp.response(201, UserSchema)
    @auth_blp.alt_response(400, schema=ApiErrorSchema)
    @auth_blp.alt_response(409, schema=ApiErrorSchema)
    @auth_blp.alt_response(429, schema=ApiErrorSchema)
    def post(self, body):
        """Create a patient account (limited per client address)."""
        ext = current_app.extensions
        ext["booking.limiter"].check_registration(request.remote_addr or "-")
        user = accounts.register(ext["booking.users"], _ctx().config, body, utcnow())
        return json_response(user, 201)


@auth_blp.route("/login")
class Login(MethodView):
    @auth_blp.arguments(LoginSchema())
    @auth_blp.response(200, TokenSchema)
    @auth_blp.alt_response(400, schema=ApiErrorSchema)
    @auth_blp.alt_response(401, schema=ApiErrorSchema)
    @auth_blp.alt_response(429, schema=ApiErrorSchema)
    def post(self, body):
        """Exchange email and password for a bearer token."""
        ext = current_app.extensions
        limiter = ext["booking.limiter"]
        address = request.remote_addr or "-"
        limiter.begin_login(body["email"], address)
        answer = accounts.login(
            ext["booking.users"], _ctx().config, body["email"], body["password"]
        )
        limiter.login_succeeded(body["email"], address)
        return json_response(answer)


@appointments_blp.route("")
class Appointments(MethodView):
    @require_auth()
    @appointments_blp.arguments(AppointmentCreateSchema())
    @appointments_blp.response(201, AppointmentSchema)
    @appointments_blp.alt_response(400, schema=ApiErrorSchema)
    @appointments_blp.alt_response(401, schema=ApiErrorSchema)
    @appointments_blp.alt_response(404, schema=ApiErrorSchema)
    @appointments_blp.alt_response(409, schema=ApiErrorSchema)
    @appointments_blp.alt_response(422, schema=ApiErrorSchema)
    @appointments_blp.alt_response(429, schema=ApiErrorSchema)
    @appointments_blp.alt_response(503, schema=ApiErrorSchema)
    def post(self, body):
        """Book a place in a slot (patient for self or family; admin for anyone)."""
        outcome: str | None = "internal_error"
        try:
            who = current_principal()
            ctx = _ctx()
            limiter = current_app.extensions["booking.limiter"]
            key = request.headers.get("Idempotency-Key")
            now = utcnow()

            def attempt() -> dict:
                # Counted only when a booking is really attempted: a replay of an answer
                # already given is not a new attempt, and is answered even past the limit.
                if not who.is_admin:
                    limiter.check_booking(who.user_id)
                return booking.book(ctx, who, body, now)

            if key is None:
                answer = attempt()
                outcome = "confirmed"
                return json_response(answer, 201)
            status, answer, replayed = run_once(
                current_app.extensions["booking.idempotency"], who.user_id, key, body, now, attempt
            )
            # A replay answers an attempt already counted; it is not a new one.
            outcome = None if replayed else "confirmed"
            headers = {"Idempotent-Replayed": "true"} if replayed else None
            return json_response(answer, status, headers)
        except DomainError as exc:
            outcome = exc.reason
            raise
        finally:
            if outcome is not None:
                metrics.count_booking(outcome)

    @require_auth()
    @appointments_blp.arguments(AppointmentListArgsSchema(), location="query")
    @appointments_blp.response(200, AppointmentListSchema)
    @appointments_blp.alt_response(400, schema=ApiErrorSchema)
    @appointments_blp.alt_response(401, schema=ApiErrorSchema)
    def get(self, args):
        """Appointments: a patient's own; an admin's, filtered by hospital, date, status."""
        who = current_principal()
        filters: dict = {}
        if who.is_admin:
            if "hospital_id" in args:
                filters["hospital_id"] = args["hospital_id"]
            for name in ("date", "date_from", "date_to"):
                if name in args and parse_date(args[name]) is None:
                    raise InvalidDate(f"{name} must be a date YYYY-MM-DD")
            if "date" in args:
                filters["date"] = args["date"]
            elif "date_from" in args or "date_to" in args:
                filters["date"] = {
                    k: v
                    for k, v in (("$gte", args.get("date_from")), ("$lte", args.get("date_to")))
                    if v
                }
        else:
            # A patient sees only its own appointments, whatever filters it sends.
            filters["booked_by"] = who.user_id
        if args.get("status") == "active":
            filters["status"] = {"$in": list(ACTIVE)}
        elif "status" in args:
            filters["status"] = args["status"]
        docs, total = _ctx().appointments.search(filters, args["page"], args["per_page"])
        return json_response(
            {
                "appointments": [public(d) for d in docs],
                "page": args["page"],
                "per_page": args["per_page"],
                "total": total,
            }
        )


@appointments_blp.route("/<appointment_id:appointment_id>")
class AppointmentById(MethodView):
    @require_auth()
    @appointments_blp.response(200, AppointmentSchema)
    @appointments_blp.alt_response(401, schema=ApiErrorSchema)
    @appointments_blp.alt_response(404, schema=ApiErrorSchema)
    def get(self, appointment_id):
        """One appointment (someone else's is 404)."""
        return json_response(
            public(booking.find_visible(_ctx(), current_principal(), appointment_id))
        )

    @require_auth()
    @appointments_blp.response(200, AppointmentSchema)
    @appointments_blp.alt_response(401, schema=ApiErrorSchema)
    @appointments_blp.alt_response(404, schema=ApiErrorSchema)
    @appointments_blp.alt_response(422, schema=ApiErrorSchema)
    def delete(self, appointment_id):
        """Cancel (idempotent): the place is free at once."""
        return json_response(booking.cancel(_ctx(), current_principal(), appointment_id, utcnow()))


def _days_with_counts(
    hospital_id: str, dates: list[str], parsed: list[date]
) -> list[tuple[Day, Mapping[str, int] | None]]:
    """Each date (`parsed`: the same, as dates) as the schedule has it, with its counts: one
    Redis round trip (plus HTTP on a config change)."""
    ctx = _ctx()
    try:
        counts, (version_raw,) = read_day_counts(
            ctx.redis, hospital_id, dates, [keys.schedule_version_key(hospital_id)]
        )
        published = versions.parse_version(version_raw)
    except redis.RedisError:
        counts, published = dict.fromkeys(dates), None
    schedule = ctx.schedules.get(hospital_id, published)
    days = schedule.expand(parsed, utcnow())
    return [(day, counts[d]) for day, d in zip(days, dates, strict=True)]


@availability_blp.route("/<hospital_id:hospital_id>/<day>")
class Availability(MethodView):
    @availability_blp.response(200, AvailabilitySchema)
    @availability_blp.alt_response(400, schema=ApiErrorSchema)
    @availability_blp.alt_response(404, schema=ApiErrorSchema)
    def get(self, hospital_id, day):
        """Counts of one date."""
        parsed = parse_date(day)
        if parsed is None:
            raise InvalidDate(f"{day!r} is not a date YYYY-MM-DD")
        ((planned, booked),) = _days_with_counts(hospital_id, [day], [parsed])
        lead = f'"hospital_id":{json_text(hospital_id)},"date":"{day}",'
        return json_text_response(counts_json(planned, booked, lead))


@availability_blp.route("/bulk")
class BulkAvailability(MethodView):
    @availability_blp.arguments(BulkRequestSchema())
    @availability_blp.response(200, BulkSchema)
    @availability_blp.alt_response(400, schema=ApiErrorSchema)
    @availability_blp.alt_response(404, schema=ApiErrorSchema)
    def post(self, body):
        """Counts of 1..92 dates at once (repeats answered once)."""
        dates = list(dict.fromkeys(body["dates"]))
        parsed = [parse_date(d) for d in dates]
        bad = [d for d, p in zip(dates, parsed, strict=True) if p is None]
        if bad:
            raise InvalidDate(
                f"Not dates YYYY-MM-DD: {', '.join(map(repr, bad[:5]))}",
                errors={"dates": [f"{d!r} is not a date" for d in bad[:20]]},
            )
        hospital_id = body["hospital_id"]
        days = _days_with_counts(hospital_id, dates, parsed)
        # The dates are YYYY-MM-DD (checked above): JSON strings as they are.
        answers = ",".join([f'"{day.iso}":{counts_json(day, booked)}' for day, booked in days])
        return json_text_response(
            f'{{"hospital_id":{json_text(hospital_id)},"dates":{{{answers}}}}}'
        )
