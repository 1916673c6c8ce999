"""schedule_service/validation.py: a hospital document checked whole, every problem at once."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from schedule_service.seed import GOMOTI
from schedule_service.validation import validate_hospital
from shared.slots import OPEN, compile_schedule


def valid_body() -> dict:
    body = copy.deepcopy(GOMOTI)
    for day in body["schedule"].values():
        for slot in day["slots"]:
            del slot["display"]
    body["date_overrides"] = {
        "2026-12-16": {"closed": True, "reason": "Victory Day"},
        "2026-12-20": {"slots": [{"start": "10:00", "end": "11:00", "capacity": 5}]},
    }
    return body


def with_slots(slots: list, weekday: str = "1") -> dict:
    body = valid_body()
    body["schedule"][weekday] = {"slots": slots}
    return body


def test_valid_document_has_no_errors_and_gets_displays():
    doc, errors = validate_hospital(valid_body())
    assert errors == {}
    assert doc["hospital_id"] == "gomoti"
    assert doc["timezone"] == "Asia/Dhaka"
    assert doc["max_appointments_per_slot"] == 15
    assert doc["advance_booking_days"] == 60
    monday = doc["schedule"]["1"]["slots"]
    assert [s["start"] for s in monday] == ["17:00", "18:00", "19:00", "20:00", "21:00"]
    assert monday[0]["display"] == "05:00 PM - 06:00 PM"
    assert doc["schedule"]["4"]["slots"][0]["display"] == "04:00 PM - 05:00 PM"
    assert doc["date_overrides"]["2026-12-16"] == {"closed": True, "reason": "Victory Day"}
    override_slot = doc["date_overrides"]["2026-12-20"]["slots"][0]
    assert override_slot == {
        "start": "10:00",
        "end": "11:00",
        "display": "10:00 AM - 11:00 AM",
        "capacity": 5,
    }


def test_valid_document_with_matching_path_id():
    _, errors = validate_hospital(valid_body(), hospital_id="gomoti")
    assert errors == {}


def test_missing_hospital_id_taken_from_path():
    body = valid_body()
    del body["hospital_id"]
    doc, errors = validate_hospital(body, hospital_id="gomoti")
    assert errors == {}
    assert doc["hospital_id"] == "gomoti"


def test_hospital_id_mismatch_with_path():
    _, errors = validate_hospital(valid_body(), hospital_id="other")
    assert list(errors) == ["hospital_id"]


def test_given_display_is_kept_and_slots_sorted():
    body = with_slots(
        [{"start": "19:00", "end": "20:00"}, {"start": "08:00", "end": "09:00", "display": "Early"}]
    )
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert doc["schedule"]["1"]["slots"] == [
        {"start": "08:00", "end": "09:00", "display": "Early"},
        {"start": "19:00", "end": "20:00", "display": "07:00 PM - 08:00 PM"},
    ]


def test_touching_slots_do_not_overlap():
    body = with_slots([{"start": "09:00", "end": "10:00"}, {"start": "10:00", "end": "11:00"}])
    _, errors = validate_hospital(body)
    assert errors == {}


def test_validated_document_compiles():
    doc, errors = validate_hospital(valid_body())
    assert errors == {}
    schedule = compile_schedule(doc)
    now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert schedule.day(date(2026, 12, 20), now).status == OPEN  # a Sunday, by override
    assert schedule.day(date(2026, 12, 16), now).reason == "Victory Day"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start", "7:00"),
        ("start", "24:00"),
        ("start", "17:60"),
        ("start", "1700"),
        ("start", 1700),
        ("start", None),
        ("end", "18:00:00"),
        ("end", "6 PM"),
    ],
)
def test_bad_time_format(field, value):
    slot = {"start": "17:00", "end": "18:00", field: value}
    _, errors = validate_hospital(with_slots([slot]))
    assert f"schedule.1.slots.0.{field}" in errors


@pytest.mark.parametrize("value", ["17:00\n", "1৭:00", "17:0٥"])
def test_time_must_be_plain_ascii_hh_mm(value):
    """'17:00\\n' or non-ASCII digits are not HH:MM and must not be stored as a slot start."""
    doc, errors = validate_hospital(with_slots([{"start": value, "end": "18:00"}]))
    assert "schedule.1.slots.0.start" in errors, doc["schedule"]["1"]


@pytest.mark.parametrize(("start", "end"), [("18:00", "18:00"), ("18:00", "17:00")])
def test_end_must_be_after_start(start, end):
    _, errors = validate_hospital(with_slots([{"start": start, "end": end}]))
    assert "schedule.1.slots.0.end" in errors


def test_overlapping_slots_in_a_weekday():
    body = with_slots([{"start": "17:00", "end": "18:30"}, {"start": "18:00", "end": "19:00"}])
    _, errors = validate_hospital(body)
    assert "schedule.1.slots" in errors
    assert "17:00-18:30" in errors["schedule.1.slots"][0]


def test_overlapping_slots_reported_whatever_the_order():
    body = with_slots([{"start": "18:00", "end": "19:00"}, {"start": "09:00", "end": "18:01"}])
    _, errors = validate_hospital(body)
    assert "schedule.1.slots" in errors


def test_overlapping_slots_in_an_override_day():
    body = valid_body()
    body["date_overrides"]["2026-12-20"] = {
        "slots": [{"start": "10:00", "end": "11:00"}, {"start": "10:30", "end": "12:00"}]
    }
    _, errors = validate_hospital(body)
    assert "date_overrides.2026-12-20.slots" in errors


@pytest.mark.parametrize("key", ["7", "mon", "-1", "01", ""])
def test_weekday_key_outside_0_to_6(key):
    body = valid_body()
    body["schedule"][key] = {"slots": [{"start": "09:00", "end": "10:00"}]}
    _, errors = validate_hospital(body)
    assert f"schedule.{key}" in errors


@pytest.mark.parametrize("capacity", [0, -1, "5", 2.5, True, 10_001])
def test_slot_capacity_must_be_positive_integer(capacity):
    body = with_slots([{"start": "09:00", "end": "10:00", "capacity": capacity}])
    _, errors = validate_hospital(body)
    assert "schedule.1.slots.0.capacity" in errors


@pytest.mark.parametrize("capacity", [0, "5", None])
def test_max_appointments_per_slot_must_be_positive_integer(capacity):
    body = valid_body()
    body["max_appointments_per_slot"] = capacity
    _, errors = validate_hospital(body)
    assert "max_appointments_per_slot" in errors


@pytest.mark.parametrize("zone", ["Mars/Base", "", None, "../etc/passwd", "/etc/localtime"])
def test_unknown_time_zone(zone):
    body = valid_body()
    body["timezone"] = zone
    _, errors = validate_hospital(body)
    assert "timezone" in errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "UTC"),
        ("timezone", "Europe/London"),
        ("timezone", "America/Santiago"),
        ("advance_booking_days", 0),
        ("advance_booking_days", 366),
    ],
)
def test_known_time_zones_and_booking_window_edges_accepted(field, value):
    body = valid_body()
    body[field] = value
    doc, errors = validate_hospital(body)
    assert errors == {}
    assert doc[field] == value


@pytest.mark.parametrize("days", [-1, 367, "60", 1.5])
def test_advance_booking_days_out_of_range(days):
    body = valid_body()
    body["advance_booking_days"] = days
    _, errors = validate_hospital(body)
    assert "advance_booking_days" in errors


@pytest.mark.parametrize("key", ["2026-02-30", "tomorrow", "2026-12-1", "2026-12-16T00:00"])
def test_override_key_must_be_a_date(key):
    body = valid_body()
    body["date_overrides"][key] = {"closed": True}
    _, errors = validate_hospital(body)
    assert f"date_overrides.{key}" in errors


def test_override_cannot_be_closed_and_list_slots():
    body = valid_body()
    body["date_overrides"]["2026-12-21"] = {
        "closed": True,
        "slots": [{"start": "10:00", "end": "11:00"}],
    }
    _, errors = validate_hospital(body)
    assert "date_overrides.2026-12-21" in errors


def test_override_needs_closed_or_slots():
    body = valid_body()
    body["date_overrides"]["2026-12-21"] = {"reason": "?"}
    _, errors = validate_hospital(body)
    assert "date_overrides.2026-12-21" in errors


def test_override_unknown_field():
    body = valid_body()
    body["date_overrides"]["2026-12-21"] = {"closed": True, "note": "x"}
    _, errors = validate_hospital(body)
    assert "date_overrides.2026-12-21" in errors


def test_unknown_slot_field():
    body = with_slots([{"start": "09:00", "end": "10:00", "room": "3"}])
    _, errors = validate_hospital(body)
    assert "schedule.1.slots.0" in errors
    assert "room" in errors["schedule.1.slots.0"][0]


def test_unknown_weekday_field():
    body = valid_body()
    body["schedule"]["1"]["closed"] = True
    _, errors = validate_hospital(body)
    assert "schedule.1" in errors


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 201])
def test_hospital_name_required(name):
    body = valid_body()
    body["hospital_name"] = name
    _, errors = validate_hospital(body)
    assert "hospital_name" in errors


@pytest.mark.parametrize("hid", ["Gomoti", "-x", "a b", "", "x" * 65])
def test_hospital_id_format(hid):
    body = valid_body()
    body["hospital_id"] = hid
    _, errors = validate_hospital(body)
    assert "hospital_id" in errors


def test_several_problems_reported_in_one_call():
    body = valid_body()
    body["timezone"] = "Mars/Base"
    body["advance_booking_days"] = 367
    body["schedule"]["7"] = {"slots": []}
    body["schedule"]["1"] = {
        "slots": [
            {"start": "7:00", "end": "08:00"},
            {"start": "09:00", "end": "09:00"},
            {"start": "10:00", "end": "11:00", "capacity": 0},
            {"start": "12:00", "end": "13:00", "room": 1},
        ]
    }
    body["schedule"]["3"] = {
        "slots": [{"start": "17:00", "end": "18:30"}, {"start": "18:00", "end": "19:00"}]
    }
    body["date_overrides"]["tomorrow"] = {"closed": True}
    body["date_overrides"]["2026-12-21"] = {
        "closed": True,
        "slots": [{"start": "10:00", "end": "11:00"}],
    }
    _, errors = validate_hospital(body, hospital_id="other")
    assert {
        "hospital_id",
        "timezone",
        "advance_booking_days",
        "schedule.7",
        "schedule.1.slots.0.start",
        "schedule.1.slots.1.end",
        "schedule.1.slots.2.capacity",
        "schedule.1.slots.3",
        "schedule.3.slots",
        "date_overrides.tomorrow",
        "date_overrides.2026-12-21",
    } <= set(errors)
    for messages in errors.values():
        assert messages and all(isinstance(m, str) and m for m in messages)


def test_defaults_filled_when_absent():
    doc, errors = validate_hospital(
        {"hospital_id": "x", "hospital_name": "X", "schedule": {}, "date_overrides": {}}
    )
    assert errors == {}
    assert doc["timezone"] == "Asia/Dhaka"
    assert doc["max_appointments_per_slot"] == 15
    assert doc["advance_booking_days"] == 60


@pytest.mark.parametrize(("field", "value"), [("schedule", []), ("date_overrides", "x")])
def test_wrong_container_types(field, value):
    body = valid_body()
    body[field] = value
    _, errors = validate_hospital(body)
    assert field in errors


def test_overlap_reported_even_when_a_slot_has_another_error():
    body = with_slots(
        [
            {"start": "17:00", "end": "18:30", "capacity": 0},
            {"start": "18:00", "end": "19:00", "room": "2"},
        ]
    )
    _, errors = validate_hospital(body)
    assert "schedule.1.slots.0.capacity" in errors
    assert "schedule.1.slots.1" in errors
    assert "schedule.1.slots" in errors
    assert "17:00-18:30" in errors["schedule.1.slots"][0]
