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


def phone(i: int) -> str:
    return f"+88017{i:08d}"


def test_a_doctors_booking_answers_the_doctor_type_and_units(ctx):
    made = booking.book(
        ctx, ADMIN, BookAppointment(**request(practitioner_id="helal", appointment_type="new")), NOW
    )
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
    made = booking.book(ctx, ADMIN, BookAppointment(**request()), NOW)
    assert not {"practitioner", "appointment_type", "units"} & set(made)
    assert made["serial"] == 1 and made["status"] == "confirmed"


def test_units_are_taken_all_or_none(ctx):
    """helal's slot holds 3 units: a new patient (2) and a follow-up (1) fill it; a second new
    patient does not fit, though one unit would have been free before the follow-up."""
    booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(1), practitioner_id="helal", appointment_type="new")),
        NOW,
    )
    with pytest.raises(SlotFull):
        booking.book(
            ctx,
            ADMIN,
            BookAppointment(**request(phone(2), practitioner_id="helal", appointment_type="new")),
            NOW,
        )
    follow = booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(3), practitioner_id="helal", appointment_type="followup")),
        NOW,
    )
    assert follow["serial"] == 2
    with pytest.raises(SlotFull):
        booking.book(
            ctx,
            ADMIN,
            BookAppointment(
                **request(phone(4), practitioner_id="helal", appointment_type="followup")
            ),
            NOW,
        )
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {"17:00": 3}


def test_the_gate_itself_refuses_units_that_do_not_fit(ctx, monkeypatch):
    """Counts read before another booking took the units: the gate alone decides."""
    stale = ctx.reader.published_and_counts("c1", [SAT.isoformat()], "helal")
    booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(1), practitioner_id="helal", appointment_type="new")),
        NOW,
    )
    monkeypatch.setattr(ctx.reader, "published_and_counts", lambda hid, dates, pid=None: stale)
    with pytest.raises(SlotFull):
        booking.book(
            ctx,
            ADMIN,
            BookAppointment(**request(phone(2), practitioner_id="helal", appointment_type="new")),
            NOW,
        )
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {"17:00": 2}


def test_two_doctors_in_the_same_hours_do_not_share_capacity(ctx):
    for i in range(3):
        booking.book(ctx, ADMIN, BookAppointment(**request(phone(i), practitioner_id="helal")), NOW)
    with pytest.raises(SlotFull):
        booking.book(ctx, ADMIN, BookAppointment(**request(phone(9), practitioner_id="helal")), NOW)
    rina = [
        booking.book(
            ctx, ADMIN, BookAppointment(**request(phone(10 + i), practitioner_id="rina")), NOW
        )
        for i in range(3)
    ]
    assert [r["serial"] for r in rina] == [1, 2, 3]
    # the hospital's own slot is a queue of its own too
    assert booking.book(ctx, ADMIN, BookAppointment(**request(phone(20))), NOW)["serial"] == 1


def test_the_default_type_applies_when_none_is_named():
    ctx, schedules = fake_context()
    schedules.publish(clinic(default_appointment_type="new"))
    made = booking.book(ctx, ADMIN, BookAppointment(**request(practitioner_id="helal")), NOW)
    assert (made["appointment_type"], made["units"]) == ("new", 2)


def test_unknown_inactive_and_absent_doctors_and_unknown_types(ctx):
    with pytest.raises(PractitionerNotFound):
        booking.book(ctx, ADMIN, BookAppointment(**request(practitioner_id="nobody")), NOW)
    with pytest.raises(PractitionerInactive):
        booking.book(ctx, ADMIN, BookAppointment(**request(practitioner_id="gone")), NOW)
    with pytest.raises(HospitalClosed):
        booking.book(ctx, ADMIN, BookAppointment(**request(practitioner_id="away")), NOW)
    with pytest.raises(AppointmentTypeNotFound):
        booking.book(ctx, ADMIN, BookAppointment(**request(appointment_type="surgery")), NOW)
    assert not ctx.appointments.docs


def test_the_duplicate_rule_is_per_doctor(ctx):
    booking.book(ctx, ADMIN, BookAppointment(**request(phone(1), practitioner_id="helal")), NOW)
    with pytest.raises(DuplicateBooking):
        booking.book(ctx, ADMIN, BookAppointment(**request(phone(1), practitioner_id="helal")), NOW)
    assert booking.book(
        ctx, ADMIN, BookAppointment(**request(phone(1), practitioner_id="rina")), NOW
    )
    assert booking.book(
        ctx, ADMIN, BookAppointment(**request(phone(1))), NOW
    )  # and the hospital's own queue


def test_cancel_frees_all_of_an_appointments_units(ctx):
    made = booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(1), practitioner_id="helal", appointment_type="new")),
        NOW,
    )
    cancel.cancel(ctx, ADMIN, made["appointment_id"], NOW)
    assert ctx.capacity.counts("c1", SAT.isoformat(), "helal") == {}
    again = booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(2), practitioner_id="helal", appointment_type="new")),
        NOW,
    )
    assert again["serial"] == 1


def test_a_doctors_day_is_rebuilt_with_units_and_serials_kept(ctx):
    first = booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(1), practitioner_id="helal", appointment_type="new")),
        NOW,
    )
    second = booking.book(
        ctx, ADMIN, BookAppointment(**request(phone(2), practitioner_id="helal")), NOW
    )
    booking.book(ctx, ADMIN, BookAppointment(**request(phone(3))), NOW)
    ctx.capacity.lose_everything()
    with pytest.raises(SlotFull):  # rebuilt first: 2 + 1 units of 3 are held
        booking.book(ctx, ADMIN, BookAppointment(**request(phone(4), practitioner_id="helal")), NOW)
    held = ctx.capacity.holds[("c1", "helal", SAT.isoformat(), "17:00")]
    assert held == {first["appointment_id"]: (1, 2), second["appointment_id"]: (2, 1)}


def test_the_reconciler_rebuilds_each_doctors_records(ctx, monkeypatch):
    made = booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(1), practitioner_id="rina", appointment_type="new")),
        NOW,
    )
    own = booking.book(ctx, ADMIN, BookAppointment(**request(phone(2))), NOW)
    ctx.capacity.lose_everything()
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    day = SAT.isoformat()
    assert ctx.capacity.holds[("c1", "rina", day, "17:00")] == {made["appointment_id"]: (1, 2)}
    assert ctx.capacity.holds[("c1", None, day, "17:00")] == {own["appointment_id"]: (1, 1)}


def test_the_reconciler_releases_a_doctors_lost_release(ctx, monkeypatch):
    made = booking.book(
        ctx, ADMIN, BookAppointment(**request(phone(1), practitioner_id="rina")), NOW
    )
    ctx.appointments.close(ObjectId(made["appointment_id"]), CONFIRMED, CANCELLED, NOW)
    assert ctx.capacity.counts("c1", SAT.isoformat(), "rina") == {"17:00": 1}
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    assert ctx.capacity.counts("c1", SAT.isoformat(), "rina") == {}


def test_reads_per_doctor_and_the_fit_of_a_type(ctx):
    booking.book(
        ctx,
        ADMIN,
        BookAppointment(**request(phone(1), practitioner_id="helal", appointment_type="new")),
        NOW,
    )
    counted = places.day_counts(ctx, "c1", [SAT], NOW, "helal", "new")
    ((day, counts),) = counted.days
    assert counted.units == 2
    assert counts_document(day, counts, counted.units)["slots"] == {
        "17:00": {
            "capacity": 3,
            "booked": 2,
            "held": 0,
            "offered": 0,
            "available": 1,
            "fits": False,
        }
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
    booking.book(ctx, ADMIN, BookAppointment(**request(phone(1), practitioner_id="helal")), NOW)
    booking.book(ctx, ADMIN, BookAppointment(**request(phone(2), practitioner_id="rina")), NOW)
    booking.book(ctx, ADMIN, BookAppointment(**request(phone(3))), NOW)
    page = booking.list_appointments(
        ctx, ADMIN, {"hospital_id": "c1", "practitioner_id": "rina", "page": 1, "per_page": 50}
    )
    assert [a["practitioner"]["practitioner_id"] for a in page["appointments"]] == ["rina"]
    everyone = booking.list_appointments(
        ctx, ADMIN, {"hospital_id": "c1", "page": 1, "per_page": 50}
    )
    assert everyone["total"] == 3
