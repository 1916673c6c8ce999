"""One shape per resource: the answers are the core's builders (core/shapes.py), written once
by orjson; the API's schemas document them. Here the schemas are held to the builders: a
schema's dump of a built answer is that answer, key for key and in the same order, so what
OpenAPI says is what a client gets."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from bson import ObjectId

from booking_service.api.schemas import (
    AppointmentListSchema,
    AppointmentSchema,
    HoldSchema,
    WaitlistEntrySchema,
    WaitlistListSchema,
)
from booking_service.core.shapes import page_answer, public, public_entry, public_hold
from tests.unit.builders import appointment

CREATED = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
MS = 1_795_500_000_000

APPOINTMENT = appointment(reason=None, created_at=CREATED)
WITH_EVERYTHING = {
    **APPOINTMENT,
    "moving": {  # (a completed one never moves: every field at once, for the schema's sake)
        "token": "t1",
        "hospital_id": "dhanmondi",
        "practitioner_id": "helal",
        "date": "2026-11-29",
        "slot_start": "18:00",
        "units": 2,
        "started_ms": MS,
    },
    "status": "completed",
    "reason": "fever",
    "checked_in_at": "2026-11-28T11:01:00Z",
    "started_at": "2026-11-28T11:05:00Z",
    "completed_at": "2026-11-28T11:15:00Z",
    "practitioner_id": "helal",
    "practitioner": {"practitioner_id": "helal", "name": "Dr. Helal"},
    "appointment_type": "new",
    "units": 2,
    "hold_id": "6745f0a1b2c3d4e5f6a7b8ca",
    "moves": [
        {
            "from": {"date": "2026-11-27", "slot": "18:00", "serial": 1},
            "moved_at": "2026-11-25T09:00:00Z",
            "by": "u1",
        },
        {
            "from": {"date": "2026-11-27", "slot": "17:00", "serial": 3, "practitioner_id": "x"},
            "moved_at": "2026-11-26T09:00:00Z",
            "by": "staff1",
        },
    ],
}
APPOINTMENTS = [
    APPOINTMENT,
    {**APPOINTMENT, "status": "cancelled", "cancelled_at": "2026-11-25T10:00:00Z"},
    {**APPOINTMENT, "status": "pending", "serial": None},
    {**APPOINTMENT, "status": "no_show", "no_show_at": "2026-11-28T12:00:00Z"},
    WITH_EVERYTHING,
]
HOLD = {
    "_id": ObjectId("6745f0a1b2c3d4e5f6a7b8cb"),
    "state": "held",
    "expires_ms": MS,
    "hospital_id": "gomoti",
    "practitioner_id": None,
    "date": "2026-11-28",
    "slot_start": "17:00",
    "serial": 1,
    "units": 1,
    "appointment_type": None,
}
HOLDS = [
    HOLD,
    {**HOLD, "state": "used", "appointment_id": "6745f0a1b2c3d4e5f6a7b8c9"},
    {**HOLD, "practitioner_id": "helal", "appointment_type": "new", "units": 2},
    {**HOLD, "waitlist_id": "6745f0a1b2c3d4e5f6a7b8cc", "serial": None},
]
ENTRY = {
    "_id": ObjectId("6745f0a1b2c3d4e5f6a7b8cc"),
    "status": "waiting",
    "hospital_id": "gomoti",
    "practitioner_id": None,
    "date": "2026-11-28",
    "slot_start": None,
    "patient": {"name": "Karim", "phone": "+8801722222222"},
    "appointment_type": None,
    "created_ms": MS,
}
OFFERED = {
    **ENTRY,
    "status": "offered",
    "slot_start": "17:00",
    "practitioner_id": "helal",
    "appointment_type": "new",
    "hold_id": "6745f0a1b2c3d4e5f6a7b8cb",
    "offered_slot": "17:00",
    "offer_expires_ms": MS + 300_000,
}
ENTRIES = [
    (ENTRY, 3),
    (ENTRY, None),
    (OFFERED, None),
    ({**OFFERED, "status": "accepted", "appointment_id": "6745f0a1b2c3d4e5f6a7b8c9"}, None),
]


def same_bytes(schema, answer) -> bool:
    return orjson.dumps(schema.dump(answer)) == orjson.dumps(answer)


@pytest.mark.parametrize("doc", APPOINTMENTS)
def test_an_appointment_is_what_its_schema_documents(doc):
    assert same_bytes(AppointmentSchema(), public(doc))


def test_every_field_of_the_appointment_schema_is_built():
    assert list(public(WITH_EVERYTHING)) == [
        name for name in AppointmentSchema().fields if name not in ("cancelled_at", "no_show_at")
    ]


@pytest.mark.parametrize("doc", HOLDS)
def test_a_hold_is_what_its_schema_documents(doc):
    assert same_bytes(HoldSchema(), public_hold(doc))


@pytest.mark.parametrize(("doc", "position"), ENTRIES)
def test_a_waitlist_entry_is_what_its_schema_documents(doc, position):
    assert same_bytes(WaitlistEntrySchema(), public_entry(doc, position))


def test_pages_are_what_their_schemas_document():
    appointments = page_answer("appointments", [public(d) for d in APPOINTMENTS], 2, 5, 7)
    assert same_bytes(AppointmentListSchema(), appointments)
    entries = page_answer("entries", [public_entry(d) for d, _ in ENTRIES], 1, 20, 4)
    assert same_bytes(WaitlistListSchema(), entries)


def test_a_builder_that_strays_from_its_schema_is_caught():
    """The check itself: a field out of order, or one the schema does not know, differs."""
    answer = public(APPOINTMENT)
    reordered = {"status": answer["status"], **answer}
    assert not same_bytes(AppointmentSchema(), reordered)
    assert not same_bytes(AppointmentSchema(), {**answer, "secret": 1})
