"""Issue 23, isolation by cost, through the whole system (the e2e stack: two booking workers of
four threads, the gateway's defaults): bursts of calendar feeds of 2,000 appointments, each
a first build (a second or more of a worker's time), and of FHIR searches over them, while
another client reads `/api/availability` and `/api/dynamic-slots/available`.

Before: the builds took every thread of the booking service, the burst's fetches and the
other client's reads waited behind them until the gateway's 504, the breaker opened and the
reads got 503 for its cooldown. Now the booking service answers at most EXPENSIVE_CONCURRENCY
of them at once per process and refuses the others at once (503 with Retry-After), and the
gateway counts none of their failures: the other client is served throughout."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from bson import ObjectId
from pymongo import MongoClient

from booking_service.adapters.repository import dup_guard, serial_guard
from tests.helpers import assert_error_shape, booking, hospital_doc, publish_hospital

pytestmark = pytest.mark.e2e

APPOINTMENTS = 2000
FEEDS = 16
ROUNDS = 3
SLOTS = ("09:00", "10:00", "11:00")
# After the last burst the reads go on for longer than the breaker's cooldown (5 s).
AFTER_SECONDS = 6


@pytest.fixture(scope="module")
def db(mongo_url, mongo_db_name):
    client = MongoClient(mongo_url, tz_aware=True)
    yield client[mongo_db_name]
    client.close()


@pytest.fixture(scope="module")
def busy_hospital(gateway, admin, db) -> Iterator[tuple[str, str, list[str]]]:
    """(hospital id, a date of its window, the URLs of FEEDS feeds): a hospital with
    APPOINTMENTS appointments over its window. One is booked through the API; the others are
    copies of it written straight to MongoDB (each a place, phone and serial of its own, more
    than the slots hold: Redis knows nothing of them), deleted at the end, so that no rebuild
    of Redis by a later test meets them."""
    hid = publish_hospital(admin, hospital_doc())["hospital_id"]
    today = datetime.now(ZoneInfo("Asia/Dhaka")).date()
    first = today + timedelta(days=1)
    made = gateway.new_patient().post("/api/appointments", booking(hid, first, SLOTS[0]))
    assert made.status_code == 201, made.text
    model = db.appointments.find_one({"_id": ObjectId(made.json()["appointment_id"])})
    copies = []
    for n in range(1, APPOINTMENTS):
        day = (today + timedelta(days=1 + n % 28)).isoformat()
        slot, serial, phone = SLOTS[n % 3], 100 + n, f"+8801{n:09d}"
        copies.append(
            {
                **model,
                "_id": ObjectId(),
                "date": day,
                "slot_start": slot,
                "serial": serial,
                "patient": {**model["patient"], "phone": phone},
                "dup_guard": dup_guard(hid, day, phone),
                "serial_guard": serial_guard(hid, day, slot, serial),
            }
        )
    db.appointments.insert_many(copies)
    urls = []
    for _ in range(FEEDS):
        feed = admin.post("/api/feeds", {"hospital_id": hid})
        assert feed.status_code == 201, feed.text
        urls.append(feed.json()["url"])
    yield hid, first.isoformat(), urls
    db.appointments.delete_many({"_id": {"$in": [copy["_id"] for copy in copies]}})


def test_a_burst_of_expensive_answers_leaves_the_cheap_reads_served(admin, db, busy_hospital):
    hid, day, feeds = busy_hospital
    base = admin.base
    cheap_paths = (f"/api/availability/{hid}/{day}", f"/api/dynamic-slots/available/{hid}/{day}")
    searches = [f"/fhir/R4/Appointment?location=Location/{hid}&_count=200"] * 4
    stop = threading.Event()
    cheap: Counter[tuple[str, int]] = Counter()

    def read() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                for path in cheap_paths:
                    cheap[path, http.get(base + path, timeout=60).status_code] += 1
                stop.wait(0.02)  # a client that reads often, not a load test

    def fetch(path: str) -> tuple[str, int, float, requests.Response]:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {admin.token}"} if path.startswith("/fhir/") else {}
        resp = requests.get(base + path, headers=headers, timeout=60)
        return path, resp.status_code, time.monotonic() - started, resp

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    answers: list[tuple[str, int, float, requests.Response]] = []
    try:
        for _ in range(ROUNDS):
            # Every feed's body must be built again: one appointment of them changed.
            db.appointments.update_one({"hospital_id": hid}, {"$inc": {"version": 1}})
            burst = feeds + searches
            with ThreadPoolExecutor(len(burst)) as pool:
                answers += pool.map(fetch, burst)
        time.sleep(AFTER_SECONDS)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=120)

    # The other client: served during and after every burst (no 502, 503 or 504).
    assert {status for _, status in cheap} == {200}, cheap
    assert all(cheap[path, 200] >= 3 for path in cheap_paths), cheap
    # The burst: each answered, or refused at once by the service (503 with Retry-After);
    # some of each round answered.
    statuses = Counter(status for _, status, _, _ in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= ROUNDS, statuses
    for path, status, took, resp in answers:
        fhir = path.startswith("/fhir/")
        if status == 503 and fhir:
            assert resp.json()["resourceType"] == "OperationOutcome"
        elif status == 503:
            assert_error_shape(resp, 503, "service_unavailable")
        elif not fhir:
            assert resp.headers["Content-Type"].startswith("text/calendar")
            assert resp.content.count(b"BEGIN:VEVENT") == APPOINTMENTS
        if status == 503:
            assert resp.headers["Retry-After"] == "1" and took < 10, (path, took)


HOSTILE = [
    ("GET", "/api/feeds/0123456789abcdef01234567.ics"),
    ("GET", "/api/feeds/0123456789abcdef01234567.ics?token=" + "%FF" * 43),
    ("GET", "/api/feeds/..%2F..%2Fhealthz.ics?token=" + "a" * 43),
    ("GET", "/api/feeds/%00.ics"),
    ("GET", "/api/feeds/" + "a" * 5000 + ".ics"),
    ("GET", "/api/feeds/x.ics?token=" + "a" * 7000),
    ("DELETE", "/api/feeds/0123456789abcdef01234567.ics"),
    ("PROPFIND", "/api/feeds/0123456789abcdef01234567.ics"),
    ("GET", "/fhir/R4/Slot?schedule=%00"),
    ("GET", "/fhir/R4/Slot?schedule=Schedule/gomoti&_count=99999999999999999999999"),
    ("GET", "/fhir/R4/Slot?schedule=Schedule/gomoti&_cursor=%FF%FE"),
    ("GET", "/fhir/R4/Slot?schedule=Schedule/gomoti&start=ge9999-12-31&start=lt0001-01-01"),
    ("GET", "/fhir/R4/Location?_id=" + ",".join(["a"] * 2000)),
    ("GET", "/fhir/R4/Schedule?actor=Location/..%2F..%2Fx"),
    ("GET", "/fhir/R4/Appointment?date=ge9999-12-31&_count=0"),
    ("GET", "/fhir/R4/Practitioner?_page=-1"),
    ("GET", "/fhir/R4/" + "Slot/" * 2000),
    ("PUT", "/fhir/R4/Slot"),
    ("GET", "/api/live/%00/2026-01-01"),
    ("GET", "/api/live/gomoti/99999-99-99"),
    ("GET", "/api/live/gomoti/2026-01-01?practitioner_id=%FF"),
]


@pytest.mark.parametrize(("method", "path"), HOSTILE)
def test_hostile_requests_on_the_expensive_routes_are_never_a_5xx(admin, method, path):
    resp = admin.send(method, path, stream=path.startswith("/api/live/"))
    try:
        assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    finally:
        resp.close()
