"""The day of the visit over fakes (booking_service/core/visits.py): transitions and who may make
them, the public queue, the position and its estimated call time, the live announcements."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

import pytest

from booking_service.core import booking, cancel, places, visits
from booking_service.core.requests import BookAppointment
from shared.errors import (
    AppointmentNotFound,
    InvalidTransition,
    NotVisitDay,
    PractitionerNotFound,
)
from tests.unit import builders
from tests.unit.builders import ADMIN, NOW, OTHER, PATIENT, STAFF
from tests.unit.fakes import fake_context

TODAY = "2026-11-24"  # NOW is its 10:00 in Dhaka
clinic = partial(builders.hospital, "visits")


def ready(ctx):
    """The day's records built already (a first booking would rebuild them, and announce it)."""
    for day in (TODAY, "2026-11-25"):
        for doctor in (None, "helal"):
            ctx.capacity.ready.add(("c1", doctor, day))
    return ctx


@pytest.fixture
def ctx(published):
    return ready(published(clinic())[0])


def book(ctx, i: int, slot="11:00", who=PATIENT, day=TODAY, **extra) -> dict:
    body = {
        "hospital_id": "c1",
        "date": day,
        "slot": slot,
        "patient": {"name": f"P{i}", "phone": f"+88017{i:08d}"},
        **extra,
    }
    return booking.book(ctx, who, BookAppointment(**body), NOW)


def step(ctx, appointment, name, who=STAFF, at=NOW) -> dict:
    return visits.visit_step(ctx, who, appointment["appointment_id"], name, at)


def test_the_steps_of_a_visit_and_their_stamps(ctx):
    made = book(ctx, 1)
    checked = step(ctx, made, "check-in")
    assert (checked["status"], checked["checked_in_at"]) == ("checked_in", "2026-11-24T04:00:00Z")
    started = step(ctx, made, "start", at=NOW + timedelta(minutes=5))
    assert (started["status"], started["started_at"]) == ("in_consultation", "2026-11-24T04:05:00Z")
    done = step(ctx, made, "complete", who=ADMIN, at=NOW + timedelta(minutes=12))
    assert done["status"] == "completed" and done["completed_at"] == "2026-11-24T04:12:00Z"
    stored = ctx.appointments.docs[next(iter(ctx.appointments.docs))]
    assert stored["checked_in_by"] == "s1" and stored["completed_by"] == "a1"


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], "complete"),  # confirmed -> completed skips the consultation
        (["check-in"], "check-in"),  # twice: the second desk loses
        (["start"], "no-show"),
        (["start", "complete"], "start"),
        (["no-show"], "check-in"),
    ],
)
def test_any_other_move_is_an_invalid_transition(ctx, path, refused):
    made = book(ctx, 1)
    for name in path:
        step(ctx, made, name)
    with pytest.raises(InvalidTransition):
        step(ctx, made, refused)


def test_only_a_confirmed_appointment_can_be_cancelled_and_a_visit_keeps_its_place(ctx):
    made = book(ctx, 1, who=PATIENT)
    step(ctx, made, "check-in")
    with pytest.raises(InvalidTransition):
        cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)
    assert ctx.capacity.counts("c1", TODAY) == {"11:00": 1}
    # and a rebuild from MongoDB keeps it
    ctx.capacity.lose_everything()
    ctx.capacity.complete = True
    places.rebuild_day(
        ctx, ctx.configurations.cached("c1").schedule, "c1", datetime(2026, 11, 24).date()
    )
    assert ctx.capacity.counts("c1", TODAY) == {"11:00": 1}


def test_steps_are_made_on_the_appointments_own_date(ctx):
    tomorrow = book(ctx, 1, day="2026-11-25")
    with pytest.raises(NotVisitDay):
        step(ctx, tomorrow, "check-in")


def test_a_patient_sees_only_its_own_position_and_staff_see_all(ctx):
    made = book(ctx, 1, who=PATIENT)
    with pytest.raises(AppointmentNotFound):
        visits.position(ctx, OTHER, made["appointment_id"], NOW)
    assert visits.position(ctx, STAFF, made["appointment_id"], NOW)["serial"] == 1
    page = booking.list_appointments(ctx, STAFF, {"hospital_id": "c1", "page": 1, "per_page": 9})
    assert page["total"] == 1


def test_the_public_queue_counts_each_step_and_names_no_one(ctx):
    made = [book(ctx, i) for i in range(4)]
    step(ctx, made[0], "start", at=NOW)
    step(ctx, made[0], "complete", at=NOW + timedelta(minutes=8))
    step(ctx, made[1], "check-in")
    step(ctx, made[2], "no-show")
    step(ctx, made[3], "start", at=NOW + timedelta(minutes=9))
    answer = visits.queue(ctx, "c1", TODAY, None, NOW)
    assert answer == {
        "hospital_id": "c1",
        "date": TODAY,
        "practitioner_id": None,
        "now_serving": {"slot": "11:00", "serial": 4},
        "slots": [
            {
                "slot": "11:00",
                "booked": 4,
                "checked_in": 1,
                "in_consultation": 1,
                "completed": 1,
                "no_show": 1,
                "now_serving": 4,
            },
            {
                "slot": "12:00",
                "booked": 0,
                "checked_in": 0,
                "in_consultation": 0,
                "completed": 0,
                "no_show": 0,
                "now_serving": None,
            },
        ],
    }
    assert "P0" not in repr(answer) and "+8801" not in repr(answer)
    # a doctor's queue is apart; an unknown doctor is 404
    assert visits.queue(ctx, "c1", TODAY, "helal", NOW)["slots"][0]["booked"] == 0
    with pytest.raises(PractitionerNotFound):
        visits.queue(ctx, "c1", TODAY, "nobody", NOW)


def test_estimated_call_from_the_slots_length_over_its_capacity(ctx):
    """No types, nothing observed: 60 minutes over 6 places is 10 minutes a patient. The
    third waits for two before it, from the slot's start (11:00 Dhaka = 05:00Z)."""
    made = [book(ctx, i) for i in range(3)]
    third = visits.position(ctx, PATIENT, made[2]["appointment_id"], NOW)
    assert (third["ahead"], third["estimated_call_at"]) == (2, "2026-11-24T05:20:00Z")
    first = visits.position(ctx, PATIENT, made[0]["appointment_id"], NOW)
    assert (first["ahead"], first["estimated_call_at"]) == (0, "2026-11-24T05:00:00Z")


def test_estimated_call_from_the_appointment_types_minutes():
    ctx, schedules = fake_context()
    types = {"new": {"name": "New", "units": 2, "minutes": 15}, "f": {"name": "F", "units": 1}}
    schedules.publish(clinic(appointment_types=types))
    ready(ctx)
    a = book(ctx, 1, appointment_type="new")
    b = book(ctx, 2, appointment_type="new")
    c = book(ctx, 3)
    # a and b take 15 minutes each (their type's), from 11:00
    assert visits.position(ctx, PATIENT, c["appointment_id"], NOW)["estimated_call_at"] == (
        "2026-11-24T05:30:00Z"
    )
    assert visits.position(ctx, PATIENT, b["appointment_id"], NOW)["ahead"] == 1
    assert a["units"] == 2


def test_estimated_call_from_the_consultations_observed_that_day(ctx):
    """Once three are complete, their mean (here 4 minutes) is what each takes; the one in
    consultation has what is left of it."""
    made = [book(ctx, i) for i in range(6)]
    late = NOW + timedelta(hours=1, minutes=10)  # 11:10 in Dhaka
    at = late - timedelta(minutes=30)
    for patient in made[:3]:
        step(ctx, patient, "start", at=at)
        step(ctx, patient, "complete", at=at + timedelta(minutes=4))
        at += timedelta(minutes=5)
    step(ctx, made[3], "start", at=late - timedelta(minutes=1))
    position = visits.position(ctx, PATIENT, made[5]["appointment_id"], late)
    # in consultation since 11:09 (ends 11:13), then made[4] takes 4 minutes: 11:17 = 05:17Z
    assert position["ahead"] == 1
    assert position["now_serving"] == {"slot": "11:00", "serial": 4}
    assert position["estimated_call_at"] == "2026-11-24T05:17:00Z"


def test_every_change_is_announced_once_in_order(ctx):
    made = book(ctx, 1)
    step(ctx, made, "check-in")
    cancel.cancel(ctx, PATIENT, book(ctx, 2)["appointment_id"], NOW)
    doctor = book(ctx, 3, practitioner_id="helal")
    assert ctx.events.sent == [
        ("availability", "c1", TODAY, None),  # booked: the place (the gate's script)
        ("queue", "c1", TODAY, None),  # and confirmed
        ("queue", "c1", TODAY, None),  # checked in
        ("availability", "c1", TODAY, None),  # another booked
        ("queue", "c1", TODAY, None),
        ("availability", "c1", TODAY, None),  # and cancelled: its place released
        ("queue", "c1", TODAY, None),
        ("availability", "c1", TODAY, "helal"),  # a doctor's queue is a topic of its own
        ("queue", "c1", TODAY, "helal"),
    ]
    assert doctor["serial"] == 1
