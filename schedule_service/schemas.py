"""Schemas of the schedule service's API."""

from __future__ import annotations

from marshmallow import Schema, fields

from shared.schemas import SlotConfigSchema, StrictSchema


class DayConfigSchema(Schema):
    """A weekday's slots."""

    slots = fields.List(fields.Nested(SlotConfigSchema))


class HospitalSchema(Schema):
    """A hospital's configuration document."""

    hospital_id = fields.Str(required=True, metadata={"example": "gomoti"})
    hospital_name = fields.Str(required=True)
    timezone = fields.Str(required=True, metadata={"example": "Asia/Dhaka"})
    schedule = fields.Dict(keys=fields.Str(), values=fields.Nested(DayConfigSchema))
    max_appointments_per_slot = fields.Int()
    advance_booking_days = fields.Int()
    date_overrides = fields.Dict(keys=fields.Str(), values=fields.Dict())
    version = fields.Int()
    updated_at = fields.Str()


class HospitalEditSchema(HospitalSchema):
    """A replaced configuration; with `"force": true`, the appointments the edit stranded."""

    stranded_appointments = fields.List(fields.Dict())


class HospitalListSchema(Schema):
    """Every hospital."""

    hospitals = fields.List(fields.Nested(HospitalSchema), required=True)


class HospitalWriteSchema(StrictSchema):
    """A hospital's configuration as an admin sends it (checked whole after parsing)."""

    hospital_id = fields.Str()
    hospital_name = fields.Str(required=True)
    timezone = fields.Str()
    schedule = fields.Dict(keys=fields.Str(), values=fields.Raw())
    max_appointments_per_slot = fields.Int(strict=True)
    advance_booking_days = fields.Int(strict=True)
    date_overrides = fields.Dict(keys=fields.Str(), values=fields.Raw())
    force = fields.Bool(
        load_default=False,
        metadata={"description": "apply even if it strands active appointments"},
    )


class SlotViewSchema(Schema):
    """A slot of a date with its counts."""

    start = fields.Str(required=True)
    end = fields.Str(required=True)
    display = fields.Str(required=True)
    capacity = fields.Int(required=True)
    booked = fields.Int(required=True, allow_none=True)
    available = fields.Int(required=True, allow_none=True)
    bookable = fields.Bool(required=True)


class DayViewSchema(Schema):
    """A date: status and slots."""

    date = fields.Str(required=True)
    weekday = fields.Int(required=True)
    status = fields.Str(
        required=True, metadata={"enum": ["open", "closed", "past", "beyond_booking_window"]}
    )
    reason = fields.Str()
    slots = fields.List(fields.Nested(SlotViewSchema), required=True)
    total_capacity = fields.Int(required=True)
    total_booked = fields.Int(required=True, allow_none=True)
    total_available = fields.Int(required=True, allow_none=True)
    counts = fields.Str(metadata={"description": "live, or unknown when Redis is unavailable"})


class AvailableSchema(DayViewSchema):
    """The `available` answer."""

    hospital_id = fields.Str(required=True)


class CalendarSchema(Schema):
    """The `calendar` answer."""

    hospital_id = fields.Str(required=True)
    start = fields.Str(required=True)
    days = fields.List(fields.Nested(DayViewSchema), required=True)


class CalendarQueryArgsSchema(Schema):
    """Calendar query (checked by the view, to answer invalid_days / invalid_date)."""

    days = fields.Str(metadata={"description": "1..92, default 7"})
    start = fields.Str(metadata={"description": "YYYY-MM-DD, default today"})


class HistorySchema(Schema):
    """A hospital's audit trail, newest first."""

    hospital_id = fields.Str(required=True)
    changes = fields.List(fields.Dict(), required=True)
