"""Small helpers the integration and end-to-end tests share."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import requests

T = TypeVar("T")

# Settings that make the tests quick without changing behaviour: cheap bcrypt, a fast
# reconciler and no booking limit in the way of tests that book many places.
TEST_ENV = {
    "BCRYPT_ROUNDS": "4",
    "RECONCILE_INTERVAL_SECONDS": "0.5",
    "PENDING_TIMEOUT_SECONDS": "3",
    "BOOKING_LIMIT": "100000",
    # Every test registers patients from 127.0.0.1; tests/integration/accounts pins the limit.
    "REGISTER_LIMIT": "100000",
    "ACCESS_LOG_LEVEL": "WARNING",
    # Webhooks: short backoff, few attempts, quick polls and leases (tests/e2e/webhooks).
    "WEBHOOK_MAX_ATTEMPTS": "4",
    "WEBHOOK_BACKOFF_SECONDS": "0.2",
    "WEBHOOK_TIMEOUT_SECONDS": "2",
    "WEBHOOK_POLL_SECONDS": "0.25",
    "WEBHOOK_LEASE_SECONDS": "5",
}


@contextmanager
def own_database(mongo_url: str, name: str) -> Iterator:
    """The MongoDB database `name` of a private system; dropped (it alone) at the end."""
    from pymongo import MongoClient

    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def whole_system(directory, mongo_url: str, redis_url: str, db_name: str, **options):
    """A whole system for tests (TEST_ENV, its own database name); start it with `with`."""
    from devstack.stack import Stack

    options.setdefault("workers", 2)
    options.setdefault("threads", 4)
    env = dict(TEST_ENV, MONGO_DB=db_name, **options.pop("extra_env", {}))
    return Stack(directory, mongo_url=mongo_url, redis_url=redis_url, extra_env=env, **options)


def next_weekday(js_weekday: int, tz: str = "Asia/Dhaka", after: int = 1) -> date:
    """The first date at least `after` days from today (in `tz`) with that weekday (0=Sunday)."""
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=after)
    while (day.weekday() + 1) % 7 != js_weekday:
        day += timedelta(days=1)
    return day


def hospital_doc(hospital_id: str | None = None, **overrides) -> dict:
    """A valid hospital configuration: every day 09:00-12:00 in three slots of 5 places."""
    slots = [{"start": f"{h:02d}:00", "end": f"{h + 1:02d}:00"} for h in (9, 10, 11)]
    doc = {
        "hospital_id": hospital_id or f"h-{uuid.uuid4().hex[:10]}",
        "hospital_name": "Test Hospital",
        "timezone": "Asia/Dhaka",
        "schedule": {str(d): {"slots": slots} for d in range(7)},
        "max_appointments_per_slot": 5,
        "advance_booking_days": 30,
        "date_overrides": {},
    }
    doc.update(overrides)
    return doc


def fhir_clinic(hospital_id: str, doctor_places: int, eve_session: dict, **overrides) -> dict:
    """hospital_doc() of a clinic whose ids need FHIR's encoding (`_`): doctors dr_a
    (`doctor_places` places a slot), off (inactive) and eve (her own `eve_session` every day);
    appointment types `new` (2 units) and `followup` (1 unit, the default)."""
    practitioners = {
        "dr_a": {
            "name": "Dr. A",
            "specialty": "Medicine",
            "max_appointments_per_slot": doctor_places,
        },
        "off": {"name": "Dr. Off", "active": False},
        "eve": {
            "name": "Dr. Eve",
            "schedule": {str(d): {"sessions": [eve_session]} for d in range(7)},
        },
    }
    types = {
        "new": {"name": "New patient", "units": 2},
        "followup": {"name": "Follow-up", "units": 1},
    }
    return hospital_doc(
        hospital_id,
        appointment_types=types,
        default_appointment_type="followup",
        practitioners=practitioners,
        **overrides,
    )


class Api:
    """A thin HTTP client for one base URL with an optional bearer token."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base.rstrip("/")
        self.token = token
        self.session = requests.Session()

    def _headers(self, headers: dict | None) -> dict:
        out = dict(headers or {})
        if self.token:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def send(self, method: str, path: str, **kw) -> requests.Response:
        """Any request to a path (json=, headers=, params=, ... as in requests), with the token."""
        headers = self._headers(kw.pop("headers", None))
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        """GET a path."""
        return self.send("GET", path, **kw)

    def post(self, path: str, json=None, **kw) -> requests.Response:
        """POST JSON to a path."""
        return self.send("POST", path, json=json, **kw)

    def put(self, path: str, json=None, **kw) -> requests.Response:
        """PUT JSON to a path."""
        return self.send("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        """DELETE a path."""
        return self.send("DELETE", path, **kw)

    def login(self, email: str, password: str) -> Api:
        """A client carrying the token of that account."""
        resp = self.post("/api/auth/login", {"email": email, "password": password})
        assert resp.status_code == 200, resp.text
        return Api(self.base, resp.json()["access_token"])

    def new_patient(self) -> Api:
        """Register a fresh patient and return a client logged in as it."""
        email = f"p-{uuid.uuid4().hex[:12]}@example.com"
        resp = self.post(
            "/api/auth/register",
            {
                "name": "Test Patient",
                "email": email,
                "phone": "+8801700000000",
                "password": "correct-horse",
            },
        )
        assert resp.status_code == 201, resp.text
        return self.login(email, "correct-horse")


def seeded_admin(gateway_url: str) -> Api:
    """The admin the seed creates (devstack/seed), logged in through the gateway at that URL."""
    return Api(gateway_url).login("portal@drhelal.com", "123456")


def booking(
    hospital_id: str,
    day: date | str,
    slot: str,
    phone: str | None = None,
    name: str = "Rahim Uddin",
) -> dict:
    """A booking request body."""
    return {
        "hospital_id": hospital_id,
        "date": str(day),
        "slot": slot,
        "patient": {"name": name, "phone": phone or "+88017" + uuid.uuid4().int.__str__()[:8]},
    }


def slot_places(
    capacity: int, booked: int, *, available: int, held: int = 0, offered: int = 0, **more
) -> dict:
    """A slot of an availability answer: its places, taken and left (and e.g. `fits`)."""
    return {
        "capacity": capacity,
        "booked": booked,
        "held": held,
        "offered": offered,
        "available": available,
        **more,
    }


def assert_error_shape(resp: requests.Response, status: int, reason: str | None = None) -> dict:
    """The response is the contract's error document with that status (and reason)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    if reason is not None:
        assert body["error"] == reason, body
    return body


def at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """call(0) ... call(count - 1), each in a thread of its own, all released together; their
    results, in that order."""
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        start.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def book_many(admin: Api, urls: list[str], reqs: list[dict], workers: int = 50) -> list:
    """Send bookings (as `admin`) concurrently, spread over the given base URLs; the answers."""
    clients = [Api(url, admin.token) for url in urls]

    def send(pair):
        i, req = pair
        return clients[i % len(clients)].post("/api/appointments", req)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(send, enumerate(reqs)))


def wait_until(predicate, timeout: float, step: float = 0.1) -> float:
    """Seconds until `predicate()` held; fails after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


def publish_hospital(admin: Api, doc: dict | None = None) -> dict:
    """Create a hospital (`doc`, or hospital_doc()) through the admin API; the stored document."""
    resp = admin.post("/api/dynamic-slots/hospitals", doc or hospital_doc())
    assert resp.status_code == 201, resp.text
    return resp.json()


# Zones 25 hours apart: in one of them it is before 22:00 now, so its 22:00 slot is bookable.
TONIGHT_ZONES = ("Pacific/Kiritimati", "Asia/Dhaka", "UTC", "America/New_York", "Pacific/Pago_Pago")


def open_tonight(admin: Api) -> tuple[str, str]:
    """A new hospital open every day 22:00-23:00 (6 places) in a zone where that is still ahead
    today; its id and today's date there."""
    zone = next(z for z in TONIGHT_ZONES if datetime.now(ZoneInfo(z)).hour < 22)
    slots = [{"start": "22:00", "end": "23:00", "capacity": 6}]
    doc = hospital_doc(timezone=zone, schedule={str(d): {"slots": slots} for d in range(7)})
    hospital_id = publish_hospital(admin, doc)["hospital_id"]
    return hospital_id, datetime.now(ZoneInfo(zone)).date().isoformat()


def create_hospital(admin: Api, capacity: int) -> str:
    """A new hospital open every day, 09:00-12:00, `capacity` places a slot; its id."""
    return publish_hospital(admin, hospital_doc(max_appointments_per_slot=capacity))["hospital_id"]


class Started:
    """Processes that a fixture starts (servers, gateways): `start(process)` starts one and
    keeps it; `stop_all()` stops them, the last started first."""

    def __init__(self) -> None:
        self.processes: list = []

    def __len__(self) -> int:
        return len(self.processes)

    def start(self, process):
        """Keep `process` and return what its start() returns."""
        self.processes.append(process)
        return process.start()

    def stop_all(self) -> None:
        """Stop every process started here, in reverse order."""
        for process in reversed(self.processes):
            process.stop()


def confirmed_in(db, hospital_id: str, day) -> list[dict]:
    """MongoDB's truth: the confirmed appointments of a hospital-day."""
    return list(
        db.appointments.find({"hospital_id": hospital_id, "date": str(day), "status": "confirmed"})
    )
