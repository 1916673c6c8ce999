"""The FHIR API's use cases: plain functions over the booking service's Context (no Flask).

Every read goes through the booking service's own paths: a hospital's configuration through
the configuration cache, a day's counts through `places.day_counts`, an appointment through
`places.find_visible` and the appointments repository; a create through `booking.book`
(the HTTP layer adds what POST /api/appointments adds: the schema, the limit, the
Idempotency-Key). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bson import ObjectId
from marshmallow import ValidationError as SchemaError

from booking_service.adapters.repository import VISIBLE, AppointmentSearch
from booking_service.core import places
from booking_service.core.context import Context
from booking_service.core.requests import AppointmentCreateSchema
from booking_service.core.shapes import public
from booking_service.integrations.fhir import appointments, scheduling
from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir.appointment_create import BookingRequest
from booking_service.integrations.fhir.datatypes import parse_instant
from booking_service.integrations.fhir.params import DateParam
from shared.auth import Principal
from shared.configurations import Configuration
from shared.errors import (
    AppointmentNotFound,
    DomainError,
    HospitalNotFound,
    NotFound,
    PractitionerNotFound,
    ValidationError,
)
from shared.ids import is_appointment_id
from shared.slots import Day, minutes
from shared.slots import Schedule as Planned

# Dates whose counts one read asks for (one Redis round trip each).
DAYS_PER_READ = 31

_create_schema = AppointmentCreateSchema()


class ResourceNotFound(NotFound):
    """A FHIR id that names nothing (malformed, too long, or of nothing that exists)."""


def configuration(ctx: Context, hospital_id: str) -> Configuration:
    """The hospital's current configuration; HospitalNotFound when there is none."""
    snapshot = ctx.reader.for_answer(hospital_id, [])
    return ctx.configurations.current(hospital_id, snapshot.published)


def _maybe_configuration(ctx: Context, hospital_id: str) -> Configuration | None:
    """The configuration when it can be read now, else the last one this process read (for
    the zone and the name: an appointment is shown without them, in UTC, if need be)."""
    try:
        return configuration(ctx, hospital_id)
    except DomainError:
        return ctx.configurations.cached(hospital_id)


# Location, Practitioner, Schedule.


def configurations_of(ctx: Context) -> Callable[[str], Configuration | None]:
    """A reader of configurations that reads each hospital once (None: no such hospital)."""
    loaded: dict[str, Configuration | None] = {}

    def config_of(hospital_id: str) -> Configuration | None:
        if hospital_id not in loaded:
            try:
                loaded[hospital_id] = configuration(ctx, hospital_id)
            except HospitalNotFound:
                loaded[hospital_id] = None
        return loaded[hospital_id]

    return config_of


def read_location(ctx: Context, fhir_id: str):
    """GET Location/{id}."""
    hospital_id = fhir_ids.read_location(fhir_id)
    if hospital_id is None:
        raise ResourceNotFound(f"No Location {fhir_id!r}")
    return scheduling.location(configuration(ctx, hospital_id).doc)


def read_practitioner(ctx: Context, fhir_id: str):
    """GET Practitioner/{id}."""
    found = fhir_ids.read_practitioner(fhir_id)
    if found is None:
        raise ResourceNotFound(f"No Practitioner {fhir_id!r}")
    hospital_id, doctor_id = found
    return scheduling.practitioner(
        hospital_id, configuration(ctx, hospital_id).practitioner(doctor_id)
    )


def schedule_resource(config: Configuration, doctor_id: str | None, now: datetime):
    doctor = None if doctor_id is None else config.practitioner(doctor_id)
    return scheduling.schedule(config.doc, config.schedule_for(doctor_id), doctor, now)


def read_schedule(ctx: Context, fhir_id: str, now: datetime):
    """GET Schedule/{id}: a hospital's own schedule, or one doctor's."""
    found = fhir_ids.read_schedule(fhir_id)
    if found is None:
        raise ResourceNotFound(f"No Schedule {fhir_id!r}")
    hospital_id, doctor_id = found
    return schedule_resource(configuration(ctx, hospital_id), doctor_id, now)


def search_schedules(
    ctx: Context,
    ids: list[tuple[str, str | None]] | None,
    actors: list[tuple[str, str | None]] | None,
    active: bool | None,
    now: datetime,
) -> list:
    """Schedules by id and/or actor (a hospital: its own and each doctor's; a doctor: theirs),
    of hospitals and doctors that exist; `active` filters."""
    config_of = configurations_of(ctx)

    def of_actors() -> list[tuple[str, str | None]]:
        found: list[tuple[str, str | None]] = []
        for hospital_id, doctor_id in actors or ():
            config = config_of(hospital_id)
            if config is None:
                continue
            if doctor_id is not None:
                found.append((hospital_id, doctor_id))
            else:
                found.append((hospital_id, None))
                found.extend((hospital_id, d) for d in sorted(config.practitioners))
        return found

    wanted = list(ids) if ids is not None else of_actors()
    if ids is not None and actors is not None:
        by_actor = set(of_actors())
        wanted = [key for key in wanted if key in by_actor]
    answers = []
    for hospital_id, doctor_id in dict.fromkeys(wanted):
        config = config_of(hospital_id)
        if config is None or fhir_ids.schedule_id(hospital_id, doctor_id) is None:
            continue
        if doctor_id is not None and doctor_id not in config.practitioners:
            continue
        found = schedule_resource(config, doctor_id, now)
        if active is None or found.active == active:
            answers.append(found)
    return answers


def page_of(items: list, number: int, count: int) -> list:
    """Page `number` (from 1) of `count` items; `count` 0: none (a `_summary=count`)."""
    return items[(number - 1) * count : number * count] if count else []


# Slots.


def _views(
    config: Configuration,
    doctor_id: str | None,
    planned: Day,
    counts,
    after: tuple[date, str] | None,
    statuses: set[str] | None,
) -> Iterator[tuple[str, object]]:
    """(start, make) of each slot of a day that passes the cursor and the status filter;
    `make()` builds its SlotView (instants are worked out only for slots that get that far)."""
    schedule = config.schedule_for(doctor_id)
    open_to_all = doctor_id is None or config.practitioner(doctor_id).active
    for slot, started in zip(planned.slots, planned.started, strict=True):
        if after is not None and (planned.date, slot.start) < after:
            continue
        remaining = None
        if counts is not None:
            remaining = max(0, slot.capacity - places.taken_units(counts, slot.start))
        status = scheduling.slot_status(
            started=started, bookable_by_anyone=open_to_all, remaining=remaining
        )
        if statuses is not None and status not in statuses:
            continue

        def make(slot=slot, status=status, remaining=remaining) -> scheduling.SlotView:
            return scheduling.SlotView(
                hospital_id=schedule.hospital_id,
                practitioner_id=doctor_id,
                day=planned.date,
                start=slot.start,
                starts=schedule.starts_at(planned.date, slot.start),
                ends=schedule.starts_at(planned.date, slot.end),
                zone=schedule.tz,
                status=status,
                remaining=remaining,
            )

        yield slot.start, make


def read_slot(
    ctx: Context,
    hospital_id: str,
    doctor_id: str | None,
    day: date,
    start: str,
    now: datetime,
) -> scheduling.SlotView:
    """GET Slot/{id}: the slot as the configuration and the counts have it now (404 when the
    configuration has no such slot inside the booking window)."""
    try:
        config = configuration(ctx, hospital_id)
        config.schedule_for(doctor_id)
    except (HospitalNotFound, PractitionerNotFound) as exc:
        raise ResourceNotFound(exc.message) from exc
    ((planned, counts),) = places.day_counts(ctx, hospital_id, [day], now, doctor_id).days
    for slot_start, make in _views(config, doctor_id, planned, counts, None, None):
        if slot_start == start:
            return make()
    raise ResourceNotFound(f"No slot at {start} on {day.isoformat()} in this schedule")


Bound = tuple[datetime, bool]  # (instant, included)


def instant_bounds(
    found: tuple[DateParam, ...], schedule: Planned
) -> tuple[Bound | None, Bound | None]:
    """(lower, upper) instants of `start` bounds; a date is the hospital's day."""
    lower = upper = None
    for item in found:
        if item.day is not None:
            day_start = schedule.starts_at(item.day, "00:00")
            next_start = schedule.starts_at(item.day + timedelta(days=1), "00:00")
            if item.prefix in ("eq", "ge"):
                lower = (day_start, True)
            if item.prefix == "gt":
                lower = (next_start, True)
            if item.prefix == "lt":
                upper = (day_start, False)
            if item.prefix in ("eq", "le"):
                upper = (next_start, False)
        else:
            assert item.moment is not None
            if item.is_lower:
                lower = (item.moment, item.prefix == "ge")
            else:
                upper = (item.moment, item.prefix == "le")
    return lower, upper


def _within(moment: datetime, lower: Bound | None, upper: Bound | None) -> bool:
    if lower is not None and (moment < lower[0] or (moment == lower[0] and not lower[1])):
        return False
    if upper is not None and (moment > upper[0] or (moment == upper[0] and not upper[1])):
        return False
    return True


@dataclass(frozen=True)
class SlotPage:
    """A page of a Slot search: its slots, and where the next page starts (None: last)."""

    slots: list[scheduling.SlotView]
    next: tuple[date, str] | None

    @property
    def counts_known(self) -> bool:
        """False when some slot's remaining places are unknown right now."""
        return all(view.remaining is not None for view in self.slots)


def _matching_slots(
    ctx: Context,
    hospital_id: str,
    doctor_id: str | None,
    bounds: tuple[DateParam, ...],
    statuses: set[str] | None,
    after: tuple[date, str] | None,
    now: datetime,
) -> Iterator[tuple[date, str, Callable[[], scheduling.SlotView]]]:
    """(date, start, make) of each slot of a schedule within the bounds (and the booking
    window), ordered by date and start, from `after` on; reads the days' counts a month at a
    time, as far as the caller reads. A hospital or doctor that does not exist has none."""
    try:
        config = configuration(ctx, hospital_id)
        schedule = config.schedule_for(doctor_id)
    except (HospitalNotFound, PractitionerNotFound):
        return
    lower, upper = instant_bounds(bounds, schedule)
    today = schedule.today(now)
    first = today if lower is None else max(today, lower[0].astimezone(schedule.tz).date())
    last = today + timedelta(days=schedule.advance_booking_days)
    if upper is not None:
        last = min(last, upper[0].astimezone(schedule.tz).date())
    if after is not None:
        first = max(first, after[0])
    dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    bounded = lower is not None or upper is not None
    for at in range(0, len(dates), DAYS_PER_READ):
        chunk = dates[at : at + DAYS_PER_READ]
        counted = places.day_counts(ctx, hospital_id, chunk, now, doctor_id)
        for planned, counts in counted.days:
            for start, make in _views(config, doctor_id, planned, counts, after, statuses):
                if bounded and not _within(schedule.starts_at(planned.date, start), lower, upper):
                    continue
                yield planned.date, start, make


def search_slots(
    ctx: Context,
    hospital_id: str,
    doctor_id: str | None,
    bounds: tuple[DateParam, ...],
    statuses: set[str] | None,
    after: tuple[date, str] | None,
    count: int,
    now: datetime,
) -> SlotPage:
    """The slots of a schedule within the bounds (and the booking window), ordered by date and
    start, from `after` on, at most `count`; stops reading counts once the page is full. A
    hospital or doctor that does not exist has no slots."""
    found: list[scheduling.SlotView] = []
    for day, start, make in _matching_slots(
        ctx, hospital_id, doctor_id, bounds, statuses, after, now
    ):
        if len(found) == count:
            return SlotPage(found, (day, start))
        found.append(make())
    return SlotPage(found, None)


def count_slots(
    ctx: Context,
    hospital_id: str,
    doctor_id: str | None,
    bounds: tuple[DateParam, ...],
    statuses: set[str] | None,
    now: datetime,
) -> int:
    """How many slots a Slot search matches (every page; while counts are unknown a slot
    counts as free, as the search shows it)."""
    return sum(1 for _ in _matching_slots(ctx, hospital_id, doctor_id, bounds, statuses, None, now))


# Appointments.


def _place(config: Configuration | None, doc: dict) -> appointments.Place:
    """An appointment's instants: from its date and wall times in the hospital's zone; when
    the configuration cannot be read, from the instant stored with it (written in UTC)."""
    day = date.fromisoformat(doc["date"])
    start, end = doc["slot"]["start"], doc["slot"]["end"]
    if config is not None:
        schedule = config.schedule
        return appointments.Place(
            schedule.starts_at(day, start),
            schedule.starts_at(day, end),
            schedule.tz,
            scheduling.hospital_name(config.doc),
        )
    if doc.get("starts_ms") is not None:
        starts = datetime.fromtimestamp(doc["starts_ms"] / 1000, tz=UTC)
    else:
        starts = doc["starts_at"]
        starts = starts if starts.tzinfo else starts.replace(tzinfo=UTC)
    return appointments.Place(
        starts, starts + timedelta(minutes=minutes(end) - minutes(start)), UTC, None
    )


def read_appointment(ctx: Context, who: Principal, fhir_id: str):
    """GET Appointment/{id}: the caller's own (staff and admins: any); 404 otherwise."""
    if not is_appointment_id(fhir_id):
        raise AppointmentNotFound(f"No appointment {fhir_id!r}")
    doc = places.find_visible(ctx, who, fhir_id)
    return appointments.appointment(
        public(doc), _place(_maybe_configuration(ctx, doc["hospital_id"]), doc)
    )


@dataclass(frozen=True)
class AppointmentQuery:
    """An Appointment search, its references decoded."""

    ids: list[str] | None = None
    statuses: set[str] | None = None
    first_day: date | None = None
    last_day: date | None = None
    hospital_id: str | None = None
    practitioner: tuple[str, str] | None = None
    slot: tuple[str, str | None, date, str] | None = None


def appointment_search(who: Principal, query: AppointmentQuery) -> AppointmentSearch | None:
    """The repository search of a FHIR search (a patient's own appointments only); None when
    the search contradicts itself and nothing can match."""
    fields: dict = {} if who.at_desk else {"booked_by": who.user_id}

    def put(name: str, value) -> bool:
        if name in fields and fields[name] != value:
            return False
        fields[name] = value
        return True

    first, last = query.first_day, query.last_day
    if query.ids is not None:
        if not query.ids:
            return None
        fields["ids"] = tuple(dict.fromkeys(query.ids))
    if query.statuses is not None:
        statuses = sorted(s for s in query.statuses if s in VISIBLE)
        if not statuses:
            return None
        fields["statuses"] = tuple(statuses)
    if query.hospital_id is not None and not put("hospital_id", query.hospital_id):
        return None
    if query.practitioner is not None:
        hospital_id, doctor_id = query.practitioner
        if not (put("hospital_id", hospital_id) and put("practitioner_id", doctor_id)):
            return None
    if query.slot is not None:
        hospital_id, doctor_id, day, start = query.slot
        if not (
            put("hospital_id", hospital_id)
            and put("practitioner_id", doctor_id)
            and put("slot_start", start)
        ):
            return None
        first = day if first is None else max(first, day)
        last = day if last is None else min(last, day)
    if first is not None and last is not None and first > last:
        return None
    if first is not None and first == last:
        fields["date"] = first.isoformat()
    else:
        fields["date_from"] = first.isoformat() if first is not None else None
        fields["date_to"] = last.isoformat() if last is not None else None
    if "practitioner_id" in fields and fields["practitioner_id"] is None:
        del fields["practitioner_id"]  # a slot of the hospital's own schedule
        fields["own_schedule"] = True
    return AppointmentSearch(**fields)


def search_appointments(
    ctx: Context, who: Principal, query: AppointmentQuery, page: int, count: int
) -> tuple[list, int]:
    """A page of the appointments the caller may see that match, ordered by date, slot and
    serial; with the total. `count` 0: the total only (`_summary=count`)."""
    search = appointment_search(who, query)
    if search is None:
        return [], 0
    if search.ids is not None:
        # At most MAX_LIST ids: every match is read, and counted here (nx-27017 counts no
        # `_id` filter: its count_documents answers 0 where find finds them).
        docs, _ = ctx.appointments.search(search, 1, len(search.ids))
        total = len(docs)
        docs = page_of(docs, page, count)
    elif count == 0:
        return [], ctx.appointments.search(search, 1, 1)[1]
    else:
        docs, total = ctx.appointments.search(search, page, count)
    configs: dict[str, Configuration | None] = {}
    found = []
    for doc in docs:
        hospital_id = doc["hospital_id"]
        if hospital_id not in configs:
            configs[hospital_id] = _maybe_configuration(ctx, hospital_id)
        found.append(appointments.appointment(public(doc), _place(configs[hospital_id], doc)))
    return found, total


def booking_body(ctx: Context, request: BookingRequest, now: datetime) -> dict:
    """The body `booking.book` takes for a FHIR create, checked by the REST API's own schema
    (400 validation_error naming the FHIR elements), its `start`/`end` (when given) checked
    against the slot's."""
    body = request.body()
    try:
        body = _create_schema.load(body)
    except SchemaError as exc:
        raise ValidationError(
            "The Appointment cannot be booked as sent", errors=exc.messages
        ) from exc
    if request.start is None and request.end is None:
        return body
    config = configuration(ctx, request.hospital_id)
    schedule = config.schedule_for(request.practitioner_id)
    for slot in schedule.configured_slots(request.day):
        if slot.start != request.slot:
            continue
        for element, given, wall in (
            ("start", request.start, slot.start),
            ("end", request.end, slot.end),
        ):
            if given is None:
                continue
            moment = parse_instant(given)
            if moment is None or moment != schedule.starts_at(request.day, wall):
                raise ValidationError(
                    f"The Appointment's {element} is not its slot's",
                    errors={f"Appointment.{element}": [f"must be the slot's {element}"]},
                )
    return body


def created_appointment(ctx: Context, answer: dict):
    """The Appointment of a booking `booking.book` answered."""
    config = _maybe_configuration(ctx, answer["hospital_id"])
    doc = dict(answer)
    if config is None:
        # Only the instant stored with the appointment is known: read it back.
        stored = ctx.appointments.get(ObjectId(answer["appointment_id"])) or {}
        doc.update(starts_at=stored.get("starts_at"), starts_ms=stored.get("starts_ms"))
    return appointments.appointment(answer, _place(config, doc))
