"""'Today', 'now', the booking window and started slots on the days the clocks change,
through the gateway: the whole system runs with its clock set on those days
(CLOCK_OFFSET_SECONDS), for a hospital in Europe/London beside Gomoti in Asia/Dhaka."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient

from devstack.stack import Stack
from tests.helpers import TEST_ENV, Api, assert_error_shape, booking, hospital_doc, seeded_admin

SLOTS = [("00:30", "01:00"), ("01:30", "02:00"), ("02:30", "03:00"), ("09:00", "10:00")]

# (name, the instant the system's clock is set to, the day, expected bookable flags)
SCENARIOS = [
    # 2026-03-29 01:00 GMT -> 02:00 BST. At 01:10Z the wall clock reads 02:10: the 01:30
    # slot (a wall time that never happens) has started, the 02:30 BST (01:30Z) one not.
    (
        "spring_forward",
        datetime(2026, 3, 29, 1, 10, tzinfo=UTC),
        "2026-03-29",
        [False, False, True, True],
    ),
    # 2026-10-25 02:00 BST -> 01:00 GMT. At 01:10Z the wall clock reads 01:10 for the second
    # time: the 01:30 slot started at its first reading (00:30Z), 02:30 GMT not yet.
    (
        "fall_back",
        datetime(2026, 10, 25, 1, 10, tzinfo=UTC),
        "2026-10-25",
        [False, False, True, True],
    ),
]


@pytest.fixture(scope="module", params=SCENARIOS, ids=[s[0] for s in SCENARIOS])
def shifted(request, tmp_path_factory, mongo_url, redis_url, mongo_db_name):
    """A system whose clock stands at the scenario's instant, with a London hospital."""
    name, instant, day, expected = request.param
    db_name = f"{mongo_db_name}_{name}"
    offset = (instant - datetime.now(UTC)).total_seconds()
    env = dict(TEST_ENV, MONGO_DB=db_name, CLOCK_OFFSET_SECONDS=f"{offset:.3f}")
    stack = Stack(
        tmp_path_factory.mktemp(name), mongo_url=mongo_url, redis_url=redis_url, extra_env=env
    )
    stack.start()
    try:
        admin = seeded_admin(stack.gateway_url)
        doc = hospital_doc(
            timezone="Europe/London",
            advance_booking_days=1,
            schedule={
                str(d): {"slots": [{"start": s, "end": e} for s, e in SLOTS]} for d in range(7)
            },
        )
        assert admin.post("/api/dynamic-slots/hospitals", doc).status_code == 201
        yield {
            "admin": admin,
            "gateway": Api(stack.gateway_url),
            "hid": doc["hospital_id"],
            "day": day,
            "expected": expected,
            "started": time.monotonic(),
        }
    finally:
        stack.stop()
        with MongoClient(mongo_url) as client:
            client.drop_database(db_name)


def test_today_is_the_clock_change_day_in_the_hospitals_zone(shifted):
    gateway, hid = shifted["gateway"], shifted["hid"]
    body = gateway.get(f"/api/dynamic-slots/calendar/{hid}?days=3").json()
    assert body["start"] == shifted["day"]
    assert [d["status"] for d in body["days"]] == ["open", "open", "beyond_booking_window"]
    gomoti = gateway.get("/api/dynamic-slots/calendar/gomoti?days=1").json()
    assert gomoti["start"] == shifted["day"]  # 07:10 in Dhaka, the same date


def test_started_slots_on_the_clock_change_day(shifted):
    gateway, hid, day = shifted["gateway"], shifted["hid"], shifted["day"]
    body = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()
    assert body["status"] == "open"
    assert [s["start"] for s in body["slots"]] == [s for s, _ in SLOTS]
    assert [s["bookable"] for s in body["slots"]] == shifted["expected"]


def test_booking_follows_the_same_rules(shifted):
    admin, hid, day = shifted["admin"], shifted["hid"], shifted["day"]
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "01:30")), 422, "slot_in_past"
    )
    made = admin.post("/api/appointments", booking(hid, day, "02:30"))
    assert made.status_code == 201, made.text
    yesterday = {"2026-03-29": "2026-03-28", "2026-10-25": "2026-10-24"}[day]
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, yesterday, "09:00")),
        422,
        "outside_booking_window",
    )
    # cancelling before the slot starts works; the started 01:30 slot would be in the past
    cancelled = admin.delete(f"/api/appointments/{made.json()['appointment_id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
