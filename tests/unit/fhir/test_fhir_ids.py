"""FHIR R4 ids (booking_service/integrations/fhir/ids.py): our ids written with dots and
read back, one spelling each, and ids that do not fit.
"""

from __future__ import annotations

import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_service.integrations.fhir import ids as fhir_ids
from shared.ids import ID_PATTERN

ids = st.from_regex(ID_PATTERN, fullmatch=True)


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
