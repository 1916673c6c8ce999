"""HTTP layer of the booking service: accounts, appointments, availability.

Each view parses its request, calls one function of the service layer (core/: its body as a
typed request) and answers. An appointment, a hold or a waitlist entry is answered as the
core's one builder of it made it (core/shapes.py; the schemas here document it for OpenAPI);
hot answers are written by shared/answers.py.
"""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView

from booking_service.api.schemas import (
    AppointmentListArgsSchema,
    AppointmentListSchema,
    AppointmentSchema,
    AvailabilitySchema,
    BulkRequestSchema,
    BulkSchema,
    HoldCreateSchema,
    HoldListArgsSchema,
    HoldListSchema,
    HoldSchema,
    LoginSchema,
    PositionSchema,
    QueueArgsSchema,
    QueueSchema,
    RegisterSchema,
    RescheduleSchema,
    TokenSchema,
    UserCreateSchema,
    UserSchema,
    WaitlistCreateSchema,
    WaitlistEntrySchema,
    WaitlistListArgsSchema,
    WaitlistListSchema,
)
from booking_service.core import accounts, booking, cancel, holds, moves, places, visits, waitlist
from booking_service.core.context import Context
from booking_service.core.idempotency import fingerprint
from booking_service.core.requests import (
    AppointmentCreateSchema,
    BookAppointment,
    HoldPlace,
    JoinWaitlist,
    MoveAppointment,
)
from booking_service.core.shapes import public, public_hold
from shared.answers import about, bulk_body, counts_document
from shared.auth import current_principal, require_auth
from shared.clock import utcnow
from shared.errors import InvalidDate
from shared.request_parsing import READ_QUERY_DOC, read_query
from shared.slots import parse_date
from shared.web import SlotbookBlueprint, json_answer, no_store

# Request schemas are given to `arguments` as instances: given a class, webargs builds a new
# schema (fields and nested schemas deep-copied) on every request.
auth_blp = SlotbookBlueprint("auth", __name__, url_prefix="/api/auth", description="Accounts")
appointments_blp = SlotbookBlueprint(
    "appointments",
    __name__,
    url_prefix="/api/appointments",
    description="Booking and cancelling appointments",
)
queue_blp = SlotbookBlueprint(
    "queue",
    __name__,
    url_prefix="/api/queue",
    description="The day of the visit: a hospital-day's public queue",
)
availability_blp = SlotbookBlueprint(
    "availability",
    __name__,
    url_prefix="/api/availability",
    description="Counts only: the lightweight availability answers",
)

holds_blp = SlotbookBlueprint(
    "holds",
    __name__,
    url_prefix="/api/holds",
    description="Holds: a place kept for a while (hospital's hold_seconds), then back by itself",
)
waitlist_blp = SlotbookBlueprint(
    "waitlist",
    __name__,
    url_prefix="/api/waitlist",
    description="The waitlist: a freed place is offered to the first entry it fits",
)


@auth_blp.after_request
@appointments_blp.after_request
@holds_blp.after_request
@waitlist_blp.after_request
def _no_store(response):
    """Tokens and personal data (names, phones) are never kept by a cache on the way."""
    return no_store(response)


def _ctx() -> Context:
    return current_app.extensions["booking.ctx"]


@auth_blp.route("/register")
class Register(MethodView):
    @auth_blp.arguments(RegisterSchema())
    @auth_blp.response(201, UserSchema)
    @auth_blp.error_answers(400, 409, 429)
    def post(self, body):
        """Create a patient account (limited per client address)."""
        ctx = _ctx()
        ctx.limiter.check_registration(request.remote_addr or "-")
        return accounts.register(ctx.users, ctx.config, body, utcnow())


@auth_blp.route("/users")
class Users(MethodView):
    @require_auth("admin")
    @auth_blp.arguments(UserCreateSchema())
    @auth_blp.response(201, UserSchema)
    @auth_blp.error_answers(400, 401, 403, 409)
    def post(self, body):
        """Create a staff or admin account (admin)."""
        role = body.pop("role")
        return accounts.register(_ctx().users, _ctx().config, body, utcnow(), role=role)


@auth_blp.route("/login")
class Login(MethodView):
    @auth_blp.arguments(LoginSchema())
    @auth_blp.response(200, TokenSchema)
    @auth_blp.error_answers(400, 401, 429)
    def post(self, body):
        """Exchange email and password for a bearer token."""
        ctx = _ctx()
        address = request.remote_addr or "-"
        ctx.limiter.begin_login(body["email"], address)
        answer = accounts.login(ctx.users, ctx.config, body["email"], body["password"])
        ctx.limiter.login_succeeded(body["email"], address)
        return answer


@appointments_blp.route("")
class Appointments(MethodView):
    @require_auth()
    @appointments_blp.arguments(AppointmentCreateSchema())
    @appointments_blp.response(201, AppointmentSchema)
    @appointments_blp.error_answers(400, 401, 404, 409, 422, 429, 503)
    def post(self, body):
        """Book a place in a slot (patient for self or family; admin for anyone)."""
        key = request.headers.get("Idempotency-Key")
        booking_request = BookAppointment(**body)
        digest = fingerprint(body) if key is not None else ""
        status, answer, replayed = booking.book_once(
            _ctx(), current_principal(), booking_request, utcnow(), key, digest
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return json_answer(answer, status, headers)

    @require_auth()
    @appointments_blp.arguments(AppointmentListArgsSchema(), location="query")
    @appointments_blp.response(200, AppointmentListSchema)
    @appointments_blp.error_answers(400, 401)
    def get(self, args):
        """Appointments: a patient's own; an admin's, filtered by hospital, date, status."""
        return json_answer(booking.list_appointments(_ctx(), current_principal(), args))


@appointments_blp.route("/<appointment_id:appointment_id>")
class AppointmentById(MethodView):
    @require_auth()
    @appointments_blp.response(200, AppointmentSchema)
    @appointments_blp.error_answers(401, 404)
    def get(self, appointment_id):
        """One appointment (someone else's is 404)."""
        return json_answer(public(places.find_visible(_ctx(), current_principal(), appointment_id)))

    @require_auth()
    @appointments_blp.response(200, AppointmentSchema)
    @appointments_blp.error_answers(401, 404, 422)
    def delete(self, appointment_id):
        """Cancel (idempotent): the place is free at once."""
        return json_answer(cancel.cancel(_ctx(), current_principal(), appointment_id, utcnow()))


@appointments_blp.route(
    "/<appointment_id:appointment_id>/<any('check-in', 'start', 'complete', 'no-show'):step>"
)
class VisitStep(MethodView):
    @require_auth("staff", "admin")
    @appointments_blp.response(200, AppointmentSchema)
    @appointments_blp.error_answers(401, 403, 404, 409, 422)
    def post(self, appointment_id, step):
        """A visit step (staff or admin, on the appointment's date): check-in, start,
        complete, no-show."""
        who = current_principal()
        return json_answer(visits.visit_step(_ctx(), who, appointment_id, step, utcnow()))


@appointments_blp.route("/<appointment_id:appointment_id>/reschedule")
class Reschedule(MethodView):
    @require_auth()
    @appointments_blp.arguments(RescheduleSchema())
    @appointments_blp.response(200, AppointmentSchema)
    @appointments_blp.error_answers(400, 401, 404, 409, 410, 422, 429, 503)
    def post(self, body, appointment_id):
        """Move an appointment (its owner, staff, admin): the same id in a new place; the
        old place is freed only once the new one is taken."""
        ctx, who = _ctx(), current_principal()
        if not who.at_desk:
            ctx.limiter.check_booking(who.user_id)
        move = MoveAppointment(**body)
        return json_answer(moves.reschedule(ctx, who, appointment_id, move, utcnow()))


@appointments_blp.route("/<appointment_id:appointment_id>/queue")
class Position(MethodView):
    @require_auth()
    @appointments_blp.response(200, PositionSchema)
    @appointments_blp.error_answers(401, 404)
    def get(self, appointment_id):
        """Where the appointment is in its queue, and when it is expected to be called."""
        return visits.position(_ctx(), current_principal(), appointment_id, utcnow())


@queue_blp.route("/<hospital_id:hospital_id>/<day>")
class Queue(MethodView):
    @queue_blp.arguments(QueueArgsSchema(), location="query")
    @queue_blp.response(200, QueueSchema)
    @queue_blp.error_answers(400, 404)
    def get(self, args, hospital_id, day):
        """A hospital-day's queue (a doctor's with `practitioner_id`): public, no names."""
        return visits.queue(_ctx(), hospital_id, day, args.get("practitioner_id"), utcnow())


@availability_blp.route("/<hospital_id:hospital_id>/<day>")
class Availability(MethodView):
    @availability_blp.doc(parameters=READ_QUERY_DOC)
    @availability_blp.response(200, AvailabilitySchema)
    @availability_blp.error_answers(400, 404, 422)
    def get(self, hospital_id, day):
        """Counts of one date (a doctor's with `practitioner_id`)."""
        parsed = parse_date(day)
        if parsed is None:
            raise InvalidDate(f"{day!r} is not a date YYYY-MM-DD")
        practitioner_id, appointment_type = read_query()
        counted = places.day_counts(
            _ctx(), hospital_id, [parsed], utcnow(), practitioner_id, appointment_type
        )
        ((planned, counts),) = counted.days
        return json_answer(
            {
                **about(hospital_id, practitioner_id),
                "date": day,
                **counts_document(planned, counts, counted.units),
            }
        )


@availability_blp.route("/bulk")
class BulkAvailability(MethodView):
    @availability_blp.arguments(BulkRequestSchema())
    @availability_blp.response(200, BulkSchema)
    @availability_blp.error_answers(400, 404, 422)
    def post(self, body):
        """Counts of 1..92 dates at once (repeats answered once; a doctor's with
        `practitioner_id`)."""
        dates = list(dict.fromkeys(body["dates"]))
        parsed = [parse_date(d) for d in dates]
        bad = [d for d, p in zip(dates, parsed, strict=True) if p is None]
        if bad:
            raise InvalidDate(
                f"Not dates YYYY-MM-DD: {', '.join(map(repr, bad[:5]))}",
                errors={"dates": [f"{d!r} is not a date" for d in bad[:20]]},
            )
        hospital_id, practitioner_id = body["hospital_id"], body.get("practitioner_id")
        counted = places.day_counts(
            _ctx(), hospital_id, parsed, utcnow(), practitioner_id, body.get("appointment_type")
        )
        return json_answer(bulk_body(hospital_id, practitioner_id, counted))


@holds_blp.route("")
class Holds(MethodView):
    @require_auth()
    @holds_blp.arguments(HoldCreateSchema())
    @holds_blp.response(201, HoldSchema)
    @holds_blp.error_answers(400, 401, 404, 409, 422, 429, 503)
    def post(self, body):
        """Hold a place (any signed-in user; HOLD_LIMIT live holds and offers at most)."""
        return json_answer(
            holds.hold(_ctx(), current_principal(), HoldPlace(**body), utcnow()), 201
        )

    @require_auth()
    @holds_blp.arguments(HoldListArgsSchema(), location="query")
    @holds_blp.response(200, HoldListSchema)
    @holds_blp.error_answers(400, 401)
    def get(self, args):
        """Holds: a patient's own; staff and admin: all, filtered (`state=held`: the live
        ones)."""
        return json_answer(holds.list_holds(_ctx(), current_principal(), args, utcnow()))


# A hold's and a waitlist entry's ids have the appointments' canonical form (24 hex).
@holds_blp.route("/<appointment_id:hold_id>")
class HoldById(MethodView):
    @require_auth()
    @holds_blp.response(200, HoldSchema)
    @holds_blp.error_answers(401, 404)
    def get(self, hold_id):
        """One hold (its owner, staff, admin)."""
        return json_answer(public_hold(holds.find_hold(_ctx(), current_principal(), hold_id)))

    @require_auth()
    @holds_blp.response(204)
    @holds_blp.error_answers(401, 404, 409, 429)
    def delete(self, hold_id):
        """Give the place back (idempotent)."""
        waitlist.release_hold(_ctx(), current_principal(), hold_id, utcnow())


@waitlist_blp.route("")
class Waitlist(MethodView):
    @require_auth()
    @waitlist_blp.arguments(WaitlistCreateSchema())
    @waitlist_blp.response(201, WaitlistEntrySchema)
    @waitlist_blp.error_answers(400, 401, 404, 409, 422, 429, 503)
    def post(self, body):
        """Wait for a place of a day (of one slot, when given)."""
        entry = JoinWaitlist(**body)
        return json_answer(waitlist.join(_ctx(), current_principal(), entry, utcnow()), 201)

    @require_auth()
    @waitlist_blp.arguments(WaitlistListArgsSchema(), location="query")
    @waitlist_blp.response(200, WaitlistListSchema)
    @waitlist_blp.error_answers(400, 401)
    def get(self, args):
        """Entries: a patient's own; staff and admin: all, filtered."""
        return json_answer(waitlist.list_entries(_ctx(), current_principal(), args))


@waitlist_blp.route("/<appointment_id:waitlist_id>")
class WaitlistEntry(MethodView):
    @require_auth()
    @waitlist_blp.response(200, WaitlistEntrySchema)
    @waitlist_blp.error_answers(401, 404)
    def get(self, waitlist_id):
        """One entry, with its position while waiting."""
        ctx = _ctx()
        entry = waitlist.find_entry(ctx, current_principal(), waitlist_id)
        return json_answer(waitlist.answer(ctx, entry))

    @require_auth()
    @waitlist_blp.response(200, WaitlistEntrySchema)
    @waitlist_blp.error_answers(401, 404, 409, 429)
    def delete(self, waitlist_id):
        """Stop waiting (an offer held is given back and passed on)."""
        return json_answer(waitlist.leave(_ctx(), current_principal(), waitlist_id, utcnow()))


@waitlist_blp.route("/<appointment_id:waitlist_id>/accept")
class WaitlistAccept(MethodView):
    @require_auth()
    @waitlist_blp.response(201, AppointmentSchema)
    @waitlist_blp.error_answers(401, 404, 409, 410, 422, 429, 503)
    def post(self, waitlist_id):
        """Book the offered place: the appointment."""
        answer = waitlist.accept(_ctx(), current_principal(), waitlist_id, utcnow())
        return json_answer(answer, 201)
