"""The booking core over fakes (tests/unit/fakes.py): every booking rule and error, cancel,
abandon and reconcile, idempotency and limits. Fast: no server, no network."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest
from bson import ObjectId

from booking_service.adapters.repository import (
    ABANDONED,
    CANCELLED,
    CONFIRMED,
    PENDING,
    REJECTED,
)
from booking_service.core import booking, cancel, places, reconciler
from booking_service.core.idempotency import IdempotencyInProgress, fingerprint, run_once
from booking_service.core.requests import BookAppointment
from shared.errors import (
    AppointmentInPast,
    AppointmentNotFound,
    DuplicateBooking,
    HospitalClosed,
    HospitalNotFound,
    IdempotencyKeyReused,
    InvalidDate,
    InvalidTransition,
    OutsideBookingWindow,
    RateLimited,
    ScheduleChanged,
    ServiceUnavailable,
    SlotFull,
    SlotInPast,
    SlotNotFound,
)
from tests.unit import builders
from tests.unit.builders import ADMIN, NOW, OTHER, PATIENT, SAT

hospital = partial(builders.hospital, "booking")


@pytest.fixture
def setup(published):
    return published(hospital(), ready=[("h1", None, SAT.isoformat())])


def request(day=SAT, slot="17:00", phone="+8801711111111", hid="h1") -> dict:
    return {
        "hospital_id": hid,
        "date": str(day),
        "slot": slot,
        "patient": {"name": "Rahim", "phone": phone},
        "reason": None,
    }


def book(ctx, who, *args, **fields) -> dict:
    """booking.book of request(*args, **fields), at NOW."""
    return booking.book(ctx, who, BookAppointment(**request(*args, **fields)), NOW)


def test_a_booking_takes_the_smallest_free_serial(setup):
    ctx, _ = setup
    first = book(ctx, PATIENT)
    second = book(ctx, PATIENT, phone="+8801722222222")
    assert (first["status"], first["serial"], second["serial"]) == (CONFIRMED, 1, 2)
    assert first["slot"] == {"start": "17:00", "end": "18:00", "display": "05:00 PM - 06:00 PM"}
    assert ctx.capacity.counts("h1", "2026-11-28") == {"17:00": 2}
    cancel.cancel(ctx, PATIENT, first["appointment_id"], NOW)
    third = book(ctx, PATIENT, phone="+8801733333333")
    assert third["serial"] == 1


def test_a_full_slot_is_refused_before_any_write(setup):
    ctx, _ = setup
    for phone in ("+8801711111111", "+8801722222222"):
        book(ctx, PATIENT, phone=phone)
    writes = len(ctx.appointments.docs)
    with pytest.raises(SlotFull):
        book(ctx, PATIENT, phone="+8801733333333")
    assert len(ctx.appointments.docs) == writes


def test_the_gate_refuses_what_the_counts_did_not_show(setup, monkeypatch):
    """Two bookings read the same counts; the gate alone decides the last place."""
    ctx, _ = setup
    book(ctx, PATIENT, phone="+8801711111111")
    stale = ctx.reader.published_and_counts("h1", ["2026-11-28"])
    book(ctx, PATIENT, phone="+8801722222222")
    monkeypatch.setattr(ctx.reader, "published_and_counts", lambda hid, dates, pid=None: stale)
    with pytest.raises(SlotFull):
        book(ctx, PATIENT, phone="+8801733333333")
    rejected = [d for d in ctx.appointments.docs.values() if d["status"] == REJECTED]
    assert len(rejected) == 1 and rejected[0]["dup_guard"].startswith("x:")


@pytest.mark.parametrize(
    ("day", "slot", "error"),
    [
        (date(2026, 11, 23), "09:00", OutsideBookingWindow),  # yesterday
        (date(2026, 12, 5), "17:00", OutsideBookingWindow),  # 11 days ahead, window 10
        (date(2026, 11, 30), "17:00", HospitalClosed),  # an override closes it
        (date(2026, 11, 27), "17:00", HospitalClosed),  # Friday: not scheduled
        (SAT, "19:00", SlotNotFound),
        (date(2026, 11, 24), "09:00", SlotInPast),  # today, started at 09:00
    ],
)
def test_the_schedule_decides_what_can_be_booked(setup, day, slot, error):
    ctx, _ = setup
    with pytest.raises(error):
        book(ctx, PATIENT, day=day, slot=slot)
    assert not ctx.appointments.docs


def test_today_a_slot_not_started_can_be_booked(setup):
    ctx, _ = setup
    ctx.capacity.ready.add(("h1", None, "2026-11-24"))
    assert book(ctx, PATIENT, day=date(2026, 11, 24), slot="11:00")


def test_unknown_hospital_and_bad_date(setup):
    ctx, _ = setup
    with pytest.raises(HospitalNotFound):
        book(ctx, PATIENT, hid="nope")
    with pytest.raises(InvalidDate):
        book(ctx, PATIENT, day="2026-02-30")


def test_one_active_appointment_per_phone_hospital_and_date(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT, slot="17:00")
    with pytest.raises(DuplicateBooking):
        book(ctx, OTHER, slot="18:00", phone="8801711111111")
    cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)
    assert book(ctx, OTHER, slot="18:00")["status"] == CONFIRMED


def test_a_day_redis_lost_is_rebuilt_from_the_appointments_first(setup):
    ctx, _ = setup
    kept = book(ctx, PATIENT, phone="+8801711111111")
    ctx.capacity.lose_everything()
    with pytest.raises(SlotFull):
        for phone in ("+8801722222222", "+8801733333333"):
            book(ctx, PATIENT, phone=phone)
    held = ctx.capacity.holds[("h1", None, "2026-11-28", "17:00")]
    assert held[kept["appointment_id"]] == (1, 1) and len(held) == 2


def refused_by_an_edit_after_the_write(ctx, schedules, monkeypatch, meanwhile=None) -> dict:
    """A booking whose write-ahead record is followed (`meanwhile()` first) by an edit's
    fence: refused with 409 schedule_changed; its record, rejected."""
    insert = ctx.appointments.insert_pending

    def insert_then_edit(doc):
        insert(doc)
        if meanwhile is not None:
            meanwhile()
        schedules.begin_edit("h1")

    monkeypatch.setattr(ctx.appointments, "insert_pending", insert_then_edit)
    with pytest.raises(ScheduleChanged):
        book(ctx, PATIENT)
    (doc,) = ctx.appointments.docs.values()
    assert doc["status"] == REJECTED
    return doc


def test_an_edit_begun_meanwhile_refuses_the_booking(setup, monkeypatch):
    """The version is read again after the write-ahead record: an edit's fence refuses it."""
    ctx, schedules = setup
    refused_by_an_edit_after_the_write(ctx, schedules, monkeypatch)
    assert ctx.capacity.counts("h1", "2026-11-28") == {}


def test_a_refused_booking_keeps_no_place_a_rebuild_gave_it(published, monkeypatch):
    """Issue 22, places lost for good: on a day whose records are not built yet, another
    booking's rebuild restores this booking's write-ahead record as a place; an edit then
    refuses this booking (409 schedule_changed). Its place is given back, not kept for a
    rejected appointment that nothing would ever free."""
    ctx, schedules = published(hospital())  # Saturday's records are not built

    def another_bookings_rebuild():
        schedule = ctx.configurations.current("h1", ctx.reader.published("h1")).schedule
        places.rebuild_day(ctx, schedule, "h1", SAT)

    refused_by_an_edit_after_the_write(ctx, schedules, monkeypatch, another_bookings_rebuild)
    assert ctx.capacity.counts("h1", SAT.isoformat()) == {}


def test_a_cancel_that_loses_to_a_check_in_is_refused_and_changes_nothing(setup, monkeypatch):
    """Issue 22, races on one appointment: the desk checks the patient in between the
    cancel's read and its write. The cancel answers 409 invalid_transition (it was a 200
    describing an appointment still checked in) and the appointment keeps its place."""
    ctx, _ = setup
    made = book(ctx, PATIENT)
    oid = ObjectId(made["appointment_id"])
    close = ctx.appointments.close

    def checked_in_first(*args, **kwargs):
        ctx.appointments.move(oid, (CONFIRMED,), "checked_in", {"checked_in_at": "now"})
        return close(*args, **kwargs)

    monkeypatch.setattr(ctx.appointments, "close", checked_in_first)
    with pytest.raises(InvalidTransition) as refused:
        cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)
    assert refused.value.extra == {"current_status": "checked_in"}
    assert ctx.appointments.get(oid)["status"] == "checked_in"
    assert ctx.capacity.counts("h1", SAT.isoformat()) == {"17:00": 1}


def test_a_new_version_is_read_from_the_source_once(setup):
    ctx, schedules = setup
    book(ctx, PATIENT, phone="+8801711111111")
    book(ctx, PATIENT, slot="18:00", phone="+8801722222222")
    assert schedules.loads == 1
    schedules.publish(hospital(version=2, max_appointments_per_slot=3))
    book(ctx, PATIENT, phone="+8801733333333")
    book(ctx, PATIENT, phone="+8801744444444")  # the third place
    assert schedules.loads == 2


def test_a_booking_the_reconciler_abandoned_is_never_confirmed(setup, monkeypatch):
    ctx, _ = setup
    confirm = ctx.appointments.confirm

    def abandoned_meanwhile(oid, *args):
        ctx.appointments.close(oid, PENDING, ABANDONED, NOW)
        return confirm(oid, *args)

    monkeypatch.setattr(ctx.appointments, "confirm", abandoned_meanwhile)
    with pytest.raises(ServiceUnavailable):
        book(ctx, PATIENT)
    assert ctx.capacity.counts("h1", "2026-11-28") == {}


def test_cancel_frees_the_place_once_and_is_idempotent(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    with pytest.raises(AppointmentNotFound):
        cancel.cancel(ctx, OTHER, made["appointment_id"], NOW)
    first = cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)
    again = cancel.cancel(ctx, ADMIN, made["appointment_id"], NOW)
    assert first["status"] == again["status"] == CANCELLED
    assert ctx.capacity.counts("h1", "2026-11-28") == {}


def test_a_past_appointment_cannot_be_cancelled(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    with pytest.raises(AppointmentInPast):
        cancel.cancel(ctx, PATIENT, made["appointment_id"], datetime(2026, 11, 28, 12, tzinfo=UTC))


def test_someone_elses_appointment_is_not_found_and_ids_are_canonical(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    aid = made["appointment_id"]
    assert places.find_visible(ctx, ADMIN, aid)["_id"] == ObjectId(aid)
    for who, ident in ((OTHER, aid), (PATIENT, aid.upper()), (PATIENT, aid + " ")):
        with pytest.raises(AppointmentNotFound):
            places.find_visible(ctx, who, ident)


def test_the_list_is_a_patients_own_and_an_admins_filtered(setup):
    ctx, _ = setup
    book(ctx, PATIENT, phone="+8801711111111")
    book(ctx, OTHER, phone="+8801722222222")
    page = {"page": 1, "per_page": 50}
    mine = booking.list_appointments(ctx, PATIENT, {**page, "hospital_id": "other"})
    assert [a["booked_by"] for a in mine["appointments"]] == ["p1"]
    everyone = booking.list_appointments(ctx, ADMIN, {**page, "date_from": "2026-11-28"})
    assert everyone["total"] == 2
    with pytest.raises(InvalidDate):
        booking.list_appointments(ctx, ADMIN, {**page, "date_to": "2026-13-01"})


def test_stale_pending_appointments_are_abandoned_once(setup):
    ctx, _ = setup
    oid = ObjectId()
    ctx.appointments.insert_pending(
        {
            "_id": oid,
            "hospital_id": "h1",
            "date": "2026-11-28",
            "slot_start": "17:00",
            "status": PENDING,
            "dup_guard": "d",
            "serial_guard": f"p:{oid}",
            "serial": None,
            "created_at": NOW - timedelta(minutes=5),
            "updated_ms": 0,
        }
    )
    ctx.capacity.reserve("h1", "2026-11-28", "17:00", str(oid), 2, 60)
    assert booking.abandon_stale(ctx, NOW - timedelta(seconds=30), NOW) == 1
    assert booking.abandon_stale(ctx, NOW - timedelta(seconds=30), NOW) == 0
    assert ctx.appointments.get(oid)["status"] == ABANDONED
    assert ctx.capacity.counts("h1", "2026-11-28") == {}


def test_the_reconciler_rebuilds_every_day_after_redis_lost_its_data(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    ctx.capacity.lose_everything()
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    assert ctx.capacity.records_complete()
    assert ctx.capacity.holds[("h1", None, "2026-11-28", "17:00")] == {
        made["appointment_id"]: (1, 1)
    }


def test_the_reconciler_releases_a_lost_release(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    ctx.appointments.close(ObjectId(made["appointment_id"]), CONFIRMED, CANCELLED, NOW)
    assert ctx.capacity.counts("h1", "2026-11-28") == {"17:00": 1}  # the release was lost
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    assert ctx.capacity.counts("h1", "2026-11-28") == {}
    # once: the next sweep does not look at it again
    assert ctx.appointments.get(ObjectId(made["appointment_id"]))["released"] is True
    assert ctx.appointments.closed_since(NOW - timedelta(minutes=1)) == []


def test_a_booking_the_gate_refused_frees_nothing_of_the_others(setup, monkeypatch):
    """A booking the gate refused (full) held no place: it is closed, and giving back its
    place (now, and again by the reconciler's sweep of closed appointments) frees nothing
    that another appointment holds."""
    ctx, _ = setup
    stale = ctx.reader.published_and_counts("h1", ["2026-11-28"])  # the slot still empty
    for phone in ("+8801711111111", "+8801722222222"):
        book(ctx, PATIENT, phone=phone)
    monkeypatch.setattr(ctx.reader, "published_and_counts", lambda hid, dates, pid=None: stale)
    with pytest.raises(SlotFull):
        book(ctx, PATIENT, phone="+8801733333333")
    rejected = [d for d in ctx.appointments.docs.values() if d["status"] == REJECTED]
    assert len(rejected) == 1
    assert ctx.capacity.counts("h1", "2026-11-28") == {"17:00": 2}
    monkeypatch.setattr(reconciler, "utcnow", lambda: NOW)
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    assert ctx.capacity.counts("h1", "2026-11-28") == {"17:00": 2}


# -- idempotency ----------------------------------------------------------------------------


def test_a_retry_replays_and_a_reuse_is_refused(setup):
    ctx, _ = setup
    body = request()

    def book():
        return booking.book(ctx, PATIENT, BookAppointment(**body), NOW)

    status, first, replayed = run_once(ctx.idempotency, "p1", "k-1", fingerprint(body), NOW, book)
    assert (status, replayed) == (201, False)
    status, again, replayed = run_once(ctx.idempotency, "p1", "k-1", fingerprint(body), NOW, book)
    assert (status, replayed, again) == (201, True, first)
    with pytest.raises(IdempotencyKeyReused):
        run_once(ctx.idempotency, "p1", "k-1", fingerprint(request(slot="18:00")), NOW, book)
    assert len(ctx.appointments.docs) == 1


def test_a_key_in_progress_is_refused_and_a_failure_frees_it(setup):
    ctx, _ = setup
    ctx.idempotency.claim("p1:k-2", fingerprint(request()), NOW)  # a first try, still running
    with pytest.raises(IdempotencyInProgress):
        run_once(
            ctx.idempotency, "p1", "k-2", fingerprint(request()), NOW, lambda: {}, wait_seconds=0.05
        )

    def unavailable():
        raise ServiceUnavailable("down")

    with pytest.raises(ServiceUnavailable):
        run_once(ctx.idempotency, "p1", "k-3", fingerprint(request()), NOW, unavailable)
    assert "p1:k-3" not in ctx.idempotency.records  # a retry runs anew


# -- limits ---------------------------------------------------------------------------------


def test_the_booking_limit_counts_attempts_and_a_429_is_not_stored(setup):
    ctx, _ = setup
    ctx.config.booking_limit = 1
    body = request()

    def attempt():
        ctx.limiter.check_booking("p1")
        return booking.book(ctx, PATIENT, BookAppointment(**body), NOW)

    run_once(ctx.idempotency, "p1", "k-1", fingerprint(body), NOW, attempt)
    assert (
        run_once(ctx.idempotency, "p1", "k-1", fingerprint(body), NOW, attempt)[2] is True
    )  # replayed
    with pytest.raises(RateLimited) as refused:
        run_once(
            ctx.idempotency, "p1", "k-2", fingerprint(request(phone="+8801799999999")), NOW, attempt
        )
    assert refused.value.headers["Retry-After"] == "60"
    assert "p1:k-2" not in ctx.idempotency.records


def test_failed_logins_are_counted_before_the_check_and_successes_taken_back(setup):
    ctx, _ = setup
    ctx.config.login_fail_limit = 2
    for _ in range(5):
        ctx.limiter.begin_login("a@example.com", "1.2.3.4")
        ctx.limiter.login_succeeded("a@example.com", "1.2.3.4")
    for _ in range(2):
        ctx.limiter.begin_login("a@example.com", "1.2.3.4")  # failures: not taken back
    with pytest.raises(RateLimited):
        ctx.limiter.begin_login("a@example.com", "1.2.3.4")
    ctx.limiter.begin_login("b@example.com", "1.2.3.4")  # another account is not limited


def test_active_lists_pending_and_confirmed_for_an_edits_conflict_check(setup):
    ctx, _ = setup
    book(ctx, PATIENT, phone="+8801711111111")
    oid = ObjectId()
    ctx.appointments.insert_pending(
        {
            "_id": oid,
            "hospital_id": "h1",
            "date": "2026-11-28",
            "slot_start": "18:00",
            "slot": {"start": "18:00"},
            "status": PENDING,
            "dup_guard": "d",
            "serial_guard": f"p:{oid}",
            "serial": None,
            "patient": {},
            "booked_by": "p9",
            "created_at": NOW,
            "updated_ms": 0,
        }
    )
    page = {"page": 1, "per_page": 50, "hospital_id": "h1"}
    active = booking.list_appointments(ctx, ADMIN, {**page, "status": "active"})
    assert sorted(a["status"] for a in active["appointments"]) == [CONFIRMED, PENDING]
    visible = booking.list_appointments(ctx, ADMIN, page)
    assert [a["status"] for a in visible["appointments"]] == [CONFIRMED]
