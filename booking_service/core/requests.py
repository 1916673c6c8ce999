"""What the service layer is asked to do: the request bodies both APIs (REST and FHIR) check
with one schema each, before anything is built from them."""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError, fields, validate

from shared.ids import Identifier, Phone, Text, WallTime, is_appointment_id
from shared.schemas import StrictSchema


class RecordId(fields.Str):
    """An appointment's, a hold's or a waitlist entry's id: 24 lowercase hex digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_appointment_id(text):
            raise ValidationError("must be an id of 24 lowercase hex digits")
        return text


class PatientSchema(StrictSchema):
    """Who the appointment is for."""

    name = Text(required=True, validate=validate.Length(1, 100))
    phone = Phone(required=True, metadata={"example": "+8801712345678"})


class AppointmentCreateSchema(StrictSchema):
    """A booking request."""

    hospital_id = Identifier(required=True, metadata={"example": "gomoti"})
    date = fields.Str(required=True, metadata={"example": "2026-11-28"})
    slot = WallTime(required=True, metadata={"example": "17:00"})
    patient = fields.Nested(PatientSchema, required=True)
    reason = Text(allow_none=True, validate=validate.Length(max=500))
    practitioner_id = Identifier(metadata={"description": "book with this doctor"})
    appointment_type = Identifier(
        metadata={
            "description": "a code of the hospital's appointment_types (default: its "
            "default_appointment_type; without types, one unit)"
        }
    )
    hold_id = RecordId(metadata={"description": "book the place of this live hold"})


@dataclass(frozen=True)
class HoldPlace:
    """Hold a place of a slot for a while (POST /api/holds, a waitlist offer); also what a
    hold is compared with when a booking or a move uses it."""

    hospital_id: str
    date: str
    slot: str
    practitioner_id: str | None = None
    appointment_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class BookAppointment(HoldPlace):
    """Book a place (POST /api/appointments, FHIR `POST Appointment`, a waitlist offer
    accepted): the place a hold would name, for a patient; from a live hold when `hold_id`
    names one."""

    patient: dict
    reason: str | None = None
    hold_id: str | None = None


@dataclass(frozen=True)
class MoveAppointment:
    """Move an appointment (POST /api/appointments/{id}/reschedule): its hospital stays; its
    doctor too unless `practitioner_id` names another."""

    date: str
    slot: str
    practitioner_id: str | None = None
    appointment_type: str | None = None
    hold_id: str | None = None


@dataclass(frozen=True)
class JoinWaitlist:
    """Wait for a place of a day, or of one slot of it (POST /api/waitlist)."""

    hospital_id: str
    date: str
    patient: dict
    practitioner_id: str | None = None
    slot: str | None = None
    appointment_type: str | None = None
