"""Expand a hospital's schedule configuration into the slots of a date. Pure: no I/O.

A configuration is the `Hospital` document of the API contract. `compile_schedule` turns
it once into an immutable `Schedule`; `Schedule.day(date, now)` answers a date. Weekday
keys are "0".."6" with 0 = Sunday; "today" and "now" are taken in the hospital's zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

TIME_RE = re.compile(r"\A([01][0-9]|2[0-3]):([0-5][0-9])\Z")
DATE_RE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")

OPEN = "open"
CLOSED = "closed"
PAST = "past"
BEYOND_WINDOW = "beyond_booking_window"
NOT_SCHEDULED = "not_scheduled"

# Bound of a Schedule's cache of dates: only dates inside the booking window (at most 367)
# are cached, so this is a guard, not a limit normal use reaches.
_MAX_UNSTARTED_DAYS = 1024


# The dates the system reasons about. Every date arithmetic it does (a calendar of up to 92
# days from `start`, records that live until three days after their date, a slot's instant
# in any time zone) stays inside Python's calendar for these, so no date a client names can
# overflow it: 9999-12-31 is `400 invalid_date`, not a 500.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(9998, 12, 31)


def parse_date(text: str) -> date | None:
    """A `YYYY-MM-DD` string as a date from 1900-01-01 to 9998-12-31, else None."""
    return _parse_date(text) if isinstance(text, str) else None


# A pure function of the text, cached: a bulk request parses the same few dates, request
# after request.
@lru_cache(maxsize=4096)
def _parse_date(text: str) -> date | None:
    if not DATE_RE.match(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if EARLIEST_DATE <= day <= LATEST_DATE else None


def minutes(hhmm: str) -> int:
    """Minutes since midnight of a valid `HH:MM`."""
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def display_text(start: str, end: str) -> str:
    """`17:00`, `18:00` -> `05:00 PM - 06:00 PM`, as the original system showed slots."""
    return f"{_twelve_hour(start)} - {_twelve_hour(end)}"


def _twelve_hour(hhmm: str) -> str:
    hour, minute = int(hhmm[:2]), hhmm[3:]
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour % 12) or 12:02d}:{minute} {suffix}"


def js_weekday(day: date) -> int:
    """Weekday with 0 = Sunday (JavaScript's `Date.getDay()`)."""
    return (day.weekday() + 1) % 7


@dataclass(frozen=True)
class Slot:
    """One slot of a day as the configuration defines it."""

    start: str
    end: str
    display: str
    capacity: int

    def as_dict(self) -> dict:
        """The slot's configuration fields."""
        return {"start": self.start, "end": self.end, "display": self.display}


class ValueKey:
    """Values as a dict key whose hash is worked out once (a tuple's is, on every lookup)."""

    __slots__ = ("values", "_hash")

    def __init__(self, values: tuple):
        self.values = values
        self._hash = hash(values)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ValueKey)
            and self._hash == other._hash
            and (self.values == other.values)
        )


# The one instance of each day key (Day.key), bounded.
_DAY_KEYS: dict[ValueKey, ValueKey] = {}
_MAX_DAY_KEYS = 8192


@dataclass(frozen=True)
class Day:
    """A date expanded: its status and, when open, its slots with `bookable` flags."""

    date: date
    weekday: int
    status: str
    reason: str | None
    slots: tuple[Slot, ...]
    started: tuple[bool, ...]
    override: bool = False

    @cached_property
    def iso(self) -> str:
        """The date as `YYYY-MM-DD`."""
        return self.date.isoformat()

    @cached_property
    def key(self) -> ValueKey:
        """Everything an answer about this day depends on but its counts: one instance for
        equal values (so a cache lookup by it is an identity check, not a comparison of every
        slot, even when two schedules, say a hospital's and a doctor's, have equal days)."""
        key = ValueKey((self.date, self.status, self.reason, self.slots, self.started))
        known = _DAY_KEYS.get(key)
        if known is None:
            if len(_DAY_KEYS) >= _MAX_DAY_KEYS:
                _DAY_KEYS.clear()
            known = _DAY_KEYS[key] = key
        return known

    def slot(self, start: str) -> Slot | None:
        """The slot that starts at `start`, if the day has one."""
        for slot in self.slots:
            if slot.start == start:
                return slot
        return None

    def has_started(self, start: str) -> bool:
        """True when the slot starting at `start` has begun (only ever on today)."""
        for slot, started in zip(self.slots, self.started, strict=True):
            if slot.start == start:
                return started
        return False


@dataclass(frozen=True)
class Schedule:
    """A hospital's configuration, compiled for fast repeated expansion."""

    hospital_id: str
    tz: ZoneInfo
    version: int
    advance_booking_days: int
    weekdays: dict[int, tuple[Slot, ...]]
    overrides: dict[date, tuple[bool, str | None, tuple[Slot, ...]]]
    # None: the hospital's own schedule; else the doctor's whose schedule this is.
    practitioner_id: str | None = None
    # The dates of the booking window as they are before their first slot starts, by date
    # ordinal, built on first use: a pure function of (this configuration version, date).
    # (A calendar then looks its dates up instead of converting `now` and building a Day each.)
    _unstarted_days: dict[int, Day] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def today(self, now: datetime) -> date:
        """Today's date in the hospital's zone at the instant `now` (aware)."""
        return now.astimezone(self.tz).date()

    def day(self, day: date, now: datetime) -> Day:
        """Expand `day` as seen at the instant `now`."""
        return self._expand(day.toordinal(), self.today(now).toordinal(), now)

    def days(self, start: date, count: int, now: datetime) -> list[Day]:
        """Expand `count` consecutive dates from `start`."""
        first, today = start.toordinal(), self.today(now).toordinal()
        return [self._expand(first + i, today, now) for i in range(count)]

    def expand(self, dates: Iterable[date], now: datetime) -> list[Day]:
        """Expand each of `dates` as seen at the instant `now`."""
        today = self.today(now).toordinal()
        return [self._expand(day.toordinal(), today, now) for day in dates]

    def _expand(self, ordinal: int, today: int, now: datetime) -> Day:
        offset = ordinal - today
        if offset < 0:
            day = date.fromordinal(ordinal)
            return Day(day, js_weekday(day), PAST, None, (), ())
        if offset > self.advance_booking_days:
            day = date.fromordinal(ordinal)
            return Day(day, js_weekday(day), BEYOND_WINDOW, None, (), ())
        planned = self._unstarted_days.get(ordinal)
        if planned is None:
            planned = self._unstarted_day(date.fromordinal(ordinal))
        if offset == 0 and planned.slots:
            # Instants, not wall clocks: when the clocks go back, a slot that started in the
            # first pass of the repeated hour stays started in the second.
            started = tuple(now >= self.starts_at(planned.date, s.start) for s in planned.slots)
            return replace(planned, started=started)
        return planned

    def _unstarted_day(self, day: date) -> Day:
        """`day` inside the booking window, none of its slots started (then cached)."""
        weekday = js_weekday(day)
        override = self.overrides.get(day)
        if override is not None:
            closed, reason, slots = override
            if closed or not slots:
                planned = Day(day, weekday, CLOSED, reason or "closed", (), (), override=True)
            else:
                planned = Day(day, weekday, OPEN, None, slots, (False,) * len(slots), override=True)
        else:
            slots = self.weekdays.get(weekday, ())
            if slots:
                planned = Day(day, weekday, OPEN, None, slots, (False,) * len(slots))
            else:
                planned = Day(day, weekday, CLOSED, NOT_SCHEDULED, (), ())
        if len(self._unstarted_days) >= _MAX_UNSTARTED_DAYS:
            self._unstarted_days.clear()
        self._unstarted_days[day.toordinal()] = planned
        return planned

    def configured_slots(self, day: date) -> tuple[Slot, ...]:
        """The slots the configuration gives `day`, whatever the booking window says."""
        override = self.overrides.get(day)
        if override is not None:
            closed, _, slots = override
            return () if closed else slots
        return self.weekdays.get(js_weekday(day), ())

    def starts_at(self, day: date, hhmm: str) -> datetime:
        """The instant (UTC) a slot of `day` starts, its wall time read in the hospital's zone."""
        return _starts_at(self.tz, day, hhmm)

    def expire_at(self, day: date) -> int:
        """Unix time two days after `day` ends in the hospital's zone: when its records expire."""
        return _expire_at(self.tz, day)


# Pure functions of (zone, date[, wall time]), cached: they cost a few zoneinfo conversions
# (more on the days the clocks change), asked for every booking and every "today".
@lru_cache(maxsize=4096)
def _starts_at(tz: ZoneInfo, day: date, hhmm: str) -> datetime:
    local = datetime.combine(day, datetime.min.time(), tzinfo=tz).replace(
        hour=int(hhmm[:2]), minute=int(hhmm[3:])
    )
    # The slot starts the first moment the wall clock reads or passes its time: for a
    # repeated wall time (clocks going back) the earlier reading; for a skipped one
    # (clocks going forward) the moment of the jump.
    first, second = sorted((local.astimezone(UTC), local.replace(fold=1).astimezone(UTC)))
    if first.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return first
    moment = first
    while moment < second and moment.astimezone(tz).replace(tzinfo=None) < local.replace(
        tzinfo=None
    ):
        moment += timedelta(minutes=1)
    return moment


@lru_cache(maxsize=1024)
def _expire_at(tz: ZoneInfo, day: date) -> int:
    end = datetime.combine(day + timedelta(days=3), datetime.min.time(), tzinfo=tz)
    return int(end.timestamp())


def _compile_day(raw: dict | None, default_capacity: int, forced: int | None) -> tuple[Slot, ...]:
    """A day's slots: those listed and those its sessions generate, in order of start.
    `forced`: a capacity that replaces every slot's (a doctor's own, over the hospital's hours)."""
    raw = raw or {}
    slots = [
        Slot(
            start=s["start"],
            end=s["end"],
            display=s.get("display") or display_text(s["start"], s["end"]),
            capacity=int(forced or s.get("capacity") or default_capacity),
        )
        for s in raw.get("slots") or ()
    ]
    for session in raw.get("sessions") or ():
        capacity = int(forced or session.get("capacity") or default_capacity)
        slots.extend(
            Slot(start, end, display_text(start, end), capacity)
            for start, end in session_slots(session)
        )
    return tuple(sorted(slots, key=lambda s: s.start))


def session_slots(session: dict) -> list[tuple[str, str]]:
    """The (start, end) wall times a session generates: consecutive slots of `slot_minutes`
    from `start`, as many as fit before (or exactly at) `end`."""
    step = int(session["slot_minutes"])
    first, last = minutes(session["start"]), minutes(session["end"])
    return [(_hhmm(at), _hhmm(at + step)) for at in range(first, last - step + 1, step)]


def _hhmm(total: int) -> str:
    return f"{total // 60:02d}:{total % 60:02d}"


Override = tuple[bool, str | None, tuple[Slot, ...]]


def _compile_weekdays(raw: dict | None, capacity: int, forced: int | None = None):
    return {int(key): _compile_day(value, capacity, forced) for key, value in (raw or {}).items()}


def _compile_overrides(raw: dict | None, capacity: int, forced: int | None = None):
    overrides: dict[date, Override] = {}
    for key, value in (raw or {}).items():
        overrides[date.fromisoformat(key)] = (
            bool(value.get("closed")),
            value.get("reason"),
            _compile_day(value, capacity, forced),
        )
    return overrides


def compile_schedule(hospital: dict) -> Schedule:
    """Compile a (valid) Hospital document into the hospital's own Schedule."""
    capacity = int(hospital.get("max_appointments_per_slot") or 1)
    return Schedule(
        hospital_id=hospital["hospital_id"],
        tz=ZoneInfo(hospital.get("timezone") or "UTC"),
        version=int(hospital.get("version") or 0),
        advance_booking_days=int(hospital.get("advance_booking_days", 0)),
        weekdays=_compile_weekdays(hospital.get("schedule"), capacity),
        overrides=_compile_overrides(hospital.get("date_overrides"), capacity),
    )


@dataclass(frozen=True)
class Practitioner:
    """A doctor of a hospital, with the schedule they work."""

    practitioner_id: str
    name: str
    specialty: str | None
    active: bool
    schedule: Schedule

    def summary(self) -> dict:
        """The doctor as the practitioners list shows them."""
        return {
            "practitioner_id": self.practitioner_id,
            "name": self.name,
            "specialty": self.specialty,
            "active": self.active,
        }


def compile_practitioner(hospital: dict, hospital_schedule: Schedule, pid: str, raw: dict):
    """A doctor's Schedule, inherited from the hospital's (API.md, "Doctors"):
    - with a `schedule` of their own, the doctor works it, at their own
      `max_appointments_per_slot` (else the hospital's) where a slot names no capacity;
    - without one, the doctor works the hospital's weekly schedule and its date overrides,
      each slot at the doctor's `max_appointments_per_slot` when given, else as the
      hospital's slot (its own capacity or the hospital's);
    - the doctor's own date overrides replace those days; the hospital's closed dates close
      every doctor, whatever the doctor's overrides say (the building is shut).
    """
    hospital_capacity = int(hospital.get("max_appointments_per_slot") or 1)
    own = raw.get("max_appointments_per_slot")
    if "schedule" in raw:
        capacity = int(own or hospital_capacity)
        weekdays = _compile_weekdays(raw["schedule"], capacity)
        overrides = {}
    else:
        capacity = hospital_capacity
        weekdays = _compile_weekdays(hospital.get("schedule"), capacity, own)
        overrides = _compile_overrides(hospital.get("date_overrides"), capacity, own)
    overrides.update(_compile_overrides(raw.get("date_overrides"), capacity))
    overrides.update(
        (day, override) for day, override in hospital_schedule.overrides.items() if override[0]
    )
    schedule = replace(
        hospital_schedule, weekdays=weekdays, overrides=overrides, practitioner_id=pid
    )
    return Practitioner(
        practitioner_id=pid,
        name=raw.get("name") or pid,
        specialty=raw.get("specialty"),
        active=bool(raw.get("active", True)),
        schedule=schedule,
    )


@dataclass(frozen=True)
class AppointmentType:
    """A kind of visit and how many units of a slot's capacity it takes."""

    code: str
    name: str
    units: int
    minutes: int | None


def compile_appointment_types(hospital: dict) -> dict[str, AppointmentType]:
    """A hospital's appointment types by code."""
    return {
        code: AppointmentType(code, raw.get("name") or code, int(raw["units"]), raw.get("minutes"))
        for code, raw in (hospital.get("appointment_types") or {}).items()
    }


def iso_utc(moment: datetime) -> str:
    """An instant as ISO 8601 UTC with `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_ms(moment: datetime) -> str:
    """An instant as ISO 8601 UTC with milliseconds and `Z`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
