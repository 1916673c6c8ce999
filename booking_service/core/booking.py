"""Booking, cancelling and rebuilding: the service layer (no Flask), over adapters.

Order of a booking, chosen so no failure can overbook or leave a half-written booking:
1. one Redis round trip reads the hospital's published config version and the day's
   counts (a full slot is refused here without touching MongoDB);
2. the appointment is written to MongoDB as `pending` (the unique `dup_guard` refuses a
   duplicate), so every place that Redis will ever hold has a record in the source of truth;
   then the published version is read again, and an edit begun meanwhile refuses it;
3. the Lua gate takes a place atomically (refusing when full); a day that Redis lost is
   rebuilt from MongoDB first, pending appointments included;
4. MongoDB moves the appointment to `confirmed` with its serial, unless the reconciler
   abandoned it meanwhile (then the place is released and the client gets a 503).
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from booking_service.adapters import outbox
from booking_service.adapters.capacity import Gate
from booking_service.adapters.repository import (
    ABANDONED,
    ACTIVE,
    CONFIRMED,
    PENDING,
    REJECTED,
    VISIBLE,
    AppointmentSearch,
    dup_guard,
    epoch_ms,
    serial_guard,
)
from booking_service.core import holds
from booking_service.core.context import Context
from booking_service.core.idempotency import run_once
from booking_service.core.places import (
    free_place,
    open_day,
    placed_with,
    slot_full,
    take_place,
    units_of,
)
from booking_service.core.requests import BookAppointment
from booking_service.core.shapes import appointment_data, page_answer, public
from shared import metrics
from shared.auth import Principal
from shared.errors import (
    DomainError,
    DuplicateBooking,
    HoldExpired,
    InvalidDate,
    ScheduleChanged,
    ServiceUnavailable,
)
from shared.slots import parse_date

log = logging.getLogger(__name__)


def book(ctx: Context, who: Principal, request: BookAppointment, now: datetime) -> dict:
    """Book a place; returns the appointment as the API shows it."""
    hospital_id, day_text, slot_start = request.hospital_id, request.date, request.slot
    practitioner_id = request.practitioner_id
    day = open_day(ctx, hospital_id, day_text, practitioner_id)
    schedule, practitioner = day.schedule, day.practitioner
    held_place = None
    if request.hold_id is not None:
        held_place = holds.usable_hold(ctx, who, request.hold_id, request, now)
    kind = day.kind(request.appointment_type or (held_place or {}).get("appointment_type"))
    # A hold's place is the hold's: its units, whatever they cost now (no count to check).
    units = held_place["units"] if held_place is not None else units_of(kind)
    slot = day.check(slot_start, now, None if held_place is not None else units)

    oid = ObjectId()
    doc = {
        "_id": oid,
        "hospital_id": hospital_id,
        "date": day_text,
        "slot_start": slot_start,
        "slot": slot.as_dict(),
        "serial": None,
        "patient": request.patient,
        "reason": request.reason,
        "booked_by": who.user_id,
        "status": PENDING,
        "dup_guard": dup_guard(hospital_id, day_text, request.patient["phone"], practitioner_id),
        "serial_guard": f"p:{oid}",
        "created_at": now,
        "updated_ms": epoch_ms(now),
        "starts_at": schedule.starts_at(day.day, slot_start),
        "units": units,
        "version": 0,  # grows with every change (confirm, cancel, move, visit step)
    }
    doc.update(placed_with(practitioner, kind, held_place))
    try:
        ctx.appointments.insert_pending(doc)
    except DuplicateKeyError as exc:
        with_whom = f" with {practitioner.name}" if practitioner is not None else ""
        raise DuplicateBooking(
            f"{request.patient['phone']} already holds an appointment at {hospital_id}"
            f"{with_whom} on {day_text}"
        ) from exc
    except PyMongoError as exc:
        raise ServiceUnavailable("Booking is unavailable: the database is down") from exc

    appointment_id = str(oid)
    try:
        # Still current (see _still_current) and the gate, in one round trip.
        outcome, value = take_place(
            ctx, schedule, day.day, slot_start, appointment_id, slot.capacity, units, held_place,
            still_current=True,
        )  # fmt: skip
    except (redis.RedisError, PyMongoError) as exc:
        _abandon(ctx, oid, REJECTED, now)
        raise ServiceUnavailable("Booking is unavailable: the capacity store is down") from exc
    if outcome == Gate.CHANGED:
        _abandon(ctx, oid, REJECTED, now)
        raise ScheduleChanged(
            "The hospital's schedule changed while this booking was made; please try again"
        )
    if outcome == Gate.FULL:
        _abandon(ctx, oid, REJECTED, now)
        if held_place is not None:
            raise HoldExpired(f"The hold {held_place['_id']} has expired")
        raise slot_full(slot_start, day_text)
    if outcome != Gate.TAKEN:  # still not ready: a rebuild keeps failing
        _abandon(ctx, oid, REJECTED, now)
        raise ServiceUnavailable("Booking is unavailable: capacity records are rebuilding")

    serial = value
    created = outbox.event(
        outbox.APPOINTMENT_CREATED,
        appointment_data(doc, status=CONFIRMED, serial=serial, version=1),
        now,
    )
    try:
        confirmed = ctx.appointments.confirm(
            oid,
            serial,
            serial_guard(hospital_id, day_text, slot_start, serial, practitioner_id),
            now,
            created,
        )
    except PyMongoError as exc:
        _abandon(ctx, oid, REJECTED, now)
        raise ServiceUnavailable("Booking is unavailable: the database is down") from exc
    if confirmed is None:
        # The reconciler gave this place back while we were slow: never confirm it now.
        free_place(ctx, doc)
        raise ServiceUnavailable("The booking took too long and was not made; please retry")
    if held_place is not None:
        holds.use_hold(ctx, held_place, appointment_id, now)
    # The queue counts confirmed appointments: announced once this one is (its counts were
    # announced by the gate's script when the place was taken).
    ctx.events.queue(hospital_id, day_text, practitioner_id)
    return public(confirmed)


def book_once(
    ctx: Context,
    who: Principal,
    request: BookAppointment,
    now: datetime,
    key: str | None = None,
    digest: str = "",
) -> tuple[int, dict, bool]:
    """A booking as both APIs make it (`POST /api/appointments`, FHIR `POST Appointment`):
    a patient's attempt counted against the booking limit, an `Idempotency-Key`'s answer
    replayed (a replay is no new attempt, and is answered even past the limit), and the
    bookings metric. `digest`: the request body's `idempotency.fingerprint`, which a key's
    retries must repeat. (status, answer, replayed)."""

    def attempt() -> dict:
        if not who.at_desk:
            ctx.limiter.check_booking(who.user_id)
        return book(ctx, who, request, now)

    outcome: str | None = "internal_error"
    try:
        if key is None:
            answer = attempt()
            outcome = "confirmed"
            return 201, answer, False
        status, answer, replayed = run_once(ctx.idempotency, who.user_id, key, digest, now, attempt)
        outcome = None if replayed else "confirmed"
        return status, answer, replayed
    except DomainError as exc:
        outcome = exc.reason
        raise
    finally:
        if outcome is not None:
            metrics.count_booking(outcome)


# Still current. After the write-ahead record, the booking is refused unless the
# configuration checked is still the published one (read with the gate's step, just before
# it: Gate.CHANGED). An edit fences first (the version key becomes `editing`), then looks for
# active appointments in the slots it removes, pending ones included. A booking whose record
# was written before that look is seen by it (the edit is refused with 409); one written
# after reads the fence or the new version and is refused, and gives back what the gate took.
# So an edit without `force` never strands a booking that was checked against the
# configuration it replaced.


def _abandon(ctx: Context, oid: ObjectId, status: str, now: datetime) -> None:
    """Best effort: close a pending appointment and free its place; the reconciler finishes
    the job when MongoDB or Redis is down right now. Freed even when this booking never took
    it: a rebuild by another booking restores pending appointments as places, and a place
    left to a closed appointment would never come back (freeing one not held does nothing)."""
    try:
        doc = ctx.appointments.close(oid, PENDING, status, now)
    except PyMongoError:
        log.warning("could not close pending appointment %s; the reconciler will", oid)
        return
    if doc is not None:
        free_place(ctx, doc)


def list_appointments(ctx: Context, who: Principal, query: dict) -> dict:
    """A page of appointments: a patient's own; an admin's, filtered by hospital, dates,
    status (`active`: pending or confirmed, what an edit's conflict check must see;
    `moving`: on their way to a new place, which the other filters name)."""
    moving = query.get("status") == "moving"
    if query.get("status") == "active":
        statuses = ACTIVE
    elif moving:
        statuses = (CONFIRMED,)
    else:
        statuses = (query["status"],) if "status" in query else VISIBLE
    if who.at_desk:
        for name in ("date", "date_from", "date_to"):
            if name in query and parse_date(query[name]) is None:
                raise InvalidDate(f"{name} must be a date YYYY-MM-DD")
        narrowed = ("hospital_id", "practitioner_id", "date", "date_from", "date_to")
        fields = {n: query.get(n) for n in narrowed}
        search = AppointmentSearch(statuses=statuses, moving=moving, **fields)
    else:
        # A patient sees only its own appointments, whatever filters it sends.
        search = AppointmentSearch(booked_by=who.user_id, statuses=statuses, moving=moving)
    page, per_page = query["page"], query["per_page"]
    docs, total = ctx.appointments.search(search, page, per_page)
    return page_answer("appointments", [public(d) for d in docs], page, per_page, total)


def abandon_stale(ctx: Context, before: datetime, now: datetime) -> int:
    """Give back the places of pending appointments whose process died; returns how many."""
    count = 0
    for doc in ctx.appointments.stale_pending(before):
        closed = ctx.appointments.close(doc["_id"], PENDING, ABANDONED, now)
        if closed is not None:
            free_place(ctx, doc)
            count += 1
    return count
