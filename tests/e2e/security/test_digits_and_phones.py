"""Attack: write digits that are not ASCII digits.

Before: phones in Bengali or full-width digits passed the schema (`\\d` is any Unicode
digit), so one patient could hold as many appointments a day as there are ways to write
its number; `days=١٢` (Arabic-Indic) was a 12-day calendar and `days=²` a 500. Now digits
are `0-9` everywhere and a phone has one canonical form.
"""

from __future__ import annotations

import pytest

from tests.helpers import assert_error_shape, booking, create_hospital, next_weekday

pytestmark = pytest.mark.e2e

ASCII_PHONE = "+8801712345678"
SPELLINGS = [
    "+৮৮০১৭১২৩৪৫৬৭৮",  # Bengali digits
    "+８８０１７１２３４５６７８",  # full-width digits
    "＋8801712345678",  # full-width plus
    "+٨٨٠١٧١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    "+8801712345678\n",
    " +8801712345678",
    "+880 1712 345678",
    "+880-1712-345678",
    "++8801712345678",
]


def test_a_phone_has_one_spelling_and_the_duplicate_rule_holds(admin, patient):
    hid = create_hospital(admin, 5)
    day = next_weekday(4)
    first = patient.post("/api/appointments", booking(hid, day, "09:00", ASCII_PHONE))
    assert first.status_code == 201, first.text
    for phone in SPELLINGS:
        resp = patient.post("/api/appointments", booking(hid, day, "10:00", phone))
        body = assert_error_shape(resp, 400, "validation_error")
        assert "patient" in body["errors"], body
    # The same digits without the +: the same phone.
    again = patient.post("/api/appointments", booking(hid, day, "11:00", ASCII_PHONE[1:]))
    assert_error_shape(again, 409, "duplicate_booking")
    listed = admin.get("/api/appointments", params={"hospital_id": hid}).json()
    assert listed["total"] == 1


def test_register_takes_ascii_phones_only(gateway):
    for phone in SPELLINGS[:4]:
        resp = gateway.post(
            "/api/auth/register",
            {"name": "N", "email": "x@example.com", "phone": phone, "password": "long-enough"},
        )
        assert_error_shape(resp, 400, "validation_error")


@pytest.mark.parametrize("days", ["١٢", "١", "²", "１２", "1_0", " 7", "7 ", "+7", "07\n", "0x7"])
def test_calendar_days_are_ascii_digits(gateway, days):
    resp = gateway.get("/api/dynamic-slots/calendar/gomoti", params={"days": days})
    assert_error_shape(resp, 400, "invalid_days")


@pytest.mark.parametrize("value", ["١", "１", "1_0", " 2", "+2", "²"])
def test_page_numbers_are_ascii_digits(admin, value):
    for name in ("page", "per_page"):
        resp = admin.get("/api/appointments", params={name: value})
        body = assert_error_shape(resp, 400, "validation_error")
        assert name in body["errors"]


@pytest.mark.parametrize("slot", ["১৭:০০", "１７:００", "17:00\n", " 17:00", "17:0０"])
def test_slot_times_are_ascii(patient, slot):
    resp = patient.post("/api/appointments", booking("gomoti", next_weekday(6), slot))
    body = assert_error_shape(resp, 400, "validation_error")
    assert "slot" in body["errors"]


@pytest.mark.parametrize("day", ["২০২৬-১২-০১", "２０２６-１２-０１", "2026-12-1", "2026-12-01 "])
def test_dates_are_ascii(gateway, day):
    from urllib.parse import quote

    assert_error_shape(
        gateway.get(f"/api/dynamic-slots/available/gomoti/{quote(day)}"), 400, "invalid_date"
    )
    assert_error_shape(gateway.get(f"/api/availability/gomoti/{quote(day)}"), 400, "invalid_date")
