"""iCalendar (API.md, "Integrations"): the calendars built from appointment documents
(booking_service/integrations/calendars/ics.py, pure), the feed secrets and use cases over fakes
(booking_service/integrations/calendars/service.py), and the HTTP layer with Flask's test client
(booking_service/integrations/calendars/routes.py). Every calendar is parsed back with icalendar."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

import booking_service
from booking_service.core import booking, moves
from booking_service.integrations.calendars import routes as calendars
from booking_service.integrations.calendars import service as calendars_service
from booking_service.integrations.calendars.ics import (
    ICS_CONTENT_TYPE,
    Venue,
    appointment_calendar,
    event_uid,
    feed_calendar,
)
from booking_service.integrations.calendars.service import (
    FeedNotFound,
    is_token,
    new_token,
    token_hash,
    token_matches,
)
from shared.auth import Principal, issue_token
from shared.config import Config
from shared.errors import HospitalNotFound, PractitionerNotFound
from shared.slots import compile_schedule
from tests.unit.fakes import fake_context

NY = "America/New_York"
PATIENT = Principal("p1", "p1@example.com", "patient")
OTHER = Principal("p2", "p2@example.com", "patient")
ADMIN = Principal("a1", "a1@example.com", "admin")


def hospital(**changes) -> dict:
    doc = {
        "hospital_id": "h1",
        "hospital_name": "Gomoti Hospital",
        "timezone": "Asia/Dhaka",
        "schedule": {
            str(d): {
                "slots": [{"start": "17:00", "end": "18:00"}, {"start": "18:00", "end": "19:00"}]
            }
            for d in range(7)
        },
        "max_appointments_per_slot": 3,
        "advance_booking_days": 10,
        "date_overrides": {},
        "practitioners": {"helal": {"name": "Dr. Helal Uddin", "specialty": "Medicine"}},
        "version": 1,
    }
    doc.update(changes)
    return doc


def appointment(**changes) -> dict:
    """An appointment document as the booking service stores it."""
    doc = {
        "_id": ObjectId("6a0000000000000000000001"),
        "hospital_id": "h1",
        "date": "2026-11-28",
        "slot_start": "17:00",
        "slot": {"start": "17:00", "end": "18:00", "display": "05:00 PM - 06:00 PM"},
        "serial": 7,
        "patient": {"name": "Rahim Uddin", "phone": "+8801712345678"},
        "booked_by": "p1",
        "status": "confirmed",
        "created_at": datetime(2026, 11, 20, 3, 0, 0, 123000, tzinfo=UTC),
        "updated_ms": 1_763_611_200_500,  # 2025-11-20T04:00:00.5Z
        "version": 1,
    }
    doc.update(changes)
    return doc


def parse(body: bytes) -> Calendar:
    calendar = Calendar.from_ical(body)
    assert calendar.name == "VCALENDAR"
    return calendar


def only_event(calendar: Calendar):
    (event,) = calendar.events
    return event


def observance_offset(calendar: Calendar, tzid: str, wall: datetime) -> timedelta:
    """What the calendar's own VTIMEZONE says the UTC offset is at a local wall time: the
    TZOFFSETTO of the latest onset (DTSTART or RDATE) at or before it. Read from the
    VTIMEZONE's text, not from zoneinfo, so it checks what a client that trusts the
    VTIMEZONE sees."""
    (zone,) = [tz for tz in calendar.timezones if str(tz["TZID"]) == tzid]
    onsets = []
    for observance in zone.subcomponents:
        offset = observance["TZOFFSETTO"].td
        onsets.append((observance["DTSTART"].dt.replace(tzinfo=None), offset))
        rdates = observance.get("RDATE", [])
        for rdate in rdates if isinstance(rdates, list) else [rdates]:
            onsets.extend((when[0].replace(tzinfo=None), offset) for when in rdate.dts)
    before = [onset for onset in onsets if onset[0] <= wall.replace(tzinfo=None)]
    assert before, f"the VTIMEZONE does not cover {wall}"
    return max(before, key=lambda onset: onset[0])[1]


# --- One appointment's calendar -------------------------------------------------------------


def test_a_confirmed_appointment_is_one_event_in_the_hospitals_zone():
    venue = Venue.of(hospital())
    calendar = parse(appointment_calendar(appointment(), venue))
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == "-//slotbook//appointments//EN"
    assert "METHOD" not in calendar  # calendar data, not an iTIP message (see calendars_ics)
    event = only_event(calendar)
    assert str(event["UID"]) == "6a0000000000000000000001@slotbook"
    assert event["SEQUENCE"] == 1 and str(event["STATUS"]) == "CONFIRMED"
    assert event["DTSTART"].params["TZID"] == "Asia/Dhaka"
    assert event.start == datetime(2026, 11, 28, 17, 0, tzinfo=ZoneInfo("Asia/Dhaka"))
    assert event.end == datetime(2026, 11, 28, 18, 0, tzinfo=ZoneInfo("Asia/Dhaka"))
    assert [str(tz["TZID"]) for tz in calendar.timezones] == ["Asia/Dhaka"]
    assert calendar.get_missing_tzids() == set()
    assert observance_offset(calendar, "Asia/Dhaka", event.start) == timedelta(hours=6)
    # DTSTAMP and LAST-MODIFIED: the appointment's last change, to the second.
    assert event["DTSTAMP"].dt == datetime(2025, 11, 20, 4, 0, 0, tzinfo=UTC)
    assert event["LAST-MODIFIED"].dt == event["DTSTAMP"].dt
    assert event["CREATED"].dt == datetime(2026, 11, 20, 3, 0, 0, tzinfo=UTC)
    assert str(event["SUMMARY"]) == "Appointment at Gomoti Hospital, serial 7"
    assert str(event["LOCATION"]) == "Gomoti Hospital"
    assert str(event["CLASS"]) == "PRIVATE"


def test_the_calendar_names_no_patient():
    body = appointment_calendar(appointment(), Venue.of(hospital()))
    assert b"Rahim" not in body and b"8801712345678" not in body


def test_the_same_appointment_gives_the_same_bytes():
    venue = Venue.of(hospital())
    assert appointment_calendar(appointment(), venue) == appointment_calendar(appointment(), venue)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("confirmed", "CONFIRMED"),
        ("checked_in", "CONFIRMED"),
        ("in_consultation", "CONFIRMED"),
        ("completed", "CONFIRMED"),
        ("no_show", "CONFIRMED"),
        ("cancelled", "CANCELLED"),
    ],
)
def test_status_is_cancelled_only_once_cancelled(status, expected):
    doc = appointment(status=status, version=4)
    event = only_event(parse(appointment_calendar(doc, Venue.of(hospital()))))
    assert (str(event["STATUS"]), event["SEQUENCE"]) == (expected, 4)


def test_sequence_is_zero_without_a_version_and_the_summary_names_the_doctor():
    doc = appointment(practitioner={"practitioner_id": "helal", "name": "Dr. Helal Uddin"})
    del doc["version"]
    event = only_event(parse(appointment_calendar(doc, Venue.of(hospital()))))
    assert event["SEQUENCE"] == 0
    assert str(event["SUMMARY"]) == (
        "Appointment at Gomoti Hospital with Dr. Helal Uddin, serial 7"
    )


def test_a_rescheduled_appointment_keeps_its_uid_with_a_higher_sequence():
    venue = Venue.of(hospital())
    before = only_event(parse(appointment_calendar(appointment(), venue)))
    moved = appointment(
        date="2026-11-29",
        slot_start="18:00",
        slot={"start": "18:00", "end": "19:00", "display": "06:00 PM - 07:00 PM"},
        version=2,
    )
    after = only_event(parse(appointment_calendar(moved, venue)))
    assert after["UID"] == before["UID"]
    assert after["SEQUENCE"] > before["SEQUENCE"]
    assert after.start == datetime(2026, 11, 29, 18, 0, tzinfo=ZoneInfo("Asia/Dhaka"))


def test_names_with_text_delimiters_are_escaped_and_read_back():
    name = "Clinic; Dept, A\\B — ঢাকা"
    body = appointment_calendar(appointment(), Venue.of(hospital(hospital_name=name)))
    assert b"Clinic\\; Dept\\, A\\\\B" in body
    event = only_event(parse(body))
    assert str(event["LOCATION"]) == name
    assert str(event["SUMMARY"]) == f"Appointment at {name}, serial 7"


# --- Time zones with daylight saving time ---------------------------------------------------


@pytest.mark.parametrize(
    ("day", "offset_hours"),
    [("2026-01-15", -5), ("2026-07-15", -4), ("2026-03-09", -4), ("2026-11-02", -5)],
)
def test_new_york_appointments_carry_the_offset_of_their_date(day, offset_hours):
    venue = Venue.of(hospital(timezone=NY))
    calendar = parse(appointment_calendar(appointment(date=day), venue))
    event = only_event(calendar)
    assert event["DTSTART"].params["TZID"] == NY
    assert event.start.replace(tzinfo=None) == datetime.fromisoformat(f"{day}T17:00")
    assert event.start.utcoffset() == timedelta(hours=offset_hours)
    assert observance_offset(calendar, NY, event.start) == timedelta(hours=offset_hours)


def test_a_slot_in_the_skipped_hour_starts_at_the_jump():
    # 2026-03-08, New York: 02:00 EST becomes 03:00 EDT. The system's slot starts at the
    # jump (shared.slots.Schedule.starts_at); a slot that ends at 03:00 then lasts no time,
    # so it has no DTEND (RFC 5545 3.6.1).
    venue = Venue.of(hospital(timezone=NY))
    doc = appointment(date="2026-03-08", slot={"start": "02:30", "end": "03:30"})
    calendar = parse(appointment_calendar(doc, venue))
    event = only_event(calendar)
    assert event.start.replace(tzinfo=None) == datetime(2026, 3, 8, 3, 0)
    assert event.start.utcoffset() == timedelta(hours=-4)
    assert event.end.replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)
    assert observance_offset(calendar, NY, event.start) == timedelta(hours=-4)
    empty = appointment(date="2026-03-08", slot={"start": "02:00", "end": "03:00"})
    assert "DTEND" not in only_event(parse(appointment_calendar(empty, venue)))


def test_a_slot_in_the_repeated_hour_is_its_first_pass():
    venue = Venue.of(hospital(timezone=NY))
    doc = appointment(date="2026-11-01", slot={"start": "01:30", "end": "02:30"})
    calendar = parse(appointment_calendar(doc, venue))
    event = only_event(calendar)
    assert event.start.utcoffset() == timedelta(hours=-4)  # EDT: the first 01:30
    assert event.end.utcoffset() == timedelta(hours=-5)
    # (Python subtracts wall times within one zone: compare the instants.)
    assert event.end.astimezone(UTC) - event.start.astimezone(UTC) == timedelta(hours=2)
    assert observance_offset(calendar, NY, event.start) == timedelta(hours=-4)


def test_the_vtimezone_knows_moroccos_ramadan_hour():
    # Casablanca is +01 but +00 from 2027-02-07 to 2027-03-14 (Ramadan). icalendar 7.3.2's
    # own search steps 64 days and finds neither change (calendars_ics._WeekByWeekTimezone).
    venue = Venue.of(hospital(timezone="Africa/Casablanca"))
    for day, hours in (("2027-02-01", 1), ("2027-02-20", 0), ("2027-03-20", 1)):
        calendar = parse(appointment_calendar(appointment(date=day), venue))
        event = only_event(calendar)
        assert event.start.utcoffset() == timedelta(hours=hours), day
        assert observance_offset(calendar, "Africa/Casablanca", event.start) == timedelta(
            hours=hours
        ), day


def test_a_utc_hospital_writes_utc_times():
    # RFC 5545 3.2.19: a UTC time carries no TZID.
    event = only_event(
        parse(appointment_calendar(appointment(), Venue.of(hospital(timezone="UTC"))))
    )
    assert event.start == datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    assert "TZID" not in event["DTSTART"].params


ZONES = [
    "Asia/Dhaka",
    NY,
    "Europe/London",
    "Australia/Lord_Howe",  # a 30-minute shift
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Africa/Casablanca",
]


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2000, 1, 2), max_value=date(2037, 12, 30)),
    start=st.integers(min_value=0, max_value=23 * 60),
    length=st.integers(min_value=5, max_value=240),
    version=st.integers(min_value=0, max_value=10_000),
)
def test_any_slot_in_any_zone_reads_back_at_the_systems_instant(zone, day, start, length, version):
    end = min(start + length, 23 * 60 + 59)
    hhmm = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, end)]
    venue = Venue.of(hospital(timezone=zone))
    doc = appointment(
        date=day.isoformat(), slot={"start": hhmm[0], "end": hhmm[1]}, version=version
    )
    calendar = parse(appointment_calendar(doc, venue))
    event = only_event(calendar)
    assert str(event["UID"]) == event_uid(doc["_id"]) and event["SEQUENCE"] == version
    assert event["DTSTART"].params["TZID"] == zone
    assert calendar.get_missing_tzids() == set()
    schedule = compile_schedule(hospital(timezone=zone))
    start_utc = event.start.astimezone(UTC)  # (PEP 495: compare instants in UTC)
    assert start_utc == schedule.starts_at(day, hhmm[0])
    assert observance_offset(calendar, zone, event.start) == event.start.utcoffset()
    if "DTEND" in event:
        assert event.end.astimezone(UTC) > start_utc
        assert event.end.astimezone(UTC) == schedule.starts_at(day, hhmm[1])
    else:
        assert schedule.starts_at(day, hhmm[1]) <= start_utc


def clock_change_days(zone: str, years: range) -> list[date]:
    """The dates on which a zone's UTC offset changes (every one, from its tz data)."""
    tz = ZoneInfo(zone)
    days, day = [], date(years.start, 1, 1)
    while day.year < years.stop:
        at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        if (at - timedelta(days=1)).astimezone(tz).utcoffset() != at.astimezone(tz).utcoffset():
            # The change happened within the 24 hours before this noon (UTC): that local date
            # or the one before it.
            days.extend({(at - timedelta(days=1)).astimezone(tz).date(), at.astimezone(tz).date()})
        day += timedelta(days=1)
    return sorted(set(days))


CLOCK_CHANGES = [
    (zone, day)
    for zone in ZONES
    if zone not in ("Asia/Dhaka", "Asia/Kathmandu")
    # From 2019: what the system writes is dated today onwards. (icalendar 7.3.2's VTIMEZONE
    # leaves out a year's third and fourth change, e.g. Casablanca's Ramadan in 2016.)
    for day in clock_change_days(zone, range(2019, 2031))
]


@settings(max_examples=400, deadline=None)
@given(
    change=st.sampled_from(CLOCK_CHANGES),
    quarter=st.integers(min_value=0, max_value=95),
    length=st.sampled_from([15, 30, 45, 60, 90]),
)
def test_slots_on_the_days_the_clocks_change_read_back_at_the_systems_instant(
    change, quarter, length
):
    zone, day = change
    start, end = quarter * 15, min(quarter * 15 + length, 23 * 60 + 59)
    hhmm = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, end)]
    doc = appointment(date=day.isoformat(), slot={"start": hhmm[0], "end": hhmm[1]})
    calendar = parse(appointment_calendar(doc, Venue.of(hospital(timezone=zone))))
    event = only_event(calendar)
    schedule = compile_schedule(hospital(timezone=zone))
    # Instants compared in UTC: Python never finds a time of a repeated hour equal to a time
    # in another zone (PEP 495).
    assert event.start.astimezone(UTC) == schedule.starts_at(day, hhmm[0])
    assert observance_offset(calendar, zone, event.start) == event.start.utcoffset()
    if "DTEND" in event:
        assert event.end.astimezone(UTC) > event.start.astimezone(UTC)
        assert observance_offset(calendar, zone, event.end) == event.end.utcoffset()


# --- A feed's calendar ----------------------------------------------------------------------


def test_a_feed_lists_each_appointment_cancelled_ones_as_cancelled():
    venue = Venue.of(hospital(hospital_name="Clinic; A, B"))
    docs = [
        appointment(),
        appointment(_id=ObjectId("6a0000000000000000000002"), status="cancelled", version=2),
        appointment(_id=ObjectId("6a0000000000000000000003"), status="completed", version=4),
    ]
    body = feed_calendar(
        docs,
        venue,
        name="Clinic; A, B",
        uid="feed-x@slotbook",
        first=date(2026, 11, 27),
        last=date(2026, 12, 7),
    )
    calendar = parse(body)
    assert "METHOD" not in calendar
    seen = {str(e["UID"]): (str(e["STATUS"]), e["SEQUENCE"]) for e in calendar.events}
    assert seen == {
        "6a0000000000000000000001@slotbook": ("CONFIRMED", 1),
        "6a0000000000000000000002@slotbook": ("CANCELLED", 2),
        "6a0000000000000000000003@slotbook": ("CONFIRMED", 4),
    }
    assert [str(tz["TZID"]) for tz in calendar.timezones] == ["Asia/Dhaka"]
    # TEXT values, escaped (icalendar 7.3 reads these two back as raw text).
    assert b"\r\nNAME:Clinic\\; A\\, B\r\n" in body
    assert b"\r\nX-WR-CALNAME:Clinic\\; A\\, B\r\n" in body
    assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT15M\r\n" in body
    assert str(calendar["X-WR-TIMEZONE"]) == "Asia/Dhaka"


def test_an_empty_feed_is_still_a_calendar_with_its_zone():
    calendar = parse(
        feed_calendar(
            [],
            Venue.of(hospital(timezone=NY)),
            name="x",
            uid="feed-x@slotbook",
            first=date(2026, 3, 1),
            last=date(2026, 3, 31),
        )
    )
    assert calendar.events == [] and [str(tz["TZID"]) for tz in calendar.timezones] == [NY]


# --- Feed secrets ---------------------------------------------------------------------------


def test_a_new_token_is_43_url_safe_characters_and_only_its_hash_matches():
    token = new_token()
    assert is_token(token) and len(token) == 43
    stored = token_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token_matches(stored, token)
    assert not token_matches(stored, new_token())
    assert not token_matches(None, token) and not token_matches("", token)


@pytest.mark.parametrize(
    "given_token",
    [None, "", "a" * 42, "a" * 44, "é" * 43, "a" * 42 + "=", "a" * 42 + "\n", ["a" * 43], 43],
)
def test_tokens_of_the_wrong_form_never_match(given_token):
    assert not is_token(given_token)
    assert not token_matches(token_hash("a" * 43), given_token)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_no_other_string_matches_a_token(text):
    token = new_token()
    assert token_matches(token_hash(token), text) == (text == token)


# --- Use cases over fakes -------------------------------------------------------------------

# Tuesday 2026-11-24, 10:00 in Dhaka.
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


class MemoryFeeds:
    """FeedRepository in memory (booking_service/integrations/calendars/store.py)."""

    def __init__(self):
        self.docs: dict[ObjectId, dict] = {}

    def insert(self, doc: dict) -> None:
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def get(self, oid: ObjectId) -> dict | None:
        doc = self.docs.get(oid)
        return copy.deepcopy(doc) if doc else None

    def revoke(self, oid: ObjectId, changes: dict) -> bool:
        doc = self.docs[oid]
        if doc.get("revoked_ms") is not None:
            return False
        doc.update(changes, token_sha256=None)
        return True

    def search(self, filters: dict, page: int, per_page: int) -> tuple[list[dict], int]:
        found = [
            {k: v for k, v in d.items() if k != "token_sha256"}
            for d in self.docs.values()
            if d.get("revoked_ms") is None and all(d.get(k) == v for k, v in filters.items())
        ]
        found.sort(key=lambda d: (d["created_ms"], d["_id"]), reverse=True)
        return found[(page - 1) * per_page : page * per_page], len(found)


@pytest.fixture
def ctx():
    context, schedules = fake_context()
    schedules.publish(hospital())
    return context


def book(ctx, day: str, slot: str = "17:00", who=PATIENT, phone="+8801711111111", **more):
    body = {
        "hospital_id": "h1",
        "date": day,
        "slot": slot,
        "patient": {"name": "Rahim", "phone": phone},
        **more,
    }
    return booking.book(ctx, who, body, NOW)


def test_book_move_cancel_one_uid_a_growing_sequence(ctx):
    made = book(ctx, "2026-11-28")
    aid = made["appointment_id"]
    first = only_event(parse(calendars_service.appointment_ics(ctx, PATIENT, aid)))
    assert (first["SEQUENCE"], str(first["STATUS"])) == (1, "CONFIRMED")
    moves.reschedule(ctx, PATIENT, aid, {"date": "2026-11-29", "slot": "18:00"}, NOW)
    moved = only_event(parse(calendars_service.appointment_ics(ctx, PATIENT, aid)))
    assert moved["UID"] == first["UID"] and moved["SEQUENCE"] == 2
    assert moved.start == datetime(2026, 11, 29, 18, 0, tzinfo=ZoneInfo("Asia/Dhaka"))
    booking.cancel(ctx, PATIENT, aid, NOW)
    gone = only_event(parse(calendars_service.appointment_ics(ctx, ADMIN, aid)))
    assert (gone["UID"], gone["SEQUENCE"], str(gone["STATUS"])) == (first["UID"], 3, "CANCELLED")


def test_someone_elses_appointment_is_not_found(ctx):
    aid = book(ctx, "2026-11-28")["appointment_id"]
    with pytest.raises(booking.AppointmentNotFound):
        calendars_service.appointment_ics(ctx, OTHER, aid)


def test_a_feed_needs_an_existing_hospital_and_doctor(ctx):
    feeds = MemoryFeeds()
    with pytest.raises(HospitalNotFound):
        calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "nowhere"}, NOW)
    with pytest.raises(PractitionerNotFound):
        calendars_service.create_feed(
            ctx, feeds, ADMIN, {"hospital_id": "h1", "practitioner_id": "nobody"}, NOW
        )
    assert feeds.docs == {}


def feed_token(answer: dict) -> str:
    return answer["url"].split("?token=", 1)[1]


def test_a_feed_holds_the_booking_window_of_its_hospital_or_doctor(ctx):
    kept = book(ctx, "2026-11-24", "18:00")  # today, still to come
    doctors = book(ctx, "2026-11-28", practitioner_id="helal", phone="+8801722222222")
    cancelled = book(ctx, "2026-12-04", phone="+8801733333333")  # the window's last day
    booking.cancel(ctx, PATIENT, cancelled["appointment_id"], NOW)
    # Written before the window (yesterday) and beyond it: not in the feed.
    for day in ("2026-11-23", "2026-12-05"):
        ctx.appointments.docs[ObjectId()] = {
            **ctx.appointments.get(ObjectId(kept["appointment_id"])),
            "date": day,
        }
    feeds = MemoryFeeds()
    whole = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    answer = calendars_service.read_feed(ctx, feeds, whole["feed_id"], [feed_token(whole)], NOW)
    events = {str(e["UID"]).split("@")[0]: e for e in parse(answer.body).events}
    assert set(events) == {
        kept["appointment_id"],
        doctors["appointment_id"],
        cancelled["appointment_id"],
    }
    assert str(events[cancelled["appointment_id"]]["STATUS"]) == "CANCELLED"
    assert (answer.events, answer.truncated) == (3, False)

    one = calendars_service.create_feed(
        ctx, feeds, ADMIN, {"hospital_id": "h1", "practitioner_id": "helal"}, NOW
    )
    answer = calendars_service.read_feed(ctx, feeds, one["feed_id"], [feed_token(one)], NOW)
    calendar = parse(answer.body)
    assert [str(e["UID"]) for e in calendar.events] == [event_uid(doctors["appointment_id"])]
    assert str(calendar["X-WR-CALNAME"]) == "Gomoti Hospital - Dr. Helal Uddin"


def test_a_feed_is_bounded(ctx, monkeypatch):
    monkeypatch.setattr(calendars_service, "FEED_MAX_EVENTS", 2)
    for n, day in enumerate(("2026-11-25", "2026-11-26", "2026-11-27")):
        book(ctx, day, phone=f"+88017{n}0000000")
    feeds = MemoryFeeds()
    made = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    answer = calendars_service.read_feed(ctx, feeds, made["feed_id"], [feed_token(made)], NOW)
    days = [e.start.date().isoformat() for e in parse(answer.body).events]
    assert days == ["2026-11-25", "2026-11-26"] and answer.truncated  # the earliest kept


def test_only_the_stored_hash_and_no_secret_is_kept(ctx):
    feeds = MemoryFeeds()
    made = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    token = feed_token(made)
    (stored,) = feeds.docs.values()
    assert token not in repr(stored)
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()


def test_wrong_tokens_and_revoked_feeds_are_one_and_the_same_404(ctx):
    feeds = MemoryFeeds()
    made = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    feed_id, token = made["feed_id"], feed_token(made)
    attempts = [
        (feed_id, []),
        (feed_id, [token, token]),
        (feed_id, [token[:-1] + ("A" if token[-1] != "A" else "B")]),
        (feed_id, [token.upper() if token.upper() != token else token.lower()]),
        (feed_id, [token + "="]),
        ("6a0000000000000000000009", [token]),
        (feed_id.upper(), [token]),
    ]
    messages = set()
    for fid, tokens in attempts:
        with pytest.raises(FeedNotFound) as caught:
            calendars_service.read_feed(ctx, feeds, fid, tokens, NOW)
        messages.add(caught.value.message.replace(fid, "<id>"))
    calendars_service.revoke_feed(feeds, ADMIN, feed_id, NOW)
    calendars_service.revoke_feed(feeds, ADMIN, feed_id, NOW)  # idempotent
    with pytest.raises(FeedNotFound) as caught:
        calendars_service.read_feed(ctx, feeds, feed_id, [token], NOW)
    messages.add(caught.value.message.replace(feed_id, "<id>"))
    assert messages == {"No feed '<id>'"}
    assert calendars_service.get_feed(feeds, feed_id)["revoked_at"] == "2026-11-24T04:00:00Z"


# --- HTTP, over fakes -------------------------------------------------------------------------


def today_in_dhaka(plus: int = 0) -> str:
    return (datetime.now(ZoneInfo("Asia/Dhaka")).date() + timedelta(days=plus)).isoformat()


@pytest.fixture
def app():
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False)
    context, schedules = fake_context(cfg)
    schedules.publish(hospital())
    application = booking_service.create_app(cfg, context=context, start_reconciler=False)
    application.extensions[calendars.FEEDS_EXTENSION] = MemoryFeeds()
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(app, role="patient", user="p1") -> dict:
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, user, f"{user}@x.io", role)}


def booked(app, client, day: str | None = None, user="p1") -> str:
    made = client.post(
        "/api/appointments",
        json={
            "hospital_id": "h1",
            "date": day or today_in_dhaka(2),
            "slot": "17:00",
            "patient": {"name": "Rahim", "phone": "+8801711111111"},
        },
        headers=bearer(app, user=user),
    )
    assert made.status_code == 201, made.json
    return made.json["appointment_id"]


def error(resp, status: int, reason: str) -> dict:
    assert (resp.status_code, resp.json["error"]) == (status, reason), resp.data
    assert resp.json["code"] == status and resp.json["message"]
    return resp.json


def test_the_appointment_ics_for_its_owner_and_the_desk_only(app, client):
    aid = booked(app, client)
    path = f"/api/appointments/{aid}/calendar.ics"
    for who in (bearer(app), bearer(app, "staff", "s1"), bearer(app, "admin", "a1")):
        resp = client.get(path, headers=who)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == ICS_CONTENT_TYPE
        assert resp.headers["Cache-Control"] == "no-store"
        assert str(only_event(parse(resp.data))["UID"]) == f"{aid}@slotbook"
    error(client.get(path, headers=bearer(app, user="p2")), 404, "appointment_not_found")
    error(client.get(path), 401, "unauthorized")
    for bad in (aid.upper(), aid[:-1], aid + "0", "x" * 24, "%E0%A7%A7" * 8):
        error(
            client.get(f"/api/appointments/{bad}/calendar.ics", headers=bearer(app, "admin")),
            404,
            "appointment_not_found",
        )


def test_feeds_are_for_admins(app, client):
    error(client.post("/api/feeds", json={"hospital_id": "h1"}), 401, "unauthorized")
    for role in ("patient", "staff"):
        who = bearer(app, role)
        error(client.post("/api/feeds", json={"hospital_id": "h1"}, headers=who), 403, "forbidden")
        error(client.get("/api/feeds", headers=who), 403, "forbidden")
        error(client.delete(f"/api/feeds/{'a' * 24}", headers=who), 403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"hospital_id": 7},
        {"hospital_id": ["h1"]},
        {"hospital_id": None},
        {"hospital_id": "H1"},
        {"hospital_id": "h1 "},
        {"hospital_id": "h1", "practitioner_id": 3},
        {"hospital_id": "h1", "practitioner_id": None},
        {"hospital_id": "h1", "practitioner_id": "Helal"},
        {"hospital_id": "h1", "token": "mine"},
        {"hospital_id": "h" * 65},
        [],
        "h1",
    ],
)
def test_a_feed_request_of_the_wrong_shape_is_400(app, client, body):
    error(
        client.post("/api/feeds", json=body, headers=bearer(app, "admin")), 400, "validation_error"
    )


def test_a_feed_of_an_unknown_hospital_or_doctor_is_404(app, client):
    admin = bearer(app, "admin")
    error(
        client.post("/api/feeds", json={"hospital_id": "h2"}, headers=admin),
        404,
        "hospital_not_found",
    )
    error(
        client.post(
            "/api/feeds", json={"hospital_id": "h1", "practitioner_id": "x"}, headers=admin
        ),
        404,
        "practitioner_not_found",
    )


def test_malformed_json_and_huge_bodies_are_4xx(app, client):
    admin = {**bearer(app, "admin"), "Content-Type": "application/json"}
    resp = client.post("/api/feeds", data=b'{"hospital_id": "h1"', headers=admin)
    assert resp.status_code == 400
    resp = client.post(
        "/api/feeds", data=b'{"hospital_id": "' + b"a" * 200_000 + b'"}', headers=admin
    )
    assert resp.status_code == 413


def test_a_feed_from_creation_to_revocation(app, client):
    aid = booked(app, client)
    admin = bearer(app, "admin", "a1")
    made = client.post("/api/feeds", json={"hospital_id": "h1"}, headers=admin)
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    feed = made.json
    assert feed["url"].startswith(f"/api/feeds/{feed['feed_id']}.ics?token=")
    assert (feed["hospital_id"], feed["practitioner_id"], feed["created_by"]) == ("h1", None, "a1")

    resp = client.get(feed["url"])  # no bearer token: the URL is the credential
    assert resp.status_code == 200 and resp.headers["Content-Type"] == ICS_CONTENT_TYPE
    assert resp.headers["Cache-Control"] == "no-store" and "X-Feed-Truncated" not in resp.headers
    assert [str(e["UID"]) for e in parse(resp.data).events] == [f"{aid}@slotbook"]
    # Other query parameters (a calendar client's own) change nothing.
    assert client.get(feed["url"] + "&_=123").data == resp.data

    listed = client.get("/api/feeds", headers=admin).json
    assert listed["total"] == 1 and listed["feeds"][0]["feed_id"] == feed["feed_id"]
    assert "url" not in listed["feeds"][0] and "token" not in str(listed)
    shown = client.get(f"/api/feeds/{feed['feed_id']}", headers=admin).json
    assert "url" not in shown and "revoked_at" not in shown

    assert client.delete(f"/api/feeds/{feed['feed_id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/feeds/{feed['feed_id']}", headers=admin).status_code == 204
    error(client.get(feed["url"]), 404, "feed_not_found")
    assert client.get("/api/feeds", headers=admin).json["total"] == 0
    assert "revoked_at" in client.get(f"/api/feeds/{feed['feed_id']}", headers=admin).json
    error(client.delete(f"/api/feeds/{'0' * 24}", headers=admin), 404, "feed_not_found")


def test_hostile_feed_urls_are_all_the_same_404(app, client):
    made = client.post("/api/feeds", json={"hospital_id": "h1"}, headers=bearer(app, "admin"))
    feed_id, token = made.json["feed_id"], feed_token(made.json)
    urls = [
        f"/api/feeds/{feed_id}.ics",
        f"/api/feeds/{feed_id}.ics?token=",
        f"/api/feeds/{feed_id}.ics?token={token}&token={token}",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}",
        f"/api/feeds/{feed_id}.ics?token={token}x",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}%C3%A9",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}%00",
        f"/api/feeds/{feed_id}.ics?token={token[:-1]}%FF",
        f"/api/feeds/{feed_id}.ics?TOKEN={token}",
        f"/api/feeds/{feed_id.upper()}.ics?token={token}",
        f"/api/feeds/{feed_id[:-1]}.ics?token={token}",
        f"/api/feeds/{feed_id}0.ics?token={token}",
        f"/api/feeds/{feed_id}.ics.ics?token={token}",
        f"/api/feeds/{feed_id}.ICS?token={token}",
        f"/api/feeds/%20{feed_id}.ics?token={token}",
        f"/api/feeds/{'0' * 24}.ics?token={token}",
    ]
    for url in urls:
        resp = client.get(url)
        assert (resp.status_code, resp.json["error"]) == (404, "feed_not_found"), url
        assert token not in resp.get_data(as_text=True)
    # With a bearer token instead: still the URL alone decides.
    error(
        client.get(f"/api/feeds/{feed_id}.ics", headers=bearer(app, "admin")), 404, "feed_not_found"
    )


def test_feed_listing_pages_are_checked(app, client):
    admin = bearer(app, "admin")
    for query in ("page=0", "per_page=501", "page=١", "page=1_0", "hospital_id=H1"):
        error(client.get(f"/api/feeds?{query}", headers=admin), 400, "validation_error")


def test_without_a_database_the_feeds_answer_503_and_the_app_still_starts():
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False)
    context, schedules = fake_context(cfg)
    schedules.publish(hospital())
    application = booking_service.create_app(cfg, context=context, start_reconciler=False)
    assert calendars.FEEDS_EXTENSION not in application.extensions  # the fakes have no `col`
    client = application.test_client()
    resp = client.post(
        "/api/feeds", json={"hospital_id": "h1"}, headers=bearer(application, "admin")
    )
    error(resp, 503, "service_unavailable")


def test_a_public_base_url_makes_feed_urls_absolute():
    cfg = Config(
        bcrypt_rounds=4, reconciler_enabled=False, feeds_base_url="https://api.example.org/"
    )
    context, schedules = fake_context(cfg)
    schedules.publish(hospital())
    application = booking_service.create_app(cfg, context=context, start_reconciler=False)
    application.extensions[calendars.FEEDS_EXTENSION] = MemoryFeeds()
    made = application.test_client().post(
        "/api/feeds", json={"hospital_id": "h1"}, headers=bearer(application, "admin")
    )
    assert made.json["url"].startswith(f"https://api.example.org/api/feeds/{made.json['feed_id']}")


@pytest.mark.parametrize(
    "value",
    ["api.example.org", "ftp://x", "https://x/?a=1", "https://x/#f", "https://u@x", "https:// x"],
)
def test_a_malformed_base_url_is_a_startup_error(value):
    with pytest.raises(ValueError, match="FEEDS_BASE_URL"):
        calendars.feeds_base_url(value)


def test_the_openapi_document_lists_the_calendar_operations(app):
    paths = app.test_client().get("/openapi.json").json["paths"]
    assert set(paths["/api/appointments/{appointment_id}/calendar.ics"]) >= {"get"}
    assert set(paths["/api/feeds"]) >= {"get", "post"}
    assert set(paths["/api/feeds/{feed_id}"]) >= {"get", "delete"}
    feed = paths["/api/feeds/{feed_id}.ics"]["get"]
    assert "text/calendar" in feed["responses"]["200"]["content"]
    assert any(p["name"] == "token" and p["in"] == "query" for p in feed["parameters"])
