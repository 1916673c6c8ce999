"""iCalendar (API.md, "Integrations"): the calendars built from appointment documents
(booking_service/integrations/calendars/ics.py, pure), in every time zone, parsed back with
icalendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from booking_service.integrations.calendars.ics import (
    Venue,
    appointment_calendar,
    event_uid,
    feed_calendar,
)
from shared.slots import compile_schedule
from tests.unit.builders import appointment
from tests.unit.calendars.calendar_support import NY, hospital, only_event, parse


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
    assert "METHOD" not in calendar  # calendar data, not an iTIP message (see calendars/ics.py)
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
    # own search steps 64 days and finds neither change (calendars/ics.py, _WeekByWeekTimezone).
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
