"""Schemas of the booking service's API."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from booking_service.core.requests import PatientSchema, RecordId
from shared.ids import Identifier, Phone, Text, WallTime
from shared.schemas import DayCountsSchema, PageArgsSchema, SlotConfigSchema, StrictSchema


class PractitionerRefSchema(Schema):
    """The doctor an appointment is with."""

    practitioner_id = fields.Str(required=True)
    name = fields.Str(required=True)


class AppointmentSchema(Schema):
    """An appointment."""

    appointment_id = fields.Str(required=True)
    status = fields.Str(
        required=True,
        metadata={
            "enum": [
                "confirmed",
                "cancelled",
                "checked_in",
                "in_consultation",
                "completed",
                "no_show",
            ]
        },
    )
    hospital_id = fields.Str(required=True)
    date = fields.Str(required=True)
    slot = fields.Nested(SlotConfigSchema, required=True)
    serial = fields.Int(required=True)
    patient = fields.Nested(PatientSchema, required=True)
    reason = fields.Str(allow_none=True)
    booked_by = fields.Str(required=True)
    created_at = fields.Str(required=True)
    cancelled_at = fields.Str()
    checked_in_at = fields.Str()
    started_at = fields.Str()
    completed_at = fields.Str()
    no_show_at = fields.Str()
    practitioner = fields.Nested(PractitionerRefSchema)
    appointment_type = fields.Str()
    units = fields.Int()
    hold_id = fields.Str(metadata={"description": "the hold whose place it took"})
    rescheduled_from = fields.Nested(
        "MovedFromSchema", metadata={"description": "its place before the last reschedule"}
    )
    moves = fields.List(fields.Nested("MoveSchema"), metadata={"description": "oldest first"})
    moving_to = fields.Nested(
        "MovingToSchema",
        metadata={"description": "while a reschedule is under way: the place it moves to"},
    )


class MovingToSchema(Schema):
    """The place a reschedule under way moves an appointment to."""

    date = fields.Str(required=True)
    slot = fields.Str(required=True)
    practitioner_id = fields.Str()


class MovedFromSchema(Schema):
    """A place an appointment was moved from."""

    date = fields.Str(required=True)
    slot = fields.Str(required=True)
    serial = fields.Int(required=True)
    practitioner_id = fields.Str()


class MoveSchema(Schema):
    """One reschedule of an appointment."""

    moved_from = fields.Nested(MovedFromSchema, attribute="from", data_key="from", required=True)
    moved_at = fields.Str(required=True)
    by = fields.Str(required=True)


class RescheduleSchema(StrictSchema):
    """Where to move an appointment (its hospital stays; its doctor unless given)."""

    date = fields.Str(required=True, metadata={"example": "2026-11-29"})
    slot = WallTime(required=True, metadata={"example": "18:00"})
    practitioner_id = Identifier()
    appointment_type = Identifier()
    hold_id = RecordId(metadata={"description": "move into the place of this live hold"})


class HoldCreateSchema(StrictSchema):
    """A place to hold."""

    hospital_id = Identifier(required=True, metadata={"example": "gomoti"})
    practitioner_id = Identifier()
    date = fields.Str(required=True, metadata={"example": "2026-11-28"})
    slot = WallTime(required=True, metadata={"example": "17:00"})
    appointment_type = Identifier()


class HoldSchema(Schema):
    """A hold: a place kept until `expires_at`."""

    hold_id = fields.Str(required=True)
    state = fields.Str(required=True, metadata={"enum": ["held", "used", "released", "expired"]})
    expires_at = fields.Str(required=True)
    hospital_id = fields.Str(required=True)
    practitioner_id = fields.Str(allow_none=True)
    date = fields.Str(required=True)
    slot = fields.Str(required=True)
    serial = fields.Int(allow_none=True)
    units = fields.Int()
    appointment_type = fields.Str(allow_none=True)
    waitlist_id = fields.Str()
    appointment_id = fields.Str()


class HoldListArgsSchema(PageArgsSchema):
    """Filters (hospital, doctor, dates: staff and admin) and pagination. `state=held`: the
    live holds and offers, whose places the gate keeps (what an edit's conflict check must
    see)."""

    hospital_id = Identifier()
    practitioner_id = Identifier()
    date_from = fields.Str()
    date_to = fields.Str()
    state = fields.Str(validate=validate.OneOf(["held", "used", "released", "expired"]))


class HoldListSchema(Schema):
    """A page of holds, oldest first."""

    holds = fields.List(fields.Nested(HoldSchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


class WaitlistCreateSchema(StrictSchema):
    """Wait for a place of a day (of one slot, when given)."""

    hospital_id = Identifier(required=True, metadata={"example": "gomoti"})
    practitioner_id = Identifier()
    date = fields.Str(required=True, metadata={"example": "2026-11-28"})
    slot = WallTime()
    patient = fields.Nested(PatientSchema, required=True)
    appointment_type = Identifier()


class WaitlistEntrySchema(Schema):
    """A waitlist entry."""

    waitlist_id = fields.Str(required=True)
    status = fields.Str(
        required=True,
        metadata={"enum": ["waiting", "offering", "offered", "accepted", "expired", "cancelled"]},
    )
    position = fields.Int(metadata={"description": "while waiting: 1 is offered next"})
    hospital_id = fields.Str(required=True)
    practitioner_id = fields.Str(allow_none=True)
    date = fields.Str(required=True)
    slot = fields.Str(allow_none=True)
    patient = fields.Nested(PatientSchema, required=True)
    appointment_type = fields.Str(allow_none=True)
    created_at = fields.Str(required=True)
    hold_id = fields.Str()
    offered_slot = fields.Str()
    offer_expires_at = fields.Str()
    appointment_id = fields.Str()


class WaitlistListArgsSchema(PageArgsSchema):
    """Filters (hospital, doctor, date: staff and admin) and pagination."""

    hospital_id = Identifier()
    practitioner_id = Identifier()
    date = fields.Str()
    status = fields.Str(
        validate=validate.OneOf(
            ["waiting", "offering", "offered", "accepted", "expired", "cancelled"]
        )
    )


class WaitlistListSchema(Schema):
    """A page of waitlist entries, newest first."""

    entries = fields.List(fields.Nested(WaitlistEntrySchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


class AppointmentListArgsSchema(PageArgsSchema):
    """Filters and pagination (filters other than status are for admins). `status=active`:
    pending or confirmed (what an edit's conflict check must see); `status=moving`: those on
    their way to a new place, the other filters naming that place (`moving_to`)."""

    hospital_id = Identifier()
    practitioner_id = Identifier()
    date = fields.Str()
    date_from = fields.Str()
    date_to = fields.Str()
    status = fields.Str(
        validate=validate.OneOf(
            [
                "confirmed",
                "cancelled",
                "checked_in",
                "in_consultation",
                "completed",
                "no_show",
                "active",
                "moving",
            ]
        )
    )


class AppointmentListSchema(Schema):
    """A page of appointments."""

    appointments = fields.List(fields.Nested(AppointmentSchema), required=True)
    page = fields.Int(required=True)
    per_page = fields.Int(required=True)
    total = fields.Int(required=True)


class AvailabilitySchema(DayCountsSchema):
    """The lightweight answer for one date."""

    hospital_id = fields.Str(required=True)
    practitioner_id = fields.Str()
    date = fields.Str(required=True)


class DateList(fields.Field):
    """1..92 strings (each then checked as a date by the view). One check of the list, where
    fields.List would deserialise every item through a field of its own."""

    def __init__(self, **kwargs):
        metadata = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 92}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError("must be a list of dates YYYY-MM-DD")
        if not 1 <= len(value) <= 92:
            raise ValidationError("must hold 1 to 92 dates")
        return list(value)


class BulkRequestSchema(StrictSchema):
    """Dates to answer at once."""

    hospital_id = Identifier(required=True)
    dates = DateList(required=True)
    practitioner_id = Identifier()
    appointment_type = Identifier()


class BulkSchema(Schema):
    """Counts of many dates."""

    hospital_id = fields.Str(required=True)
    practitioner_id = fields.Str()
    dates = fields.Dict(keys=fields.Str(), values=fields.Nested(DayCountsSchema), required=True)


class RegisterSchema(StrictSchema):
    """A new patient account."""

    name = Text(required=True, validate=validate.Length(1, 100))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    phone = Phone(required=True)
    password = fields.Str(required=True, load_only=True, validate=validate.Length(8, 128))


class LoginSchema(StrictSchema):
    """Credentials."""

    email = fields.Str(required=True, validate=validate.Length(1, 254))
    password = fields.Str(required=True, load_only=True, validate=validate.Length(1, 128))


class UserCreateSchema(StrictSchema):
    """A staff or admin account (created by an admin)."""

    name = Text(required=True, validate=validate.Length(1, 100))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    phone = Phone(required=True)
    password = fields.Str(required=True, load_only=True, validate=validate.Length(8, 128))
    role = fields.Str(required=True, validate=validate.OneOf(["staff", "admin"]))


class UserSchema(Schema):
    """An account."""

    user_id = fields.Str(required=True)
    email = fields.Str(required=True)
    role = fields.Str(required=True)
    name = fields.Str(allow_none=True)
    phone = fields.Str(allow_none=True)


class TokenSchema(Schema):
    """A login's answer."""

    access_token = fields.Str(required=True)
    token_type = fields.Str(required=True)
    expires_in = fields.Int(required=True)
    user = fields.Nested(UserSchema, required=True)


class NowServingSchema(Schema):
    """The serial most recently called in (null before the first)."""

    slot = fields.Str(required=True)
    serial = fields.Int(required=True)


class QueueSlotSchema(Schema):
    """One slot of a day's queue."""

    slot = fields.Str(required=True)
    booked = fields.Int(required=True)
    checked_in = fields.Int(required=True)
    in_consultation = fields.Int(required=True)
    completed = fields.Int(required=True)
    no_show = fields.Int(required=True)
    now_serving = fields.Int(required=True, allow_none=True)


class QueueSchema(Schema):
    """A hospital-day's public queue (no names, no phones)."""

    hospital_id = fields.Str(required=True)
    date = fields.Str(required=True)
    practitioner_id = fields.Str(required=True, allow_none=True)
    now_serving = fields.Nested(NowServingSchema, required=True, allow_none=True)
    slots = fields.List(fields.Nested(QueueSlotSchema), required=True)


class QueueArgsSchema(Schema):
    """The doctor whose queue (none: the hospital's own)."""

    class Meta:
        unknown = EXCLUDE

    practitioner_id = Identifier()


class PositionSchema(Schema):
    """Where an appointment is in its queue."""

    appointment_id = fields.Str(required=True)
    status = fields.Str(required=True)
    slot = fields.Str(required=True)
    serial = fields.Int(required=True, allow_none=True)
    ahead = fields.Int(required=True)
    now_serving = fields.Nested(NowServingSchema, required=True, allow_none=True)
    estimated_call_at = fields.Str(required=True, allow_none=True)
