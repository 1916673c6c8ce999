"""Marshmallow schemas shared by the services' OpenAPI documents (responses and errors)."""

from __future__ import annotations

import re

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators: never part of a
# name or a reason, and a way to forge lines in logs and exports.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class StrictSchema(Schema):
    """Request bodies reject unknown fields."""

    class Meta:
        unknown = RAISE


def has_control_characters(text: str) -> bool:
    """True when `text` holds a control character (see Text)."""
    return _CONTROL.search(text) is not None


class Text(fields.String):
    """Free text a person typed (a name, a reason): no control characters."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text):
            raise ValidationError("must not contain control characters")
        return text


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
    available = fields.Int(required=True, allow_none=True)


class DayCountsSchema(Schema):
    """The lightweight answer for one date."""

    slots = fields.Dict(keys=fields.Str(), values=fields.Nested(SlotCountsSchema), required=True)
    total_booked = fields.Int(required=True, allow_none=True)
    status = fields.Str()
    reason = fields.Str()
    counts = fields.Str(metadata={"description": "live, or unknown"})
