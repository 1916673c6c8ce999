"""Doctors, sessions and appointment types in the configuration model (shared/slots.py,
shared/configurations.py): expansion and inheritance, pure."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedule_service.seed import DHANMONDI, GOMOTI
from schedule_service.validation import validate_hospital
from shared.configurations import Configuration
from shared.errors import AppointmentTypeNotFound, PractitionerNotFound
from shared.slots import CLOSED, OPEN, compile_schedule, minutes, session_slots
from tests.unit import builders
from tests.unit.builders import NEXT_MON, NOW, SAT, SUN, TUE

hospital = partial(builders.hospital, "model")


def slots_of(schedule, day):
    return [(s.start, s.end, s.capacity) for s in schedule.day(day, NOW).slots]


def test_a_session_expands_into_consecutive_slots_that_fit():
    assert session_slots({"start": "17:00", "end": "18:10", "slot_minutes": 20}) == [
        ("17:00", "17:20"),
        ("17:20", "17:40"),
        ("17:40", "18:00"),
    ]
    assert session_slots({"start": "17:00", "end": "18:00", "slot_minutes": 20})[-1] == (
        "17:40",
        "18:00",
    )


def test_generated_slots_are_listed_ones_in_every_way():
    doc = hospital(
        schedule={
            "2": {
                "slots": [{"start": "08:00", "end": "09:00"}],
                "sessions": [{"start": "09:00", "end": "10:00", "slot_minutes": 30, "capacity": 4}],
            }
        }
    )
    day = compile_schedule(doc).day(TUE + timedelta(days=7), NOW)
    assert [(s.start, s.end, s.display, s.capacity) for s in day.slots] == [
        ("08:00", "09:00", "08:00 AM - 09:00 AM", 15),
        ("09:00", "09:30", "09:00 AM - 09:30 AM", 4),
        ("09:30", "10:00", "09:30 AM - 10:00 AM", 4),
    ]


def test_a_doctor_without_a_schedule_works_the_hospitals_at_their_own_capacity():
    doc = hospital(practitioners={"rina": {"name": "Dr. Rina", "max_appointments_per_slot": 4}})
    rina = Configuration.compile(doc).practitioner("rina")
    assert slots_of(rina.schedule, NEXT_MON) == [("09:00", "10:00", 4), ("10:00", "11:00", 4)]
    # the hospital's overrides too: its replacement day and its closed day
    assert slots_of(rina.schedule, SAT + timedelta(days=7)) == [("08:00", "09:00", 4)]
    assert rina.schedule.day(date(2026, 12, 7), NOW).status == CLOSED
    assert rina.schedule.practitioner_id == "rina"
    assert rina.schedule.version == 3 and rina.schedule.hospital_id == "h"


def test_a_doctor_without_their_own_capacity_keeps_the_hospitals_slot_capacities():
    doc = hospital(practitioners={"rina": {"name": "Dr. Rina"}})
    rina = Configuration.compile(doc).practitioner("rina")
    assert slots_of(rina.schedule, NEXT_MON) == [("09:00", "10:00", 15), ("10:00", "11:00", 20)]


def test_a_doctor_with_a_schedule_works_only_it_and_the_hospitals_closed_days_close_them():
    doc = hospital(
        practitioners={
            "helal": {
                "name": "Dr. Helal",
                "schedule": {
                    "1": {"sessions": [{"start": "17:00", "end": "18:00", "slot_minutes": 30}]},
                    "6": {"sessions": [{"start": "17:00", "end": "18:00", "slot_minutes": 30}]},
                },
                "max_appointments_per_slot": 10,
                "date_overrides": {
                    "2026-12-14": {"closed": True, "reason": "Conference"},
                    "2026-12-07": {"slots": [{"start": "12:00", "end": "13:00"}]},
                },
            }
        }
    )
    helal = Configuration.compile(doc).practitioner("helal").schedule
    assert slots_of(helal, NEXT_MON) == [("17:00", "17:30", 10), ("17:30", "18:00", 10)]
    # the hospital's replacement slots on 2026-12-05 are the hospital's hours, not his
    assert slots_of(helal, date(2026, 12, 5)) == [("17:00", "17:30", 10), ("17:30", "18:00", 10)]
    closed = helal.day(date(2026, 12, 14), NOW)
    assert (closed.status, closed.reason) == (CLOSED, "Conference")
    # the hospital is shut on 2026-12-07: his override cannot open it
    shut = helal.day(date(2026, 12, 7), NOW)
    assert (shut.status, shut.reason) == (CLOSED, "Holiday")
    # and the hospital's own schedule is untouched by his
    assert slots_of(Configuration.compile(doc).schedule, NEXT_MON)[0] == ("09:00", "10:00", 15)


def test_doctors_share_the_hospitals_zone_and_window():
    doc = hospital(advance_booking_days=3, practitioners={"rina": {"name": "R"}})
    rina = Configuration.compile(doc).practitioner("rina").schedule
    assert rina.day(NEXT_MON, NOW).status == "beyond_booking_window"
    assert rina.today(NOW) == TUE


def test_unknown_doctor_and_appointment_type():
    config = Configuration.compile(hospital())
    with pytest.raises(PractitionerNotFound):
        config.practitioner("nobody")
    assert config.schedule_for(None) is config.schedule
    assert config.appointment_type(None) is None
    with pytest.raises(AppointmentTypeNotFound):
        config.appointment_type("new")


def test_appointment_types_and_the_default():
    types = builders.HOSPITALS["doctors"]["appointment_types"]  # new: 2 units, followup: 1
    config = Configuration.compile(
        hospital(appointment_types=copy.deepcopy(types), default_appointment_type="followup")
    )
    assert config.appointment_type("new").units == 2
    assert config.appointment_type(None).code == "followup"
    assert config.units_asked(None) is None and config.units_asked("new") == 2


def test_the_seed_hospitals_are_valid_and_gomoti_has_no_v1_1_fields():
    for seeded in (GOMOTI, DHANMONDI):
        _, errors = validate_hospital(copy.deepcopy(seeded))
        assert errors == {}, errors
    assert not {"practitioners", "appointment_types", "default_appointment_type"} & set(GOMOTI)
    config = Configuration.compile(dict(DHANMONDI, version=1))
    assert sorted(config.practitioners) == ["helal", "karim", "rina"]
    karim = config.practitioner("karim").schedule
    assert slots_of(karim, SUN) == [
        ("10:00", "10:20", 3),
        ("10:20", "10:40", 3),
        ("10:40", "11:00", 3),
        ("11:00", "11:20", 3),
        ("11:20", "11:40", 3),
        ("11:40", "12:00", 3),
        ("15:00", "16:00", 6),
    ]
    assert karim.day(SAT, NOW).status == CLOSED
    assert config.practitioner("rina").schedule.day(SAT, NOW).status == OPEN


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 23 * 60),
    length=st.integers(1, 600),
    step=st.integers(5, 240),
)
def test_property_sessions_tile_from_their_start(start, length, step):
    end = min(start + length, 23 * 60 + 59)
    if end <= start:
        return
    hhmm = lambda m: f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
    made = session_slots({"start": hhmm(start), "end": hhmm(end), "slot_minutes": step})
    assert len(made) == (end - start) // step
    at = start
    for first, last in made:
        assert (minutes(first), minutes(last)) == (at, at + step)
        at += step
    assert at <= end and end - at < step


# --- a doctor's sessions on the days the clocks change ------------------------------------

NY_SPRING = date(2026, 3, 8)  # 02:00 EST -> 03:00 EDT


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "started"),
    [
        # 06:40Z is 01:40 EST: the 01:00 and 01:30 slots have started
        (utc(2026, 3, 8, 6, 40), (True, True, False, False, False, False)),
        # 07:10Z is 03:10 EDT: the skipped 02:00 and 02:30 slots started at the jump (07:00Z)
        (utc(2026, 3, 8, 7, 10), (True, True, True, True, True, False)),
    ],
)
def test_a_doctors_session_slots_start_as_instants_on_a_spring_forward_day(now, started):
    doc = hospital(
        timezone="America/New_York",
        practitioners={
            "night": {
                "name": "Dr. Night",
                "schedule": {
                    "0": {"sessions": [{"start": "01:00", "end": "04:00", "slot_minutes": 30}]}
                },
            }
        },
    )
    night = Configuration.compile(doc).practitioner("night").schedule
    day = night.day(NY_SPRING, now)
    assert [s.start for s in day.slots] == ["01:00", "01:30", "02:00", "02:30", "03:00", "03:30"]
    assert day.started == started


# --- doctor overrides on top of the hospital's: a property ---------------------------------

WEEK = [NEXT_MON + timedelta(days=i) for i in range(7)]
ONE = [{"start": "12:00", "end": "13:00"}]
override = st.sampled_from(
    [None, {"closed": True, "reason": "H"}, {"slots": [{"start": "08:00", "end": "09:00"}]}]
)


@settings(max_examples=150, deadline=None)
@given(
    hospital_overrides=st.lists(override, min_size=7, max_size=7),
    doctor_overrides=st.lists(override, min_size=7, max_size=7),
    own_schedule=st.booleans(),
)
def test_property_a_doctors_day_follows_the_inheritance_rules(
    hospital_overrides, doctor_overrides, own_schedule
):
    def overrides(chosen):
        return {str(day): o for day, o in zip(WEEK, chosen, strict=True) if o is not None}

    doctor = {"name": "D", "date_overrides": overrides(doctor_overrides)}
    if own_schedule:
        doctor["schedule"] = {str(d): {"slots": ONE} for d in range(7)}
    doc = hospital(date_overrides=overrides(hospital_overrides), practitioners={"d": doctor})
    config = Configuration.compile(doc)
    mine, theirs = config.practitioner("d").schedule, config.schedule
    for day, by_hospital, by_doctor in zip(WEEK, hospital_overrides, doctor_overrides, strict=True):
        seen = mine.day(day, NOW)
        if by_hospital is not None and by_hospital.get("closed"):
            assert (seen.status, seen.reason) == (CLOSED, "H")  # the building is shut
        elif by_doctor is not None:
            expected = [] if by_doctor.get("closed") else ["08:00"]
            assert [s.start for s in seen.slots] == expected
        elif own_schedule:
            assert [s.start for s in seen.slots] == ["12:00"]
        else:  # the hospital's day, its replacement slots included
            assert [s.start for s in seen.slots] == [s.start for s in theirs.day(day, NOW).slots]
