"""The webhook events each change records in its own document's outbox, in the same write
(adapters/outbox.py), over fakes: one per change, in order, with the version after it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId

from booking_service.adapters import outbox
from booking_service.core import booking, cancel, moves, visits, waitlist
from booking_service.core.requests import BookAppointment, JoinWaitlist, MoveAppointment
from shared.errors import SlotFull
from tests.unit.holds_moves_waitlist.test_holds_moves_waitlist import (
    NOW,
    PATIENT,
    SAT,
    STAFF,
    fill,
    request,
    setup,  # noqa: F401 - the fixture
    wait_body,
)


def events(ctx, appointment_id: str) -> list[dict]:
    return outbox.events_of(ctx.appointments.get(ObjectId(appointment_id)))


def test_a_booking_a_move_and_a_cancel_each_record_one_event(setup):  # noqa: F811
    ctx, _ = setup
    made = booking.book(ctx, PATIENT, BookAppointment(**request()), NOW)
    moves.reschedule(
        ctx, PATIENT, made["appointment_id"], MoveAppointment(**{"date": SAT, "slot": "18:00"}), NOW
    )
    cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)
    cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)  # idempotent: no second event
    recorded = events(ctx, made["appointment_id"])
    assert [e["type"] for e in recorded] == [
        "appointment.created",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    assert [e["data"]["version"] for e in recorded] == [1, 2, 3]
    assert len({e["id"] for e in recorded}) == 3
    created, moved, cancelled = (e["data"] for e in recorded)
    assert (created["status"], created["serial"], created["slot"]["start"]) == (
        "confirmed",
        1,
        "17:00",
    )
    assert created["patient"]["phone"] == "+8801711111111"
    assert moved["slot"]["start"] == "18:00" and moved["rescheduled_from"]["slot"] == "17:00"
    assert (
        cancelled["status"] == "cancelled" and cancelled["cancelled_at"] == "2026-11-24T04:00:00Z"
    )
    doc = ctx.appointments.get(ObjectId(made["appointment_id"]))
    assert (doc["version"], doc["outbox_pending"]) == (3, 1)


def test_a_refused_move_or_booking_records_nothing(setup):  # noqa: F811
    ctx, _ = setup
    made = booking.book(ctx, PATIENT, BookAppointment(**request(slot="18:00")), NOW)
    fill(ctx, "17:00")
    with pytest.raises(SlotFull):
        moves.reschedule(
            ctx,
            PATIENT,
            made["appointment_id"],
            MoveAppointment(**{"date": SAT, "slot": "17:00"}),
            NOW,
        )
    assert [e["type"] for e in events(ctx, made["appointment_id"])] == ["appointment.created"]


def test_a_visit_step_records_its_status_change(setup, monkeypatch):  # noqa: F811
    ctx, _ = setup
    made = booking.book(ctx, PATIENT, BookAppointment(**request()), NOW)
    visit_day = NOW + timedelta(days=4, hours=8)  # Saturday in Dhaka
    visits.visit_step(ctx, STAFF, made["appointment_id"], "check-in", visit_day)
    last = events(ctx, made["appointment_id"])[-1]
    assert last["type"] == "appointment.status_changed"
    assert (last["data"]["status"], last["data"]["previous_status"]) == ("checked_in", "confirmed")
    assert last["data"]["version"] == 2


def test_an_offer_records_a_waitlist_event(setup):  # noqa: F811
    ctx, _ = setup
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    entry = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    doc = ctx.waitlist.get(ObjectId(entry["waitlist_id"]))
    (offered,) = outbox.events_of(doc)
    assert offered["type"] == "waitlist.offered"
    assert offered["data"]["waitlist_id"] == entry["waitlist_id"]
    assert offered["data"]["offered_slot"] == "17:00" and offered["data"]["status"] == "offered"
