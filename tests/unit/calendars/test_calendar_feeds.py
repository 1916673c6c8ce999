"""Calendar feeds over fakes (booking_service/integrations/calendars/service.py): their
secrets, and an appointment's and a feed's calendar as the use cases make them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_service.core import booking, cancel, moves
from booking_service.core.requests import BookAppointment, MoveAppointment
from booking_service.integrations.calendars import service as calendars_service
from booking_service.integrations.calendars.ics import (
    event_uid,
)
from booking_service.integrations.calendars.service import (
    FeedNotFound,
    is_token,
    new_token,
    token_hash,
    token_matches,
)
from shared.errors import AppointmentNotFound, HospitalNotFound, PractitionerNotFound
from tests.unit.builders import ADMIN, NOW, OTHER, PATIENT
from tests.unit.calendars.calendar_support import (
    feed_token,
    hospital,
    only_event,
    parse,
)
from tests.unit.fakes import FakeFeeds

# --- Feed secrets ---------------------------------------------------------------------------


def test_a_new_token_is_43_url_safe_characters_and_only_its_hash_matches():
    token = new_token()
    assert is_token(token) and len(token) == 43
    stored = token_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token_matches(stored, token)
    assert not token_matches(stored, new_token())
    assert not token_matches(None, token) and not token_matches("", token)


@pytest.mark.parametrize(
    "given_token",
    [None, "", "a" * 42, "a" * 44, "é" * 43, "a" * 42 + "=", "a" * 42 + "\n", ["a" * 43], 43],
)
def test_tokens_of_the_wrong_form_never_match(given_token):
    assert not is_token(given_token)
    assert not token_matches(token_hash("a" * 43), given_token)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_no_other_string_matches_a_token(text):
    token = new_token()
    assert token_matches(token_hash(token), text) == (text == token)


# --- Use cases over fakes -------------------------------------------------------------------


@pytest.fixture
def ctx(published):
    context, _ = published(hospital())
    return context


def book(ctx, day: str, slot: str = "17:00", who=PATIENT, phone="+8801711111111", **more):
    body = {
        "hospital_id": "h1",
        "date": day,
        "slot": slot,
        "patient": {"name": "Rahim", "phone": phone},
        **more,
    }
    return booking.book(ctx, who, BookAppointment(**body), NOW)


def test_book_move_cancel_one_uid_a_growing_sequence(ctx):
    made = book(ctx, "2026-11-28")
    aid = made["appointment_id"]
    first = only_event(parse(calendars_service.appointment_ics(ctx, PATIENT, aid)))
    assert (first["SEQUENCE"], str(first["STATUS"])) == (1, "CONFIRMED")
    moves.reschedule(ctx, PATIENT, aid, MoveAppointment(date="2026-11-29", slot="18:00"), NOW)
    moved = only_event(parse(calendars_service.appointment_ics(ctx, PATIENT, aid)))
    assert moved["UID"] == first["UID"] and moved["SEQUENCE"] == 2
    assert moved.start == datetime(2026, 11, 29, 18, 0, tzinfo=ZoneInfo("Asia/Dhaka"))
    cancel.cancel(ctx, PATIENT, aid, NOW)
    gone = only_event(parse(calendars_service.appointment_ics(ctx, ADMIN, aid)))
    assert (gone["UID"], gone["SEQUENCE"], str(gone["STATUS"])) == (first["UID"], 3, "CANCELLED")


def test_someone_elses_appointment_is_not_found(ctx):
    aid = book(ctx, "2026-11-28")["appointment_id"]
    with pytest.raises(AppointmentNotFound):
        calendars_service.appointment_ics(ctx, OTHER, aid)


def test_a_feed_needs_an_existing_hospital_and_doctor(ctx):
    feeds = FakeFeeds()
    with pytest.raises(HospitalNotFound):
        calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "nowhere"}, NOW)
    with pytest.raises(PractitionerNotFound):
        calendars_service.create_feed(
            ctx, feeds, ADMIN, {"hospital_id": "h1", "practitioner_id": "nobody"}, NOW
        )
    assert feeds.docs == {}


def test_a_feed_holds_the_booking_window_of_its_hospital_or_doctor(ctx):
    kept = book(ctx, "2026-11-24", "18:00")  # today, still to come
    doctors = book(ctx, "2026-11-28", practitioner_id="helal", phone="+8801722222222")
    cancelled = book(ctx, "2026-12-04", phone="+8801733333333")  # the window's last day
    cancel.cancel(ctx, PATIENT, cancelled["appointment_id"], NOW)
    # Written before the window (yesterday) and beyond it: not in the feed.
    for day in ("2026-11-23", "2026-12-05"):
        ctx.appointments.docs[ObjectId()] = {
            **ctx.appointments.get(ObjectId(kept["appointment_id"])),
            "date": day,
        }
    feeds = FakeFeeds()
    whole = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    answer = calendars_service.read_feed(ctx, feeds, whole["feed_id"], [feed_token(whole)], NOW)
    events = {str(e["UID"]).split("@")[0]: e for e in parse(answer.body).events}
    assert set(events) == {
        kept["appointment_id"],
        doctors["appointment_id"],
        cancelled["appointment_id"],
    }
    assert str(events[cancelled["appointment_id"]]["STATUS"]) == "CANCELLED"
    assert (answer.events, answer.truncated) == (3, False)

    one = calendars_service.create_feed(
        ctx, feeds, ADMIN, {"hospital_id": "h1", "practitioner_id": "helal"}, NOW
    )
    answer = calendars_service.read_feed(ctx, feeds, one["feed_id"], [feed_token(one)], NOW)
    calendar = parse(answer.body)
    assert [str(e["UID"]) for e in calendar.events] == [event_uid(doctors["appointment_id"])]
    assert str(calendar["X-WR-CALNAME"]) == "Gomoti Hospital - Dr. Helal Uddin"


def test_a_feed_is_bounded(ctx, monkeypatch):
    monkeypatch.setattr(calendars_service, "FEED_MAX_EVENTS", 2)
    for n, day in enumerate(("2026-11-25", "2026-11-26", "2026-11-27")):
        book(ctx, day, phone=f"+88017{n}0000000")
    feeds = FakeFeeds()
    made = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    answer = calendars_service.read_feed(ctx, feeds, made["feed_id"], [feed_token(made)], NOW)
    days = [e.start.date().isoformat() for e in parse(answer.body).events]
    assert days == ["2026-11-25", "2026-11-26"] and answer.truncated  # the earliest kept


def test_only_the_stored_hash_and_no_secret_is_kept(ctx):
    feeds = FakeFeeds()
    made = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    token = feed_token(made)
    (stored,) = feeds.docs.values()
    assert token not in repr(stored)
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()


def test_wrong_tokens_and_revoked_feeds_are_one_and_the_same_404(ctx):
    feeds = FakeFeeds()
    made = calendars_service.create_feed(ctx, feeds, ADMIN, {"hospital_id": "h1"}, NOW)
    feed_id, token = made["feed_id"], feed_token(made)
    attempts = [
        (feed_id, []),
        (feed_id, [token, token]),
        (feed_id, [token[:-1] + ("A" if token[-1] != "A" else "B")]),
        (feed_id, [token.upper() if token.upper() != token else token.lower()]),
        (feed_id, [token + "="]),
        ("6a0000000000000000000009", [token]),
        (feed_id.upper(), [token]),
    ]
    messages = set()
    for fid, tokens in attempts:
        with pytest.raises(FeedNotFound) as caught:
            calendars_service.read_feed(ctx, feeds, fid, tokens, NOW)
        messages.add(caught.value.message.replace(fid, "<id>"))
    calendars_service.revoke_feed(feeds, ADMIN, feed_id, NOW)
    calendars_service.revoke_feed(feeds, ADMIN, feed_id, NOW)  # idempotent
    with pytest.raises(FeedNotFound) as caught:
        calendars_service.read_feed(ctx, feeds, feed_id, [token], NOW)
    messages.add(caught.value.message.replace(feed_id, "<id>"))
    assert messages == {"No feed '<id>'"}
    assert calendars_service.get_feed(feeds, feed_id)["revoked_at"] == "2026-11-24T04:00:00Z"
