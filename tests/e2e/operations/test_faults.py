"""The booking guarantees under faults, against real servers (issue: never overbook).

This module runs its own system with a private Redis, so it may flush, stop and restart
that Redis without touching anything else (not even a REDIS_URL the suite was given).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
from pymongo.errors import AutoReconnect

from devstack.servers import RedisServer
from devstack.stack import Stack
from shared import keys
from shared.config import Config
from shared.errors import ServiceUnavailable
from tests.helpers import (
    TEST_ENV,
    Api,
    assert_error_shape,
    book_many,
    booking,
    confirmed_in,
    create_hospital,
    next_weekday,
    own_database,
    seeded_admin,
    wait_until,
)

CAPACITY = 15


@pytest.fixture(scope="module")
def private(tmp_path_factory, mongo_url, mongo_db_name):
    """A system with its own Redis, plus a third booking-service process."""
    base = tmp_path_factory.mktemp("faults")
    db_name = f"{mongo_db_name}_faults"
    server = RedisServer(base / "redis", appendonly=False).start()
    env = dict(TEST_ENV, MONGO_DB=db_name)
    stack = Stack(base / "stack", mongo_url=mongo_url, redis_url=server.url, extra_env=env)
    stack.start()
    extra = stack.extra_service("booking-2", "booking", threads=8)
    config = Config(
        mongo_url=mongo_url,
        mongo_db=db_name,
        redis_url=server.url,
        schedule_service_url=stack.schedule_url,
    )
    with own_database(mongo_url, db_name) as db:
        try:
            yield {
                "stack": stack,
                "redis_server": server,
                "booking_urls": [stack.booking_url, extra.url],
                "db": db,
                "redis": redis.Redis.from_url(server.url),
                "config": config,
            }
        finally:
            extra.stop()
            stack.stop()
            server.stop()


@pytest.fixture(scope="module")
def admin(private) -> Api:
    """The seeded admin of the private system."""
    return seeded_admin(private["stack"].gateway_url)


def redis_booked(private, hid: str, day, slot: str) -> int:
    """What the capacity records say is booked."""
    return len(private["redis"].hgetall(keys.holds_key(hid, str(day), slot)))


def test_a_200_concurrent_requests_for_the_last_5_places_across_processes(private, admin):
    hid, day = create_hospital(admin, CAPACITY), next_weekday(6)
    for _ in range(CAPACITY - 5):
        assert admin.post("/api/appointments", booking(hid, day, "10:00")).status_code == 201
    reqs = [booking(hid, day, "10:00") for _ in range(200)]
    urls = private["booking_urls"] + [private["stack"].gateway_url]
    answers = book_many(admin, urls, reqs)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 5, 409: 195}, statuses
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"slot_full"}
    truth = confirmed_in(private["db"], hid, day)
    assert len(truth) == CAPACITY
    assert sorted(a["serial"] for a in truth) == list(range(1, CAPACITY + 1))
    assert redis_booked(private, hid, day, "10:00") == CAPACITY


def test_b_mongodb_write_failing_after_the_reservation_releases_it(private, admin):
    import booking_service
    from booking_service.adapters.repository import AppointmentRepository
    from booking_service.core import booking as service
    from booking_service.core.requests import BookAppointment
    from shared.auth import Principal
    from shared.clock import utcnow

    class ConfirmFails(AppointmentRepository):
        def confirm(self, *args, **kwargs):
            raise AutoReconnect("injected: MongoDB went away after the reservation")

    hid, day = create_hospital(admin, 2), next_weekday(6)
    app = booking_service.create_app(private["config"], start_reconciler=False)
    ctx = app.extensions["booking.ctx"]
    ctx.appointments = ConfirmFails(app.extensions["slotbook.db"])
    who = Principal("tester", "t@example.com", "admin")
    req = booking(hid, day, "09:00")
    with pytest.raises(ServiceUnavailable):
        service.book(ctx, who, BookAppointment(**req), utcnow())
    assert redis_booked(private, hid, day, "09:00") == 0
    docs = list(private["db"].appointments.find({"hospital_id": hid}))
    assert [d["status"] for d in docs] == ["rejected"]
    assert not docs[0]["dup_guard"].startswith(hid)  # the phone may book again
    # both places are still there, and the same phone can book one
    assert admin.post("/api/appointments", req).status_code == 201
    assert admin.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "09:00")), 409, "slot_full"
    )


DIE_MIDWAY = """
import os, sys
from bson import ObjectId
import booking_service
from booking_service.adapters.repository import dup_guard, epoch_ms
from shared.config import Config
from shared.clock import utcnow
cfg = Config(mongo_url=sys.argv[1], mongo_db=sys.argv[2], redis_url=sys.argv[3])
app = booking_service.create_app(cfg, start_reconciler=False)
ctx = app.extensions["booking.ctx"]
hid, day, slot = sys.argv[4], sys.argv[5], "11:00"
oid, now = ObjectId(), utcnow()
ctx.appointments.insert_pending({
    "_id": oid, "hospital_id": hid, "date": day, "slot_start": slot,
    "slot": {"start": slot, "end": "12:00", "display": "x"}, "serial": None,
    "patient": {"name": "Ghost", "phone": "+8801000000000"}, "booked_by": "ghost",
    "status": "pending", "dup_guard": dup_guard(hid, day, "+8801000000000"),
    "serial_guard": f"p:{oid}", "created_at": now, "updated_ms": epoch_ms(now),
    "starts_at": now})
from shared import keys
if not ctx.capacity.client.hexists(keys.counts_key(hid, day), "_ready"):
    from booking_service.core.places import rebuild_day
    from shared.slots import compile_schedule, parse_date
    import requests
    doc = requests.get(f"{sys.argv[6]}/api/dynamic-slots/hospitals/{hid}", timeout=5).json()
    rebuild_day(ctx, compile_schedule(doc), hid, parse_date(day))
outcome, serial = ctx.capacity.reserve(hid, day, slot, str(oid), 1, 86400)
print(outcome, serial, oid, flush=True)
os._exit(9)  # dies between the reservation and the confirming write
"""


def test_c_a_process_dying_mid_booking_gives_the_place_back_once(private, admin):
    from booking_service.adapters.repository import AppointmentRepository, serial_guard
    from booking_service.core import booking as service
    from shared.clock import utcnow

    hid, day = create_hospital(admin, 1), next_weekday(6)
    cfg = private["config"]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DIE_MIDWAY,
            cfg.mongo_url,
            cfg.mongo_db,
            cfg.redis_url,
            hid,
            str(day),
            private["stack"].schedule_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 9, proc.stderr
    outcome, serial, ghost = proc.stdout.split()
    assert (outcome, serial) == ("1", "1")
    died_at = time.monotonic()
    # the place is held by a dead process: the slot is full for now
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "11:00")), 409, "slot_full"
    )
    waited = wait_until(lambda: redis_booked(private, hid, day, "11:00") == 0, timeout=30)
    recovery = time.monotonic() - died_at
    print(f"\nplace recovered {recovery:.2f} s after the process died (waited {waited:.2f} s)")
    # PENDING_TIMEOUT_SECONDS=3 and RECONCILE_INTERVAL_SECONDS=0.5 in the test env
    assert recovery < 3 + 0.5 + 10
    ghost_doc = private["db"].appointments.find_one({"hospital_id": hid, "booked_by": "ghost"})
    assert ghost_doc["status"] == "abandoned"
    # a late confirm of the dead process's appointment can never win now
    repo = AppointmentRepository(private["db"])
    assert (
        repo.confirm(ghost_doc["_id"], 1, serial_guard(hid, str(day), "11:00", 1), utcnow()) is None
    )
    assert admin.post("/api/appointments", booking(hid, day, "11:00")).status_code == 201
    # never twice: more reconciler passes and releases change nothing
    time.sleep(1.5)
    import booking_service

    app = booking_service.create_app(cfg, start_reconciler=False)
    ctx = app.extensions["booking.ctx"]
    assert service.abandon_stale(ctx, utcnow(), utcnow()) == 0
    assert ctx.capacity.free(hid, str(day), "11:00", ghost) is False
    assert redis_booked(private, hid, day, "11:00") == 1
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "11:00")), 409, "slot_full"
    )
    assert len(confirmed_in(private["db"], hid, day)) == 1


@pytest.mark.parametrize("how", ["flushall", "restart_without_persistence"])
def test_d_redis_losing_its_data_never_overbooks_and_counts_converge(private, admin, how):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    for _ in range(4):
        assert admin.post("/api/appointments", booking(hid, day, "10:00")).status_code == 201
    if how == "flushall":
        private["redis"].flushall()
    else:
        private["redis_server"].kill()
        private["redis_server"].restart()
    lost_at = time.monotonic()
    answers = book_many(
        admin, private["booking_urls"], [booking(hid, day, "10:00") for _ in range(6)], workers=6
    )
    assert Counter(a.status_code for a in answers) == {201: 1, 409: 5}
    assert len(confirmed_in(private["db"], hid, day)) == 5
    # the booking service's revalidation put the lost schedule version key back, so later
    # bookings use their cached configuration again
    assert private["redis"].get(keys.schedule_version_key(hid)) is not None

    # a day nobody books again is rebuilt by the reconciler: counts converge to MongoDB's
    other = next_weekday(0)
    for _ in range(3):
        assert admin.post("/api/appointments", booking(hid, other, "09:00")).status_code == 201
    private["redis"].flushall()
    gateway = Api(private["stack"].gateway_url)

    def shows_truth():
        body = gateway.get(f"/api/dynamic-slots/available/{hid}/{other}").json()
        return body["counts"] == "live" and body["slots"][0]["booked"] == 3

    converged = wait_until(shows_truth, timeout=20)
    print(
        f"\n{how}: booking after loss accepted correctly; counts converged "
        f"{converged:.2f} s after the flush ({time.monotonic() - lost_at:.2f} s overall)"
    )
    unknown_or_true = gateway.get(f"/api/availability/{hid}/{other}").json()
    assert unknown_or_true["slots"]["09:00"]["booked"] == 3


def test_e_redis_down_fails_fast_and_writes_nothing(private, admin):
    hid, day = create_hospital(admin, 5), next_weekday(6)
    assert admin.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201
    gateway = Api(private["stack"].gateway_url)
    private["redis_server"].stop()
    try:
        req = booking(hid, day, "09:00")
        started = time.monotonic()
        resp = admin.post("/api/appointments", req)
        took = time.monotonic() - started
        assert_error_shape(resp, 503)
        print(f"\nbooking with Redis down answered 503 in {took:.2f} s")
        assert took < 10  # bounded by REDIS_TIMEOUT, not a hang
        phone_docs = list(
            private["db"].appointments.find(
                {
                    "patient.phone": req["patient"]["phone"],
                    "status": {"$in": ["pending", "confirmed"]},
                }
            )
        )
        assert phone_docs == []
        read = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}")
        assert read.status_code == 200
        body = read.json()
        assert body["counts"] == "unknown" and body["slots"][0]["booked"] is None
        light = gateway.get(f"/api/availability/{hid}/{day}").json()
        assert light["counts"] == "unknown" and light["slots"]["09:00"]["available"] is None
    finally:
        private["redis_server"].restart()
    wait_until(
        lambda: admin.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201,
        timeout=20,
        step=0.5,
    )
    assert len(confirmed_in(private["db"], hid, day)) == 2


def test_a_past_appointment_cannot_be_cancelled(private, admin):
    """422 appointment_in_past once the slot has started; the appointment stays confirmed."""
    from datetime import timedelta

    import booking_service
    from booking_service.core.cancel import cancel
    from shared.auth import Principal
    from shared.clock import utcnow
    from shared.errors import AppointmentInPast

    hid, day = create_hospital(admin, 2), next_weekday(6)
    made = admin.post("/api/appointments", booking(hid, day, "09:00")).json()
    app = booking_service.create_app(private["config"], start_reconciler=False)
    ctx = app.extensions["booking.ctx"]
    who = Principal("tester", "t@example.com", "admin")
    with pytest.raises(AppointmentInPast) as raised:
        cancel(ctx, who, made["appointment_id"], utcnow() + timedelta(days=10))
    assert (raised.value.status, raised.value.reason) == (422, "appointment_in_past")
    assert str(confirmed_in(private["db"], hid, day)[0]["_id"]) == made["appointment_id"]
