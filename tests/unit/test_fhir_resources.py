"""FHIR R4 (booking_service/fhir*.py): the id encoding, the resources and their mappings, the
search parameters, OperationOutcomes, and the HTTP layer over fakes (Flask's test client).

Every answer is parsed back with fhir.resources (`Model.parse_obj`) and its codes checked
against R4's value sets (fhir.resources checks types and cardinalities, not bindings).
"""

from __future__ import annotations

import json
import string
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.appointment import Appointment
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.location import Location
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.practitioner import Practitioner
from fhir.resources.schedule import Schedule
from fhir.resources.slot import Slot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import booking_service
from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir import params as fhir_params
from booking_service.integrations.fhir import resources as res
from booking_service.integrations.fhir import service as fhir_service
from shared.auth import issue_token
from shared.config import Config
from shared.errors import ValidationError
from shared.ids import ID_PATTERN
from shared.slots import compile_practitioner, compile_schedule
from tests.unit.fakes import fake_context

# R4 value sets the answers bind to (fhir.resources does not check bindings).
ISSUE_TYPES = {
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
}
SEVERITIES = {"fatal", "error", "warning", "information"}
PARTICIPATION_STATUSES = {"accepted", "declined", "tentative", "needs-action"}
MODELS = {
    "Appointment": Appointment,
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "Location": Location,
    "OperationOutcome": OperationOutcome,
    "Practitioner": Practitioner,
    "Schedule": Schedule,
    "Slot": Slot,
}

ZONE = ZoneInfo("Asia/Dhaka")
ids = st.from_regex(ID_PATTERN, fullmatch=True)


# -- what every answer must be ------------------------------------------------------------


def check_resource(doc: dict) -> None:
    """`doc` parses as its FHIR R4 model and keeps R4's bindings and invariants."""
    model = MODELS[doc["resourceType"]].parse_obj(doc)
    assert json.loads(model.json()) == doc  # nothing dropped or added by the model
    kind = doc["resourceType"]
    for extension in doc.get("extension", []):  # ext-1: a value or extensions, not both
        assert extension["url"] and sum(k.startswith("value") for k in extension) == 1
    if kind == "Bundle":
        for entry in doc.get("entry", []):
            check_resource(entry["resource"])
            assert entry["search"]["mode"] in ("match", "outcome", "include")
    elif kind == "OperationOutcome":
        assert doc["issue"]
        for issue in doc["issue"]:
            assert issue["severity"] in SEVERITIES and issue["code"] in ISSUE_TYPES
    elif kind == "Appointment":
        assert doc["status"] in res.FHIR_APPOINTMENT_STATUSES
        assert "start" in doc and "end" in doc  # app-3: only proposed/cancelled may lack them
        for participant in doc["participant"]:  # app-1: type or actor
            assert participant.get("type") or participant.get("actor")
            assert participant["status"] in PARTICIPATION_STATUSES
        for contained in doc.get("contained", []):  # dom-3: referenced from the resource
            assert any(
                p.get("actor", {}).get("reference") == "#" + contained["id"]
                for p in doc["participant"]
            )
    elif kind == "Slot":
        assert doc["status"] in res.SLOT_STATUSES
        assert datetime.fromisoformat(doc["start"]) < datetime.fromisoformat(doc["end"])


def check_outcome(resp, status: int, reason: str | None = None) -> dict:
    """An OperationOutcome answer with that status (and our reason)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.content_type == "application/fhir+json; charset=utf-8"
    doc = json.loads(resp.get_data())
    assert doc["resourceType"] == "OperationOutcome", doc
    check_resource(doc)
    first = doc["issue"][0]
    assert first["severity"] == "error" and first["diagnostics"]
    assert first["details"]["coding"][0]["system"] == res.ERROR_SYSTEM
    if reason is not None:
        assert first["details"]["coding"][0]["code"] == reason, doc
    return doc


def fhir_json(resp, status: int = 200) -> dict:
    """A FHIR answer: its status, media type, and a valid resource."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.content_type == "application/fhir+json; charset=utf-8"
    doc = json.loads(resp.get_data())
    check_resource(doc)
    return doc


# -- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        (("gomoti",), "gomoti"),
        (("dhanmondi", "helal"), "dhanmondi.helal"),
        (("h_1",), "h..1"),
        (("a_", "b"), "a...b"),
        (("a__b",), "a....b"),
        (("a__", "b"), "a.....b"),
        (("0-_-0", "x_y_"), "0-..-0.x..y.."),
    ],
)
def test_ids_are_written_with_dots_and_read_back(parts, text):
    assert fhir_ids.encode(*parts) == text
    assert fhir_ids.decode(text) == parts


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "a.",
        ".a",
        "a..",
        "A",
        "Gomoti",
        "a.-b",
        "a b",
        "a_b",
        "a/b",
        "gomoti\n",
        "ö",
        "a" * 65,
        "-a",
        "a.._",
        "١٢٣",
    ],
)
def test_what_encode_never_writes_decodes_to_nothing(text):
    # "a.." is the id "a_" (parts may end with _): the one exception, checked below.
    if text == "a..":
        assert fhir_ids.decode(text) == ("a_",)
        return
    assert fhir_ids.decode(text) is None


@given(st.lists(ids, min_size=1, max_size=4))
def test_encoding_round_trips_and_is_a_fhir_id(parts):
    text = fhir_ids.encode(*parts)
    if text is None:
        assert len(".".join(p.replace("_", "..") for p in parts)) > 64
        return
    assert fhir_ids.is_fhir_id(text) and len(text) <= 64
    assert fhir_ids.decode(text) == tuple(parts)


@given(st.lists(ids, min_size=1, max_size=3), st.lists(ids, min_size=1, max_size=3))
def test_encoding_is_injective(one, other):
    a, b = fhir_ids.encode(*one), fhir_ids.encode(*other)
    if a is not None and a == b:
        assert one == other


@given(st.text(alphabet=string.ascii_letters + string.digits + "._-\u0661 ", max_size=70))
def test_decoding_accepts_only_the_one_spelling(text):
    parts = fhir_ids.decode(text)
    if parts is not None:
        assert fhir_ids.encode(*parts) == text


@given(
    ids,
    st.none() | ids,
    st.dates(date(1900, 1, 1), date(9998, 12, 31)),
    st.integers(0, 23),
    st.integers(0, 59),
)
def test_slot_ids_round_trip(hospital, doctor, day, hour, minute):
    start = f"{hour:02d}:{minute:02d}"
    text = fhir_ids.slot_id(hospital, doctor, day, start)
    if fhir_ids.schedule_id(hospital, doctor) is None:
        assert text is None
        return
    assert text is not None and len(text) <= 64 and fhir_ids.is_fhir_id(text)
    assert fhir_ids.read_slot(text) == (hospital, doctor, day, start)
    schedule = fhir_ids.schedule_id(hospital, doctor)
    assert fhir_ids.read_schedule(schedule) == (hospital, doctor)


def test_a_schedule_is_served_only_when_its_slot_ids_fit():
    assert fhir_ids.schedule_id("a" * 50, None) == "a" * 50
    assert fhir_ids.schedule_id("a" * 51, None) is None  # its slots would be 65 characters
    assert fhir_ids.read_schedule("a" * 51) is None
    assert fhir_ids.location_id("a" * 64) == "a" * 64  # the hospital itself still has a name
    assert fhir_ids.schedule_id("a_" * 17, "b") is None  # 51 + 2 characters once written
    for bad in (
        "gomoti.2026112.1700",
        "gomoti.20261131.1700",
        "gomoti.20261128.2400",
        "gomoti.20261128.17000",
        "gomoti.99991231.1700",
        "gomoti.1700",
        "x.y.z.20261128.1700",
    ):
        assert fhir_ids.read_slot(bad) is None, bad


# -- resources --------------------------------------------------------------------------------

HOSPITAL = {
    "hospital_id": "h_1",
    "hospital_name": "H One",
    "timezone": "Asia/Dhaka",
    "schedule": {
        str(d): {
            "slots": [
                {"start": "17:00", "end": "18:00"},
                {"start": "18:00", "end": "19:00", "capacity": 3},
            ]
        }
        for d in range(7)
    },
    "max_appointments_per_slot": 2,
    "advance_booking_days": 30,
    "date_overrides": {},
    "version": 3,
    "appointment_types": {
        "new": {"name": "New patient", "units": 2},
        "followup": {"name": "Follow-up", "units": 1},
    },
    "default_appointment_type": "followup",
    "practitioners": {
        "dr_a": {"name": "Dr. A", "specialty": "Medicine", "max_appointments_per_slot": 1},
        "off": {"name": "Dr. Off", "active": False},
        "eve": {
            "name": "Dr. Eve",
            "schedule": {
                str(d): {"sessions": [{"start": "20:00", "end": "21:00", "slot_minutes": 30}]}
                for d in range(7)
            },
        },
    },
}


def dump(model) -> dict:
    return json.loads(model.json())


def test_the_status_mapping_covers_every_status_an_appointment_shows():
    from booking_service.adapters.repository import VISIBLE

    assert set(res.APPOINTMENT_STATUS) == set(VISIBLE)
    assert set(res.APPOINTMENT_STATUS.values()) <= set(res.FHIR_APPOINTMENT_STATUSES)
    assert res.APPOINTMENT_STATUS == {
        "confirmed": "booked",
        "cancelled": "cancelled",
        "checked_in": "checked-in",
        "in_consultation": "arrived",
        "completed": "fulfilled",
        "no_show": "noshow",
    }
    assert res.OUR_STATUSES["arrived"] == ("in_consultation",)


def test_instants_carry_the_hospitals_offset():
    moment = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert res.fhir_instant(moment, ZONE) == "2026-11-28T17:00:00+06:00"
    assert res.fhir_instant(moment, ZoneInfo("America/St_Johns")) == "2026-11-28T07:30:00-03:30"
    # An offset FHIR cannot write (seconds; local mean time) is written in UTC.
    lmt = timezone(timedelta(hours=5, minutes=53, seconds=28))
    assert res.fhir_instant(moment, lmt) == "2026-11-28T11:00:00+00:00"


def test_slot_statuses():
    assert res.slot_status(started=False, bookable_by_anyone=True, remaining=1) == "free"
    assert res.slot_status(started=False, bookable_by_anyone=True, remaining=0) == "busy"
    assert res.slot_status(started=False, bookable_by_anyone=True, remaining=None) == "free"
    assert res.slot_status(started=True, bookable_by_anyone=True, remaining=3) == "busy-unavailable"
    assert (
        res.slot_status(started=False, bookable_by_anyone=False, remaining=3) == "busy-unavailable"
    )


def test_a_slot_has_its_schedule_instants_and_remaining_places():
    view = res.SlotView(
        "h_1",
        "dr_a",
        date(2026, 11, 28),
        "17:00",
        datetime(2026, 11, 28, 11, tzinfo=UTC),
        datetime(2026, 11, 28, 12, tzinfo=UTC),
        ZONE,
        "free",
        4,
    )
    doc = dump(res.slot(view))
    check_resource(doc)
    assert doc == {
        "resourceType": "Slot",
        "id": "h..1.dr..a.20261128.1700",
        "extension": [{"url": res.REMAINING_EXTENSION, "valueInteger": 4}],
        "schedule": {"reference": "Schedule/h..1.dr..a"},
        "status": "free",
        "start": "2026-11-28T17:00:00+06:00",
        "end": "2026-11-28T18:00:00+06:00",
    }
    unknown = dump(res.slot(res.SlotView(**{**view.__dict__, "remaining": None})))
    check_resource(unknown)
    assert "extension" not in unknown


def test_schedules_of_a_hospital_and_of_its_doctors():
    planned = compile_schedule(HOSPITAL)
    now = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    own = dump(res.schedule(HOSPITAL, planned, None, now))
    check_resource(own)
    assert own["id"] == "h..1" and own["active"] is True
    assert own["actor"] == [{"reference": "Location/h..1", "display": "H One"}]
    assert own["planningHorizon"] == {
        "start": "2026-11-28T00:00:00+06:00",
        "end": "2026-12-29T00:00:00+06:00",  # 30 days ahead, the whole last day
    }
    for pid, active in (("dr_a", True), ("off", False)):
        doctor = compile_practitioner(HOSPITAL, planned, pid, HOSPITAL["practitioners"][pid])
        doc = dump(res.schedule(HOSPITAL, doctor.schedule, doctor, now))
        check_resource(doc)
        assert doc["active"] is active
        assert doc["actor"][0]["reference"] == f"Practitioner/h..1.{pid.replace('_', '..')}"
        assert doc["actor"][1]["reference"] == "Location/h..1"
    practitioner = compile_practitioner(
        HOSPITAL, planned, "dr_a", HOSPITAL["practitioners"]["dr_a"]
    )
    doc = dump(res.practitioner("h_1", practitioner))
    check_resource(doc)
    assert doc["id"] == "h..1.dr..a" and doc["name"] == [{"text": "Dr. A"}]
    location = dump(res.location(HOSPITAL))
    check_resource(location)
    assert location["identifier"] == [{"system": res.HOSPITAL_SYSTEM, "value": "h_1"}]


ANSWER = {
    "appointment_id": "65a1b2c3d4e5f60718293a4b",
    "status": "confirmed",
    "hospital_id": "h_1",
    "date": "2026-11-28",
    "slot": {"start": "17:00", "end": "18:00", "display": "05:00 PM - 06:00 PM"},
    "serial": 4,
    "patient": {"name": "Rahim Uddin", "phone": "+8801712345678"},
    "reason": "follow-up",
    "booked_by": "u1",
    "created_at": "2026-11-24T04:10:00Z",
    "practitioner": {"practitioner_id": "dr_a", "name": "Dr. A"},
    "appointment_type": "new",
    "units": 2,
}
PLACE = res.Place(
    datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC), ZONE, "H One"
)


@pytest.mark.parametrize("status", sorted(res.APPOINTMENT_STATUS))
def test_an_appointment_in_every_status(status):
    doc = dump(res.appointment({**ANSWER, "status": status}, PLACE))
    check_resource(doc)
    assert doc["status"] == res.APPOINTMENT_STATUS[status]
    assert {"url": res.STATUS_EXTENSION, "valueCode": status} in doc["extension"]
    assert {"url": res.SERIAL_EXTENSION, "valuePositiveInt": 4} in doc["extension"]
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
    assert doc["appointmentType"]["coding"] == [{"system": res.TYPE_SYSTEM, "code": "new"}]
    assert doc["reasonCode"] == [{"text": "follow-up"}]


def test_an_appointment_whose_ids_cannot_be_written_keeps_its_names():
    long_id = "h" * 60
    doc = dump(res.appointment({**ANSWER, "hospital_id": long_id, "reason": None}, PLACE))
    check_resource(doc)
    assert "slot" not in doc and "reasonCode" not in doc
    assert doc["participant"][1]["actor"] == {"display": "Dr. A"}
    assert doc["participant"][2]["actor"] == {
        "reference": f"Location/{long_id}",
        "display": "H One",
    }


def test_searchsets_link_their_pages_and_warn_when_incomplete():
    slot = res.slot(
        res.SlotView(
            "h_1",
            None,
            date(2026, 11, 28),
            "17:00",
            datetime(2026, 11, 28, 11, tzinfo=UTC),
            datetime(2026, 11, 28, 12, tzinfo=UTC),
            ZONE,
            "free",
            None,
        )
    )
    doc = dump(
        res.searchset(
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
    empty = dump(res.searchset([], "http://x/s", total=0))
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
    doc = dump(res.operation_outcome(status, reason, "Why it failed"))
    check_resource(doc)
    assert doc["issue"] == [
        {
            "severity": "error",
            "code": code,
            "details": {
                "coding": [{"system": res.ERROR_SYSTEM, "code": reason}],
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
    doc = dump(res.operation_outcome(400, "validation_error", "Not valid", errors))
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
    from http import HTTPStatus

    try:
        HTTPStatus(status)
    except ValueError:
        return
    check_resource(dump(res.outcome_of_error_body(status, body)))


# -- the create's body ---------------------------------------------------------------------------


def create_body(**changes) -> dict:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": "Slot/h..1.dr..a.20261128.1700"}],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"given": ["Rahim"], "family": "Uddin"}],
                "telecom": [{"system": "phone", "value": "+8801712345678"}],
            }
        ],
        "participant": [
            {"actor": {"reference": "#p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/h..1.dr..a"}, "status": "accepted"},
            {"actor": {"reference": "Location/h..1"}, "status": "accepted"},
        ],
        "appointmentType": {"coding": [{"system": res.TYPE_SYSTEM, "code": "new"}]},
        "reasonCode": [{"text": "follow-up"}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_a_create_asks_for_a_booking_in_our_terms():
    wanted = res.booking_request(create_body())
    assert wanted.body() == {
        "hospital_id": "h_1",
        "date": "2026-11-28",
        "slot": "17:00",
        "patient": {"name": "Rahim Uddin", "phone": "+8801712345678"},
        "practitioner_id": "dr_a",
        "appointment_type": "new",
        "reason": "follow-up",
    }
    minimal = res.booking_request(
        create_body(
            slot=[{"reference": "Slot/h..1.20261128.1700"}],
            participant=[{"actor": {"reference": "#p1"}, "status": "needs-action"}],
            appointmentType=None,
            reasonCode=None,
            id="ignored",
            meta={"versionId": "7"},
            contained=[
                {
                    "resourceType": "Patient",
                    "id": "p1",
                    "name": [{"text": "Rahim"}],
                    "telecom": [{"system": "phone", "value": "01712345678"}],
                }
            ],
        )
    )
    assert minimal.body() == {
        "hospital_id": "h_1",
        "date": "2026-11-28",
        "slot": "17:00",
        "patient": {"name": "Rahim", "phone": "01712345678"},
    }


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"resourceType": "Patient"}, "Appointment"),
        ({"status": "cancelled"}, "Appointment.status"),
        ({"status": 5}, "Appointment.status"),
        ({"comment": "hi"}, "Appointment.comment"),
        ({"slot": []}, "Appointment.slot"),
        ({"slot": [{"reference": "Slot/h_1.20261128.1700"}]}, "Appointment.slot[0].reference"),
        ({"slot": [{"reference": "Slot/H..1.20261128.1700"}]}, "Appointment.slot[0].reference"),
        (
            {"slot": [{"reference": "http://x/Slot/h..1.20261128.1700"}]},
            "Appointment.slot[0].reference",
        ),
        ({"slot": [{"reference": "Schedule/h..1"}]}, "Appointment.slot[0].reference"),
        (
            {
                "slot": [
                    {"reference": "Slot/h..1.20261128.1700"},
                    {"reference": "Slot/h..1.20261128.1800"},
                ]
            },
            "Appointment.slot",
        ),
        ({"contained": []}, "Appointment.contained"),
        (
            {"participant": [{"actor": {"reference": "#other"}, "status": "accepted"}]},
            "Appointment.participant",
        ),
        (
            {
                "participant": [
                    {"actor": {"reference": "#p1"}, "status": "accepted"},
                    {"actor": {"reference": "Location/h..2"}, "status": "accepted"},
                ]
            },
            "Appointment.participant[1].actor.reference",
        ),
        (
            {
                "participant": [
                    {"actor": {"reference": "#p1"}, "status": "accepted"},
                    {"actor": {"reference": "Patient/1"}, "status": "accepted"},
                ]
            },
            "Appointment.participant[1].actor.reference",
        ),
        ({"participant": [{"actor": {"reference": "#p1"}}]}, "Appointment.participant[0].status"),
        (
            {"appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "new"}]}},
            "Appointment.appointmentType.coding[0].system",
        ),
        ({"appointmentType": {"text": "new"}}, "Appointment.appointmentType.coding"),
        ({"reasonCode": [{"coding": [{"code": "x"}]}]}, "Appointment.reasonCode[0].coding"),
        ({"start": "tomorrow"}, "Appointment.start"),
    ],
)
def test_a_create_that_is_not_the_shape_we_book_is_400_by_fhirpath(changes, path):
    with pytest.raises(ValidationError) as caught:
        res.booking_request(create_body(**changes))
    assert caught.value.status == 400
    assert any(key.startswith(path) for key in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    ("patient", "path"),
    [
        ({"birthDate": "1990-01-01"}, "Appointment.contained[0].birthDate"),
        ({"name": []}, "Appointment.contained[0].name"),
        ({"name": [{"given": ["A"]}, {"text": "B"}]}, "Appointment.contained[0].name"),
        (
            {"name": [{"family": "Uddin", "prefix": ["Mr"]}]},
            "Appointment.contained[0].name[0].prefix",
        ),
        ({"telecom": []}, "Appointment.contained[0].telecom"),
        (
            {"telecom": [{"system": "email", "value": "a@b.c"}]},
            "Appointment.contained[0].telecom[0].system",
        ),
        (
            {"telecom": [{"system": "phone", "value": "1"}, {"system": "phone", "value": "2"}]},
            "Appointment.contained[0].telecom[1]",
        ),
        ({"id": None}, "Appointment.contained[0].id"),
    ],
)
def test_the_patient_gives_a_name_and_one_phone(patient, path):
    base = create_body()["contained"][0]
    contained = {k: v for k, v in {**base, **patient}.items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        res.booking_request(create_body(contained=[contained]))
    assert any(key.startswith(path) for key in caught.value.errors), caught.value.errors


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceType",
                    "status",
                    "slot",
                    "participant",
                    "contained",
                    "reference",
                    "actor",
                    "name",
                    "telecom",
                    "system",
                    "value",
                    "id",
                    "text",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    json_values, st.dictionaries(st.sampled_from(sorted(create_body())), json_values, max_size=3)
)
def test_any_body_is_a_booking_or_a_400(value, changes):
    for candidate in (value, create_body(**changes)):
        try:
            wanted = res.booking_request(candidate)
        except ValidationError as exc:
            assert exc.status == 400 and exc.errors
            check_resource(dump(res.operation_outcome(400, exc.reason, exc.message, exc.errors)))
        else:
            assert isinstance(wanted.name, str) and isinstance(wanted.phone, str)


# -- search parameters -------------------------------------------------------------------------


class Args(dict):
    """A MultiDict's `getlist`, for pure tests."""

    def getlist(self, name):
        value = self.get(name, [])
        return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28", fhir_params.DateParam("eq", day=date(2026, 11, 28))),
        ("ge2026-11-28", fhir_params.DateParam("ge", day=date(2026, 11, 28))),
        (
            "lt2026-11-28T17:00:00Z",
            fhir_params.DateParam("lt", moment=datetime(2026, 11, 28, 17, tzinfo=UTC)),
        ),
        (
            "gt2026-11-28T17:00+06:00",
            fhir_params.DateParam("gt", moment=datetime(2026, 11, 28, 11, tzinfo=UTC)),
        ),
        (
            "le2026-11-28T17:00:00 06:00",  # an unescaped + arrives as a space
            fhir_params.DateParam("le", moment=datetime(2026, 11, 28, 11, tzinfo=UTC)),
        ),
        (
            "ge2026-11-28T17:00:00.123456789-03:30",
            fhir_params.DateParam(
                "ge", moment=datetime(2026, 11, 28, 20, 30, 0, 123456, tzinfo=UTC)
            ),
        ),
    ],
)
def test_date_values(text, expected):
    assert fhir_params.date_value("start", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ge",
        "2026-11-31",
        "ge1899-12-31",
        "ge9999-01-01",
        "sa2026-11-28",
        "ne2026-11-28",
        "GE2026-11-28",
        "ge2026-11-28T17:00",
        "ge2026-11-28T24:00Z",
        "ge2026-11-28T17:00:60Z",
        "ge2026-11-28T17:00+15:00",
        "ge٢٠٢٦-11-28",
        "ge2026-11-28T17:00Z ",
        "ge2026-11",
        "ge2026-11-28T17Z",
        "ge+2026-11-28",
    ],
)
def test_date_values_that_are_not_dates_are_400(text):
    with pytest.raises(ValidationError) as caught:
        fhir_params.date_value("start", text)
    assert caught.value.errors == {"start": caught.value.errors["start"]}


@pytest.mark.parametrize(
    "values",
    [
        ["ge2026-11-28", "gt2026-11-29"],
        ["lt2026-11-28", "le2026-11-29"],
        ["2026-11-28", "lt2026-11-29"],
        ["ge2026-11-28T10:00Z"] * 3,
        ["eq2026-11-28T17:00Z"],
    ],
)
def test_bounds_are_one_lower_and_one_upper(values):
    with pytest.raises(ValidationError):
        fhir_params.date_range(Args(start=values), "start")


@pytest.mark.parametrize(
    "value", ["0", "-1", "501", "99999999999", "١٠", "1_0", " 5", "5.0", "0x10", ""]
)
def test_count_is_ascii_digits_in_range(value):
    with pytest.raises(ValidationError):
        fhir_params.count(Args(_count=value), fhir_params.SLOT_COUNT)
    assert fhir_params.count(Args(_count="500"), fhir_params.SLOT_COUNT) == 500
    assert fhir_params.count(Args(), fhir_params.SLOT_COUNT) == 100


def test_unknown_parameters_and_modifiers_are_400():
    for name in ("foo", "start:missing", "schedule:Schedule", "_sort", "", "stärt"):
        with pytest.raises(ValidationError):
            fhir_params.check_names(Args({name: "x"}), "Slot")
    fhir_params.check_names(Args(schedule="x", start="y", _count="1", _format="json"), "Slot")
    with pytest.raises(ValidationError):
        fhir_params.single(Args(schedule=["a", "b"]), "schedule")


def test_the_capability_statement_lists_what_the_router_serves():
    doc = dump(fhir_params.capability_statement("http://x/fhir/R4"))
    check_resource(doc)
    assert doc["fhirVersion"] == "4.0.1" and doc["kind"] == "instance"
    listed = {(r["type"], i["code"]) for r in doc["rest"][0]["resource"] for i in r["interaction"]}
    app = make_app()[0]
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/fhir/R4/") or rule.rule == "/fhir/R4/metadata":
            continue
        kind = rule.rule.split("/")[3]
        if "<" in rule.rule:
            served.add((kind, "read"))
        else:
            if "GET" in rule.methods:
                served.add((kind, "search-type"))
            if "POST" in rule.methods:
                served.add((kind, "create"))
    assert listed == served
    params = {
        r["type"]: {p["name"] for p in r.get("searchParam", [])} for r in doc["rest"][0]["resource"]
    }
    assert params["Slot"] == {"schedule", "start", "status", "_count", "_cursor"}


# -- the HTTP layer over fakes ----------------------------------------------------------------


def make_app(hospital: dict | None = None):
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False, booking_limit=1000)
    ctx, schedules = fake_context(cfg)
    schedules.publish(hospital or HOSPITAL)
    app = booking_service.create_app(cfg, context=ctx, start_reconciler=False)
    return app, ctx, schedules


@pytest.fixture
def app():
    return make_app()[0]


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(app, role="patient", user="u1") -> dict:
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, user, f"{user}@x.io", role)}


def tomorrow(days: int = 1) -> date:
    return datetime.now(ZONE).date() + timedelta(days=days)


def slot_ref(day: date, start: str = "17:00", doctor: str | None = None) -> str:
    return "Slot/" + fhir_ids.slot_id("h_1", doctor, day, start)


def book_body(day: date, hhmm="17:00", doctor=None, phone="+8801712345678", **changes) -> dict:
    participants = [{"actor": {"reference": "#p1"}, "status": "accepted"}]
    body = create_body(
        slot=[{"reference": slot_ref(day, hhmm, doctor)}],
        participant=participants,
        appointmentType=None,
        reasonCode=None,
    )
    body["contained"][0]["telecom"][0]["value"] = phone
    body.update(changes)
    return body


def post(client, body, headers, **kw):
    return client.post(
        "/fhir/R4/Appointment",
        data=json.dumps(body),
        headers={"Content-Type": "application/fhir+json", **headers},
        **kw,
    )


def test_reads_answer_valid_resources(app, client):
    meta = fhir_json(client.get("/fhir/R4/metadata"))
    assert meta["implementation"]["url"] == "http://localhost/fhir/R4"
    assert fhir_json(client.get("/fhir/R4/Location/h..1"))["name"] == "H One"
    assert fhir_json(client.get("/fhir/R4/Practitioner/h..1.dr..a"))["active"] is True
    assert fhir_json(client.get("/fhir/R4/Schedule/h..1.off"))["active"] is False
    forwarded = client.get("/fhir/R4/metadata", headers={"X-Forwarded-Proto": "https"})
    assert fhir_json(forwarded)["implementation"]["url"] == "https://localhost/fhir/R4"
    for path in (
        "/fhir/R4/Schedule/h_1",
        "/fhir/R4/Schedule/H..1",
        "/fhir/R4/Schedule/h..2",
        "/fhir/R4/Schedule/h..1.nobody",
        "/fhir/R4/Schedule/h..1.dr..a.x",
        "/fhir/R4/Location/h..1.dr..a",
        "/fhir/R4/Practitioner/h..1",
        "/fhir/R4/Practitioner/h..1.nobody",
        "/fhir/R4/Slot/h..1",
        "/fhir/R4/Slot/h..1.19991231.1700",
        "/fhir/R4/Slot/h..1.20261128.1730",
        "/fhir/R4/Schedule/%E2%80%AEx",
        "/fhir/R4/Appointment/x",
        "/fhir/R4/Nothing",
        "/fhir/R4",
        "/fhir",
        "/fhir/R5/metadata",
        "/fhir/R4/metadata/",
        "/fhir/R4/Schedule/",
        "/fhir/R4//Schedule",
    ):
        headers = bearer(app) if "Appointment" in path else {}
        check_outcome(client.get(path, headers=headers), 404)


def test_schedule_search(client):
    both = fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h..1"))
    assert [e["resource"]["id"] for e in both["entry"]] == [
        "h..1",
        "h..1.dr..a",
        "h..1.eve",
        "h..1.off",
    ]
    assert both["total"] == 4
    active = fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h..1&active=false"))
    assert [e["resource"]["id"] for e in active["entry"]] == ["h..1.off"]
    by_id = fhir_json(client.get("/fhir/R4/Schedule?_id=h..1.dr..a,Schedule/h..2,nobody"))
    assert [e["resource"]["id"] for e in by_id["entry"]] == ["h..1.dr..a"]
    doctor = fhir_json(client.get("/fhir/R4/Schedule?actor=Practitioner/h..1.eve&_id=h..1.eve"))
    assert doctor["total"] == 1 and doctor["entry"][0]["fullUrl"].endswith("/Schedule/h..1.eve")
    none = fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h..1&_id=h..1.zz"))
    assert none["total"] == 0
    for query in (
        "",
        "?active=true",
        "?actor=h..1",
        "?actor=Location/h_1",
        "?actor=Slot/h..1",
        "?_id=a_b",
        "?_id=Gomoti",
        "?_id=h..1,Location/h..1",
        "?_id=" + "a" * 51,
        "?actor=Location/h..1&actor=Location/h..1",
        "?_id=" + ",".join("a" * 11),
        "?actor:Location=h..1",
        "?_id=",
        "?active=yes",
    ):
        check_outcome(client.get("/fhir/R4/Schedule" + query), 400, "validation_error")


def slot_search(client, query: str) -> list[dict]:
    """Every Slot of a search, following its next links; each page checked."""
    found, url, pages = [], "/fhir/R4/Slot?" + query, 0
    while url:
        page = fhir_json(client.get(url))
        found.extend(e["resource"] for e in page.get("entry", []) if e["search"]["mode"] == "match")
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = urlsplit(nxt[0])._replace(scheme="", netloc="").geturl() if nxt else None
        pages += 1
    return found, pages


def test_slot_search_pages_through_the_window_and_counts_places(app, client):
    day = tomorrow(2)
    for phone in ("+8801700000001", "+8801700000002"):
        assert post(client, book_body(day, "18:00", phone=phone), bearer(app)).status_code == 201
    query = f"schedule=Schedule/h..1&start=ge{day}&start=lt{day + timedelta(days=3)}"
    everything, pages = slot_search(client, query + "&_count=100")
    assert pages == 1 and len(everything) == 6  # three days of two slots
    paged, pages = slot_search(client, query + "&_count=4")
    assert pages == 2 and paged == everything
    ones, pages = slot_search(client, query + "&_count=1")
    assert pages == 6 and ones == everything
    first = everything[1]
    assert first["id"] == fhir_ids.slot_id("h_1", None, day, "18:00")
    counts = client.get(f"/api/availability/h_1/{day}").json["slots"]["18:00"]
    assert first["extension"] == [
        {"url": res.REMAINING_EXTENSION, "valueInteger": counts["available"]}
    ]
    assert counts["available"] == 1 and first["status"] == "free"
    assert fhir_json(client.get("/fhir/R4/" + slot_ref(day, "18:00"))) == first
    # A doctor's own schedule; an appointment type's units; status=free.
    two_units = {"appointmentType": {"coding": [{"code": "new"}]}}
    made = post(client, book_body(day, "20:00", doctor="eve", **two_units), bearer(app))
    assert made.status_code == 201
    eve, _ = slot_search(client, f"schedule=Schedule/h..1.eve&start={day}")
    assert [(s["start"][11:16], s["status"]) for s in eve] == [("20:00", "busy"), ("20:30", "free")]
    free, _ = slot_search(client, f"schedule=h..1.eve&start={day}&status=free")
    assert [s["start"][11:16] for s in free] == ["20:30"]
    # Instants with offsets bound by instant; the booking window bounds everything.
    late, _ = slot_search(
        client, f"schedule=Schedule/h..1&start=gt{day}T17:00:00%2B06:00&start=le{day}T18:00:00Z"
    )
    assert [s["start"] for s in late] == [f"{day}T18:00:00+06:00"]
    window, _ = slot_search(client, "schedule=Schedule/h..1&status=free,busy,busy-unavailable")
    assert len(window) == 31 * 2
    assert slot_search(client, "schedule=Schedule/h..1&start=ge2099-01-01")[0] == []
    assert slot_search(client, "schedule=Schedule/h..1&start=lt2000-01-01")[0] == []
    inactive, _ = slot_search(client, f"schedule=Schedule/h..1.off&start={day}")
    assert {s["status"] for s in inactive} == {"busy-unavailable"}
    nowhere = fhir_json(client.get("/fhir/R4/Slot?schedule=Schedule/nowhere"))
    assert nowhere["total"] == 0 and "entry" not in nowhere


def test_slots_without_counts_are_answered_with_a_warning():
    app, ctx, _ = make_app()
    ctx.capacity.complete = False  # nothing vouches for the counts (Redis lost its data)
    client = app.test_client()
    doc = fhir_json(client.get(f"/fhir/R4/Slot?schedule=Schedule/h..1&start={tomorrow(3)}"))
    assert "extension" not in doc["entry"][0]["resource"]
    assert doc["entry"][-1]["search"]["mode"] == "outcome"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "schedule=",
        "schedule=Schedule/h_1",
        "schedule=Slot/h..1",
        "schedule=Schedule/",
        "schedule=Schedule/h..1&schedule=Schedule/h..1",
        "schedule=Schedule/h..1,h..1",
        "schedule=Schedule/h..1&start=ge2026-13-01",
        "schedule=Schedule/h..1&start=ne2026-11-28",
        "schedule=Schedule/h..1&start=ge2026-11-28&start=ge2026-11-29",
        "schedule=Schedule/h..1&_count=0",
        "schedule=Schedule/h..1&_count=-1",
        "schedule=Schedule/h..1&_count=%D9%A1%D9%A0",
        "schedule=Schedule/h..1&_count=1e3",
        "schedule=Schedule/h..1&_count=100000000000000000000",
        "schedule=Schedule/h..1&status=open",
        "schedule=Schedule/h..1&status=free|busy",
        "schedule=Schedule/h..1&_cursor=x",
        "schedule=Schedule/h..1&_cursor=20261399.1700",
        "schedule=Schedule/h..1&_sort=start",
        "schedule=Schedule/h..1&start:missing=true",
        "schedule=Schedule/%FF%FE",
        "schedule=Schedule/h..1&%FF=1",
        "schedule=Schedule/h..1&start=ge%00",
    ],
)
def test_slot_searches_that_are_not_valid_are_400(client, query):
    check_outcome(client.get("/fhir/R4/Slot?" + query), 400, "validation_error")


def test_booking_through_fhir_takes_places_through_the_gate(app, client):
    day = tomorrow(2)
    made = post(client, book_body(day), bearer(app))
    created = fhir_json(made, 201)
    assert made.headers["Location"] == f"http://localhost/fhir/R4/Appointment/{created['id']}"
    assert made.headers["Cache-Control"] == "no-store"
    assert created["status"] == "booked" and created["slot"] == [{"reference": slot_ref(day)}]
    rest = client.get(f"/api/appointments/{created['id']}", headers=bearer(app)).json
    assert rest["status"] == "confirmed" and rest["patient"]["name"] == "Rahim Uddin"
    assert rest["serial"] == 1
    read = fhir_json(client.get(f"/fhir/R4/Appointment/{created['id']}", headers=bearer(app)))
    assert read == created
    # The default appointment type is one unit: a second place, then the slot is full.
    duplicate = post(client, book_body(day), bearer(app))
    check_outcome(duplicate, 409, "duplicate_booking")
    assert duplicate.json["issue"][0]["code"] == "duplicate"
    assert post(client, book_body(day, phone="+8801700000003"), bearer(app)).status_code == 201
    full = post(client, book_body(day, phone="+8801700000004"), bearer(app))
    check_outcome(full, 409, "slot_full")
    assert client.get(f"/api/availability/h_1/{day}").json["slots"]["17:00"]["booked"] == 2
    # Two units for a new patient: only one place is left in the 18:00 slot of 3.
    new = book_body(
        day, "18:00", phone="+8801700000010", appointmentType={"coding": [{"code": "new"}]}
    )
    assert post(client, new, bearer(app)).status_code == 201
    check_outcome(
        post(
            client,
            dict(new, contained=book_body(day, phone="+8801700000005")["contained"]),
            bearer(app),
        ),
        409,
        "slot_full",
    )
    # The gate's own refusals, as OperationOutcomes.
    check_outcome(post(client, book_body(tomorrow(60)), bearer(app)), 422, "outside_booking_window")
    check_outcome(post(client, book_body(day, "17:30"), bearer(app)), 422, "slot_not_found")
    check_outcome(
        post(client, book_body(day, doctor="off"), bearer(app)), 422, "practitioner_inactive"
    )
    check_outcome(
        post(client, book_body(day, doctor="nobody"), bearer(app)), 404, "practitioner_not_found"
    )
    bad_type = book_body(
        day, "18:00", phone="+8801700000006", appointmentType={"coding": [{"code": "zz"}]}
    )
    check_outcome(post(client, bad_type, bearer(app)), 422, "appointment_type_not_found")


def test_start_and_end_must_be_the_slots(app, client):
    day = tomorrow(2)
    start = f"{day}T17:00:00+06:00"
    ok = post(client, book_body(day, start=start, end=f"{day}T12:00:00Z"), bearer(app))
    assert ok.status_code == 201, ok.json
    wrong = post(
        client, book_body(day, phone="+8801700000009", start=f"{day}T17:00:00Z"), bearer(app)
    )
    doc = check_outcome(wrong, 400, "validation_error")
    assert doc["issue"][1]["expression"] == ["Appointment.start"]


def test_the_rest_schema_checks_what_a_create_carries(app, client):
    day = tomorrow(2)
    for phone in ("12345", "+880 1712345678", "০১৭১২৩৪৫৬৭৮"):
        doc = check_outcome(post(client, book_body(day, phone=phone), bearer(app)), 400)
        assert doc["issue"][1]["expression"] == ["Appointment.contained[0].telecom"]
    named = book_body(day)
    named["contained"][0]["name"] = [{"text": "Bad\u2028name"}]
    check_outcome(post(client, named, bearer(app)), 400, "validation_error")


def test_idempotency_key_replays_the_first_answer(app, client):
    day = tomorrow(2)
    headers = {**bearer(app), "Idempotency-Key": "fhir-1"}
    first = fhir_json(post(client, book_body(day), headers), 201)
    again = post(client, book_body(day), headers)
    assert fhir_json(again, 201) == first and again.headers["Idempotent-Replayed"] == "true"
    other = post(client, book_body(day, phone="+8801700000007"), headers)
    check_outcome(other, 422, "idempotency_key_reused")


def test_appointments_are_the_callers_own(app, client):
    day = tomorrow(2)
    mine = fhir_json(post(client, book_body(day), bearer(app, user="u1")), 201)
    theirs = fhir_json(
        post(client, book_body(day, "18:00", phone="+8801700000008"), bearer(app, user="u2")), 201
    )
    check_outcome(
        client.get(f"/fhir/R4/Appointment/{theirs['id']}", headers=bearer(app)),
        404,
        "appointment_not_found",
    )
    own = fhir_json(client.get("/fhir/R4/Appointment", headers=bearer(app)))
    assert [e["resource"]["id"] for e in own["entry"]] == [mine["id"]] and own["total"] == 1
    # A patient's filters narrow its own; they never widen it.
    assert (
        fhir_json(client.get(f"/fhir/R4/Appointment?_id={theirs['id']}", headers=bearer(app)))[
            "total"
        ]
        == 0
    )
    desk = bearer(app, "staff", "desk")
    everyone = fhir_json(client.get("/fhir/R4/Appointment?location=Location/h..1", headers=desk))
    assert {e["resource"]["id"] for e in everyone["entry"]} == {mine["id"], theirs["id"]}
    for query, expected in (
        (f"date={day}", 2),
        (f"date=gt{day}", 0),
        (f"date=ge{day}&date=le{day}", 2),
        (f"date=lt{day}", 0),
        ("status=booked", 2),
        ("status=cancelled,noshow", 0),
        ("status=proposed", 0),
        (f"slot={slot_ref(day, '18:00')}", 1),
        (f"slot={slot_ref(day, '18:00')}&date=lt{day}", 0),
        ("practitioner=Practitioner/h..1.dr..a", 0),
        ("location=h..2", 0),
        ("location=h..1&practitioner=Practitioner/h..2.x", 0),
        (f"_id={mine['id']},{theirs['id']}", 2),
        (f"_id={'0' * 24}", 0),
        ("_count=1", 2),
    ):
        found = fhir_json(client.get("/fhir/R4/Appointment?" + query, headers=desk))
        assert found["total"] == expected, query
    first = fhir_json(client.get("/fhir/R4/Appointment?_count=1", headers=desk))
    nxt = [link["url"] for link in first["link"] if link["relation"] == "next"][0]
    assert dict(parse_qsl(urlsplit(nxt).query)) == {"_count": "1", "_page": "2"}
    second = fhir_json(
        client.get(urlsplit(nxt)._replace(scheme="", netloc="").geturl(), headers=desk)
    )
    assert [link["relation"] for link in second["link"]] == ["self"]
    assert first["entry"][0]["resource"]["id"] != second["entry"][0]["resource"]["id"]
    # Statuses follow the appointment: cancelled.
    client.delete(f"/api/appointments/{mine['id']}", headers=bearer(app))
    cancelled = fhir_json(client.get(f"/fhir/R4/Appointment/{mine['id']}", headers=bearer(app)))
    assert cancelled["status"] == "cancelled"


@pytest.mark.parametrize(
    "query",
    [
        "date=2026-11-28T10:00:00Z",
        "date=ap2026-11-28",
        "status=done",
        "status=booked&status=noshow",
        "location=Practitioner/h..1.dr..a",
        "location=h_1",
        "practitioner=h..1",
        "slot=Slot/x",
        "_page=0",
        "_page=%D9%A1",
        "_count=201",
        "_id=a_b",
        "_id=abc",
        "_id=65A1B2C3D4E5F60718293A4B",
        "patient=Patient/1",
        "_sort=date",
        "date=ge2026-11-28&date=ge2026-11-29",
    ],
)
def test_appointment_searches_that_are_not_valid_are_400(app, client, query):
    check_outcome(
        client.get("/fhir/R4/Appointment?" + query, headers=bearer(app)), 400, "validation_error"
    )


def test_appointments_need_a_token(client):
    for resp in (
        client.get("/fhir/R4/Appointment"),
        client.get("/fhir/R4/Appointment/65a1b2c3d4e5f60718293a4b"),
        client.get("/fhir/R4/Appointment", headers={"Authorization": "Bearer x.y.z"}),
        post(client, book_body(tomorrow()), {}),
    ):
        check_outcome(resp, 401, "unauthorized")


def test_the_http_layers_own_errors_are_outcomes(app, client):
    day = tomorrow(2)
    auth = bearer(app)
    doc = check_outcome(client.delete("/fhir/R4/Schedule/h..1"), 405, "method_not_allowed")
    assert doc["issue"][0]["code"] == "not-supported"
    assert "GET" in client.put("/fhir/R4/Appointment", headers=auth).headers["Allow"]
    check_outcome(client.get("/fhir/R4/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    check_outcome(client.get("/fhir/R4/metadata?_format=xml"), 406, "not_acceptable")
    assert fhir_json(client.get("/fhir/R4/metadata?_format=json", headers={"Accept": "*/*"}))
    check_outcome(client.get("/fhir/R4/metadata?mode=full"), 400, "validation_error")
    body = json.dumps(book_body(day))
    for content_type in (
        "text/plain",
        "application/xml",
        "application/fhir+json; charset=latin-1",
        None,
    ):
        headers = dict(auth, **({"Content-Type": content_type} if content_type else {}))
        check_outcome(
            client.post("/fhir/R4/Appointment", data=body, headers=headers),
            415,
            "unsupported_media_type",
        )
    hostile = {
        b"": "malformed_json",
        b"{": "malformed_json",
        b"\xff\xfe{}": "malformed_json",
        b'{"resourceType": "Appointment", "status": "\\ud800"}': "malformed_json",
        b"[" * 40 + b"]" * 40: "malformed_json",
        b"[]": "validation_error",
        b"null": "validation_error",
        b'"Appointment"': "validation_error",
        b'{"resourceType": "Appointment"}': "validation_error",
        json.dumps(
            {**book_body(day), "slot": {"reference": slot_ref(day)}}
        ).encode(): "validation_error",
        json.dumps({**book_body(day), "participant": [[[[{}]]]]}).encode(): "validation_error",
        json.dumps({**book_body(day), "status": True}).encode(): "validation_error",
        json.dumps({**book_body(day), "x" * 1000: 1}).encode(): "validation_error",
    }
    for data, reason in hostile.items():
        resp = client.post(
            "/fhir/R4/Appointment",
            data=data,
            headers=dict(auth, **{"Content-Type": "application/fhir+json"}),
        )
        check_outcome(resp, 400, reason)
    huge = b'{"resourceType": "Appointment", "text": "' + b"x" * 70000 + b'"}'
    too_large = client.post(
        "/fhir/R4/Appointment",
        data=huge,
        headers=dict(auth, **{"Content-Type": "application/fhir+json"}),
    )
    check_outcome(too_large, 413, "payload_too_large")
    # The REST API keeps its own error shape.
    rest = client.get("/api/appointments/nope", headers=auth)
    assert rest.status_code == 404 and rest.json["error"] == "appointment_not_found"


def test_the_booking_limit_and_metric_are_the_rest_apis():
    from shared import metrics

    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False, booking_limit=1)
    ctx, schedules = fake_context(cfg)
    schedules.publish(HOSPITAL)
    app = booking_service.create_app(cfg, context=ctx, start_reconciler=False)
    client = app.test_client()
    before = metrics.BOOKINGS.labels("confirmed")._value.get()
    assert post(client, book_body(tomorrow(2)), bearer(app)).status_code == 201
    assert metrics.BOOKINGS.labels("confirmed")._value.get() == before + 1
    limited = post(client, book_body(tomorrow(3)), bearer(app))
    check_outcome(limited, 429, "rate_limited")
    assert limited.headers.get("Retry-After")
    # The front desk is not limited.
    assert post(client, book_body(tomorrow(3)), bearer(app, "staff", "desk")).status_code == 201


query_text = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "schedule",
                "start",
                "status",
                "_count",
                "_cursor",
                "_id",
                "actor",
                "active",
                "date",
                "location",
                "practitioner",
                "slot",
                "_page",
                "x",
                "_format",
            ]
        ),
        st.one_of(
            st.sampled_from(
                [
                    "Schedule/h..1",
                    "h..1",
                    "Location/h..1",
                    "ge2026-11-28",
                    "free",
                    "true",
                    "10",
                    "20261128.1700",
                    "Practitioner/h..1.dr..a",
                ]
            ),
            st.text(max_size=15),
        ),
    ),
    max_size=5,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["Slot", "Schedule", "Appointment"]), query_text)
def test_no_search_is_a_server_error(app, client, resource, pairs):
    from urllib.parse import urlencode

    resp = client.get(f"/fhir/R4/{resource}?" + urlencode(pairs), headers=bearer(app, "admin"))
    assert resp.status_code in (200, 400, 406), resp.get_data(as_text=True)
    doc = json.loads(resp.get_data())
    check_resource(doc)
    assert doc["resourceType"] == ("Bundle" if resp.status_code == 200 else "OperationOutcome")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=70).filter(lambda t: "/" not in t and t not in (".", "..")))
def test_no_id_is_a_server_error(app, client, text):
    from urllib.parse import quote

    for kind in ("Schedule", "Slot", "Location", "Practitioner", "Appointment"):
        resp = client.get(f"/fhir/R4/{kind}/{quote(text, safe='')}", headers=bearer(app, "admin"))
        assert resp.status_code in (200, 404), (kind, text, resp.get_data(as_text=True))
        check_resource(json.loads(resp.get_data()))


def test_instant_bounds_read_days_in_the_hospitals_zone():
    planned = compile_schedule(HOSPITAL)
    day = date(2026, 11, 28)
    midnight = datetime(2026, 11, 27, 18, tzinfo=UTC)  # 00:00 in Dhaka
    lower, upper = fhir_service.instant_bounds(
        fhir_params.date_range(Args(start=[f"gt{day}", f"le{day + timedelta(days=1)}"]), "start"),
        planned,
    )
    assert lower == (midnight + timedelta(days=1), True)
    assert upper == (midnight + timedelta(days=2), False)
    lower, upper = fhir_service.instant_bounds(
        fhir_params.date_range(Args(start=str(day)), "start"), planned
    )
    assert (lower, upper) == ((midnight, True), (midnight + timedelta(days=1), False))


@pytest.mark.parametrize("kind", ["", "Nope", "Type", 7])
def test_a_contained_resource_of_no_known_type_is_a_400(kind):
    """Found by the property above: fhir.resources raises LookupError for these."""
    body = create_body()
    body["contained"] = [{"resourceType": kind}]
    with pytest.raises(ValidationError) as caught:
        res.booking_request(body)
    assert caught.value.status == 400
