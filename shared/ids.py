"""The canonical forms of everything a client names or types: identifiers, digits, phones.

API.md, "Input that is never trusted": an identifier (`hospital_id`, and the ids later
issues add) matches `^[a-z0-9][a-z0-9_-]{0,63}$`; an appointment id is an ObjectId's 24
lowercase hex digits; digits are ASCII digits. Every service checks a value against its
rule at the boundary (path, query, body, bulk), before any Redis key, MongoDB query or URL is
built from it, so one thing has exactly one name: no alias ("Gomoti", "gomoti/",
"gomoti\\n", "০১৭...") ever reaches a key of its own.

In a path, a value that breaks its rule cannot name anything: the path converters below
answer 404 with the kind's reason. In a body or query the marshmallow fields answer
400 validation_error.
"""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

ID_PATTERN = "[a-z0-9][a-z0-9_-]{0,63}"
APPOINTMENT_ID_PATTERN = "[0-9a-f]{24}"
# An optional + and 7..15 ASCII digits (the v1 contract's phone).
PHONE_PATTERN = r"\+?[0-9]{7,15}"
# A wall time, 24 h.
TIME_PATTERN = "([01][0-9]|2[0-3]):[0-5][0-9]"
# A request header value a client may name a retry by: printable ASCII.
IDEMPOTENCY_KEY_PATTERN = "[\x21-\x7e]{1,255}"

_ID = re.compile(ID_PATTERN)
_APPOINTMENT_ID = re.compile(APPOINTMENT_ID_PATTERN)
# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators: never part of a
# name or a reason, and a way to forge lines in logs and exports.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ASCII_UINT = re.compile("[0-9]{1,9}")
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

ID_RULE = "must be 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit"
PHONE_RULE = "must be an optional + and 7 to 15 digits 0-9"


def is_id(value: object) -> bool:
    """True when `value` is an identifier in its canonical form."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def is_appointment_id(value: object) -> bool:
    """True when `value` is an appointment id in its canonical form (24 lowercase hex)."""
    return isinstance(value, str) and _APPOINTMENT_ID.fullmatch(value) is not None


def is_idempotency_key(value: object) -> bool:
    """True for 1..255 printable ASCII characters."""
    return isinstance(value, str) and _IDEMPOTENCY_KEY.fullmatch(value) is not None


def ascii_uint(text: object) -> int | None:
    """A string of 1..9 ASCII digits as an int; None for anything else ("١٢", "1_0", " 7")."""
    if isinstance(text, str) and _ASCII_UINT.fullmatch(text):
        return int(text)
    return None


def phone_digits(phone: str) -> str:
    """What the duplicate rule compares: the digits of a canonical phone, without its +."""
    return phone.removeprefix("+")


class _Canonical(fields.String):
    """A string that must be in its canonical form (`pattern`, whole), else 400 `rule`."""

    pattern = ID_PATTERN
    rule = ID_RULE

    def __init__(self, **kwargs):
        metadata = {"pattern": f"^{self.pattern}$", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self._compiled = re.compile(self.pattern)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if self._compiled.fullmatch(text) is None:
            raise ValidationError(self.rule)
        return text


class Identifier(_Canonical):
    """A body or query identifier: 400 validation_error unless canonical."""


class Phone(_Canonical):
    """A phone in its canonical form: an optional + and 7..15 ASCII digits."""

    pattern = PHONE_PATTERN
    rule = PHONE_RULE


class WallTime(_Canonical):
    """A time `HH:MM` (00:00 to 23:59), ASCII digits, nothing around it."""

    pattern = TIME_PATTERN
    rule = "must be a time HH:MM"


class AsciiInt(fields.Integer):
    """An integer written with ASCII digits only: a JSON number, or in a query 1..9 digits.

    marshmallow's Integer takes whatever `int()` takes ("١٢", "1_000", " 5 ", "+5").
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            number = ascii_uint(value)
            if number is None:
                raise self.make_error("invalid")
            value = number
        elif isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


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


class IdNotFound(NotFound):
    """A path segment that breaks its kind's rule: nothing can have that name."""

    def __init__(self, reason: str, description: str):
        super().__init__(description)
        self.reason = reason


class _CheckedConverter(BaseConverter):
    """A path segment checked against a rule; anything else is 404 with the kind's reason.

    The segment is matched loosely (anything up to the next /) and checked here, so a
    malformed id is answered as not found with the kind's reason (hospital_not_found,
    appointment_not_found) rather than as an unknown URL.
    """

    reason = "not_found"
    label = "resource"
    pattern = ID_PATTERN
    matcher = _ID

    def to_python(self, value: str) -> str:
        if not self.matcher.fullmatch(value):
            raise IdNotFound(self.reason, f"No {self.label} {value!r}")
        return value


class HospitalIdConverter(_CheckedConverter):
    """`<hospital_id:hospital_id>`."""

    reason = "hospital_not_found"
    label = "hospital"
    matcher = _ID


class PractitionerIdConverter(_CheckedConverter):
    """`<practitioner_id:practitioner_id>`."""

    reason = "practitioner_not_found"
    label = "practitioner"
    matcher = _ID


class AppointmentIdConverter(_CheckedConverter):
    """`<appointment_id:appointment_id>`."""

    reason = "appointment_not_found"
    label = "appointment"
    pattern = APPOINTMENT_ID_PATTERN
    matcher = _APPOINTMENT_ID


def register_converters(app, api) -> None:
    """Make the converters known to Flask's router and to the OpenAPI document."""
    app.url_map.converters["hospital_id"] = HospitalIdConverter
    app.url_map.converters["appointment_id"] = AppointmentIdConverter
    app.url_map.converters["practitioner_id"] = PractitionerIdConverter
    for converter in (HospitalIdConverter, AppointmentIdConverter, PractitionerIdConverter):
        api.register_converter(converter, _param_schema)


def _param_schema(converter: _CheckedConverter) -> dict:
    """The OpenAPI schema of a checked path parameter."""
    return {"type": "string", "pattern": f"^{converter.pattern}$"}
