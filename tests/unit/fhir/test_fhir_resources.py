"""FHIR R4 resources (booking_service/integrations/fhir/: scheduling, appointments, bundles,
outcomes): what each builds, every answer parsed back with fhir.resources.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from http import HTTPStatus
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from booking_service.adapters.repository import VISIBLE
from booking_service.core.shapes import public
from booking_service.integrations.fhir import appointments, bundles, datatypes, outcomes, scheduling
from shared.slots import compile_practitioner, compile_schedule
from tests.unit.builders import appointment
from tests.unit.fhir.fhir_support import HOSPITAL, ZONE, check_resource, dump

# Each status an appointment shows and the FHIR status (R4's AppointmentStatus) it is shown as.
FHIR_STATUS_OF = [
    ("confirmed", "booked"),
    ("cancelled", "cancelled"),
    ("checked_in", "checked-in"),
    ("in_consultation", "arrived"),
    ("completed", "fulfilled"),
    ("no_show", "noshow"),
]


def test_the_status_mapping_covers_every_status_an_appointment_shows():
    assert set(appointments.APPOINTMENT_STATUS) == set(VISIBLE) == dict(FHIR_STATUS_OF).keys()
    assert set(appointments.APPOINTMENT_STATUS.values()) <= set(
        appointments.FHIR_APPOINTMENT_STATUSES
    )
    assert appointments.OUR_STATUSES["arrived"] == ("in_consultation",)


def test_instants_carry_the_hospitals_offset():
    moment = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert datatypes.fhir_instant(moment, ZONE) == "2026-11-28T17:00:00+06:00"
    assert (
        datatypes.fhir_instant(moment, ZoneInfo("America/St_Johns")) == "2026-11-28T07:30:00-03:30"
    )
    # An offset FHIR cannot write (seconds; local mean time) is written in UTC.
    lmt = timezone(timedelta(hours=5, minutes=53, seconds=28))
    assert datatypes.fhir_instant(moment, lmt) == "2026-11-28T11:00:00+00:00"


def test_slot_statuses():
    assert scheduling.slot_status(started=False, bookable_by_anyone=True, remaining=1) == "free"
    assert scheduling.slot_status(started=False, bookable_by_anyone=True, remaining=0) == "busy"
    assert scheduling.slot_status(started=False, bookable_by_anyone=True, remaining=None) == "free"
    assert (
        scheduling.slot_status(started=True, bookable_by_anyone=True, remaining=3)
        == "busy-unavailable"
    )
    assert (
        scheduling.slot_status(started=False, bookable_by_anyone=False, remaining=3)
        == "busy-unavailable"
    )


def slot_view(doctor_id: str | None, remaining: int | None) -> scheduling.SlotView:
    """The free 17:00-18:00 slot of h_1 (or of one of its doctors) on 2026-11-28."""
    return scheduling.SlotView(
        "h_1",
        doctor_id,
        date(2026, 11, 28),
        "17:00",
        datetime(2026, 11, 28, 11, tzinfo=UTC),
        datetime(2026, 11, 28, 12, tzinfo=UTC),
        ZONE,
        "free",
        remaining,
    )


def test_a_slot_has_its_schedule_instants_and_remaining_places():
    view = slot_view("dr_a", 4)
    doc = dump(scheduling.slot(view))
    check_resource(doc)
    assert doc == {
        "resourceType": "Slot",
        "id": "h..1.dr..a.20261128.1700",
        "extension": [{"url": scheduling.REMAINING_EXTENSION, "valueInteger": 4}],
        "schedule": {"reference": "Schedule/h..1.dr..a"},
        "status": "free",
        "start": "2026-11-28T17:00:00+06:00",
        "end": "2026-11-28T18:00:00+06:00",
    }
    unknown = dump(scheduling.slot(scheduling.SlotView(**{**view.__dict__, "remaining": None})))
    check_resource(unknown)
    assert "extension" not in unknown


def test_schedules_of_a_hospital_and_of_its_doctors():
    planned = compile_schedule(HOSPITAL)
    now = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    own = dump(scheduling.schedule(HOSPITAL, planned, None, now))
    check_resource(own)
    assert own["id"] == "h..1" and own["active"] is True
    assert own["actor"] == [{"reference": "Location/h..1", "display": "H One"}]
    assert own["planningHorizon"] == {
        "start": "2026-11-28T00:00:00+06:00",
        "end": "2026-12-29T00:00:00+06:00",  # 30 days ahead, the whole last day
    }
    for pid, active in (("dr_a", True), ("off", False)):
        doctor = compile_practitioner(HOSPITAL, planned, pid, HOSPITAL["practitioners"][pid])
        doc = dump(scheduling.schedule(HOSPITAL, doctor.schedule, doctor, now))
        check_resource(doc)
        assert doc["active"] is active
        assert doc["actor"][0]["reference"] == f"Practitioner/h..1.{pid.replace('_', '..')}"
        assert doc["actor"][1]["reference"] == "Location/h..1"
    practitioner = compile_practitioner(
        HOSPITAL, planned, "dr_a", HOSPITAL["practitioners"]["dr_a"]
    )
    doc = dump(scheduling.practitioner("h_1", practitioner))
    check_resource(doc)
    assert doc["id"] == "h..1.dr..a" and doc["name"] == [{"text": "Dr. A"}]
    location = dump(scheduling.location(HOSPITAL))
    check_resource(location)
    assert location["identifier"] == [{"system": scheduling.HOSPITAL_SYSTEM, "value": "h_1"}]


# The API's answer for a stored appointment with a doctor and a type.
ANSWER = public(
    appointment(
        _id=ObjectId("65a1b2c3d4e5f60718293a4b"),
        hospital_id="h_1",
        serial=4,
        reason="follow-up",
        practitioner={"practitioner_id": "dr_a", "name": "Dr. A"},
        appointment_type="new",
        units=2,
    )
)
PLACE = appointments.Place(
    datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC), ZONE, "H One"
)


@pytest.mark.parametrize(("status", "fhir_status"), FHIR_STATUS_OF)
def test_an_appointment_in_every_status(status, fhir_status):
    doc = dump(appointments.appointment({**ANSWER, "status": status}, PLACE))
    check_resource(doc)
    assert doc["status"] == fhir_status
    assert status in appointments.OUR_STATUSES[fhir_status]  # a search for it finds it
    assert {"url": appointments.STATUS_EXTENSION, "valueCode": status} in doc["extension"]
    assert {"url": appointments.SERIAL_EXTENSION, "valuePositiveInt": 4} in doc["extension"]
    assert doc["start"] == "2026-11-28T17:00:00+06:00" and doc["end"] == "2026-11-28T18:00:00+06:00"
    assert doc["slot"] == [{"reference": "Slot/h..1.dr..a.20261128.1700"}]
    assert doc["contained"] == [
        {
            "resourceType": "Patient",
            "id": "patient",
            "name": [{"text": "Rahim Uddin"}],
            "telecom": [{"system": "phone", "value": "+8801712345678"}],
        }
    ]
    actors = [p["actor"] for p in doc["participant"]]
    assert actors == [
        {"reference": "#patient", "display": "Rahim Uddin"},
        {"reference": "Practitioner/h..1.dr..a", "display": "Dr. A"},
        {"reference": "Location/h..1", "display": "H One"},
    ]
    assert doc["appointmentType"]["coding"] == [{"system": appointments.TYPE_SYSTEM, "code": "new"}]
    assert doc["reasonCode"] == [{"text": "follow-up"}]


def test_an_appointment_whose_ids_cannot_be_written_keeps_its_names():
    long_id = "h" * 60
    doc = dump(appointments.appointment({**ANSWER, "hospital_id": long_id, "reason": None}, PLACE))
    check_resource(doc)
    assert "slot" not in doc and "reasonCode" not in doc
    assert doc["participant"][1]["actor"] == {"display": "Dr. A"}
    assert doc["participant"][2]["actor"] == {
        "reference": f"Location/{long_id}",
        "display": "H One",
    }


def test_searchsets_link_their_pages_and_warn_when_incomplete():
    slot = scheduling.slot(slot_view(None, None))
    doc = dump(
        bundles.searchset(
            [("http://x/fhir/R4/Slot/" + slot.id, slot)],
            "http://x/s",
            "http://x/n",
            None,
            "counts unknown",
        )
    )
    check_resource(doc)
    assert doc["type"] == "searchset" and "total" not in doc
    assert doc["link"] == [
        {"relation": "self", "url": "http://x/s"},
        {"relation": "next", "url": "http://x/n"},
    ]
    assert doc["entry"][1]["search"] == {"mode": "outcome"}
    assert doc["entry"][1]["resource"]["issue"][0]["severity"] == "warning"
    empty = dump(bundles.searchset([], "http://x/s", total=0))
    check_resource(empty)
    assert empty["total"] == 0 and "entry" not in empty


# -- OperationOutcome -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (400, "validation_error", "invalid"),
        (400, "malformed_json", "structure"),
        (401, "unauthorized", "login"),
        (403, "forbidden", "forbidden"),
        (404, "not_found", "not-found"),
        (405, "method_not_allowed", "not-supported"),
        (406, "not_acceptable", "not-supported"),
        (409, "slot_full", "conflict"),
        (409, "duplicate_booking", "duplicate"),
        (413, "payload_too_large", "too-costly"),
        (415, "unsupported_media_type", "not-supported"),
        (422, "slot_not_found", "business-rule"),
        (429, "rate_limited", "throttled"),
        (500, "internal_error", "exception"),
        (503, "service_unavailable", "transient"),
        (504, "gateway_timeout", "timeout"),
        (418, "teapot", "processing"),
    ],
)
def test_errors_become_operation_outcomes_with_our_reason(status, reason, code):
    doc = dump(outcomes.operation_outcome(status, reason, "Why it failed"))
    check_resource(doc)
    assert doc["issue"] == [
        {
            "severity": "error",
            "code": code,
            "details": {
                "coding": [{"system": outcomes.ERROR_SYSTEM, "code": reason}],
                "text": "Why it failed",
            },
            "diagnostics": "Why it failed",
        }
    ]


def test_field_errors_are_issues_with_their_fhirpath():
    errors = {
        "patient": {"name": ["Length must be between 1 and 100."], "phone": ["bad"]},
        "Appointment.slot[0].reference": ["must be Slot/<id>"],
        "_count": ["must be a number"],
    }
    doc = dump(outcomes.operation_outcome(400, "validation_error", "Not valid", errors))
    check_resource(doc)
    rest = doc["issue"][1:]
    assert {
        "severity": "error",
        "code": "invalid",
        "expression": ["Appointment.contained[0].name[0]"],
        "diagnostics": "Length must be between 1 and 100.",
    } in rest
    assert {
        "severity": "error",
        "code": "invalid",
        "expression": ["Appointment.contained[0].telecom"],
        "diagnostics": "bad",
    } in rest
    assert {
        "severity": "error",
        "code": "invalid",
        "expression": ["Appointment.slot[0].reference"],
        "diagnostics": "must be Slot/<id>",
    } in rest
    assert {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "_count: must be a number",
    } in rest


@given(
    st.integers(400, 599).filter(lambda s: s not in (418, 420, 425, 430) and s < 512),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=12,
    ),
)
def test_any_error_body_becomes_a_valid_outcome(status, body):
    try:
        HTTPStatus(status)
    except ValueError:
        return
    check_resource(dump(outcomes.outcome_of_error_body(status, body)))
