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
from collections import defaultdict
from datetime import UTC, date, datetime

import redis
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from booking_service.adapters import outbox
from booking_service.adapters.capacity import FULL, HELD, NOT_READY, SlotRecords
from booking_service.adapters.repository import (
    ABANDONED,
    ACTIVE,
    CANCELLED,
    CONFIRMED,
    PENDING,
    PLACED,
    REJECTED,
    VISIBLE,
    dup_guard,
    epoch_ms,
    has_started,
    kept_until_ms,
    public,
    serial_guard,
    to_object_id,
)
from booking_service.core import holds
from booking_service.core.context import Context
from shared import metrics
from shared.answers import CountedDays
from shared.auth import Principal
from shared.capacity_reads import Snapshot, held
from shared.clock import utcnow
from shared.configurations import Configuration
from shared.errors import (
    AppointmentInPast,
    AppointmentNotFound,
    DomainError,
    DuplicateBooking,
    HoldExpired,
    HospitalClosed,
    InvalidDate,
    InvalidTransition,
    OutsideBookingWindow,
    PractitionerInactive,
    ScheduleChanged,
    ServiceUnavailable,
    SlotFull,
    SlotInPast,
    SlotNotFound,
)
from shared.slots import (
    BEYOND_WINDOW,
    CLOSED,
    PAST,
    AppointmentType,
    Practitioner,
    Schedule,
    iso_utc,
    parse_date,
)

log = logging.getLogger(__name__)


def _snapshot(
    ctx: Context, hospital_id: str, dates: list[str], practitioner_id: str | None = None
) -> Snapshot:
    """The published version and the counts; 503 when Redis cannot answer (bookings need it)."""
    try:
        return ctx.reader.published_and_counts(hospital_id, dates, practitioner_id)
    except redis.RedisError as exc:
        raise ServiceUnavailable("Booking is unavailable: the capacity store is down") from exc


def current_configuration(ctx: Context, hospital_id: str) -> Configuration:
    """The hospital's current configuration (for the reconciler)."""
    snapshot = _snapshot(ctx, hospital_id, [])
    return ctx.configurations.current(hospital_id, snapshot.published)


def day_counts(
    ctx: Context,
    hospital_id: str,
    dates: list[date],
    now: datetime,
    practitioner_id: str | None = None,
    appointment_type: str | None = None,
) -> CountedDays:
    """The availability answers: each date of the hospital's own schedule, or of a doctor's,
    with its counts."""
    texts = [d.isoformat() for d in dates]
    snapshot = ctx.reader.for_answer(hospital_id, texts, practitioner_id)
    configuration = ctx.configurations.current(hospital_id, snapshot.published)
    days = configuration.schedule_for(practitioner_id).expand(dates, now)
    return CountedDays(
        [(day, snapshot.counts[text]) for day, text in zip(days, texts, strict=True)],
        configuration.units_asked(appointment_type),
    )


def taken_units(counts, slot_start: str) -> int:
    """Units of a slot taken by appointments and live holds, as the counts read show them."""
    return counts.get(slot_start, 0) + held(counts, slot_start)


def records_ttl(schedule: Schedule, day: date, now: datetime) -> int:
    """Seconds a day's capacity records live: until two days after it ends (a day at least)."""
    return max(86400, schedule.expire_at(day) - int(now.timestamp()))


def check_bookable(schedule: Schedule, day: date, slot_start: str, now: datetime):
    """The slot to book, or the reason it cannot be booked."""
    planned = schedule.day(day, now)
    if planned.status in (PAST, BEYOND_WINDOW):
        raise OutsideBookingWindow(
            f"{day.isoformat()} is outside the booking window (today to "
            f"{schedule.advance_booking_days} days ahead)"
        )
    if planned.status == CLOSED:
        who = (
            "The hospital is closed"
            if schedule.practitioner_id is None
            else f"{schedule.practitioner_id} does not see patients"
        )
        raise HospitalClosed(f"{who} on {day.isoformat()}", closed_reason=planned.reason)
    slot = planned.slot(slot_start)
    if slot is None:
        raise SlotNotFound(f"There is no {slot_start} slot on {day.isoformat()}")
    if planned.has_started(slot_start):
        raise SlotInPast(f"The {slot_start} slot on {day.isoformat()} has already started")
    return slot


def where_to_book(
    ctx: Context, hospital_id: str, day_text: str, practitioner_id: str | None
) -> tuple[Snapshot, Configuration, Schedule, Practitioner | None]:
    """What a booking, a hold or a move is checked against: one read of the published
    version and the day's counts, the configuration it names, and the schedule a place is
    taken in, the doctor's (who must be taking appointments) or the hospital's own."""
    snapshot = _snapshot(ctx, hospital_id, [day_text], practitioner_id)
    configuration = ctx.configurations.current(hospital_id, snapshot.published)
    if practitioner_id is None:
        return snapshot, configuration, configuration.schedule, None
    practitioner = configuration.practitioner(practitioner_id)
    if not practitioner.active:
        raise PractitionerInactive(f"{practitioner.name} is not taking appointments")
    return snapshot, configuration, practitioner.schedule, practitioner


def book(ctx: Context, who: Principal, body: dict, now: datetime) -> dict:
    """Book a place; returns the appointment as the API shows it."""
    hospital_id, day_text, slot_start = body["hospital_id"], body["date"], body["slot"]
    practitioner_id = body.get("practitioner_id")
    day = parse_date(day_text)
    if day is None:
        raise InvalidDate(f"{day_text!r} is not a date YYYY-MM-DD")
    snapshot, configuration, schedule, practitioner = where_to_book(
        ctx, hospital_id, day_text, practitioner_id
    )
    held_place = None
    if body.get("hold_id") is not None:
        held_place = holds.usable_hold(ctx, who, body["hold_id"], body, now)
    kind = configuration.appointment_type(
        body.get("appointment_type") or (held_place or {}).get("appointment_type")
    )
    units = kind.units if kind is not None else 1
    counts = snapshot.counts[day_text]
    slot = check_bookable(schedule, day, slot_start, now)
    full_message = f"The {slot_start} slot on {day_text} is full"
    if held_place is not None:
        units = held_place["units"]  # the place is the hold's: its units, whatever they cost now
    elif counts is not None and taken_units(counts, slot_start) + units > slot.capacity:
        raise SlotFull(full_message)

    oid = ObjectId()
    doc = {
        "_id": oid,
        "hospital_id": hospital_id,
        "date": day_text,
        "slot_start": slot_start,
        "slot": slot.as_dict(),
        "serial": None,
        "patient": body["patient"],
        "reason": body.get("reason"),
        "booked_by": who.user_id,
        "status": PENDING,
        "dup_guard": dup_guard(hospital_id, day_text, body["patient"]["phone"], practitioner_id),
        "serial_guard": f"p:{oid}",
        "created_at": now,
        "updated_ms": epoch_ms(now),
        "starts_at": schedule.starts_at(day, slot_start),
        "units": units,
        "version": 0,  # grows with every change (confirm, cancel, move, visit step)
    }
    doc.update(placed_with(practitioner, kind, held_place))
    try:
        ctx.appointments.insert_pending(doc)
    except DuplicateKeyError as exc:
        with_whom = f" with {practitioner.name}" if practitioner is not None else ""
        raise DuplicateBooking(
            f"{body['patient']['phone']} already holds an appointment at {hospital_id}"
            f"{with_whom} on {day_text}"
        ) from exc
    except PyMongoError as exc:
        raise ServiceUnavailable("Booking is unavailable: the database is down") from exc

    _check_still_current(ctx, schedule, oid, now)
    appointment_id = str(oid)
    try:
        outcome, value = take_place(
            ctx, schedule, day, slot_start, appointment_id, slot.capacity, units, held_place
        )
    except (redis.RedisError, PyMongoError) as exc:
        _abandon(ctx, oid, REJECTED, now, release=True)
        raise ServiceUnavailable("Booking is unavailable: the capacity store is down") from exc
    if outcome == FULL:
        _abandon(ctx, oid, REJECTED, now, release=False)
        if held_place is not None:
            raise HoldExpired(f"The hold {held_place['_id']} has expired")
        raise SlotFull(full_message)
    if outcome != HELD:  # still not ready: a rebuild keeps failing
        _abandon(ctx, oid, REJECTED, now, release=True)
        raise ServiceUnavailable("Booking is unavailable: capacity records are rebuilding")

    serial = value
    created = outbox.event(
        outbox.APPOINTMENT_CREATED,
        outbox.appointment_data(doc, status=CONFIRMED, serial=serial, version=1),
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
        _abandon(ctx, oid, REJECTED, now, release=True)
        raise ServiceUnavailable("Booking is unavailable: the database is down") from exc
    if confirmed is None:
        # The reconciler gave this place back while we were slow: never confirm it now.
        _release(ctx, doc)
        raise ServiceUnavailable("The booking took too long and was not made; please retry")
    if held_place is not None:
        holds.use_hold(ctx, held_place, appointment_id, now)
    # The queue counts confirmed appointments: announced once this one is (its counts were
    # announced by the gate's script when the place was taken).
    ctx.events.queue(hospital_id, day_text, practitioner_id)
    return public(confirmed)


def placed_with(
    practitioner: Practitioner | None, kind: AppointmentType | None, held_place: dict | None
) -> dict:
    """An appointment's fields that say with which doctor (and the doctor's name then), of
    which type, and from which hold its place came; none of them when it has none."""
    out: dict = {}
    if practitioner is not None:
        out["practitioner_id"] = practitioner.practitioner_id
        out["practitioner"] = {
            "practitioner_id": practitioner.practitioner_id,
            "name": practitioner.name,
        }
    if kind is not None:
        out["appointment_type"] = kind.code
    if held_place is not None:
        out["hold_id"] = str(held_place["_id"])
    return out


def take_place(
    ctx: Context,
    schedule: Schedule,
    day: date,
    slot_start: str,
    appointment_id: str,
    capacity: int,
    units: int,
    held_place: dict | None,
) -> tuple[int, int]:
    """The gate, for one appointment: a new place, or the place of its live hold; a day
    Redis lost is rebuilt from MongoDB first. (HELD, serial) or (FULL, _)."""
    hospital_id, practitioner_id = schedule.hospital_id, schedule.practitioner_id
    day_text = day.isoformat()
    ttl = records_ttl(schedule, day, utcnow())

    def attempt() -> tuple[int, int]:
        if held_place is not None:
            return ctx.capacity.take_hold(
                hospital_id, day_text, slot_start, held_place["field"], appointment_id, ttl,
                practitioner_id,
            )  # fmt: skip
        return ctx.capacity.reserve(
            hospital_id, day_text, slot_start, appointment_id, capacity, ttl,
            units=units, practitioner_id=practitioner_id,
        )  # fmt: skip

    outcome, value = attempt()
    if outcome == NOT_READY:
        rebuild_day(ctx, schedule, hospital_id, day)
        outcome, value = attempt()
    return outcome, value


def book_once(
    ctx: Context, who: Principal, body: dict, key: str | None, now: datetime
) -> tuple[int, dict, bool]:
    """A booking as both APIs make it (`POST /api/appointments`, FHIR `POST Appointment`):
    a patient's attempt counted against the booking limit, an `Idempotency-Key`'s answer
    replayed (a replay is no new attempt, and is answered even past the limit), and the
    bookings metric. (status, answer, replayed)."""
    from booking_service.core.idempotency import (
        run_once,  # (it stores answers of this module's bookings)
    )

    def attempt() -> dict:
        if not who.at_desk:
            ctx.limiter.check_booking(who.user_id)
        return book(ctx, who, body, now)

    outcome: str | None = "internal_error"
    try:
        if key is None:
            answer = attempt()
            outcome = "confirmed"
            return 201, answer, False
        status, answer, replayed = run_once(ctx.idempotency, who.user_id, key, body, now, attempt)
        outcome = None if replayed else "confirmed"
        return status, answer, replayed
    except DomainError as exc:
        outcome = exc.reason
        raise
    finally:
        if outcome is not None:
            metrics.count_booking(outcome)


def _check_still_current(ctx: Context, schedule: Schedule, oid: ObjectId, now: datetime) -> None:
    """After the write-ahead record: refuse unless the configuration checked is still the
    published one.

    An edit fences first (the version key becomes `editing`), then looks for active
    appointments in the slots it removes, pending ones included. A booking whose record was
    written before that look is seen by it (the edit is refused with 409); one written after
    reads the fence or the new version here and is refused. So an edit without `force` never
    strands a booking that was checked against the configuration it replaced.
    """
    try:
        published = ctx.reader.published(schedule.hospital_id)
    except redis.RedisError as exc:
        _abandon(ctx, oid, REJECTED, now, release=False)
        raise ServiceUnavailable("Booking is unavailable: the capacity store is down") from exc
    if published.version != schedule.version:
        _abandon(ctx, oid, REJECTED, now, release=False)
        raise ScheduleChanged(
            "The hospital's schedule changed while this booking was made; please try again"
        )


def _release(ctx: Context, doc: dict) -> bool:
    """Give an appointment's places back (best effort: the reconciler repeats lost ones);
    True when its places are free now (released, or held no more)."""
    try:
        ctx.capacity.release(
            doc["hospital_id"],
            doc["date"],
            doc["slot_start"],
            str(doc["_id"]),
            doc.get("practitioner_id"),
        )
    except redis.RedisError:
        log.warning("release of %s failed; the reconciler frees it", doc["_id"])
        return False
    return True


def _abandon(ctx: Context, oid: ObjectId, status: str, now: datetime, *, release: bool) -> None:
    """Best effort: close a pending appointment and free its place; the reconciler finishes
    the job when MongoDB or Redis is down right now."""
    try:
        # A place never taken needs no release: the reconciler's sweep skips it.
        extra = {} if release else {"released": True}
        doc = ctx.appointments.close(oid, PENDING, status, now, **extra)
    except PyMongoError:
        log.warning("could not close pending appointment %s; the reconciler will", oid)
        return
    if doc is not None and release:
        _release(ctx, doc)


def rebuild_day(ctx: Context, schedule: Schedule, hospital_id: str, day: date) -> bool:
    """Rebuild one hospital-day's Redis records from MongoDB (no-op when already built): the
    hospital's own, or the doctor's whose schedule `schedule` is. Confirmed appointments keep
    their serials; then, oldest first while they fit: appointments written ahead of their
    place, appointments being moved here, and live holds (not those an appointment took)."""
    day_text = day.isoformat()
    practitioner_id = schedule.practitioner_id
    capacities = {s.start: s.capacity for s in schedule.configured_slots(day)}
    held: dict[str, list] = defaultdict(list)
    waiting: dict[str, list] = defaultdict(list)  # slot -> [(created, field, units, expiry)]
    taken_holds = set()
    for doc in ctx.appointments.for_rebuild(hospital_id, day_text):
        here = (doc["hospital_id"], doc["date"]) == (hospital_id, day_text)
        if here and doc["status"] in ACTIVE:
            taken_holds.add(doc.get("hold_id"))
            if doc.get("practitioner_id") == practitioner_id:
                units = doc.get("units", 1)
                if doc["status"] in PLACED and doc.get("serial"):
                    held[doc["slot_start"]].append((str(doc["_id"]), int(doc["serial"]), units))
                elif doc["status"] == PENDING:
                    created = doc["created_at"]
                    waiting[doc["slot_start"]].append((created, str(doc["_id"]), units, 0))
        move = doc.get("moving")  # (a move within the day is both held here and moving here)
        if (
            move
            and doc["status"] == CONFIRMED
            and (move["hospital_id"], move["date"]) == (hospital_id, day_text)
            and move.get("practitioner_id") == practitioner_id
        ):
            started = datetime.fromtimestamp(move["started_ms"] / 1000, tz=UTC)
            waiting[move["slot_start"]].append((started, str(doc["_id"]), move["units"], 0))
    now = utcnow()
    for doc in ctx.holds.live_on(hospital_id, day_text, epoch_ms(now)):
        if doc.get("practitioner_id") == practitioner_id and str(doc["_id"]) not in taken_holds:
            created = datetime.fromtimestamp(doc["created_ms"] / 1000, tz=UTC)
            waiting[doc["slot_start"]].append(
                (created, doc["field"], doc["units"], kept_until_ms(doc))
            )
    by_slot = []
    for start in sorted(set(capacities) | set(held) | set(waiting)):
        slot_held = held.get(start, [])
        pending = [entry[1:] for entry in sorted(waiting.get(start, []), key=_oldest)]
        capacity = capacities.get(start, sum(units for _, _, units in slot_held))
        by_slot.append(SlotRecords(start, capacity, slot_held, pending))
    return ctx.capacity.rebuild(
        hospital_id, day_text, by_slot, records_ttl(schedule, day, now), practitioner_id
    )


def _oldest(entry: tuple) -> datetime:
    created = entry[0]
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def find_owned(repository, who: Principal, record_id: str, owner_field: str, missing) -> dict:
    """A hold's or a waitlist entry's record the caller may see (its own; staff and admin:
    any), by its canonical id; `missing` (404) otherwise."""
    oid = to_object_id(record_id)
    doc = repository.get(oid) if oid is not None else None
    if doc is None or (not who.at_desk and doc[owner_field] != who.user_id):
        raise missing
    return doc


def find_visible(ctx: Context, who: Principal, appointment_id: str) -> dict:
    """An appointment the caller may see; 404 otherwise (someone else's is 404 too)."""
    oid = to_object_id(appointment_id)
    doc = ctx.appointments.get(oid) if oid is not None else None
    if (
        doc is None
        or doc["status"] not in VISIBLE
        or (not who.at_desk and doc["booked_by"] != who.user_id)
    ):
        raise AppointmentNotFound(f"No appointment {appointment_id!r}")
    return doc


def list_appointments(ctx: Context, who: Principal, query: dict) -> dict:
    """A page of appointments: a patient's own; an admin's, filtered by hospital, dates,
    status (`active`: pending or confirmed, what an edit's conflict check must see)."""
    filters: dict = {}
    if who.at_desk:
        for name in ("hospital_id", "practitioner_id"):
            if name in query:
                filters[name] = query[name]
        for name in ("date", "date_from", "date_to"):
            if name in query and parse_date(query[name]) is None:
                raise InvalidDate(f"{name} must be a date YYYY-MM-DD")
        if "date" in query:
            filters["date"] = query["date"]
        elif "date_from" in query or "date_to" in query:
            bounds = (("$gte", query.get("date_from")), ("$lte", query.get("date_to")))
            filters["date"] = {op: value for op, value in bounds if value}
    else:
        # A patient sees only its own appointments, whatever filters it sends.
        filters["booked_by"] = who.user_id
    if query.get("status") == "active":
        filters["status"] = {"$in": list(ACTIVE)}
    elif "status" in query:
        filters["status"] = query["status"]
    page, per_page = query["page"], query["per_page"]
    docs, total = ctx.appointments.search(filters, page, per_page)
    return {
        "appointments": [public(d) for d in docs],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


def cancel(ctx: Context, who: Principal, appointment_id: str, now: datetime) -> dict:
    """Cancel (idempotent) and free the place at once."""
    doc = find_visible(ctx, who, appointment_id)
    if doc["status"] == CANCELLED:
        return public(doc)
    if doc["status"] != CONFIRMED:
        raise InvalidTransition(
            f"Only a confirmed appointment can be cancelled (it is {doc['status']})"
        )
    if has_started(doc, now):
        raise AppointmentInPast("A past appointment cannot be cancelled")
    stamps = {"cancelled_at": iso_utc(now), "cancelled_by": who.user_id}
    cancelled = outbox.event(
        outbox.APPOINTMENT_CANCELLED,
        outbox.appointment_data(doc, status=CANCELLED, version=doc.get("version", 0) + 1, **stamps),
        now,
    )
    try:
        closed = ctx.appointments.close(doc["_id"], CONFIRMED, CANCELLED, now, cancelled, **stamps)
    except PyMongoError as exc:
        raise ServiceUnavailable("Cancelling is unavailable: the database is down") from exc
    if closed is None:  # a concurrent cancel won
        return public(ctx.appointments.get(doc["_id"]))
    _release(ctx, doc)
    ctx.events.queue(doc["hospital_id"], doc["date"], doc.get("practitioner_id"))
    place_freed(ctx, doc["hospital_id"], doc.get("practitioner_id"), doc["date"], now)
    return public(closed)


def place_freed(
    ctx: Context, hospital_id: str, practitioner_id: str | None, day: str, now: datetime
) -> None:
    """A place of the day came back: offer it to the day's waitlist (best effort: the
    reconciler offers what is left)."""
    from booking_service.core.waitlist import (
        offer_places,  # (the waitlist books through this module)
    )

    try:
        offer_places(ctx, hospital_id, practitioner_id, day, now)
    except (redis.RedisError, PyMongoError) as exc:
        log.warning("waitlist offers for %s %s not made now: %s", hospital_id, day, exc)


def abandon_stale(ctx: Context, before: datetime, now: datetime) -> int:
    """Give back the places of pending appointments whose process died; returns how many."""
    count = 0
    for doc in ctx.appointments.stale_pending(before):
        closed = ctx.appointments.close(doc["_id"], PENDING, ABANDONED, now)
        if closed is not None:
            _release(ctx, doc)
            count += 1
    return count
