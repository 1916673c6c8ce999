"""Marshmallow schemas shared by the services' OpenAPI documents (responses and errors)."""

from __future__ import annotations

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from .ids import AsciiInt


class StrictSchema(Schema):
    """Request bodies reject unknown fields."""

    class Meta:
        unknown = RAISE


class PageArgsSchema(StrictSchema):
    """The pagination of every list: `page` (from 1) and `per_page` (1..500), ASCII digits."""

    page = AsciiInt(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = AsciiInt(load_default=50, validate=validate.Range(min=1, max=500))


class ApiErrorSchema(Schema):
    """The one error shape of the API (some errors add fields, e.g. `appointments`)."""

    class Meta:
        unknown = INCLUDE

    code = fields.Int(required=True)
    status = fields.Str(required=True)
    error = fields.Str(required=True, metadata={"description": "stable snake_case reason"})
    message = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.Raw())


class SlotConfigSchema(Schema):
    """A slot as configured."""

    start = fields.Str(required=True, metadata={"example": "17:00"})
    end = fields.Str(required=True, metadata={"example": "18:00"})
    display = fields.Str(metadata={"example": "05:00 PM - 06:00 PM"})
    capacity = fields.Int()


class SlotCountsSchema(Schema):
    """A slot's counts; null where counts are unknown (Redis unavailable or rebuilding)."""

    capacity = fields.Int(required=True)
    booked = fields.Int(required=True, allow_none=True)
    held = fields.Int(required=True, allow_none=True, metadata={"description": "by live holds"})
    offered = fields.Int(
        required=True, allow_none=True, metadata={"description": "of them, waitlist offers"}
    )
    available = fields.Int(
        required=True, allow_none=True, metadata={"description": "capacity - booked - held"}
    )
    fits = fields.Bool(
        allow_none=True,
        metadata={"description": "with ?appointment_type=: whether its units fit"},
    )


class DayCountsSchema(Schema):
    """The lightweight answer for one date."""

    slots = fields.Dict(keys=fields.Str(), values=fields.Nested(SlotCountsSchema), required=True)
    total_booked = fields.Int(required=True, allow_none=True)
    status = fields.Str()
    reason = fields.Str()
    counts = fields.Str(metadata={"description": "live, or unknown"})
