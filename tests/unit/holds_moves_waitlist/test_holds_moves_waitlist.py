"""Holds, reschedule and the waitlist over fakes (tests/unit/fakes.py): every rule, and each
point where a process can die in the middle of a move, with what the reconciler makes of it.
The gate's own scripts are tested against a real server in
tests/integration/capacity/test_holds_gate.py and the whole chain through the gateway in
tests/e2e/holds_moves_waitlist/test_holds_moves_waitlist_e2e.py."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest
from bson import ObjectId

from booking_service.adapters.repository import CANCELLED, CONFIRMED, epoch_ms
from booking_service.core import booking, cancel, holds, moves, places, reconciler, waitlist
from booking_service.core.requests import BookAppointment, HoldPlace, JoinWaitlist, MoveAppointment
from booking_service.core.shapes import public
from shared.config import Config
from shared.errors import (
    AppointmentChanged,
    AppointmentNotFound,
    DuplicateBooking,
    HoldExpired,
    HoldMismatch,
    InvalidDate,
    InvalidTransition,
    RateLimited,
    ScheduleChanged,
    ServiceUnavailable,
    SlotFull,
    TooManyHolds,
    TooManyWaitlistEntries,
    WaitlistDuplicate,
)
from tests.unit import builders
from tests.unit.builders import NOW, OTHER, PATIENT, STAFF, THIRD

# Tuesday 2026-11-24, 10:00 in Dhaka (NOW); the Saturday's 17:00 and 18:00 slots hold 2 each.
SAT, SUN = "2026-11-28", "2026-11-29"
hospital = partial(builders.hospital, "holds")


class Crash(BaseException):
    """A process dying at this point (nothing after it runs, no handler catches it)."""


@pytest.fixture
def setup(monkeypatch, published):
    config = Config(bcrypt_rounds=4, pending_timeout_seconds=30, hold_limit=2, waitlist_limit=5)
    ctx, schedules = published(hospital(), config, ready=[("h1", None, day) for day in (SAT, SUN)])
    ctx.capacity.clock_ms = epoch_ms(NOW)  # Redis's clock, for the gate's expiries
    for module in (places, reconciler):
        monkeypatch.setattr(module, "utcnow", lambda: NOW)
    return ctx, schedules


def later(ctx, seconds: float) -> datetime:
    """Move both clocks on by `seconds`; the new now."""
    ctx.capacity.clock_ms += int(seconds * 1000)
    return NOW + timedelta(seconds=seconds)


def place(slot="17:00", day=SAT, **more) -> dict:
    return {"hospital_id": "h1", "date": day, "slot": slot, **more}


def request(phone="+8801711111111", slot="17:00", day=SAT, **more) -> dict:
    return {**place(slot, day), "patient": {"name": "Rahim", "phone": phone}, **more}


def book(ctx, who, *args, **fields) -> dict:
    """booking.book of request(*args, **fields), at NOW."""
    return booking.book(ctx, who, BookAppointment(**request(*args, **fields)), NOW)


def move(ctx, who, appointment_id, day, slot, **more) -> dict:
    """moves.reschedule of that appointment to `day` and `slot` (and e.g. hold_id), at NOW."""
    asked = MoveAppointment(date=day, slot=slot, **more)
    return moves.reschedule(ctx, who, appointment_id, asked, NOW)


def fill(ctx, slot="17:00", day=SAT) -> list[dict]:
    """Book both places of a slot."""
    hour = slot[:2]
    return [book(ctx, STAFF, phone=f"+880170000{hour}{n}", slot=slot, day=day) for n in (1, 2)]


def counts(ctx, day=SAT) -> dict:
    return ctx.capacity.counts("h1", day)


# --- holds ---------------------------------------------------------------------------------


def test_a_hold_takes_a_place_that_reads_show_as_held(setup):
    ctx, _ = setup
    made = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    assert made["state"] == "held" and made["serial"] == 1
    assert made["expires_at"] == "2026-11-24T04:05:00Z"  # hold_seconds by the gate's clock
    assert counts(ctx) == {"h:17:00": 1}
    answer = places.day_counts(ctx, "h1", [date(2026, 11, 28)], NOW)
    ((_, day_counts),) = answer.days
    book(ctx, OTHER)
    with pytest.raises(SlotFull):  # one booked, one held: full
        book(ctx, THIRD, phone="+8801733333333")
    assert day_counts is not None


def test_a_hold_past_its_time_never_blocks_a_booking_even_unswept(setup):
    ctx, _ = setup
    holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    holds.hold(ctx, OTHER, HoldPlace(**place()), NOW)
    with pytest.raises(SlotFull):
        book(ctx, THIRD)
    after = later(ctx, 301)
    made = booking.book(ctx, THIRD, BookAppointment(**request()), after)  # no sweep ran
    assert made["status"] == CONFIRMED
    assert counts(ctx) == {"17:00": 1}


def test_a_user_holds_at_most_the_limit_at_once(setup):
    ctx, _ = setup
    first = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00")), NOW)
    holds.hold(ctx, PATIENT, HoldPlace(**place("18:00")), NOW)
    with pytest.raises(TooManyHolds):
        holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)
    waitlist.release_hold(ctx, PATIENT, first["hold_id"], NOW)
    assert holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)["state"] == "held"
    with pytest.raises(TooManyHolds):
        holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)
    # past their time, holds stop counting; a desk holds for many
    after = later(ctx, 301)
    assert holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), after)["state"] == "held"
    for slot in ("17:00", "17:00", "18:00", "18:00"):
        holds.hold(ctx, STAFF, HoldPlace(**place(slot)), after)
    assert (counts(ctx)["h:17:00"], counts(ctx)["h:18:00"]) == (2, 2)


def test_a_full_slot_cannot_be_held(setup):
    ctx, _ = setup
    fill(ctx)
    with pytest.raises(SlotFull):
        holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    assert not ctx.holds.docs and not ctx.capacity.quota.get("p1")


def test_a_hold_becomes_an_appointment_exactly_once_and_never_slot_full(setup):
    ctx, _ = setup
    mine = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    holds.hold(ctx, OTHER, HoldPlace(**place()), NOW)  # the slot is now fully held
    made = book(ctx, PATIENT, hold_id=mine["hold_id"])
    assert (made["serial"], made["hold_id"]) == (mine["serial"], mine["hold_id"])
    assert counts(ctx) == {"17:00": 1, "h:17:00": 1}
    assert ctx.holds.get(ObjectId(mine["hold_id"]))["state"] == "used"
    with pytest.raises(HoldExpired):  # used: gone
        book(ctx, PATIENT, phone="+8801799999999", hold_id=mine["hold_id"])
    assert counts(ctx) == {"17:00": 1, "h:17:00": 1}


def test_two_bookings_racing_for_one_hold_get_one_place(setup, monkeypatch):
    """Both pass the checks; the gate's take_hold lets one through."""
    ctx, _ = setup
    mine = holds.hold(ctx, STAFF, HoldPlace(**place()), NOW)
    usable = holds.usable_hold
    seen = []

    def checked_twice(*args):
        doc = usable(*args)
        seen.append(doc)
        return doc

    monkeypatch.setattr(holds, "usable_hold", checked_twice)
    first = book(ctx, STAFF, hold_id=mine["hold_id"])
    ctx.holds.docs[ObjectId(mine["hold_id"])]["state"] = "held"  # the second read it as live
    with pytest.raises(HoldExpired):
        book(ctx, STAFF, phone="+8801722222222", hold_id=mine["hold_id"])
    assert first["status"] == CONFIRMED and counts(ctx) == {"17:00": 1}
    assert len(seen) == 2


def test_a_hold_must_be_the_callers_and_for_that_place(setup):
    ctx, _ = setup
    mine = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    with pytest.raises(HoldExpired):  # someone else's hold is unknown to them
        book(ctx, OTHER, hold_id=mine["hold_id"])
    with pytest.raises(HoldMismatch):
        book(ctx, PATIENT, slot="18:00", hold_id=mine["hold_id"])
    with pytest.raises(HoldMismatch):
        book(ctx, PATIENT, hold_id=mine["hold_id"], appointment_type="new")
    # a desk may book a patient's hold for them
    made = book(ctx, STAFF, hold_id=mine["hold_id"])
    assert made["serial"] == mine["serial"]


def test_an_expired_or_unknown_hold_is_410(setup):
    ctx, _ = setup
    mine = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    with pytest.raises(HoldExpired):
        book(ctx, PATIENT, hold_id=str(ObjectId()))
    after = later(ctx, 300)
    with pytest.raises(HoldExpired):
        booking.book(ctx, PATIENT, BookAppointment(**request(hold_id=mine["hold_id"])), after)
    assert not [d for d in ctx.appointments.docs.values() if d["status"] == CONFIRMED]


def test_the_gate_refuses_a_hold_it_dropped_even_if_mongodb_still_says_held(setup):
    """MongoDB's expiry is checked by the caller's clock; the gate's by Redis's: the gate
    decides, and the appointment written ahead is closed."""
    ctx, _ = setup
    mine = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    ctx.capacity.clock_ms += 300_000  # Redis's clock is ahead
    with pytest.raises(HoldExpired):
        book(ctx, PATIENT, hold_id=mine["hold_id"])
    assert {d["status"] for d in ctx.appointments.docs.values()} == {"rejected"}


def test_a_rebuild_restores_live_holds_only(setup):
    ctx, _ = setup
    live = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00")), NOW)
    used = holds.hold(ctx, OTHER, HoldPlace(**place("17:00")), NOW)
    book(ctx, OTHER, phone="+8801722222222", hold_id=used["hold_id"])
    gone = holds.hold(ctx, THIRD, HoldPlace(**place("18:00")), NOW)
    ctx.holds.docs[ObjectId(gone["hold_id"])]["expires_ms"] = epoch_ms(NOW) + 1000
    ctx.holds.docs[ObjectId(used["hold_id"])]["state"] = "held"  # its "used" write was lost
    ctx.capacity.lose_everything()
    ctx.capacity.clock_ms += 2000
    assert places.rebuild_day(
        ctx,
        ctx.configurations.current("h1", ctx.reader.published("h1")).schedule,
        "h1",
        date(2026, 11, 28),
    )
    kept = ctx.capacity.places[("h1", None, SAT, "17:00")]
    assert set(kept) == {"h:" + live["hold_id"], next(iter(
        str(d["_id"]) for d in ctx.appointments.docs.values() if d["status"] == CONFIRMED
    ))}  # fmt: skip
    assert ctx.capacity.places[("h1", None, SAT, "18:00")] == {}
    assert counts(ctx) == {"17:00": 1, "h:17:00": 1}


def test_release_gives_the_place_back_and_a_used_hold_cannot_be_released(setup):
    ctx, _ = setup
    first = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    waitlist.release_hold(ctx, PATIENT, first["hold_id"], NOW)
    waitlist.release_hold(ctx, PATIENT, first["hold_id"], NOW)  # idempotent
    assert counts(ctx) == {}
    second = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    book(ctx, PATIENT, hold_id=second["hold_id"])
    with pytest.raises(InvalidTransition):
        waitlist.release_hold(ctx, PATIENT, second["hold_id"], NOW)
    assert counts(ctx) == {"17:00": 1}


def test_the_reconciler_ends_holds_past_their_time(setup):
    ctx, _ = setup
    made = holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    after = later(ctx, 301)
    assert waitlist.expire_holds(ctx, after) == 1
    assert ctx.holds.get(ObjectId(made["hold_id"]))["state"] == "expired"
    assert waitlist.expire_holds(ctx, after) == 0


# --- reschedule ------------------------------------------------------------------------------


def test_a_move_keeps_the_id_and_records_where_it_came_from(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    book(ctx, OTHER, phone="+8801722222222", slot="18:00")
    moved = move(ctx, PATIENT, made["appointment_id"], SAT, "18:00")
    assert moved["appointment_id"] == made["appointment_id"]
    assert (moved["date"], moved["slot"]["start"], moved["serial"]) == (SAT, "18:00", 2)
    assert moved["rescheduled_from"] == {"date": SAT, "slot": "17:00", "serial": 1}
    assert [m["from"] for m in moved["moves"]] == [moved["rescheduled_from"]]
    assert counts(ctx) == {"18:00": 2}
    again = move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    assert len(again["moves"]) == 2 and again["rescheduled_from"]["slot"] == "18:00"
    assert counts(ctx, SUN) == {"17:00": 1} and counts(ctx) == {"18:00": 1}
    doc = ctx.appointments.get(ObjectId(made["appointment_id"]))
    assert "moving" not in doc and "release_pending" not in doc


def test_a_full_target_changes_nothing(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT, slot="18:00")
    fill(ctx, "17:00")
    before = ctx.appointments.get(ObjectId(made["appointment_id"]))
    with pytest.raises(SlotFull):
        move(ctx, PATIENT, made["appointment_id"], SAT, "17:00")
    assert ctx.appointments.get(ObjectId(made["appointment_id"])) == before
    assert counts(ctx) == {"17:00": 2, "18:00": 1}


def test_the_gate_refusing_a_move_undoes_its_intent(setup, monkeypatch):
    """The counts said there was room; the gate did not: the intent is forgotten."""
    ctx, _ = setup
    made = book(ctx, PATIENT, slot="18:00")
    stale = ctx.reader.published_and_counts("h1", [SAT])
    fill(ctx, "17:00")
    monkeypatch.setattr(ctx.reader, "published_and_counts", lambda hid, dates, pid=None: stale)
    with pytest.raises(SlotFull):
        move(ctx, PATIENT, made["appointment_id"], SAT, "17:00")
    doc = ctx.appointments.get(ObjectId(made["appointment_id"]))
    assert "moving" not in doc and doc["slot_start"] == "18:00"
    assert counts(ctx) == {"17:00": 2, "18:00": 1}


def test_a_move_follows_the_booking_rules(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    book(ctx, PATIENT, day=SUN)  # the same phone on Sunday
    with pytest.raises(DuplicateBooking):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    assert counts(ctx, SUN) == {"17:00": 1}  # the target place taken was given back
    with pytest.raises(InvalidTransition):  # the place it has already
        move(ctx, PATIENT, made["appointment_id"], SAT, "17:00")
    with pytest.raises(AppointmentNotFound):
        move(ctx, OTHER, made["appointment_id"], SAT, "18:00")
    cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW)
    with pytest.raises(InvalidTransition):
        move(ctx, PATIENT, made["appointment_id"], SAT, "18:00")


def test_a_move_into_a_held_place(setup):
    ctx, _ = setup
    made = book(ctx, PATIENT, slot="18:00")
    mine = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00")), NOW)
    holds.hold(ctx, OTHER, HoldPlace(**place("17:00")), NOW)  # 17:00 is fully held
    moved = move(ctx, PATIENT, made["appointment_id"], SAT, "17:00", hold_id=mine["hold_id"])
    assert moved["serial"] == mine["serial"] and counts(ctx) == {"17:00": 1, "h:17:00": 1}


def _moving(ctx, appointment_id) -> dict:
    return ctx.appointments.get(ObjectId(appointment_id))


def test_a_crash_before_the_target_is_taken_is_undone(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)

    def die(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(places, "take_place", die)
    with pytest.raises(Crash):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    assert _moving(ctx, made["appointment_id"])["moving"]["date"] == SUN
    assert moves.repair(ctx, NOW + timedelta(seconds=31)) == (1, 0)
    doc = _moving(ctx, made["appointment_id"])
    assert "moving" not in doc and (doc["date"], doc["serial"]) == (SAT, 1)
    assert counts(ctx) == {"17:00": 1} and counts(ctx, SUN) == {}


def test_a_crash_between_taking_the_target_and_committing_keeps_the_old_place(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)

    def die(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(ctx.appointments, "commit_move", die)
    with pytest.raises(Crash):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    assert counts(ctx) == {"17:00": 1} and counts(ctx, SUN) == {"17:00": 1}  # both, for now
    assert moves.repair(ctx, NOW + timedelta(seconds=10)) == (0, 0)  # not stale yet
    assert moves.repair(ctx, NOW + timedelta(seconds=31)) == (1, 0)
    assert counts(ctx) == {"17:00": 1} and counts(ctx, SUN) == {}
    doc = _moving(ctx, made["appointment_id"])
    assert (doc["date"], doc["status"]) == (SAT, CONFIRMED) and "moving" not in doc


def test_a_rebuild_during_a_move_keeps_its_target_place(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    monkeypatch.setattr(ctx.appointments, "commit_move", lambda *a: (_ for _ in ()).throw(Crash))
    with pytest.raises(Crash):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    ctx.capacity.lose_everything()
    schedule = ctx.configurations.current("h1", ctx.reader.published("h1")).schedule
    places.rebuild_day(ctx, schedule, "h1", date(2026, 11, 29))
    places.rebuild_day(ctx, schedule, "h1", date(2026, 11, 28))
    assert counts(ctx, SUN) == {"17:00": 1} and counts(ctx) == {"17:00": 1}


def test_a_crash_after_the_commit_frees_the_old_place_by_the_reconciler(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    monkeypatch.setattr(moves, "finish_release", lambda *a: (_ for _ in ()).throw(Crash))
    with pytest.raises(Crash):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    doc = _moving(ctx, made["appointment_id"])
    assert (doc["date"], doc["release_pending"]["date"]) == (SUN, SAT)
    assert counts(ctx) == {"17:00": 1}  # the old place is still held
    monkeypatch.undo()
    monkeypatch.setattr(places, "utcnow", lambda: NOW)
    assert moves.repair(ctx, NOW) == (0, 1)
    assert counts(ctx) == {} and counts(ctx, SUN) == {"17:00": 1}
    assert "release_pending" not in _moving(ctx, made["appointment_id"])
    assert moves.repair(ctx, NOW) == (0, 0)


def test_a_lost_release_is_finished_by_the_next_move(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    release = ctx.capacity.free
    calls = []

    def lost_once(*args):
        calls.append(args)
        if len(calls) == 1:
            import redis

            raise redis.ConnectionError("Redis went away")
        return release(*args)

    monkeypatch.setattr(ctx.capacity, "free", lost_once)
    move(ctx, PATIENT, made["appointment_id"], SAT, "18:00")
    assert counts(ctx) == {"17:00": 1, "18:00": 1}  # old place still held: release lost
    move(ctx, PATIENT, made["appointment_id"], SAT, "17:00")
    assert counts(ctx) == {"17:00": 1}  # the lost release was finished first


def after_taking(monkeypatch, then) -> None:
    """Make `then()` happen in a move right after it took its new place."""
    take = places.take_place

    def take_then(*args, **kwargs):
        outcome = take(*args, **kwargs)
        then()
        return outcome

    monkeypatch.setattr(places, "take_place", take_then)


def test_a_slow_mover_whose_move_was_undone_never_commits(setup, monkeypatch):
    ctx, _ = setup
    made = book(ctx, PATIENT)
    # the reconciler gives up on the slow move meanwhile
    after_taking(monkeypatch, lambda: moves.repair(ctx, NOW + timedelta(seconds=31)))
    with pytest.raises(ServiceUnavailable):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    doc = _moving(ctx, made["appointment_id"])
    assert doc["date"] == SAT and counts(ctx) == {"17:00": 1} and counts(ctx, SUN) == {}


def test_a_cancel_during_a_move_leaves_no_place_held(setup, monkeypatch):
    """Issue 22, races on one appointment: a cancel wins against the owner's reschedule. The
    move is 409 appointment_changed (it was a 503 "took too long"), and no place is held."""
    ctx, _ = setup
    made = book(ctx, PATIENT)
    after_taking(monkeypatch, lambda: cancel.cancel(ctx, PATIENT, made["appointment_id"], NOW))
    with pytest.raises(AppointmentChanged) as refused:
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")
    assert (refused.value.status, refused.value.reason) == (409, "appointment_changed")
    assert _moving(ctx, made["appointment_id"])["status"] == CANCELLED
    assert counts(ctx) == {} and counts(ctx, SUN) == {}
    # the move is forgotten: the cancelled appointment shows no move under way
    assert "moving" not in _moving(ctx, made["appointment_id"])
    shown = places.find_visible(ctx, PATIENT, made["appointment_id"])
    assert "moving_to" not in public(shown)


def test_a_move_under_way_is_listed_where_it_is_going(setup, monkeypatch):
    """Issue 22, stranded by an unforced edit: an edit's conflict check must see a place a
    reschedule under way has taken. `status=moving` lists it, the other filters naming its
    target (`moving_to`), while `status=active` still finds it where it is."""
    ctx, _ = setup
    made = book(ctx, PATIENT)
    after_taking(monkeypatch, lambda: (_ for _ in ()).throw(Crash))
    with pytest.raises(Crash):
        move(ctx, PATIENT, made["appointment_id"], SUN, "17:00")

    def listed(status: str, day: str) -> list[dict]:
        query = {"hospital_id": "h1", "status": status, "date_from": day, "date_to": day}
        return booking.list_appointments(ctx, STAFF, {**query, "page": 1, "per_page": 20})[
            "appointments"
        ]

    (moving,) = listed("moving", SUN)
    assert moving["appointment_id"] == made["appointment_id"]
    assert (moving["date"], moving["moving_to"]) == (SAT, {"date": SUN, "slot": "17:00"})
    assert listed("moving", SAT) == [] and listed("active", SUN) == []
    assert [a["appointment_id"] for a in listed("active", SAT)] == [made["appointment_id"]]
    # a patient's own only, whatever it filters by
    query = {"status": "moving", "hospital_id": "h1", "page": 1, "per_page": 20}
    assert booking.list_appointments(ctx, OTHER, query)["appointments"] == []
    (own,) = booking.list_appointments(ctx, PATIENT, query)["appointments"]
    assert own["moving_to"] == {"date": SUN, "slot": "17:00"}


def test_a_hold_placed_while_an_edit_began_is_refused_and_gives_its_place_back(setup, monkeypatch):
    """Issue 22, edits see every place: a hold is checked against the configuration again
    after its record is written, as a booking is; an edit's fence (or new version) refuses it
    with 409 schedule_changed, its place and its quota given back, its record released."""
    ctx, schedules = setup
    insert = ctx.holds.insert

    def insert_then_edit(doc):
        insert(doc)
        schedules.begin_edit("h1")

    monkeypatch.setattr(ctx.holds, "insert", insert_then_edit)
    with pytest.raises(ScheduleChanged):
        holds.hold(ctx, PATIENT, HoldPlace(**place()), NOW)
    (doc,) = ctx.holds.docs.values()
    assert doc["state"] == "released"
    assert counts(ctx) == {}
    monkeypatch.setattr(ctx.holds, "insert", insert)
    schedules.publish(hospital(version=2))
    assert [h["state"] for h in hold_both_sunday_places(ctx)] == ["held", "held"]  # quota


def test_live_holds_and_offers_are_listed_for_an_edits_check(setup):
    """GET /api/holds: staff see every hold of a hospital's dates (`state=held`: those whose
    places the gate keeps, offers included); a patient only its own."""
    ctx, _ = setup
    mine = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)
    a, _, offer = offered_to_first_of_two(ctx)
    gone = holds.hold(ctx, OTHER, HoldPlace(**place("17:00", SUN)), NOW)
    waitlist.release_hold(ctx, OTHER, gone["hold_id"], NOW)
    page = {"page": 1, "per_page": 20}

    def listed(who, **query) -> list[str]:
        return [h["hold_id"] for h in holds.list_holds(ctx, who, {**query, **page}, NOW)["holds"]]

    span = {"hospital_id": "h1", "date_from": SAT, "date_to": SUN}
    assert set(listed(STAFF, **span, state="held")) == {mine["hold_id"], str(offer["_id"])}
    saturday = {**span, "date_to": SAT}
    assert listed(STAFF, **saturday, state="held") == [str(offer["_id"])]
    assert gone["hold_id"] in listed(STAFF, **span)
    assert listed(OTHER, **span) == [gone["hold_id"]]  # its own, whatever it filters by
    # past its time (and an offer past its grace) a hold is no longer live
    late = later(ctx, 3600)
    answer = holds.list_holds(ctx, STAFF, {**span, "state": "held", **page}, late)
    assert (answer["holds"], answer["total"]) == ([], 0)
    with pytest.raises(InvalidDate):
        holds.list_holds(ctx, STAFF, {"date_from": "2026-13-01", **page}, NOW)
    assert a["status"] == "waiting"


# --- waitlist --------------------------------------------------------------------------------


def wait_body(phone: str, slot: str | None = None, **more) -> dict:
    body = {"hospital_id": "h1", "date": SAT, "patient": {"name": "W", "phone": phone}, **more}
    if slot:
        body["slot"] = slot
    return body


def offered_to_first_of_two(ctx) -> tuple[dict, dict, dict]:
    """A full Saturday, two entries waiting, a cancel: the first is offered the place.
    (first entry, second entry, the first's offer hold)."""
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    a = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    b = waitlist.join(ctx, OTHER, JoinWaitlist(**wait_body("+8801755555552")), NOW)
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    offer = ctx.holds.get(ObjectId(ctx.waitlist.get(ObjectId(a["waitlist_id"]))["hold_id"]))
    return a, b, offer


def test_an_offer_accepted_counts_against_the_booking_limit(setup):
    """Issue 22, booking limit bypassed: accepting a waitlist offer makes an appointment, so
    it is counted against BOOKING_LIMIT as a booking is (it was never counted: 14 accepts
    made 14 appointments in 0.9 s); a desk accepting for a patient is not limited."""
    ctx, _ = setup
    ctx.config.booking_limit = 1
    a, b, _ = offered_to_first_of_two(ctx)
    ctx.limiter.check_booking(PATIENT.user_id)  # the patient's one booking of the hour
    with pytest.raises(RateLimited):
        waitlist.accept(ctx, PATIENT, a["waitlist_id"], NOW)
    assert entry(ctx, a)["status"] == "offered"  # refused before anything changed
    assert waitlist.accept(ctx, STAFF, a["waitlist_id"], NOW)["status"] == CONFIRMED


def test_ended_holds_and_entries_are_deleted_after_their_retention(setup):
    """Issue 22: ended holds and waitlist entries are kept RECORD_RETENTION_DAYS (30), then
    the reconciler deletes them; live ones, and entries whose events wait to be relayed,
    stay."""
    ctx, _ = setup
    given_back = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00")), NOW)
    waitlist.release_hold(ctx, PATIENT, given_back["hold_id"], NOW)
    live = holds.hold(ctx, OTHER, HoldPlace(**place("17:00", day=SUN)), NOW)
    fill(ctx, "17:00")
    fill(ctx, "18:00")
    left = waitlist.join(ctx, THIRD, JoinWaitlist(**wait_body("+8801755555553")), NOW)
    waitlist.leave(ctx, THIRD, left["waitlist_id"], NOW)
    waiting = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    assert reconciler.forget_ended(ctx, NOW + timedelta(days=29)) == 0
    assert reconciler.forget_ended(ctx, NOW + timedelta(days=31)) == 2
    assert ctx.holds.get(ObjectId(given_back["hold_id"])) is None
    assert ctx.waitlist.get(ObjectId(left["waitlist_id"])) is None
    assert ctx.holds.get(ObjectId(live["hold_id"])) is not None
    assert entry(ctx, waiting)["status"] == "waiting"


def test_holds_and_entries_made_and_given_back_are_rate_limited(setup):
    """Issue 22, squatting: holds and waitlist entries were made and given back without
    limit (118 holds/s from one account, each a place kept). All four count together
    against HOLD_CHANGES_LIMIT per patient; a desk is not limited."""
    ctx, _ = setup
    ctx.config.hold_changes_limit = 3
    held = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00")), NOW)
    waitlist.release_hold(ctx, PATIENT, held["hold_id"], NOW)
    fill(ctx, "17:00")
    fill(ctx, "18:00")
    joined = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    with pytest.raises(RateLimited) as refused:
        waitlist.leave(ctx, PATIENT, joined["waitlist_id"], NOW)
    assert refused.value.headers["Retry-After"] == "60"
    assert entry(ctx, joined)["status"] == "waiting"  # refused before anything changed
    with pytest.raises(RateLimited):
        holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", day=SUN)), NOW)
    for _ in range(4):
        made = holds.hold(ctx, STAFF, HoldPlace(**place("17:00", day=SUN)), NOW)
        waitlist.release_hold(ctx, STAFF, made["hold_id"], NOW)


def entry(ctx, made: dict) -> dict:
    return ctx.waitlist.get(ObjectId(made["waitlist_id"]))


def test_entries_wait_in_order_and_a_freed_place_goes_to_the_first(setup):
    ctx, _ = setup
    first_booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    a = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    b = waitlist.join(ctx, OTHER, JoinWaitlist(**wait_body("+8801755555552")), NOW)
    assert (a["status"], a["position"], b["position"]) == ("waiting", 1, 2)
    cancel.cancel(ctx, STAFF, first_booked["appointment_id"], NOW)
    offered = waitlist.answer(ctx, ctx.waitlist.get(ObjectId(a["waitlist_id"])))
    assert offered["status"] == "offered" and offered["offered_slot"] == "17:00"
    assert offered["offer_expires_at"] == "2026-11-24T04:05:00Z"
    assert waitlist.answer(ctx, ctx.waitlist.get(ObjectId(b["waitlist_id"])))["position"] == 1
    assert counts(ctx)["o:17:00"] == 1  # what the live stream shows: no one's name
    made = waitlist.accept(ctx, PATIENT, a["waitlist_id"], NOW)
    assert made["status"] == CONFIRMED and made["booked_by"] == "p1"
    assert made["patient"]["phone"] == "+8801755555551"
    assert ctx.waitlist.get(ObjectId(a["waitlist_id"]))["status"] == "accepted"
    with pytest.raises(InvalidTransition):
        waitlist.accept(ctx, PATIENT, a["waitlist_id"], NOW)


def test_one_place_one_offer(setup):
    ctx, _ = setup
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    entries = [
        waitlist.join(ctx, p, JoinWaitlist(**wait_body(f"+88017666666{n}")), NOW)
        for n, p in enumerate((PATIENT, OTHER, THIRD))
    ]
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    # the reconciler runs too: still one offer for one place
    waitlist.upkeep(ctx, NOW, 30_000)
    statuses = [ctx.waitlist.get(ObjectId(e["waitlist_id"]))["status"] for e in entries]
    assert statuses == ["offered", "waiting", "waiting"]


def test_a_freed_place_goes_to_the_first_entry_it_fits(setup):
    ctx, _ = setup
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    big = waitlist.join(
        ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551", appointment_type="new")), NOW
    )
    other_slot = waitlist.join(
        ctx, OTHER, JoinWaitlist(**wait_body("+8801755555552", slot="18:00")), NOW
    )
    fits = waitlist.join(ctx, THIRD, JoinWaitlist(**wait_body("+8801755555553")), NOW)
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    status = {
        e["waitlist_id"]: ctx.waitlist.get(ObjectId(e["waitlist_id"]))["status"]
        for e in (big, other_slot, fits)
    }
    assert list(status.values()) == ["waiting", "waiting", "offered"]


def test_withdrawing_an_offer_passes_it_on_in_one_step_and_a_free_place_is_offered_at_once(
    setup, monkeypatch
):
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)
    freed = []
    monkeypatch.setattr(ctx.capacity, "free", lambda *args: freed.append(args))
    assert waitlist.leave(ctx, PATIENT, a["waitlist_id"], NOW)["status"] == "cancelled"
    assert entry(ctx, b)["status"] == "offered"
    assert freed == []  # never freed: passed
    assert ctx.holds.get(ObjectId(entry(ctx, b)["hold_id"]))["serial"] == offer["serial"]
    assert counts(ctx)["o:17:00"] == 1
    # a day with room: the entry is offered as it joins
    sunday = waitlist.join(
        ctx, THIRD, JoinWaitlist(**{**wait_body("+8801755555553"), "date": SUN}), NOW
    )
    assert sunday["status"] == "offered"


def test_one_live_entry_per_phone_and_day_and_a_limit_per_user(setup):
    ctx, _ = setup
    fill(ctx, "17:00")
    fill(ctx, "18:00")
    waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    with pytest.raises(WaitlistDuplicate):
        waitlist.join(ctx, OTHER, JoinWaitlist(**wait_body("8801755555551")), NOW)
    for n in range(2, 6):
        waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body(f"+880175555555{n}")), NOW)
    with pytest.raises(TooManyWaitlistEntries) as refused:
        waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555559")), NOW)
    assert (refused.value.status, refused.value.reason) == (429, "too_many_holds")


def test_the_reconciler_offers_places_an_edit_added_and_unsticks_dead_claims(setup):
    ctx, schedules = setup
    fill(ctx, "17:00")
    fill(ctx, "18:00")
    a = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    stuck = waitlist.join(ctx, OTHER, JoinWaitlist(**wait_body("+8801755555552")), NOW)
    # a process died between claiming the second entry and holding a place for it
    ctx.waitlist.move(
        ObjectId(stuck["waitlist_id"]), "waiting", "offering", {"claimed_ms": epoch_ms(NOW)}
    )
    schedules.publish(hospital(max_appointments_per_slot=3, version=2))  # capacity raised
    waitlist.upkeep(ctx, NOW + timedelta(seconds=31), 30_000)
    statuses = [ctx.waitlist.get(ObjectId(e["waitlist_id"]))["status"] for e in (a, stuck)]
    assert statuses == ["offered", "offered"]


def test_after_redis_lost_its_data_the_reconciler_restores_a_day_of_only_holds(setup):
    ctx, _ = setup
    made = holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)
    ctx.capacity.lose_everything()
    reconciler.reconcile_once(ctx, NOW - timedelta(minutes=1))
    assert ctx.capacity.records_complete()
    assert counts(ctx, SUN) == {"h:17:00": 1}
    assert ctx.capacity.places[("h1", None, SUN, "17:00")] == {
        "h:" + made["hold_id"]: (
            made["serial"],
            1,
            ctx.holds.docs[ObjectId(made["hold_id"])]["expires_ms"],
        )
    }


def test_an_offer_given_back_by_its_owner_is_declined_and_passed_on(setup):
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)
    waitlist.release_hold(ctx, PATIENT, str(offer["_id"]), NOW)
    assert (entry(ctx, a)["status"], entry(ctx, b)["status"]) == ("cancelled", "offered")


def test_an_offer_accepted_as_its_time_ran_out_is_accepted(setup, monkeypatch):
    """The booking took the hold's place just in time; the reconciler then saw the offer's
    time pass and expired the entry: the entry still ends accepted."""
    ctx, _ = setup
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    a = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    book = booking.book

    def book_then_expire(*args):
        made = book(*args)
        entry = ctx.waitlist.get(ObjectId(a["waitlist_id"]))
        ctx.waitlist.move(entry["_id"], "offered", "expired", {})
        return made

    monkeypatch.setattr(booking, "book", book_then_expire)
    made = waitlist.accept(ctx, PATIENT, a["waitlist_id"], NOW)
    entry = ctx.waitlist.get(ObjectId(a["waitlist_id"]))
    assert (entry["status"], entry["appointment_id"]) == ("accepted", made["appointment_id"])


# --- an offer's place passes to the next entry -------------------------------------------


GRACE = 11  # seconds: 3 reconciler periods of 2 s, and 5 (holds.offer_grace_ms)


def test_the_grace_is_three_reconciler_periods_and_five_seconds():
    assert holds.offer_grace_ms(Config(reconcile_interval_seconds=2)) == GRACE * 1000
    assert holds.offer_grace_ms(Config(reconcile_interval_seconds=10)) == 35_000


def test_no_booking_takes_an_offer_that_ran_out_before_it_passes_on(setup):
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)
    assert offer["expires_ms"] == epoch_ms(NOW) + 300_000
    assert offer["kept_until_ms"] == offer["expires_ms"] + GRACE * 1000
    after = later(ctx, 301)  # the offer ran out; no reconciler pass yet
    with pytest.raises(HoldExpired):
        waitlist.accept(ctx, PATIENT, a["waitlist_id"], after)
    with pytest.raises(SlotFull):  # the gate still keeps the place for the waitlist
        booking.book(ctx, THIRD, BookAppointment(**request(phone="+8801733333333")), after)
    assert counts(ctx)["o:17:00"] == 1
    waitlist.upkeep(ctx, after, 30_000)
    first, second = entry(ctx, a), entry(ctx, b)
    assert (first["status"], second["status"]) == ("expired", "offered")
    passed = ctx.holds.get(ObjectId(second["hold_id"]))
    assert ctx.holds.get(offer["_id"])["state"] == "expired"
    assert passed["passed_from"] == str(offer["_id"]) and passed["user_id"] == OTHER.user_id
    assert passed["serial"] == offer["serial"]  # the same place, in one step
    assert passed["expires_ms"] == ctx.capacity.clock_ms + 300_000  # a whole new offer
    assert second["offer_expires_ms"] == passed["expires_ms"]
    assert ctx.capacity.places[("h1", None, SAT, "17:00")]["o:" + second["hold_id"]] == (
        offer["serial"],
        1,
        passed["kept_until_ms"],
    )
    assert "o:" + str(offer["_id"]) not in ctx.capacity.places[("h1", None, SAT, "17:00")]
    with pytest.raises(SlotFull):
        booking.book(ctx, THIRD, BookAppointment(**request(phone="+8801733333333")), after)
    made = waitlist.accept(ctx, OTHER, b["waitlist_id"], after)
    assert (made["serial"], entry(ctx, b)["status"]) == (offer["serial"], "accepted")
    # Its outbox has the offer's webhook event, as any offer's.
    assert [e["type"] for e in map(json.loads, entry(ctx, b)["outbox"])] == ["waitlist.offered"]


def test_the_holds_sweep_passes_an_offer_on_too(setup):
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)
    after = later(ctx, 301)
    assert waitlist.expire_holds(ctx, after) == 1
    assert (entry(ctx, a)["status"], entry(ctx, b)["status"]) == ("expired", "offered")


def test_with_no_entry_that_fits_the_place_is_freed(setup):
    ctx, _ = setup
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    a = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    elsewhere = waitlist.join(
        ctx, OTHER, JoinWaitlist(**wait_body("+8801755555552", slot="18:00")), NOW
    )
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    after = later(ctx, 301)
    waitlist.upkeep(ctx, after, 30_000)
    assert (entry(ctx, a)["status"], entry(ctx, elsewhere)["status"]) == ("expired", "waiting")
    assert counts(ctx).get("o:17:00") is None
    assert (
        booking.book(ctx, THIRD, BookAppointment(**request(phone="+8801733333333")), after)[
            "serial"
        ]
        == 1
    )


def test_without_any_reconciler_the_place_frees_at_the_end_of_the_grace(setup):
    ctx, _ = setup
    offered_to_first_of_two(ctx)
    with pytest.raises(SlotFull):
        booking.book(
            ctx,
            THIRD,
            BookAppointment(**request(phone="+8801733333333")),
            later(ctx, 300 + GRACE - 1),
        )
    made = booking.book(
        ctx, THIRD, BookAppointment(**request(phone="+8801733333333")), later(ctx, 1)
    )
    assert made["status"] == CONFIRMED


def test_a_rebuild_in_the_grace_keeps_the_offers_place(setup):
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)
    after = later(ctx, 305)
    ctx.capacity.lose_everything()
    ctx.capacity.complete = True
    with pytest.raises(SlotFull):  # this booking rebuilds the day first
        booking.book(ctx, THIRD, BookAppointment(**request(phone="+8801733333333")), after)
    assert counts(ctx)["o:17:00"] == 1
    waitlist.upkeep(ctx, after, 30_000)
    assert entry(ctx, b)["status"] == "offered"


def test_a_pass_that_dies_before_mongodb_records_it_loses_nothing(setup, monkeypatch):
    """The gate passed the place to a new hold, then the process died before MongoDB
    recorded it: the place stays kept (never free to a booking, never offered twice), and
    once the orphan's time is up the entry waiting is offered it."""
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)
    after = later(ctx, 301)
    insert = ctx.holds.insert

    def die_on_a_pass(doc):
        if doc.get("passed_from"):
            raise Crash
        insert(doc)

    monkeypatch.setattr(ctx.holds, "insert", die_on_a_pass)
    with pytest.raises(Crash):
        waitlist.upkeep(ctx, after, 30_000)
    monkeypatch.setattr(ctx.holds, "insert", insert)
    assert (entry(ctx, a)["status"], entry(ctx, b)["status"]) == ("offered", "offering")
    assert counts(ctx)["o:17:00"] == 1  # the orphan keeps the place
    # The reconciler's next passes: the dead claim goes back to waiting, the old offer ends.
    later(ctx, 31)
    waitlist.upkeep(ctx, clock(ctx), 30_000)
    assert (entry(ctx, a)["status"], entry(ctx, b)["status"]) == ("expired", "waiting")
    with pytest.raises(SlotFull):
        booking.book(ctx, THIRD, BookAppointment(**request(phone="+8801733333333")), clock(ctx))
    later(ctx, 300 + GRACE - 31)  # the orphan's keep is over
    waitlist.upkeep(ctx, clock(ctx), 30_000)
    assert entry(ctx, b)["status"] == "offered"
    assert counts(ctx)["o:17:00"] == 1


def clock(ctx) -> datetime:
    """The gate's clock as now (`later` moves it on)."""
    return datetime.fromtimestamp(ctx.capacity.clock_ms / 1000, tz=UTC)


# --- one quota: offers count as holds (issue 22) ------------------------------------------


def hold_both_sunday_places(ctx, who=PATIENT) -> list[dict]:
    """`who` holds two places of Sunday: HOLD_LIMIT (2) reached."""
    return [holds.hold(ctx, who, HoldPlace(**place("17:00", SUN)), NOW) for _ in range(2)]


def test_an_offer_and_a_hold_count_together_against_the_hold_limit(setup):
    ctx, _ = setup
    holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    mine = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    assert entry(ctx, mine)["status"] == "offered"  # one hold, one offer: the limit
    with pytest.raises(TooManyHolds):
        holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)
    # the offer given back (declined), a hold can be made again
    waitlist.leave(ctx, PATIENT, mine["waitlist_id"], NOW)
    assert holds.hold(ctx, PATIENT, HoldPlace(**place("17:00", SUN)), NOW)["state"] == "held"


def test_a_patient_at_the_hold_limit_is_not_offered_and_the_place_goes_to_the_next(setup):
    ctx, _ = setup
    hold_both_sunday_places(ctx)
    booked, _ = fill(ctx, "17:00")
    fill(ctx, "18:00")
    mine = waitlist.join(ctx, PATIENT, JoinWaitlist(**wait_body("+8801755555551")), NOW)
    theirs = waitlist.join(ctx, OTHER, JoinWaitlist(**wait_body("+8801755555552")), NOW)
    cancel.cancel(ctx, STAFF, booked["appointment_id"], NOW)
    assert entry(ctx, mine)["status"] == "waiting"  # first in line, but holds its limit
    assert entry(ctx, theirs)["status"] == "offered"
    assert counts(ctx)["o:17:00"] == 1


def test_a_passed_offer_skips_an_entry_whose_owner_holds_its_limit(setup):
    ctx, _ = setup
    a, b, offer = offered_to_first_of_two(ctx)  # PATIENT offered, OTHER waits
    others = hold_both_sunday_places(ctx, OTHER)
    third = waitlist.join(ctx, THIRD, JoinWaitlist(**wait_body("+8801755555553")), NOW)
    waitlist.leave(ctx, PATIENT, a["waitlist_id"], NOW)  # declined: passed on
    assert entry(ctx, b)["status"] == "waiting"
    passed = entry(ctx, third)
    assert passed["status"] == "offered"
    assert ctx.holds.get(ObjectId(passed["hold_id"]))["serial"] == offer["serial"]
    # the declined offer no longer counts against PATIENT: two holds of its own fit again
    for made in others:
        waitlist.release_hold(ctx, OTHER, made["hold_id"], NOW)
    assert [h["state"] for h in hold_both_sunday_places(ctx)] == ["held", "held"]
