"""`GET /api/live/{hospital_id}/{date}` through the gateway: the resync on connect, the events
that bookings, cancels, visit steps and edits announce, growing ids, Last-Event-ID, heartbeats,
no buffering, streams that outlive the gateway's timeouts, and hostile input."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from shared import events
from tests.e2e.live.conftest import (
    GATEWAY_IDLE_TIMEOUT,
    GATEWAY_READ_BODY_TIMEOUT,
    HEARTBEAT_SECONDS,
)
from tests.e2e.live.sse_client import Comment, Event, EventStream, id_key
from tests.helpers import assert_error_shape, booking

DISPLAY_PAGE = Path(__file__).resolve().parents[3] / "live_service" / "static" / "display.html"


def tomorrow() -> date:
    """Tomorrow in the hospitals' zone: inside every test hospital's booking window."""
    return datetime.now(ZoneInfo("Asia/Dhaka")).date() + timedelta(days=1)


def live_path(hospital_id: str, day: date | str, practitioner_id: str | None = None) -> str:
    path = f"/api/live/{hospital_id}/{day}"
    return f"{path}?practitioner_id={practitioner_id}" if practitioner_id else path


def queue_answer(gateway, hospital_id: str, day) -> object:
    """The queue answer the stream should carry (None while the booking service has none)."""
    resp = gateway.get(f"/api/queue/{hospital_id}/{day}")
    return resp.json() if resp.status_code == 200 else None


def until(stream: EventStream, predicate, timeout: float = 10.0) -> list[Event]:
    """Events up to and including the first that satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching event within {timeout} s; saw {seen}")
        item = stream.next_event(left)
        seen.append(item)
        if predicate(item):
            return seen


def booked(item: Event, slot: str) -> int | None:
    """The booked count of a slot in an availability event (None for other events)."""
    if item.name == "availability":
        return item.data["slots"][slot]["booked"]
    if item.name == "resync":
        return item.data["availability"]["slots"][slot]["booked"]
    return None


def assert_growing(items: list[Event]) -> None:
    keys = [id_key(item.id) for item in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), [i.id for i in items]


# --------------------------------------------------------------------------- connect


def test_a_stream_starts_with_one_resync_of_the_whole_state(gateway, hospital):
    hid, day = hospital["hospital_id"], tomorrow()
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["X-Request-ID"]
        first = stream.next_event()
        assert first.name == "resync"
        assert first.id is not None and id_key(first.id) >= (0, 0)
        assert first.data["availability"] == gateway.get(f"/api/availability/{hid}/{day}").json()
        assert first.data["queue"] == queue_answer(gateway, hid, day)
        # one resync, then nothing until something changes (heartbeats only)
        assert stream.no_event_for(1.5 * HEARTBEAT_SECONDS)


def test_a_doctor_has_a_stream_of_its_own(gateway, redis_client):
    day = tomorrow()
    with EventStream(gateway.base, live_path("dhanmondi", day, "helal")) as doctor:
        first = doctor.next_event()
        assert first.name == "resync"
        assert first.data["availability"]["practitioner_id"] == "helal"
        with EventStream(gateway.base, live_path("dhanmondi", day)) as hospital_stream:
            hospital_stream.next_event()  # its resync
            events.publish(redis_client, "dhanmondi", str(day), "helal", events.AVAILABILITY)
            item = doctor.next_event()
            assert item.name == "availability" and item.data["practitioner_id"] == "helal"
            hospital_stream.no_event_for(1.0)  # the hospital's own day did not change


# --------------------------------------------------------------------------- changes


def test_a_booking_and_a_cancel_send_the_new_counts(gateway, admin, hospital):
    """Through the API: the booking service announces both (shared/events.py)."""
    hid, day = hospital["hospital_id"], tomorrow()
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        first = stream.next_event()
        assert booked(first, "09:00") == 0
        resp = admin.post("/api/appointments", booking(hid, day, "09:00"))
        assert resp.status_code == 201, resp.text
        seen = until(stream, lambda item: booked(item, "09:00") == 1)
        assert seen[-1].name == "availability"
        assert seen[-1].data == gateway.get(f"/api/availability/{hid}/{day}").json()
        cancel = admin.delete(f"/api/appointments/{resp.json()['appointment_id']}")
        assert cancel.status_code == 200, cancel.text
        seen += until(stream, lambda item: booked(item, "09:00") == 0)
        assert_growing([first, *seen])


def slot_of(item: Event, slot: str) -> dict | None:
    """A slot of an availability event (None for other events)."""
    if item.name == "availability":
        return item.data["slots"][slot]
    if item.name == "resync":
        return item.data["availability"]["slots"][slot]
    return None


def test_holds_and_waitlist_offers_reach_the_stream_without_personal_data(gateway, admin, hospital):
    """A hold shows as `held`; a place a cancel frees is offered to the waitlist, which the
    stream shows as `offered`, with nobody's name or phone."""
    hid, day = hospital["hospital_id"], tomorrow()
    capacity = hospital["max_appointments_per_slot"]
    made = [
        admin.post("/api/appointments", booking(hid, day, "10:00", phone=f"+88017100000{n:02d}"))
        for n in range(capacity)
    ]
    assert all(r.status_code == 201 for r in made), [r.text for r in made]
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        stream.next_event()
        hold = admin.post("/api/holds", {"hospital_id": hid, "date": str(day), "slot": "09:00"})
        assert hold.status_code == 201, hold.text
        seen = until(stream, lambda item: (slot_of(item, "09:00") or {}).get("held") == 1)
        assert seen[-1].data == gateway.get(f"/api/availability/{hid}/{day}").json()
        waiting = admin.post(
            "/api/waitlist",
            {
                "hospital_id": hid,
                "date": str(day),
                "slot": "10:00",
                "patient": {"name": "Waiting Person", "phone": "+8801799999911"},
            },
        )
        assert waiting.status_code == 201 and waiting.json()["status"] == "waiting"
        cancel = admin.delete(f"/api/appointments/{made[0].json()['appointment_id']}")
        assert cancel.status_code == 200, cancel.text
        seen = until(stream, lambda item: (slot_of(item, "10:00") or {}).get("offered") == 1)
        ten = slot_of(seen[-1], "10:00")
        assert (ten["booked"], ten["held"], ten["available"]) == (capacity - 1, 1, 0)
        for item in seen:
            assert "Waiting" not in str(item.data) and "8801799999911" not in str(item.data)


def test_each_announced_change_is_answered_with_the_state_after_it(gateway, hospital, redis_client):
    """The live side alone: markers published as the services publish them."""
    hid, day = hospital["hospital_id"], str(tomorrow())
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        first = stream.next_event()
        entry = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
        item = stream.next_event()
        assert (item.name, item.id) == ("availability", entry)
        assert item.data == first.data["availability"]
        entry = events.publish(redis_client, hid, day, None, events.QUEUE)
        if first.data["queue"] is not None:  # the booking service answers the queue
            item = stream.next_event()
            assert (item.name, item.id, item.data) == ("queue", entry, first.data["queue"])
        # An edit of the hospital may change both: one event with both states, one id.
        entry = events.publish_edit(redis_client, hid)
        item = stream.next_event()
        if first.data["queue"] is not None:
            assert (item.name, item.id) == ("resync", entry)
            assert item.data["availability"] == first.data["availability"]
        else:
            assert (item.name, item.id) == ("availability", entry)
        assert id_key(item.id) > id_key(first.id)


def test_an_edit_of_the_hospital_reaches_its_streams(gateway, admin, hospital):
    """Through the API: the schedule service announces the edit."""
    hid, day = hospital["hospital_id"], tomorrow()
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        assert booked(stream.next_event(), "09:00") == 0
        doc = {k: v for k, v in hospital.items() if k not in ("version", "updated_at")}
        doc["max_appointments_per_slot"] = 7
        resp = admin.put(f"/api/dynamic-slots/hospitals/{hid}", doc)
        assert resp.status_code == 200, resp.text

        def capacity(item: Event) -> int | None:
            answer = item.data["availability"] if item.name == "resync" else item.data
            return answer["slots"]["09:00"]["capacity"] if "slots" in answer else None

        until(stream, lambda item: capacity(item) == 7)


# --------------------------------------------------------------------------- Last-Event-ID


def test_a_client_that_comes_back_gets_what_it_missed_with_the_last_ids(
    gateway, hospital, redis_client
):
    hid, day = hospital["hospital_id"], str(tomorrow())
    events.publish(redis_client, hid, day, None, events.AVAILABILITY)  # the day has a stream
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        first = stream.next_event()
    # Missed while away: two changes of the counts, one visit step.
    a1 = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
    q1 = events.publish(redis_client, hid, day, None, events.QUEUE)
    a2 = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
    assert id_key(first.id) < id_key(a1) < id_key(q1) < id_key(a2)
    with EventStream(gateway.base, live_path(hid, day), {"Last-Event-ID": first.id}) as again:
        assert again.status == 200
        missed = [again.next_event()]
        if first.data["queue"] is not None:
            missed.append(again.next_event())
            assert [(m.name, m.id) for m in missed] == [("queue", q1), ("availability", a2)]
        else:  # no queue state to send: only the counts
            assert [(m.name, m.id) for m in missed] == [("availability", a2)]
        assert missed[-1].data == first.data["availability"]  # the current state
        again.no_event_for(1.5 * HEARTBEAT_SECONDS)  # and no resync
        # then live, as any stream
        a3 = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
        assert again.next_event().id == a3
    # Nothing missed since: nothing sent, the stream simply goes on.
    with EventStream(gateway.base, live_path(hid, day), {"Last-Event-ID": a3}) as quiet:
        assert quiet.status == 200
        assert quiet.no_event_for(1.5 * HEARTBEAT_SECONDS)


@pytest.mark.parametrize(
    "last_event_id",
    [
        "1-0",  # never an entry of this stream
        "0-0",
        "not-an-id",
        "12345",
        "-1-0",
        " 1-0",
        "99999999999999999999-0",  # 20 digits, over Redis's 64 bits
        "18446744073709551615-18446744073709551615",  # the largest id: nothing after it
        "1" * 10_000 + "-0",  # huge
    ],
)
def test_an_unknown_or_malformed_last_event_id_gets_one_resync(
    gateway, hospital, redis_client, last_event_id
):
    hid, day = hospital["hospital_id"], str(tomorrow())
    events.publish(redis_client, hid, day, None, events.AVAILABILITY)
    path = live_path(hid, day)
    with EventStream(gateway.base, path, {"Last-Event-ID": last_event_id}) as stream:
        assert stream.status == 200, stream.json()
        first = stream.next_event()
        assert first.name == "resync"
        stream.no_event_for(1.0)


def test_an_id_that_left_the_replay_buffer_gets_one_resync(gateway, hospital, redis_client):
    hid, day = hospital["hospital_id"], str(tomorrow())
    old = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
    for _ in range(3):
        events.publish(redis_client, hid, day, None, events.AVAILABILITY)
    # The buffer is bounded (events.STREAM_LENGTH): trimmed, as it is once it is full.
    redis_client.xtrim(events.stream_key(hid, day), maxlen=2, approximate=False)
    with EventStream(gateway.base, live_path(hid, day), {"Last-Event-ID": old}) as stream:
        assert stream.next_event().name == "resync"


# --------------------------------------------------------------------------- the connection


def test_an_idle_stream_gets_a_comment_line_every_heartbeat(gateway, hospital):
    hid, day = hospital["hospital_id"], tomorrow()
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        stream.next_event()
        arrivals = []
        deadline = time.monotonic() + 4 * HEARTBEAT_SECONDS
        while time.monotonic() < deadline:
            item = stream.next_item(timeout=3 * HEARTBEAT_SECONDS)
            assert item == Comment("keep-alive")
            arrivals.append(time.monotonic())
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert len(arrivals) >= 3 and max(gaps) < 2 * HEARTBEAT_SECONDS, gaps


def test_the_gateway_passes_an_event_on_at_once(gateway, hospital, redis_client):
    hid, day = hospital["hospital_id"], str(tomorrow())
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        stream.next_event()
        for _ in range(3):
            sent = time.monotonic()
            entry = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
            item = stream.next_event(timeout=5)
            assert item.id == entry
            # An event is a few hundred bytes: a buffering proxy would hold it.
            assert time.monotonic() - sent < 1.0


def test_a_stream_outlives_the_gateways_idle_and_body_timeouts(gateway, hospital, redis_client):
    hid, day = hospital["hospital_id"], str(tomorrow())
    lifetime = 2 * max(GATEWAY_IDLE_TIMEOUT, GATEWAY_READ_BODY_TIMEOUT) + 1
    with EventStream(gateway.base, live_path(hid, day)) as stream:
        stream.next_event()
        stream.no_event_for(lifetime)
        entry = events.publish(redis_client, hid, day, None, events.AVAILABILITY)
        assert stream.next_event().id == entry


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    "hospital_id", ["GOMOTI", "gomoti%20", "-gomoti", "a" * 65, "gom%C3%B6ti", "gomoti%0A"]
)
def test_a_hospital_id_that_cannot_be_one_is_404(gateway, hospital_id):
    assert_error_shape(
        gateway.get(f"/api/live/{hospital_id}/{tomorrow()}"), 404, "hospital_not_found"
    )


@pytest.mark.parametrize(
    "day",
    ["2026-13-01", "2026-02-30", "9999-12-31", "0000-01-01", "tomorrow", "2026-1-01",
     "%D9%A2%D9%A0%D9%A2%D9%A6-01-01", "2026-01-01x"],
)  # fmt: skip
def test_a_date_that_is_not_one_is_400(gateway, day):
    assert_error_shape(gateway.get(f"/api/live/gomoti/{day}"), 400, "invalid_date")


@pytest.mark.parametrize(
    "query",
    ["practitioner_id=HELAL", "practitioner_id=", "practitioner_id=a%20b",
     "practitioner_id=helal&practitioner_id=karim", "practitioner_id=" + "a" * 65,
     "practitioner_id=%FF", "practitioner_id=%00"],
)  # fmt: skip
def test_a_practitioner_id_that_cannot_be_one_is_400(gateway, query):
    resp = gateway.get(f"/api/live/dhanmondi/{tomorrow()}?{query}")
    body = assert_error_shape(resp, 400, "validation_error")
    assert "practitioner_id" in body["errors"]


@pytest.mark.parametrize("path", ["/api/live/gomoti", "/api/live/gomoti/2026-12-01/more"])
def test_other_paths_of_the_live_service_are_404(gateway, path):
    assert_error_shape(gateway.get(path), 404, "not_found")


def test_unknown_hospitals_and_doctors_are_the_booking_services_404(gateway):
    day = tomorrow()
    assert_error_shape(gateway.get(f"/api/live/no-such-hospital/{day}"), 404, "hospital_not_found")
    assert_error_shape(
        gateway.get(f"/api/live/dhanmondi/{day}?practitioner_id=nobody"),
        404,
        "practitioner_not_found",
    )


def test_a_stream_has_no_other_method(gateway):
    for method in ("HEAD", "POST", "PUT", "DELETE"):
        resp = requests.request(method, f"{gateway.base}/api/live/gomoti/{tomorrow()}", timeout=10)
        assert resp.status_code == 405, (method, resp.status_code)
        if method != "HEAD":
            assert_error_shape(resp, 405, "method_not_allowed")


# --------------------------------------------------------------------------- the rest


def test_the_display_page(gateway):
    assert_error_shape(gateway.get("/display/GOMOTI"), 404, "hospital_not_found")
    assert_error_shape(gateway.get("/display/gomoti?practitioner_id=X"), 400, "validation_error")
    resp = gateway.get("/display/gomoti")
    if DISPLAY_PAGE.is_file():
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert resp.content == DISPLAY_PAGE.read_bytes()
    else:
        assert_error_shape(resp, 404, "not_found")


def test_health_readiness_and_documents(gateway, stack):
    ready = gateway.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"schedule": "ok", "booking": "ok", "live": "ok"}
    live = requests.get(stack.live_url + "/readyz", timeout=5)
    assert live.json() == {"status": "ok", "checks": {"redis": "ok"}}
    assert requests.get(stack.live_url + "/healthz", timeout=5).json() == {"status": "ok"}
    doc = requests.get(stack.live_url + "/openapi.json", timeout=5).json()
    assert set(doc["paths"]) == {
        "/api/live/{hospital_id}/{day}",
        "/display/{hospital_id}",
        "/desk/{hospital_id}",
    }
    # The merged document leaves the streams out (it is fuzzed; a stream never ends).
    assert "/api/live/{hospital_id}/{day}" not in gateway.get("/openapi.json").json()["paths"]
    metrics = requests.get(stack.live_url + "/metrics", timeout=5).text
    assert "live_open_streams" in metrics
