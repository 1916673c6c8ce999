"""The booking core with doctors and appointment types, over fakes (tests/unit/fakes.py):
per-doctor places, units taken all or none, the duplicate rule per doctor, the rebuild and
the reconciler per doctor."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from bson import ObjectId

from booking_service.adapters.repository import CANCELLED, CONFIRMED
from booking_service.core import booking, cancel, places, reconciler
from booking_service.core.requests import BookAppointment
from shared.answers import counts_document
from shared.errors import (
    AppointmentTypeNotFound,
    DuplicateBooking,
    HospitalClosed,
    PractitionerInactive,
    PractitionerNotFound,
    SlotFull,
)
from tests.helpers import slot_places
from tests.unit import builders
from tests.unit.builders import ADMIN, NOW, SAT
from tests.unit.fakes import fake_context

clinic = partial(builders.hospital, "doctors")


@pytest.fixture
def ctx(published):
    return published(clinic())[0]


def request(phone="+8801711111111", **extra) -> dict:
    return {
        "hospital_id": "c1",
        "date": SAT.isoformat(),
        "slot": "17:00",
        "patient": {"name": "Rahim", "phone": phone},
        **extra,
    }


def book(ctx, who, *args, **fields) -> dict:
    """booking.book of request(*args, **fields), at NOW."""
    return booking.book(ctx, who, BookAppointment(**request(*args, **fields)), NOW)


def phone(i: int) -> str:
    return f"+88017{i:08d}"


def test_a_doctors_booking_answers_the_doctor_type_and_units(ctx):
    made = book(ctx, ADMIN, practitioner_id="helal", appointment_type="new")
    assert made["practitioner"] == {"practitioner_id": "helal", "name": "Dr. Helal"}
    assert (made["appointment_type"], made["units"], made["serial"]) == ("new", 2, 1)
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {"17:00": 2}
    assert ctx.capacity.counts("c1", SAT.isoformat()) == {}  # the hospital's own are apart


def test_a_hospital_level_booking_without_a_type_is_the_v1_answer():
    ctx, schedules = fake_context()
    plain = clinic()
    for name in ("appointment_types", "practitioners"):
        plain.pop(name)
    schedules.publish(plain)
    made = book(ctx, ADMIN)
    assert not {"practitioner", "appointment_type", "units"} & set(made)
    assert made["serial"] == 1 and made["status"] == "confirmed"


def test_units_are_taken_all_or_none(ctx):
    """helal's slot holds 3 units: a new patient (2) and a follow-up (1) fill it; a second new
    patient does not fit, though one unit would have been free before the follow-up."""
    book(ctx, ADMIN, phone(1), practitioner_id="helal", appointment_type="new")
    with pytest.raises(SlotFull):
        book(ctx, ADMIN, phone(2), practitioner_id="helal", appointment_type="new")
    follow = book(ctx, ADMIN, phone(3), practitioner_id="helal", appointment_type="followup")
    assert follow["serial"] == 2
    with pytest.raises(SlotFull):
        book(ctx, ADMIN, phone(4), practitioner_id="helal", appointment_type="followup")
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {"17:00": 3}


def test_the_gate_itself_refuses_units_that_do_not_fit(ctx, monkeypatch):
    """Counts read before another booking took the units: the gate alone decides."""
    stale = ctx.reader.published_and_counts("c1", [SAT.isoformat()], "helal")
    book(ctx, ADMIN, phone(1), practitioner_id="helal", appointment_type="new")
    monkeypatch.setattr(ctx.reader, "published_and_counts", lambda hid, dates, pid=None: stale)
    with pytest.raises(SlotFull):
        book(ctx, ADMIN, phone(2), practitioner_id="helal", appointment_type="new")
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {"17:00": 2}


def test_two_doctors_in_the_same_hours_do_not_share_capacity(ctx):
    for i in range(3):
        book(ctx, ADMIN, phone(i), practitioner_id="helal")
    with pytest.raises(SlotFull):
        book(ctx, ADMIN, phone(9), practitioner_id="helal")
    rina = [book(ctx, ADMIN, phone(10 + i), practitioner_id="rina") for i in range(3)]
    assert [r["serial"] for r in rina] == [1, 2, 3]
    # the hospital's own slot is a queue of its own too
    assert book(ctx, ADMIN, phone(20))["serial"] == 1


def test_the_default_type_applies_when_none_is_named():
    ctx, schedules = fake_context()
    schedules.publish(clinic(default_appointment_type="new"))
    made = book(ctx, ADMIN, practitioner_id="helal")
    assert (made["appointment_type"], made["units"]) == ("new", 2)


def test_unknown_inactive_and_absent_doctors_and_unknown_types(ctx):
    with pytest.raises(PractitionerNotFound):
        book(ctx, ADMIN, practitioner_id="nobody")
    with pytest.raises(PractitionerInactive):
        book(ctx, ADMIN, practitioner_id="gone")
    with pytest.raises(HospitalClosed):
        book(ctx, ADMIN, practitioner_id="away")
    with pytest.raises(AppointmentTypeNotFound):
        book(ctx, ADMIN, appointment_type="surgery")
    assert not ctx.appointments.docs


def test_the_duplicate_rule_is_per_doctor(ctx):
    book(ctx, ADMIN, phone(1), practitioner_id="helal")
    with pytest.raises(DuplicateBooking):
        book(ctx, ADMIN, phone(1), practitioner_id="helal")
    assert book(ctx, ADMIN, phone(1), practitioner_id="rina")
    assert book(ctx, ADMIN, phone(1))  # and the hospital's own queue


def test_cancel_frees_all_of_an_appointments_units(ctx):
    made = book(ctx, ADMIN, phone(1), practitioner_id="helal", appointment_type="new")
    cancel.cancel(ctx, ADMIN, made["appointment_id"], NOW)
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {}
    again = book(ctx, ADMIN, phone(2), practitioner_id="helal", appointment_type="new")
    assert again["serial"] == 1


def test_a_doctors_day_is_rebuilt_with_units_and_serials_kept(ctx):
    first = book(ctx, ADMIN, phone(1), practitioner_id="helal", appointment_type="new")
    second = book(ctx, ADMIN, phone(2), practitioner_id="helal")
    book(ctx, ADMIN, phone(3))
    ctx.capacity.lose_everything()
    with pytest.raises(SlotFull):  # rebuilt first: 2 + 1 units of 3 are held
        book(ctx, ADMIN, phone(4), practitioner_id="helal")
    held = ctx.capacity.holds[("c1", "helal", SAT.isoformat(), "17:00")]
    assert held == {first["appointment_id"]: (1, 2), second["appointment_id"]: (2, 1)}


def test_the_reconciler_rebuilds_each_doctors_records(ctx, monkeypatch):
    made = book(ctx, ADMIN, phone(1), practitioner_id="rina", appointment_type="new")
    own = book(ctx, ADMIN, phone(2))
    ctx.capacity.lose_everything()
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    day = SAT.isoformat()
    assert ctx.capacity.holds[("c1", "rina", day, "17:00")] == {made["appointment_id"]: (1, 2)}
    assert ctx.capacity.holds[("c1", None, day, "17:00")] == {own["appointment_id"]: (1, 1)}


def test_the_reconciler_releases_a_doctors_lost_release(ctx, monkeypatch):
    made = book(ctx, ADMIN, phone(1), practitioner_id="rina")
    ctx.appointments.close(ObjectId(made["appointment_id"]), CONFIRMED, CANCELLED, NOW)
    assert ctx.capacity.counts("c1", SAT.isoformat(), "rina") == {"17:00": 1}
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    assert ctx.capacity.counts("c1", SAT.isoformat(), "rina") == {}


def test_reads_per_doctor_and_the_fit_of_a_type(ctx):
    book(ctx, ADMIN, phone(1), practitioner_id="helal", appointment_type="new")
    counted = places.day_counts(ctx, "c1", [SAT], NOW, "helal", "new")
    ((day, counts),) = counted.days
    assert counted.units == 2
    assert counts_document(day, counts, counted.units)["slots"] == {
        "17:00": slot_places(3, 2, available=1, fits=False)
    }
    hospital_level = places.day_counts(ctx, "c1", [SAT], NOW)
    ((day, counts),) = hospital_level.days
    assert hospital_level.units is None
    assert counts_document(day, counts)["slots"] == {
        "17:00": {"capacity": 5, "booked": 0, "held": 0, "offered": 0, "available": 5}
    }
    with pytest.raises(PractitionerNotFound):
        places.day_counts(ctx, "c1", [SAT], NOW, "nobody")
    with pytest.raises(AppointmentTypeNotFound):
        places.day_counts(ctx, "c1", [SAT], NOW, None, "surgery")


def test_the_admin_list_filters_by_doctor(ctx):
    book(ctx, ADMIN, phone(1), practitioner_id="helal")
    book(ctx, ADMIN, phone(2), practitioner_id="rina")
    book(ctx, ADMIN, phone(3))
    page = booking.list_appointments(
        ctx, ADMIN, {"hospital_id": "c1", "practitioner_id": "rina", "page": 1, "per_page": 50}
    )
    assert [a["practitioner"]["practitioner_id"] for a in page["appointments"]] == ["rina"]
    everyone = booking.list_appointments(
        ctx, ADMIN, {"hospital_id": "c1", "page": 1, "per_page": 50}
    )
    assert everyone["total"] == 3
