"""The canonical forms (shared/ids.py) and the one JSON body parser (shared/jsonbody.py)."""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from shared import jsonbody
from shared.ids import (
    AsciiInt,
    Identifier,
    Phone,
    WallTime,
    ascii_uint,
    is_appointment_id,
    is_id,
    is_idempotency_key,
    phone_digits,
)
from shared.slots import parse_date

ID_CHARS = string.ascii_lowercase + string.digits + "-_"


@given(st.text(min_size=0, max_size=70))
def test_an_id_is_exactly_the_contracts_pattern(text):
    expected = re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", text, flags=re.ASCII) is not None
    assert is_id(text) is expected


@given(st.text(ID_CHARS, min_size=1, max_size=64).filter(lambda t: t[0] not in "-_"))
def test_every_canonical_id_is_accepted(text):
    assert is_id(text)


@pytest.mark.parametrize(
    "text",
    [
        "gomoti\n",
        "Gomoti",
        "gomoti/",
        " gomoti",
        "gomoti ",
        "-gomoti",
        "_x",
        "",
        "a" * 65,
        "gomoti\x00",
        "gömöti",
        "ｇomoti",
        "gomoti\u200b",
        None,
        7,
        ["gomoti"],
    ],
)
def test_almost_ids_are_refused(text):
    assert not is_id(text)


def test_appointment_ids_are_24_lowercase_hex():
    assert is_appointment_id("6b0a92a1b6e0093924e66918")
    for almost in (
        "6B0A92A1B6E0093924E66918",
        "6b0a92a1b6e0093924e6691",
        "6b0a92a1b6e0093924e669180",
        "6b0a92a1b6e0093924e6691g",
        "6b0a92a1b6e0093924e6691\n",
        " 6b0a92a1b6e0093924e6691",
    ):
        assert not is_appointment_id(almost)


ASCII_UINTS = {
    "7": 7,
    "092": 92,
    "١٢": None,
    "²": None,
    "1_0": None,
    " 7": None,
    "+7": None,
    "": None,
    "1234567890": None,
    "７": None,
}


@pytest.mark.parametrize(("text", "value"), ASCII_UINTS.items())
def test_ascii_uint(text, value):
    assert ascii_uint(text) == value


class _Form(Schema):
    hospital_id = Identifier()
    phone = Phone()
    slot = WallTime()
    page = AsciiInt()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hospital_id", "gomoti\n"),
        ("phone", "+৮৮০১৭১২৩৪৫৬৭৮"),
        ("phone", "+8801712345678\n"),
        ("slot", "১৭:০০"),
        ("slot", "17:00\n"),
        ("slot", "24:00"),
        ("page", "١"),
        ("page", True),
        ("page", 1.5),
        ("page", "1_0"),
    ],
)
def test_fields_refuse_what_is_not_canonical(field, value):
    with pytest.raises(ValidationError) as err:
        _Form().load({field: value})
    assert field in err.value.messages


def test_fields_take_canonical_values():
    loaded = _Form().load(
        {"hospital_id": "gomoti", "phone": "+8801712345678", "slot": "17:00", "page": "12"}
    )
    assert loaded == {
        "hospital_id": "gomoti",
        "phone": "+8801712345678",
        "slot": "17:00",
        "page": 12,
    }
    assert phone_digits("+8801712345678") == phone_digits("8801712345678")


def test_idempotency_keys_are_printable_ascii():
    assert is_idempotency_key("7f3c1a9e-1")
    for bad in ("", "a b", "café", "x" * 256, "a\n", "\t"):
        assert not is_idempotency_key(bad)


def test_dates_stay_where_date_arithmetic_cannot_overflow():
    assert parse_date("1900-01-01") and parse_date("9998-12-31")
    for outside in (
        "1899-12-31",
        "9999-01-01",
        "9999-12-31",
        "0001-01-01",
        "2026-02-30",
        "2026-1-01",
        "২০২৬-১২-০১",
    ):
        assert parse_date(outside) is None


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_is_json_and_deeper_is_refused():
    assert jsonbody.loads(nested(jsonbody.MAX_DEPTH)) is not None
    for depth in (jsonbody.MAX_DEPTH + 1, 5000, 100_000):
        with pytest.raises(jsonbody.MalformedJson, match="nested deeper"):
            jsonbody.loads(nested(depth))
    many_flat = json.dumps([[i] for i in range(500)])  # many brackets, shallow
    assert len(jsonbody.loads(many_flat)) == 500


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"name": "\\ud800"}', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'["ok", {"deep": ["\\udc00"]}]', "surrogate"),
        (b'{"name": "\xed\xa0\x80"}', "UTF-8"),
        (b'{"name": "\xff"}', "UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "UTF-8"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b'{"a": ', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_what_no_encoder_could_write_back_is_refused(data, why):
    with pytest.raises(jsonbody.MalformedJson, match=why):
        jsonbody.loads(data)


def test_valid_unicode_is_kept():
    assert jsonbody.loads(b'{"name": "\\ud83d\\ude00 \xe0\xa6\xb0"}') == {"name": "\U0001f600 র"}
    assert jsonbody.loads('{"name": "\\\\ud800"}') == {"name": "\\ud800"}  # an escaped backslash
