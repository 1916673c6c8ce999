"""schedule_service/validation.py: sessions, appointment types and practitioners (doctors).

Pure: no servers. Every test asserts exact values (paths and messages), so a change of rule,
path or normal form fails here.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from functools import partial

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schedule_service.seed import GOMOTI
from schedule_service.validation import (
    MAX_SLOTS_PER_DAY,
    validate_hospital,
    validate_practitioner,
)
from shared.ids import ID_RULE
from shared.slots import OPEN, compile_schedule
from tests.unit import builders

TIME_RULE = "must be a time HH:MM (00:00 to 23:59)"
V1_KEYS = [
    "hospital_id",
    "hospital_name",
    "timezone",
    "max_appointments_per_slot",
    "advance_booking_days",
    "schedule",
    "date_overrides",
]


def minutes(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def hhmm(total: int) -> str:
    return f"{total // 60:02d}:{total % 60:02d}"


# The seed's shape, one slot a day; hospital(**fields) changes fields of it.
hospital = partial(builders.hospital, "v1")


def with_day(day: dict, weekday: str = "6") -> dict:
    body = hospital()
    body["schedule"][weekday] = day
    return body


def doctor(**fields) -> dict:
    return {"name": "Dr. Helal Uddin", **fields}


def session(start: str, end: str, step: int, **more) -> dict:
    return {"start": start, "end": end, "slot_minutes": step, **more}


# --- a v1 document stays what it was -------------------------------------------------------


def test_v1_document_normalizes_without_new_keys():
    doc, errors = validate_hospital(hospital())
    assert errors == {}
    slot = {"start": "17:00", "end": "18:00", "display": "05:00 PM - 06:00 PM"}
    expected = {
        "hospital_id": "gomoti",
        "hospital_name": "Gomoti Hospital",
        "timezone": "Asia/Dhaka",
        "max_appointments_per_slot": 15,
        "advance_booking_days": 60,
        "schedule": {day: {"slots": [slot]} for day in "1346"},
        "date_overrides": {},
    }
    assert list(doc) == V1_KEYS
    assert json.dumps(doc) == json.dumps(expected)  # same keys, same order: byte for byte


def test_seed_document_is_its_own_normal_form():
    doc, errors = validate_hospital(copy.deepcopy(GOMOTI))
    assert errors == {}
    assert doc == GOMOTI
    assert list(doc) == V1_KEYS
    assert all(list(day) == ["slots"] for day in doc["schedule"].values())


def test_v1_override_days_keep_their_v1_form():
    body = hospital(
        date_overrides={
            "2026-12-16": {"closed": True, "reason": "Victory Day"},
            "2026-12-20": {"closed": False, "slots": [{"start": "10:00", "end": "11:00"}]},
        }
    )
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert doc["date_overrides"] == {
        "2026-12-16": {"closed": True, "reason": "Victory Day"},
        "2026-12-20": {
            "slots": [{"start": "10:00", "end": "11:00", "display": "10:00 AM - 11:00 AM"}]
        },
    }


def test_more_than_96_listed_slots_now_accepted_up_to_288():
    one_minute = [{"start": hhmm(m), "end": hhmm(m + 1)} for m in range(MAX_SLOTS_PER_DAY)]
    doc, errors = validate_hospital(with_day({"slots": one_minute}))
    assert errors == {}
    assert len(doc["schedule"]["6"]["slots"]) == 288
    one_more = [*one_minute, {"start": "23:00", "end": "23:01"}]
    _, errors = validate_hospital(with_day({"slots": one_more}))
    assert errors == {"schedule.6.slots": ["at most 288 slots a day"]}


# --- sessions --------------------------------------------------------------------------------


def test_sessions_normalized_sorted_capacity_only_when_given():
    day = {
        "slots": [{"start": "09:00", "end": "10:00"}],
        "sessions": [
            session("17:00", "18:00", 20, capacity=3),
            session("10:00", "12:00", 15),
        ],
    }
    doc, errors = validate_hospital(with_day(day))
    assert errors == {}
    assert doc["schedule"]["6"] == {
        "slots": [{"start": "09:00", "end": "10:00", "display": "09:00 AM - 10:00 AM"}],
        "sessions": [
            {"start": "10:00", "end": "12:00", "slot_minutes": 15},
            {"start": "17:00", "end": "18:00", "slot_minutes": 20, "capacity": 3},
        ],
    }
    assert list(doc["schedule"]["1"]) == ["slots"]


def test_day_with_sessions_only_and_empty_day():
    body = hospital()
    body["schedule"]["0"] = {"sessions": [session("08:00", "08:50", 25)]}
    body["schedule"]["2"] = {}
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert doc["schedule"]["0"] == {
        "slots": [],
        "sessions": [{"start": "08:00", "end": "08:50", "slot_minutes": 25}],
    }
    assert doc["schedule"]["2"] == {"slots": []}


def test_override_with_sessions_only():
    body = hospital(
        date_overrides={
            "2026-12-20": {"sessions": [session("10:00", "11:00", 30)], "reason": "Camp"}
        }
    )
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert doc["date_overrides"]["2026-12-20"] == {
        "slots": [],
        "sessions": [{"start": "10:00", "end": "11:00", "slot_minutes": 30}],
        "reason": "Camp",
    }


def test_session_end_not_a_slot_boundary_is_kept_as_given():
    doc, errors = validate_hospital(with_day({"sessions": [session("17:00", "17:50", 20)]}))
    assert errors == {}
    assert doc["schedule"]["6"]["sessions"] == [
        {"start": "17:00", "end": "17:50", "slot_minutes": 20}
    ]
    slots = compile_schedule(doc).weekdays[6]
    assert [(s.start, s.end) for s in slots] == [("17:00", "17:20"), ("17:20", "17:40")]


def test_session_overlapping_a_listed_slot_reported_on_the_day():
    day = {
        "slots": [{"start": "17:10", "end": "18:00"}],
        "sessions": [session("17:00", "18:00", 20)],
    }
    _, errors = validate_hospital(with_day(day))
    assert errors == {"schedule.6": ["slots 17:00-17:20 and 17:10-18:00 overlap"]}


def test_overlapping_sessions_reported_once_a_pair():
    day = {"sessions": [session("09:00", "10:00", 10), session("09:30", "11:00", 15)]}
    _, errors = validate_hospital(with_day(day))
    assert errors == {"schedule.6": ["slots 09:30-09:40 and 09:30-09:45 overlap"]}


def test_session_overlapping_a_slot_hidden_behind_another_listed_slot():
    """09:00-12:00 overlaps 10:00-11:00 (listed pair) and the session at 11:30 (reported)."""
    day = {
        "slots": [{"start": "09:00", "end": "12:00"}, {"start": "10:00", "end": "11:00"}],
        "sessions": [session("11:30", "12:30", 30)],
    }
    _, errors = validate_hospital(with_day(day))
    assert errors == {
        "schedule.6.slots": ["slots 09:00-12:00 and 10:00-11:00 overlap"],
        "schedule.6": ["slots 09:00-12:00 and 11:30-12:00 overlap"],
    }


def test_touching_session_and_slot_do_not_overlap():
    day = {
        "slots": [{"start": "18:00", "end": "19:00"}],
        "sessions": [session("17:00", "18:00", 20)],
    }
    _, errors = validate_hospital(with_day(day))
    assert errors == {}


def test_session_overlap_in_an_override_day():
    body = hospital(
        date_overrides={
            "2026-12-20": {
                "slots": [{"start": "10:45", "end": "11:15"}],
                "sessions": [session("10:00", "12:00", 30)],
            }
        }
    )
    _, errors = validate_hospital(body)
    assert errors == {"date_overrides.2026-12-20": ["slots 10:30-11:00 and 10:45-11:15 overlap"]}


def test_session_that_fits_no_slot():
    _, errors = validate_hospital(with_day({"sessions": [session("17:00", "17:10", 15)]}))
    assert errors == {
        "schedule.6.sessions.0.slot_minutes": ["no slot of 15 minutes fits between 17:00 and 17:10"]
    }


def test_289_slots_in_a_day_rejected_288_accepted():
    grid = session("00:00", "23:55", 5)  # 287 slots of 5 minutes
    tail = [{"start": "23:55", "end": "23:57"}, {"start": "23:57", "end": "23:59"}]
    _, errors = validate_hospital(with_day({"slots": tail, "sessions": [grid]}))
    assert errors == {"schedule.6": ["at most 288 slots a day, listed and generated (289)"]}
    _, errors = validate_hospital(with_day({"slots": tail[:1], "sessions": [grid]}))
    assert errors == {}


def test_many_generated_slots_rejected_with_their_overlap():
    whole_day = session("00:00", "23:59", 5)  # 287 slots; twice is 574
    _, errors = validate_hospital(with_day({"sessions": [whole_day, dict(whole_day)]}))
    assert errors == {
        "schedule.6": [
            "at most 288 slots a day, listed and generated (574)",
            "slots 00:00-00:05 and 00:00-00:05 overlap",
        ]
    }


@pytest.mark.parametrize(
    ("bad", "path", "message"),
    [
        ({"start": "7:00"}, "start", TIME_RULE),
        ({"start": 1020}, "start", TIME_RULE),
        ({"end": "24:00"}, "end", TIME_RULE),
        ({"end": "17:00"}, "end", "must be after start (17:00)"),
        ({"end": "16:00"}, "end", "must be after start (17:00)"),
        ({"slot_minutes": 4}, "slot_minutes", "must be an integer from 5 to 240"),
        ({"slot_minutes": 241}, "slot_minutes", "must be an integer from 5 to 240"),
        ({"slot_minutes": True}, "slot_minutes", "must be an integer from 5 to 240"),
        ({"slot_minutes": 20.0}, "slot_minutes", "must be an integer from 5 to 240"),
        ({"slot_minutes": "20"}, "slot_minutes", "must be an integer from 5 to 240"),
        ({"slot_minutes": 10**400}, "slot_minutes", "must be an integer from 5 to 240"),
        ({"capacity": 0}, "capacity", "must be an integer from 1 to 10000"),
        ({"capacity": 10_001}, "capacity", "must be an integer from 1 to 10000"),
        ({"capacity": True}, "capacity", "must be an integer from 1 to 10000"),
    ],
)
def test_bad_session_field(bad, path, message):
    day = {"sessions": [{**session("17:00", "18:00", 20), **bad}]}
    _, errors = validate_hospital(with_day(day))
    assert errors == {f"schedule.6.sessions.0.{path}": [message]}


def test_session_missing_fields_and_unknown_field():
    day = {"sessions": [{"start": "17:00", "room": 2}, "17:00-18:00"]}
    _, errors = validate_hospital(with_day(day))
    assert errors == {
        "schedule.6.sessions.0": ["unknown field(s): room"],
        "schedule.6.sessions.0.end": [TIME_RULE],
        "schedule.6.sessions.0.slot_minutes": ["must be an integer from 5 to 240"],
        "schedule.6.sessions.1": ["must be an object with start, end and slot_minutes"],
    }


@pytest.mark.parametrize("sessions", [None, {}, "x", 3])
def test_sessions_must_be_a_list(sessions):
    _, errors = validate_hospital(with_day({"sessions": sessions}))
    assert errors == {"schedule.6.sessions": ["must be a list of sessions"]}


def test_unknown_day_field_still_an_error():
    _, errors = validate_hospital(with_day({"sessions": [], "closed": True}))
    assert errors == {"schedule.6": ["unknown field(s): closed"]}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"closed": True, "sessions": [session("10:00", "11:00", 30)]},
            "a closed date cannot also list sessions",
        ),
        (
            {"closed": True, "slots": [{"start": "10:00", "end": "11:00"}]},
            "a closed date cannot also list slots",
        ),
        (
            {"closed": False, "reason": "?"},
            'give either "closed": true or the date\'s "slots" or "sessions"',
        ),
    ],
)
def test_override_closed_or_open_rules(override, message):
    _, errors = validate_hospital(hospital(date_overrides={"2026-12-21": override}))
    assert errors == {"date_overrides.2026-12-21": [message]}


def test_closed_override_with_empty_sessions_is_closed():
    body = hospital(date_overrides={"2026-12-21": {"closed": True, "sessions": [], "slots": []}})
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert doc["date_overrides"] == {"2026-12-21": {"closed": True}}


# --- appointment types ---------------------------------------------------------------------


def test_appointment_types_normalized():
    body = hospital(
        appointment_types={
            "follow-up": {"name": "Follow-up", "units": 1, "minutes": 10},
            "new": {"name": "New patient", "units": 2},
        },
        default_appointment_type="new",
    )
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert list(doc) == [*V1_KEYS, "appointment_types", "default_appointment_type"]
    assert doc["appointment_types"] == {
        "follow-up": {"name": "Follow-up", "units": 1, "minutes": 10},
        "new": {"name": "New patient", "units": 2},
    }
    assert doc["default_appointment_type"] == "new"


@pytest.mark.parametrize(
    ("types", "default", "message"),
    [
        ({"new": {"name": "New", "units": 1}}, "old", "must be a key of appointment_types"),
        ({"new": {"name": "New", "units": 1}}, ["new"], "must be a key of appointment_types"),
        ({"new": {"name": "New", "units": 1}}, None, "must be a key of appointment_types"),
        (None, "new", "no appointment_types are defined"),
        ({}, "new", "no appointment_types are defined"),
    ],
)
def test_default_type_not_among_types(types, default, message):
    body = hospital(default_appointment_type=default)
    if types is not None:
        body["appointment_types"] = types
    _, errors = validate_hospital(body)
    assert errors == {"default_appointment_type": [message]}


def test_bad_appointment_types_all_reported():
    body = hospital(
        appointment_types={
            "New": {"name": "New", "units": 1},
            "a": {"name": "   ", "units": True},
            "b": {"name": "B\nB", "units": 0, "minutes": 481},
            "c": {"name": "x" * 101, "units": 10_001, "minutes": False, "price": 5},
            "d": "short",
            "e": {"units": 1, "minutes": 0},
        }
    )
    _, errors = validate_hospital(body)
    name_rule = "must be a text of 1 to 100 characters, no control characters"
    units_rule = "must be an integer from 1 to 10000"
    minutes_rule = "must be an integer from 1 to 480"
    assert errors == {
        "appointment_types.New": [ID_RULE],
        "appointment_types.a.name": [name_rule],
        "appointment_types.a.units": [units_rule],
        "appointment_types.b.name": [name_rule],
        "appointment_types.b.units": [units_rule],
        "appointment_types.b.minutes": [minutes_rule],
        "appointment_types.c": ["unknown field(s): price"],
        "appointment_types.c.name": [name_rule],
        "appointment_types.c.units": [units_rule],
        "appointment_types.c.minutes": [minutes_rule],
        "appointment_types.d": ['must be an object {"name", "units"}'],
        "appointment_types.e.name": [name_rule],
        "appointment_types.e.minutes": [minutes_rule],
    }


def test_at_most_50_appointment_types():
    types = {f"t{i}": {"name": f"T{i}", "units": 1} for i in range(51)}
    _, errors = validate_hospital(hospital(appointment_types=types))
    assert errors == {"appointment_types": ["at most 50 appointment types"]}
    del types["t50"]
    _, errors = validate_hospital(hospital(appointment_types=types))
    assert errors == {}


@pytest.mark.parametrize("types", [[], "new", 1, None])
def test_appointment_types_must_be_an_object(types):
    _, errors = validate_hospital(hospital(appointment_types=types))
    assert errors == {"appointment_types": ["must be an object keyed by appointment type id"]}


# --- practitioners ---------------------------------------------------------------------------


def full_doctor() -> dict:
    return doctor(
        specialty="Medicine",
        active=False,
        schedule={
            "6": {
                "slots": [{"start": "09:00", "end": "10:00", "capacity": 4}],
                "sessions": [session("17:00", "18:00", 20)],
            }
        },
        date_overrides={
            "2026-12-16": {"closed": True, "reason": "Victory Day"},
            "2026-12-20": {"sessions": [session("10:00", "11:00", 30, capacity=2)]},
        },
        max_appointments_per_slot=6,
    )


def test_practitioners_normalized():
    body = hospital(practitioners={"helal": full_doctor(), "rina": {"name": "Dr. Rina"}})
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert list(doc) == [*V1_KEYS, "practitioners"]
    assert doc["practitioners"]["rina"] == {"name": "Dr. Rina", "active": True}
    helal = doc["practitioners"]["helal"]
    assert list(helal) == (
        "name specialty active schedule date_overrides max_appointments_per_slot".split()
    )
    assert helal == {
        "name": "Dr. Helal Uddin",
        "specialty": "Medicine",
        "active": False,
        "schedule": {
            "6": {
                "slots": [
                    {
                        "start": "09:00",
                        "end": "10:00",
                        "display": "09:00 AM - 10:00 AM",
                        "capacity": 4,
                    }
                ],
                "sessions": [{"start": "17:00", "end": "18:00", "slot_minutes": 20}],
            }
        },
        "date_overrides": {
            "2026-12-16": {"closed": True, "reason": "Victory Day"},
            "2026-12-20": {
                "slots": [],
                "sessions": [{"start": "10:00", "end": "11:00", "slot_minutes": 30, "capacity": 2}],
            },
        },
        "max_appointments_per_slot": 6,
    }


def test_specialty_null_kept_as_given():
    doc, errors = validate_practitioner(doctor(specialty=None), "helal")
    assert errors == {}
    assert doc == {"name": "Dr. Helal Uddin", "specialty": None, "active": True}


@pytest.mark.parametrize(
    "pid", ["Helal", "helal/", "helal\n", "-x", "_x", "x" * 65, "", "hélal", " helal", "he lal"]
)
def test_practitioner_ids_almost_right_rejected(pid):
    doc, errors = validate_hospital(hospital(practitioners={pid: doctor()}))
    assert errors == {f"practitioners.{pid}": [ID_RULE]}
    assert doc["practitioners"] == {}
    _, errors = validate_practitioner(doctor(), pid)
    assert errors == {"practitioner_id": [ID_RULE]}


def test_practitioner_id_of_64_characters_accepted():
    pid = "a" * 64
    doc, errors = validate_hospital(hospital(practitioners={pid: doctor()}))
    assert errors == {}
    assert list(doc["practitioners"]) == [pid]


def test_practitioner_problems_all_reported_under_their_paths():
    bad = {
        "name": "",
        "specialty": "x" * 201,
        "active": "yes",
        "max_appointments_per_slot": True,
        "room": 3,
        "schedule": {
            "6": {"sessions": [session("17:00", "16:00", 20)]},
            "8": {"slots": []},
            "1": {
                "slots": [{"start": "17:00", "end": "18:30"}, {"start": "18:00", "end": "19:00"}]
            },
        },
        "date_overrides": {
            "tomorrow": {"closed": True},
            "2026-12-20": {"closed": "yes"},
            "2026-12-21": {"sessions": [session("10:00", "10:04", 5)]},
        },
    }
    body = hospital(practitioners={"helal": bad, "rina": "Dr. Rina", "kamal": {}})
    _, errors = validate_hospital(body)
    p = "practitioners.helal"
    assert errors == {
        p: ["unknown field(s): room"],
        f"{p}.name": ["must be a text of 1 to 200 characters, no control characters"],
        f"{p}.specialty": ["must be a text of at most 200 characters, no control characters"],
        f"{p}.active": ["must be true or false"],
        f"{p}.max_appointments_per_slot": ["must be an integer from 1 to 10000"],
        f"{p}.schedule.6.sessions.0.end": ["must be after start (17:00)"],
        f"{p}.schedule.8": ["weekday keys are '0' (Sunday) to '6' (Saturday)"],
        f"{p}.schedule.1.slots": ["slots 17:00-18:30 and 18:00-19:00 overlap"],
        f"{p}.date_overrides.tomorrow": ["override keys must be dates YYYY-MM-DD"],
        f"{p}.date_overrides.2026-12-20.closed": ["must be true or false"],
        f"{p}.date_overrides.2026-12-21.sessions.0.slot_minutes": [
            "no slot of 5 minutes fits between 10:00 and 10:04"
        ],
        "practitioners.rina": ['must be an object {"name": ...}'],
        "practitioners.kamal.name": [
            "must be a text of 1 to 200 characters, no control characters"
        ],
    }


def test_several_problems_of_every_new_kind_at_once():
    body = hospital(
        appointment_types={"new": {"name": "New", "units": 0}},
        default_appointment_type="old",
        practitioners={
            "helal": doctor(
                schedule={
                    "6": {
                        "slots": [{"start": "17:10", "end": "18:00"}],
                        "sessions": [session("17:00", "18:00", 20)],
                    }
                }
            ),
            "Rina": doctor(),
        },
    )
    body["schedule"]["3"] = {"sessions": [session("17:00", "17:10", 15)]}
    body["date_overrides"] = {"2026-12-21": {"closed": True, "sessions": [session("9:00", "x", 0)]}}
    _, errors = validate_hospital(body)
    assert errors == {
        "schedule.3.sessions.0.slot_minutes": [
            "no slot of 15 minutes fits between 17:00 and 17:10"
        ],
        "date_overrides.2026-12-21": ["a closed date cannot also list sessions"],
        "appointment_types.new.units": ["must be an integer from 1 to 10000"],
        "default_appointment_type": ["must be a key of appointment_types"],
        "practitioners.helal.schedule.6": ["slots 17:00-17:20 and 17:10-18:00 overlap"],
        "practitioners.Rina": [ID_RULE],
    }


def test_at_most_200_practitioners():
    many = {f"d{i}": doctor() for i in range(201)}
    _, errors = validate_hospital(hospital(practitioners=many))
    assert errors == {"practitioners": ["at most 200 practitioners"]}
    del many["d200"]
    doc, errors = validate_hospital(hospital(practitioners=many))
    assert errors == {}
    assert len(doc["practitioners"]) == 200


@pytest.mark.parametrize("practitioners", [[], "helal", None, 7])
def test_practitioners_must_be_an_object(practitioners):
    _, errors = validate_hospital(hospital(practitioners=practitioners))
    assert errors == {"practitioners": ["must be an object keyed by practitioner id"]}


# --- validate_practitioner: one doctor, paths without the prefix ----------------------------


def test_validate_practitioner_paths():
    body = doctor(
        practitioner_id="helal",
        schedule={"6": {"sessions": [session("17:00", "17:00", 20)]}},
        date_overrides={"2026-12-20": {"reason": "?"}},
        max_appointments_per_slot=0,
    )
    doc, errors = validate_practitioner(body, "helal")
    assert errors == {
        "practitioner": ["unknown field(s): practitioner_id"],
        "schedule.6.sessions.0.end": ["must be after start (17:00)"],
        "date_overrides.2026-12-20": [
            'give either "closed": true or the date\'s "slots" or "sessions"'
        ],
        "max_appointments_per_slot": ["must be an integer from 1 to 10000"],
    }
    assert doc["name"] == "Dr. Helal Uddin"


@pytest.mark.parametrize("body", [None, [], "Dr", 3, True])
def test_validate_practitioner_body_not_an_object(body):
    doc, errors = validate_practitioner(body, "helal")
    assert doc == {}
    assert errors == {"practitioner": ['must be an object {"name": ...}']}


def test_validate_practitioner_is_what_the_hospital_uses():
    bodies = [
        full_doctor(),
        doctor(active=1, schedule={"6": {"sessions": [session("17:00", "17:04", 5)]}}),
        {"name": "\u2028", "date_overrides": []},
    ]
    for body in bodies:
        alone, alone_errors = validate_practitioner(copy.deepcopy(body), "helal")
        doc, errors = validate_hospital(hospital(practitioners={"helal": body}))
        assert doc["practitioners"]["helal"] == alone
        assert errors == {f"practitioners.helal.{path}": m for path, m in alone_errors.items()}


# --- any JSON value: errors, never an exception ---------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["17:00", "18:00", "2026-12-20", "helal", "6"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "start",
                    "end",
                    "slot_minutes",
                    "capacity",
                    "slots",
                    "sessions",
                    "closed",
                    "name",
                    "x",
                ]
            )
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@st.composite
def junk_document(draw):
    """A valid document with any JSON value put in the place of one of its parts."""
    body = hospital(
        appointment_types={"new": {"name": "New", "units": 1}},
        default_appointment_type="new",
        practitioners={"helal": full_doctor()},
    )
    places = [
        (body, "practitioners"),
        (body, "appointment_types"),
        (body, "default_appointment_type"),
        (body["practitioners"], "helal"),
        (body["practitioners"]["helal"], "schedule"),
        (body["practitioners"]["helal"]["schedule"]["6"], "sessions"),
        (body["practitioners"]["helal"]["schedule"]["6"]["sessions"], 0),
        (body["practitioners"]["helal"]["date_overrides"], "2026-12-20"),
        (body["schedule"], "6"),
        (body["appointment_types"], "new"),
    ]
    container, key = draw(st.sampled_from(places))
    container[key] = draw(JSON)
    return body


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_document(), JSON)
def test_any_json_value_gives_errors_not_exceptions(body, alone):
    for doc, errors in (validate_hospital(body), validate_practitioner(alone, "helal")):
        assert isinstance(doc, dict)
        for path, messages in errors.items():
            assert isinstance(path, str)
            assert messages and all(isinstance(m, str) and m for m in messages)


# --- property: a session's slots tile it, or the validation says why ----------------------


MINUTE = st.integers(min_value=0, max_value=23 * 60 + 59)


@st.composite
def listed_slots(draw):
    spans = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        start = draw(st.integers(min_value=0, max_value=23 * 60 + 58))
        longest = min(start + draw(st.sampled_from([30, 24 * 60])), 23 * 60 + 59)
        spans.append((start, draw(st.integers(min_value=start + 1, max_value=longest))))
    return spans


def overlapping(spans: list[tuple[int, int]]) -> bool:
    ordered = sorted(spans)
    return any(b[0] < a[1] for a, b in zip(ordered, ordered[1:], strict=False))


@st.composite
def session_minutes(draw) -> tuple[int, int, int]:
    """(start, end, slot_minutes): mostly plausible, sometimes anything."""
    start = draw(MINUTE)
    end = draw(MINUTE | st.integers(min_value=start, max_value=min(start + 300, 23 * 60 + 59)))
    step = draw(st.integers(min_value=5, max_value=60) | st.integers(min_value=-5, max_value=300))
    return start, end, step


@settings(max_examples=150, deadline=None)
@given(session_minutes(), listed_slots())
def test_session_slots_tile_the_session_or_an_error_is_reported(times, listed):
    start, end, step = times
    where = "date_overrides.2026-12-20"
    day = {
        "slots": [{"start": hhmm(s), "end": hhmm(e)} for s, e in listed],
        "sessions": [session(hhmm(start), hhmm(end), step)],
    }
    doc, errors = validate_hospital(hospital(date_overrides={"2026-12-20": day}))

    # The model, from the rule: n = floor((end - start) / m) slots [start + k*m, start + (k+1)*m].
    step_ok = 5 <= step <= 240
    n = (end - start) // step if step_ok and end > start else 0
    generated = [(start + k * step, start + (k + 1) * step) for k in range(n)]
    expected_valid = (
        n >= 1
        and not overlapping(listed + generated)
        and len(listed) + len(generated) <= MAX_SLOTS_PER_DAY
    )
    assert (errors == {}) == expected_valid, errors
    event("accepted" if expected_valid else "rejected")
    assert all(path.startswith(where) for path in errors)
    if not step_ok:
        assert errors[f"{where}.sessions.0.slot_minutes"] == ["must be an integer from 5 to 240"]
    elif end <= start:
        assert errors[f"{where}.sessions.0.end"] == [f"must be after start ({hhmm(start)})"]
    elif n == 0:
        assert f"{where}.sessions.0.slot_minutes" in errors
    elif overlapping(generated + listed) and not overlapping(listed):
        assert any(m.endswith(" overlap") for m in errors[where])
    if errors:
        return

    # Accepted: the day expands to the listed slots and the session's tiling, none overlapping.
    assert generated[0][0] == start and generated[-1][1] == start + n * step <= end
    assert all(a[1] == b[0] for a, b in zip(generated, generated[1:], strict=False))
    expanded = compile_schedule(doc).day(date(2026, 12, 20), datetime(2026, 12, 1, tzinfo=UTC))
    assert expanded.status == OPEN
    got = [(slot.start, slot.end) for slot in expanded.slots]
    assert sorted(got) == sorted((hhmm(s), hhmm(e)) for s, e in listed + generated)
    assert not overlapping([(minutes(s), minutes(e)) for s, e in got])


def test_normal_form_is_a_fixed_point():
    """The service validates a stored (normalized) document again: nothing may change."""
    body = hospital(
        appointment_types={"new": {"name": "New", "units": 2, "minutes": 12}},
        default_appointment_type="new",
        practitioners={"helal": full_doctor(), "rina": doctor(specialty=None)},
        date_overrides={"2026-12-20": {"sessions": [session("10:00", "11:00", 30)]}},
    )
    body["schedule"]["0"] = {"sessions": [session("09:00", "13:00", 60)]}
    doc, errors = validate_hospital(body)
    assert errors == {}
    again, errors = validate_hospital(copy.deepcopy(doc))
    assert errors == {}
    assert json.dumps(again) == json.dumps(doc)
    helal, errors = validate_practitioner(copy.deepcopy(doc["practitioners"]["helal"]), "helal")
    assert errors == {}
    assert helal == doc["practitioners"]["helal"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [(30, True), (300, True), (1800, True), (29, False), (1801, False), (0, False),
     (-5, False), (300.5, False), ("300", False), (True, False), (None, False)],
)  # fmt: skip
def test_hold_seconds_is_30_to_1800_and_kept_only_when_given(value, ok):
    """API.md, "Holds": a hospital's `hold_seconds` (default 300, 30..1800)."""
    doc, errors = validate_hospital({**hospital(), "hold_seconds": value})
    if ok:
        assert errors == {} and doc["hold_seconds"] == value
    else:
        assert list(errors) == ["hold_seconds"]
    without, errors = validate_hospital(hospital())
    assert errors == {} and "hold_seconds" not in without
    from shared.configurations import DEFAULT_HOLD_SECONDS, Configuration

    assert DEFAULT_HOLD_SECONDS == 300
    assert Configuration.compile({**without, "version": 1}).hold_seconds == 300
    if ok:
        assert Configuration.compile({**doc, "version": 1}).hold_seconds == value
