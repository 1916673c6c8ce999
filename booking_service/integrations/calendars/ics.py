"""iCalendar (RFC 5545) documents of appointments, made with the `icalendar` library. Pure:
no I/O, no clock (every instant comes from the documents or the caller).

What a calendar says, and why:
- **No METHOD.** A download or a subscribed feed is calendar data, not an iTIP (RFC 5546)
  scheduling message: with `METHOD:PUBLISH` the Content-Type would have to carry
  `method=PUBLISH` too (RFC 5545 3.7.2), and a PUBLISH event needs an ORGANIZER (RFC 5546
  3.2.1), which a clinic's slot does not have. Without METHOD, clients import the object and
  update an event they know by its UID when its SEQUENCE is higher; a cancellation is the
  same event with `STATUS:CANCELLED` (not an iTIP CANCEL).
- **UID** `<appointment_id>@slotbook`: the same for the appointment's whole life (a
  reschedule keeps its id, so its UID).
- **SEQUENCE** the appointment's `version` (0 when missing): it grows by one with every change
  (confirm, cancel, reschedule, each visit step), so a client always takes the newest.
- **STATUS** `CANCELLED` once cancelled, else `CONFIRMED` (through the visit too: the
  appointment took place as booked, whatever the desk recorded).
- **DTSTAMP** = LAST-MODIFIED = the last change of the appointment (`updated_ms`): without
  METHOD, DTSTAMP is when the information was last revised (RFC 5545 3.8.7.2), so the same
  appointment gives the same bytes until it changes.
- **DTSTART/DTEND** the slot's wall times in the hospital's zone, with TZID and a VTIMEZONE,
  at the instants the system itself uses (`Schedule.starts_at`): a wall time the clocks skip
  is written as the moment of the jump, a repeated one is its first pass (what RFC 5545 says
  a TZID time means). An end that does not come after the start (a slot inside the skipped
  hour) is left out: the event then lasts no time (RFC 5545 3.6.1).
- No patient name or phone: SUMMARY says where, with whom and the serial; CLASS:PRIVATE.

The VTIMEZONE is the library's (`Timezone.from_tzid`) over the dates the calendar covers, with
one change: icalendar 7.3.2 looks for the zone's offset changes in steps of 64 days first, and
misses a change undone within one step, such as the hour Morocco (Africa/Casablanca) gives up
for Ramadan every year (about 30 days); here the first step is 8 days. The search runs past
the last date until the zone's next change (to year 9999 for a zone without any: 75 ms for
Asia/Dhaka), so each VTIMEZONE is made once per (zone, dates) and kept (at most 1024).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from icalendar import Calendar, Event, Timezone, vDuration, vText

from booking_service.adapters.repository import CANCELLED
from shared.slots import Schedule, compile_schedule

PRODID = "-//slotbook//appointments//EN"
UID_DOMAIN = "slotbook"
ICS_CONTENT_TYPE = "text/calendar; charset=utf-8"
# How often a subscribed calendar should read its feed again (RFC 7986 REFRESH-INTERVAL, and
# Outlook's X-PUBLISHED-TTL).
FEED_REFRESH = timedelta(minutes=15)


@dataclass(frozen=True)
class Venue:
    """Where appointments take place: the hospital's name, and its schedule for its zone and
    for the instant a wall time stands for."""

    name: str
    schedule: Schedule

    @classmethod
    def of(cls, hospital: dict, schedule: Schedule | None = None) -> Venue:
        """The venue of a hospital's configuration document (its compiled schedule when the
        caller has it)."""
        return cls(
            name=hospital.get("hospital_name") or hospital["hospital_id"],
            schedule=schedule if schedule is not None else compile_schedule(hospital),
        )

    @property
    def tzid(self) -> str:
        """The hospital's IANA time zone."""
        return self.schedule.tz.key


class _WeekByWeekTimezone(Timezone):
    """icalendar's VTIMEZONE, searching the offset changes from steps of 8 days, not 64 (no
    zone undoes a change within 8 days; Morocco's Ramadan hour lasts about 30)."""

    _from_tzinfo_skip_search = [
        step for step in Timezone._from_tzinfo_skip_search if step <= timedelta(days=8)
    ]


@lru_cache(maxsize=1024)
def vtimezone(tzid: str, first: date, last: date) -> Timezone:
    """The VTIMEZONE of an IANA zone, right from `first` to `last` (one instance per value:
    calendars only read it)."""
    return _WeekByWeekTimezone.from_tzid(tzid, first_date=first, last_date=last)


def event_uid(appointment_id: object) -> str:
    """The UID of an appointment's event, for its whole life."""
    return f"{appointment_id}@{UID_DOMAIN}"


def sequence(doc: dict) -> int:
    """The appointment's revision: its `version`, 0 when it has none."""
    return max(0, int(doc.get("version") or 0))


def ics_status(status: str) -> str:
    """CANCELLED for a cancelled appointment, CONFIRMED for every other visible one."""
    return "CANCELLED" if status == CANCELLED else "CONFIRMED"


def summary(doc: dict, venue: Venue) -> str:
    """`Appointment at <hospital>[ with <doctor>][, serial <n>]`."""
    text = f"Appointment at {venue.name}"
    doctor = (doc.get("practitioner") or {}).get("name")
    if doctor:
        text += f" with {doctor}"
    if doc.get("serial"):
        text += f", serial {doc['serial']}"
    return text


def _utc(value: object) -> datetime | None:
    """A stored instant as an aware UTC datetime to the second (naive ones are UTC)."""
    if isinstance(value, bool) or not isinstance(value, int | float | datetime):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def last_revised(doc: dict) -> datetime | None:
    """When the appointment last changed: `updated_ms`, else its creation."""
    return _utc(doc.get("updated_ms")) or _utc(doc.get("created_at"))


def slot_times(doc: dict, schedule: Schedule) -> tuple[datetime, datetime | None]:
    """The slot's start and end in the hospital's zone (end None when not after the start)."""
    day = date.fromisoformat(doc["date"])
    start = schedule.starts_at(day, doc["slot"]["start"]).astimezone(schedule.tz)
    end = schedule.starts_at(day, doc["slot"]["end"]).astimezone(schedule.tz)
    return start, (end if end > start else None)


def appointment_event(doc: dict, venue: Venue) -> Event:
    """The VEVENT of one appointment document (as stored)."""
    start, end = slot_times(doc, venue.schedule)
    revised = last_revised(doc)
    return Event.new(
        uid=event_uid(doc["_id"]),
        sequence=sequence(doc),
        status=ics_status(doc["status"]),
        start=start,
        end=end,
        stamp=revised,
        last_modified=revised,
        created=_utc(doc.get("created_at")),
        summary=summary(doc, venue),
        location=venue.name,
        classification="PRIVATE",
    )


def appointment_calendar(doc: dict, venue: Venue) -> bytes:
    """One VCALENDAR with the appointment's VEVENT and the hospital's VTIMEZONE."""
    day = date.fromisoformat(doc["date"])
    zone = vtimezone(venue.tzid, day - timedelta(days=1), day + timedelta(days=2))
    calendar = Calendar.new(
        prodid=PRODID,
        uid=f"{doc['_id']}.calendar@{UID_DOMAIN}",
        subcomponents=[zone, appointment_event(doc, venue)],
    )
    return calendar.to_ical()


def feed_calendar(
    docs: Iterable[dict],
    venue: Venue,
    *,
    name: str,
    uid: str,
    first: date,
    last: date,
) -> bytes:
    """A subscription feed: one VEVENT per appointment document (dated `first`..`last`), the
    hospital's VTIMEZONE always (so an empty feed is a valid calendar too)."""
    zone = vtimezone(venue.tzid, first - timedelta(days=1), last + timedelta(days=2))
    calendar = Calendar.new(
        prodid=PRODID,
        uid=uid,
        # vText: icalendar 7.3 writes NAME / X-WR-CALNAME / X-WR-CALDESC given as plain str
        # unescaped (they are TEXT: a ';' or ',' in a name must be escaped).
        name=vText(name),
        description=vText(f"Appointments at {venue.name}, today and the booking window ahead"),
        refresh_interval=FEED_REFRESH,
        subcomponents=[zone, *(appointment_event(doc, venue) for doc in docs)],
    )
    # RFC 7986 5.7: REFRESH-INTERVAL carries VALUE=DURATION (the library leaves it out).
    calendar["REFRESH-INTERVAL"].params["VALUE"] = "DURATION"
    calendar.add("X-WR-TIMEZONE", venue.tzid)
    calendar.add("X-PUBLISHED-TTL", vDuration(FEED_REFRESH))
    return calendar.to_ical()
