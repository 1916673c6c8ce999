"""Places: the ledger every way of taking a place (a booking, a hold, a move, a waitlist
offer) is checked against, and the gate steps they share.

The protocol, one for every owner of a place (an appointment, a hold, an offer, a move's
target):
1. Check: `open_day` reads the published configuration version and the day's counts in one
   round trip; `Day.check` checks the slot (bookable now, room for the units asked).
   Quotas are counted before anything is taken: BOOKING_LIMIT (limits.py), HOLD_LIMIT for
   holds and offers together and WAITLIST_LIMIT for entries (both exact: holds.claim_quota,
   waitlist._insert_counted).
2. Record and gate. An appointment or a move writes its record first (`pending`, or
   `moving` with a token), then takes its place at the gate (`take_place`): a place at the
   gate always has a record that will commit or be released. A hold or an offer takes its
   place first, with its expiry by Redis's clock, then writes its record: a place whose
   record was never written frees itself at that expiry.
3. Still current: after both, the published version is read again (`still_published`; for
   an appointment in the same round trip as its gate step, just before it:
   `take_place(still_current=True)`, Gate.CHANGED); an admin edit fences first and then
   looks for every place in the slots it removes (appointments, moves under way, live
   holds and offers), so an owner is either seen by the edit or refused
   `409 schedule_changed` here, its place given back.
4. Commit: a conditional update on the state it expects (`pending` -> `confirmed`, the
   move's token, `held` -> `used`); the loser of a race gets 409 and gives back what it took.
5. Free: every end of an owner frees its place in the same step (`free_place`, the gate's
   scripts for a hold turned appointment or an offer passed on), or leaves a mark the
   reconciler frees (`pending` past PENDING_TIMEOUT_SECONDS, `moving`, `release_pending`, a
   hold past its time). A refused booking's place is freed whether or not it took one: a
   rebuild may have restored it.

- `take_place` takes a place at the gate (a new one, or a live hold's), rebuilding a day
  Redis lost from MongoDB first (`rebuild_day`); `free_place` gives an appointment's back.
- `find_visible` / `find_owned`: the records a caller may see.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import redis

from booking_service.adapters.capacity import Gate, SlotRecords
from booking_service.adapters.hold_store import kept_until_ms
from booking_service.adapters.repository import (
    ACTIVE,
    CONFIRMED,
    PENDING,
    PLACED,
    VISIBLE,
    epoch_ms,
    to_object_id,
)
from booking_service.core.context import Context
from shared.answers import CountedDays
from shared.auth import Principal
from shared.capacity_reads import Snapshot, held
from shared.clock import utcnow
from shared.configurations import Configuration
from shared.errors import (
    AppointmentNotFound,
    HospitalClosed,
    InvalidDate,
    OutsideBookingWindow,
    PractitionerInactive,
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
    Slot,
    parse_date,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Day:
    """A day a place is taken in: the read every booking, hold, move and offer opens with."""

    day: date
    snapshot: Snapshot
    configuration: Configuration
    schedule: Schedule
    practitioner: Practitioner | None

    @property
    def text(self) -> str:
        return self.day.isoformat()

    def kind(self, code: str | None) -> AppointmentType | None:
        """The appointment type `code` names (the hospital's default when None)."""
        return self.configuration.appointment_type(code)

    def check(self, slot_start: str, now: datetime, units: int | None = None) -> Slot:
        """The slot, bookable now; with `units`, also with room for them as the counts read
        show it (409 slot_full otherwise; the gate has the last word)."""
        slot = check_bookable(self.schedule, self.day, slot_start, now)
        counts = self.snapshot.counts[self.text]
        if units is not None and counts is not None:
            if taken_units(counts, slot_start) + units > slot.capacity:
                raise slot_full(slot_start, self.text)
        return slot


def slot_full(slot_start: str, day_text: str) -> SlotFull:
    return SlotFull(f"The {slot_start} slot on {day_text} is full")


def units_of(kind: AppointmentType | None) -> int:
    """The units a place of this type takes (one without types)."""
    return kind.units if kind is not None else 1


def open_day(ctx: Context, hospital_id: str, day_text: str, practitioner_id: str | None) -> Day:
    """The day to take a place in: its date checked (400), then `where_to_book`."""
    day = parse_date(day_text)
    if day is None:
        raise InvalidDate(f"{day_text!r} is not a date YYYY-MM-DD")
    return Day(day, *where_to_book(ctx, hospital_id, day_text, practitioner_id))


def read_day_counts(
    ctx: Context, hospital_id: str, dates: list[str], practitioner_id: str | None = None
) -> Snapshot:
    """The published version and the counts; 503 when Redis cannot answer (bookings need it)."""
    try:
        return ctx.reader.published_and_counts(hospital_id, dates, practitioner_id)
    except redis.RedisError as exc:
        raise ServiceUnavailable("Booking is unavailable: the capacity store is down") from exc


def still_published(ctx: Context, schedule: Schedule) -> bool:
    """Whether the configuration `schedule` comes from is still the published one (an edit
    fences it first: shared/versions.py); RedisError when Redis cannot answer."""
    return ctx.reader.published(schedule.hospital_id).version == schedule.version


def current_configuration(ctx: Context, hospital_id: str) -> Configuration:
    """The hospital's current configuration (for the reconciler)."""
    snapshot = read_day_counts(ctx, hospital_id, [])
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
    snapshot = read_day_counts(ctx, hospital_id, [day_text], practitioner_id)
    configuration = ctx.configurations.current(hospital_id, snapshot.published)
    if practitioner_id is None:
        return snapshot, configuration, configuration.schedule, None
    practitioner = configuration.practitioner(practitioner_id)
    if not practitioner.active:
        raise PractitionerInactive(f"{practitioner.name} is not taking appointments")
    return snapshot, configuration, practitioner.schedule, practitioner


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
    still_current: bool = False,
) -> tuple[int, int]:
    """The gate, for one appointment: a new place, or the place of its live hold.
    (Gate.TAKEN, serial) or (Gate.FULL, _); Gate.NOT_READY while a rebuild keeps failing.
    `still_current`: the step 3 look (`still_published`) goes with the gate's step, read just
    before it in the same round trip: Gate.CHANGED when the configuration is no longer the
    published one (the caller frees what the step may have taken)."""
    hospital_id, practitioner_id = schedule.hospital_id, schedule.practitioner_id
    day_text = day.isoformat()
    ttl = records_ttl(schedule, day, utcnow())
    expect = [schedule.version] if still_current else []

    def attempt() -> tuple[int, int]:
        # Only the first step reads the version: a rebuild's second step comes after it.
        version = expect.pop() if expect else None
        if held_place is not None:
            return ctx.capacity.take_hold(
                hospital_id, day_text, slot_start, held_place["field"], appointment_id, ttl,
                practitioner_id, expect_version=version,
            )  # fmt: skip
        return ctx.capacity.reserve(
            hospital_id, day_text, slot_start, appointment_id, capacity, ttl,
            units=units, practitioner_id=practitioner_id, expect_version=version,
        )  # fmt: skip

    return at_the_gate(ctx, schedule, day, attempt)


def at_the_gate(ctx: Context, schedule: Schedule, day: date, attempt: Callable[[], tuple]):
    """Run one gate step (`attempt`, a script's answer: its decision first); a day whose
    records Redis does not have (Gate.NOT_READY) is rebuilt from MongoDB, then asked again."""
    answer = attempt()
    if answer[0] == Gate.NOT_READY:
        rebuild_day(ctx, schedule, schedule.hospital_id, day)
        answer = attempt()
    return answer


def free_place(ctx: Context, doc: dict) -> bool:
    """Give an appointment's places back (best effort: the reconciler repeats lost ones);
    True when its places are free now (released, or held no more)."""
    try:
        ctx.capacity.free(
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


def rebuild_day(
    ctx: Context,
    schedule: Schedule,
    hospital_id: str,
    day: date,
    practitioner_id: str | None = None,
) -> bool:
    """Rebuild one hospital-day's Redis records from MongoDB (no-op when already built): the
    hospital's own, or the doctor's whose schedule `schedule` is. Confirmed appointments keep
    their serials; then, oldest first while they fit: appointments written ahead of their
    place and appointments being moved here; live holds (not those an appointment took) first
    and whether or not they fit: each had its place, which an edit lowering the capacity
    meanwhile does not take away (as it does not while Redis keeps it).
    `practitioner_id`: a doctor the configuration no longer has (a forced edit removed them),
    `schedule` then the hospital's own: only the places appointments hold are restored (no
    slot of theirs is known), so the counts stay true if the doctor comes back."""
    day_text = day.isoformat()
    if practitioner_id is None:
        practitioner_id = schedule.practitioner_id
        capacities = {s.start: s.capacity for s in schedule.configured_slots(day)}
    else:
        capacities = {}
    held: dict[str, list] = defaultdict(list)
    # slot -> [(created, field, units, expiry, always)]: always 1 for a live hold
    waiting: dict[str, list] = defaultdict(list)
    taken_holds = set()
    now = utcnow()
    live_holds = ctx.holds.live_on(hospital_id, day_text, epoch_ms(now))
    live_ids = {str(doc["_id"]) for doc in live_holds}
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
                    # booking a live hold: its place is the hold's (or already its own),
                    # restored as the appointment's whether or not it fits, as the hold's is
                    always = int(doc.get("hold_id") in live_ids)
                    waiting[doc["slot_start"]].append((created, str(doc["_id"]), units, 0, always))
        move = doc.get("moving")  # (a move within the day is both held here and moving here)
        if (
            move
            and doc["status"] == CONFIRMED
            and (move["hospital_id"], move["date"]) == (hospital_id, day_text)
            and move.get("practitioner_id") == practitioner_id
        ):
            started = datetime.fromtimestamp(move["started_ms"] / 1000, tz=UTC)
            waiting[move["slot_start"]].append((started, str(doc["_id"]), move["units"], 0, 0))
    for doc in live_holds:
        if doc.get("practitioner_id") == practitioner_id and str(doc["_id"]) not in taken_holds:
            created = datetime.fromtimestamp(doc["created_ms"] / 1000, tz=UTC)
            waiting[doc["slot_start"]].append(
                (created, doc["field"], doc["units"], kept_until_ms(doc), 1)
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


def _oldest(entry: tuple) -> tuple[bool, datetime]:
    """Live holds first (each had its place: restored whether or not it fits, so the others
    fit in what is left), then oldest first."""
    created = entry[0]
    return (not entry[4], created if created.tzinfo else created.replace(tzinfo=UTC))


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
