"""Webhooks end to end: real receivers (HTTP servers on free ports, started here, verifying
every Standard Webhooks signature), the running system through the gateway, and faults:
failing receivers, a process that dies right after a change, a process killed during a
delivery. Also the relay's storage rules against the MongoDB the system runs on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from bson import ObjectId
from pymongo import MongoClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from booking_service.adapters import outbox
from booking_service.integrations.webhooks.relay import relay_document
from booking_service.integrations.webhooks.store import DeliveryStore, OutboxSources, WebhookStore
from shared.clock import utcnow
from tests.helpers import (
    TEST_ENV,
    Api,
    assert_error_shape,
    booking,
    create_hospital,
    next_weekday,
    wait_until,
)

MAX_ATTEMPTS = int(TEST_ENV["WEBHOOK_MAX_ATTEMPTS"])
BACKOFF = float(TEST_ENV["WEBHOOK_BACKOFF_SECONDS"])
LEASE = float(TEST_ENV["WEBHOOK_LEASE_SECONDS"])
APPOINTMENT_EVENTS = [
    "appointment.created",
    "appointment.rescheduled",
    "appointment.cancelled",
    "appointment.status_changed",
]


class Receiver:
    """A webhook receiver: a threaded HTTP server on 127.0.0.1 that verifies each request's
    signature with the webhook's secret and records it. `answer(webhook_id, n)` says what to
    do with the n-th request (1, 2, ...) carrying that webhook-id: a status, or "hang"."""

    def __init__(self, answer: Callable[[str, int], int | str] | None = None):
        self.answer = answer or (lambda _id, _n: 200)
        self.secret: str | None = None
        self.requests: list[dict] = []
        self.bad: list[str] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                receiver._handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            event = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError, TypeError) as exc:
            with self.lock:
                self.bad.append(f"{handler.path}: {exc}")
            event = None
        msg_id = headers.get("webhook-id", "")
        with self.lock:
            n = self.counts[msg_id] = self.counts.get(msg_id, 0) + 1
            self.requests.append(
                {"id": msg_id, "n": n, "path": handler.path, "event": event, "at": time.time()}
            )
        what = self.answer(msg_id, n) if handler.path == "/hooks" else 200
        if what == "hang":
            self.release.wait(30)
            what = 200
        try:
            handler.send_response(what)
            if 300 <= what < 400:
                handler.send_header("Location", self.url.replace("/hooks", "/elsewhere"))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            pass  # the sender is gone (killed during the attempt)

    def events(self, subject: str | None = None) -> list[dict]:
        """Verified events received (every request, retries included), in arrival order."""
        with self.lock:
            got = [r["event"] for r in self.requests if r["event"] is not None]
        if subject is None:
            return got
        return [e for e in got if subject_of(e) == subject]

    def ids(self, subject: str) -> list[str]:
        """The webhook-id of every request about `subject`, in arrival order. Webhooks get
        every hospital's events, so other tests' background work (offers, expiries) can
        reach a receiver too; a test looks at its own appointment's only."""
        with self.lock:
            return [
                r["id"]
                for r in self.requests
                if r["event"] is not None and subject_of(r["event"]) == subject
            ]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def subject_of(event: dict) -> str | None:
    data = event.get("data") or {}
    return data.get("appointment_id") or data.get("waitlist_id")


@pytest.fixture(scope="module")
def db(stack, mongo_url, mongo_db_name):
    client = MongoClient(mongo_url, tz_aware=True)
    yield client[mongo_db_name]
    client.close()


@pytest.fixture(scope="module", autouse=True)
def no_other_webhooks(admin: Api) -> None:
    """Webhooks left by earlier modules (the fuzzer makes some) are deleted: their failing
    deliveries would share the workers with these tests."""
    listed = admin.get("/api/webhooks")
    assert listed.status_code == 200, listed.text
    for hook in listed.json()["webhooks"]:
        assert admin.delete(f"/api/webhooks/{hook['webhook_id']}").status_code == 204


@pytest.fixture
def subscribe(admin: Api) -> Iterator[Callable[..., tuple[dict, Receiver]]]:
    """Start a receiver and subscribe it; both are stopped and deleted after the test."""
    made: list[tuple[dict, Receiver]] = []

    def make(events: list[str], answer=None, url_path: str = "") -> tuple[dict, Receiver]:
        receiver = Receiver(answer)
        resp = admin.post("/api/webhooks", {"url": receiver.url + url_path, "events": events})
        assert resp.status_code == 201, resp.text
        hook = resp.json()
        receiver.secret = hook["secret"]
        made.append((hook, receiver))
        return hook, receiver

    yield make
    for hook, receiver in made:
        admin.delete(f"/api/webhooks/{hook['webhook_id']}")
        receiver.stop()


def deliveries(admin: Api, webhook_id: str, **query) -> list[dict]:
    resp = admin.get(f"/api/webhooks/{webhook_id}/deliveries", params=query)
    assert resp.status_code == 200, resp.text
    return resp.json()["deliveries"]


def delivery_of(admin: Api, webhook_id: str, event_id: str) -> dict:
    (found,) = [d for d in deliveries(admin, webhook_id) if d["event_id"] == event_id]
    return found


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# --- The contract -------------------------------------------------------------------------


def test_a_webhook_is_made_listed_and_deleted_by_an_admin_only(gateway, admin, patient, db):
    resp = admin.post(
        "/api/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["appointment.created"]}
    )
    assert resp.status_code == 201, resp.text
    hook = resp.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) >= 6 + 32
    assert Webhook(hook["secret"])  # a secret the library takes
    assert resp.headers["Cache-Control"] == "no-store"
    listed = admin.get("/api/webhooks").json()["webhooks"]
    mine = [h for h in listed if h["webhook_id"] == hook["webhook_id"]]
    assert mine and "secret" not in mine[0] and mine[0]["events"] == ["appointment.created"]
    assert "whsec_" not in admin.get("/api/webhooks").text
    assert admin.get(f"/api/webhooks/{hook['webhook_id']}").json()["active"] is True
    # MongoDB keeps the secret's salt, not the secret (it is derived with WEBHOOK_SECRETS_KEY).
    stored = db.webhooks.find_one({"_id": ObjectId(hook["webhook_id"])})
    assert "secret" not in stored and stored["secret_salt"]
    assert hook["secret"].removeprefix("whsec_") not in repr(stored)
    assert deliveries(admin, hook["webhook_id"]) == []

    assert_error_shape(patient.get("/api/webhooks"), 403, "forbidden")
    assert_error_shape(
        patient.post("/api/webhooks", {"url": "http://127.0.0.1/", "events": ["x"]}),
        403,
        "forbidden",
    )
    assert_error_shape(patient.delete(f"/api/webhooks/{hook['webhook_id']}"), 403)
    assert_error_shape(gateway.get("/api/webhooks"), 401, "unauthorized")
    assert_error_shape(gateway.get(f"/api/webhooks/{hook['webhook_id']}/deliveries"), 401)

    assert admin.delete(f"/api/webhooks/{hook['webhook_id']}").status_code == 204
    assert admin.delete(f"/api/webhooks/{hook['webhook_id']}").status_code == 204  # idempotent
    listed = admin.get("/api/webhooks").json()["webhooks"]
    assert hook["webhook_id"] not in {h["webhook_id"] for h in listed}
    assert admin.get(f"/api/webhooks/{hook['webhook_id']}").json()["active"] is False
    gone = db.webhooks.find_one({"_id": ObjectId(hook["webhook_id"])})
    assert "secret_salt" not in gone and "secret" not in gone  # nothing can sign for it now
    assert_error_shape(admin.delete(f"/api/webhooks/{'0' * 24}"), 404, "webhook_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://hooks.example.com/x", "events": ["appointment.created"]},
        {"url": "http://", "events": ["appointment.created"]},
        {"url": "http://user:pw@hooks.example.com/", "events": ["appointment.created"]},
        {"url": "http://hooks.example.com/" + "a" * 2000, "events": ["appointment.created"]},
        {"url": "http://[::1/", "events": ["appointment.created"]},
        {"url": "http://hooks.example.com:99999/", "events": ["appointment.created"]},
        {"url": "http://hooks example.com/", "events": ["appointment.created"]},
        {"url": "http://hööks.example.com/", "events": ["appointment.created"]},
        {"url": "javascript:alert(1)", "events": ["appointment.created"]},
        {"url": "http://hooks.example.com/\n", "events": ["appointment.created"]},
        {"url": "http://hooks.example.com/", "events": []},
        {"url": "http://hooks.example.com/", "events": ["appointment.created"] * 2},
        {"url": "http://hooks.example.com/", "events": ["appointment.deleted"]},
        {"url": "http://hooks.example.com/", "events": ["APPOINTMENT.CREATED"]},
        {"url": "http://hooks.example.com/", "events": "appointment.created"},
        {"url": "http://hooks.example.com/", "events": [1]},
        {"url": "http://hooks.example.com/", "events": [None]},
        {"url": 7, "events": ["appointment.created"]},
        {"url": None, "events": ["appointment.created"]},
        {"url": ["http://hooks.example.com/"], "events": ["appointment.created"]},
        {"events": ["appointment.created"]},
        {"url": "http://hooks.example.com/"},
        {"url": "http://hooks.example.com/", "events": ["appointment.created"], "x": 1},
        {"url": "http://hooks.example.com/", "events": ["appointment.created"] * 1000},
        [],
        "http://hooks.example.com/",
    ],
)
def test_hostile_bodies_are_400_never_5xx(admin, body):
    assert_error_shape(admin.post("/api/webhooks", body), 400, "validation_error")


def test_hostile_requests_are_4xx_never_5xx(admin):
    huge = {"url": "http://hooks.example.com/" + "a" * 70_000, "events": ["appointment.created"]}
    assert admin.post("/api/webhooks", huge).status_code == 413
    as_json = {"Content-Type": "application/json"}
    resp = admin.post("/api/webhooks", data=b'{"url": "http://a/", "events": [', headers=as_json)
    assert_error_shape(resp, 400, "malformed_json")
    resp = admin.post("/api/webhooks", data=b"\xff\xfe", headers=as_json)
    assert_error_shape(resp, 400, "malformed_json")
    for almost in ("0" * 23, "0" * 25, "A" * 24, "g" * 24, "0" * 23 + "\u0660", "%20" + "0" * 21):
        assert_error_shape(admin.get(f"/api/webhooks/{almost}"), 404, "webhook_not_found")
        assert_error_shape(
            admin.get(f"/api/webhooks/{almost}/deliveries"), 404, "webhook_not_found"
        )
        assert_error_shape(admin.delete(f"/api/webhooks/{almost}"), 404, "webhook_not_found")
    assert_error_shape(admin.get(f"/api/webhooks/{'a' * 24}/deliveries"), 404, "webhook_not_found")
    some = admin.post(
        "/api/webhooks", {"url": "http://127.0.0.1:9/", "events": ["waitlist.offered"]}
    ).json()["webhook_id"]
    try:
        for query in ("page=0", "per_page=501", "page=x", "state=lost", "page=١"):
            resp = admin.get(f"/api/webhooks/{some}/deliveries?{query}")
            assert_error_shape(resp, 400, "validation_error")
        assert (
            admin.get(f"/api/webhooks/{some}/deliveries?state=dead&per_page=1").status_code == 200
        )
    finally:
        admin.delete(f"/api/webhooks/{some}")


# --- Deliveries ---------------------------------------------------------------------------


def test_1_book_move_cancel_reach_the_receiver_signed_and_in_order(admin, patient, subscribe):
    hook, receiver = subscribe(
        ["appointment.created", "appointment.rescheduled", "appointment.cancelled"]
    )
    _, only_cancels = subscribe(["appointment.cancelled"])
    hid, day = create_hospital(admin, 5), next_weekday(6)
    made = patient.post("/api/appointments", booking(hid, day, "09:00"))
    assert made.status_code == 201, made.text
    appointment_id = made.json()["appointment_id"]
    wait_until(lambda: len(receiver.events(appointment_id)) == 1, timeout=15)
    # A webhook made after an event does not get it (events carry milliseconds; the wait
    # also covers the clocks of different processes).
    time.sleep(1.1)
    _, later = subscribe(APPOINTMENT_EVENTS)
    moved = patient.post(
        f"/api/appointments/{appointment_id}/reschedule", {"date": str(day), "slot": "10:00"}
    )
    assert moved.status_code == 200, moved.text
    assert patient.delete(f"/api/appointments/{appointment_id}").status_code == 200

    wait_until(lambda: len(receiver.events(appointment_id)) >= 3, timeout=15)
    wait_until(lambda: len(only_cancels.events(appointment_id)) >= 1, timeout=15)
    wait_until(lambda: len(later.events(appointment_id)) >= 2, timeout=15)
    time.sleep(0.5)  # nothing more comes
    got = receiver.events(appointment_id)
    assert [e["type"] for e in got] == [
        "appointment.created",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    assert [e["data"]["version"] for e in got] == [1, 2, 3]
    # ISO 8601 UTC with `Z` (API.md), to the millisecond, in the order of the changes
    stamps = [e["timestamp"] for e in got]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in stamps)
    assert stamps == sorted(stamps)
    assert got[1]["data"]["slot"]["start"] == "10:00"
    assert got[1]["data"]["rescheduled_from"]["slot"] == "09:00"
    assert got[2]["data"]["status"] == "cancelled"
    assert [e["type"] for e in only_cancels.events(appointment_id)] == ["appointment.cancelled"]
    assert [e["type"] for e in later.events(appointment_id)] == [
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    for rx in (receiver, only_cancels, later):
        assert rx.bad == []
    # The webhook-id is the event's id: one per event, the same in every receiver.
    assert receiver.ids(appointment_id) == [e["id"] for e in got]
    assert only_cancels.ids(appointment_id) == [got[2]["id"]]

    log = deliveries(admin, hook["webhook_id"])
    mine = {d["event_id"]: d for d in log if d["event_id"] in {e["id"] for e in got}}
    assert len(mine) == 3
    for d in mine.values():
        assert d["state"] == "delivered" and d["attempt_count"] == 1
        (only,) = d["attempts"]
        assert only["status_code"] == 200 and only["error"] is None and only["duration_ms"] >= 0
    assert [d["event_type"] for d in log if d["event_id"] in mine] == [  # newest first
        "appointment.cancelled",
        "appointment.rescheduled",
        "appointment.created",
    ]
    assert len(deliveries(admin, hook["webhook_id"], per_page=1, page=2)) == 1


def test_1_a_waitlist_offer_is_delivered(admin, gateway, subscribe, db):
    _, receiver = subscribe(["waitlist.offered"])
    hid, day = create_hospital(admin, 1), next_weekday(6)
    first, second = gateway.new_patient(), gateway.new_patient()
    taken = first.post("/api/appointments", booking(hid, day, "09:00")).json()
    body = {**booking(hid, day, "09:00"), "patient": {"name": "Waits", "phone": "+8801799999999"}}
    waiting = second.post("/api/waitlist", body)
    assert waiting.status_code == 201, waiting.text
    waitlist_id = waiting.json()["waitlist_id"]
    assert first.delete(f"/api/appointments/{taken['appointment_id']}").status_code == 200
    wait_until(lambda: receiver.events(waitlist_id), timeout=15)
    (offered,) = receiver.events(waitlist_id)
    assert offered["type"] == "waitlist.offered" and offered["data"]["status"] == "offered"
    assert receiver.bad == []
    # The relay took the event out of the entry's outbox, and cleared its mark.
    wait_until(
        lambda: "outbox_pending" not in db.waitlist.find_one({"_id": ObjectId(waitlist_id)}),
        timeout=10,
    )
    assert db.waitlist.find_one({"_id": ObjectId(waitlist_id)})["outbox"] == []


def test_2_a_failing_receiver_is_retried_with_backoff_then_delivered(admin, patient, subscribe):
    hook, receiver = subscribe(["appointment.created"], lambda _id, n: 500 if n <= 2 else 200)
    hid, day = create_hospital(admin, 5), next_weekday(6)
    appointment_id = patient.post("/api/appointments", booking(hid, day, "09:00")).json()[
        "appointment_id"
    ]
    wait_until(lambda: len(receiver.events(appointment_id)) == 3, timeout=20)
    event_id = receiver.events(appointment_id)[0]["id"]
    assert receiver.ids(appointment_id) == [event_id] * 3 and receiver.bad == []

    def delivered() -> bool:
        return delivery_of(admin, hook["webhook_id"], event_id)["state"] == "delivered"

    wait_until(delivered, timeout=10)
    found = delivery_of(admin, hook["webhook_id"], event_id)
    assert found["attempt_count"] == 3 and found["ended_at"] and found["next_attempt_at"] is None
    assert [a["status_code"] for a in found["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in found["attempts"]] == ["HTTP 500", "HTTP 500", None]
    times = [at(a["at"]) for a in found["attempts"]]
    # Exponential backoff, with jitter between half and all of base x 2^(n-1).
    assert times[1] - times[0] >= BACKOFF * 0.5 - 0.05
    assert times[2] - times[1] >= BACKOFF * 1.0 - 0.05


def test_2_an_always_failing_receiver_is_dead_after_max_attempts(admin, patient, subscribe):
    hook, receiver = subscribe(["appointment.created"], lambda _id, _n: 503)
    moved, redirector = subscribe(["appointment.created"], lambda _id, _n: 307)
    hid, day = create_hospital(admin, 5), next_weekday(6)
    appointment_id = patient.post("/api/appointments", booking(hid, day, "09:00")).json()[
        "appointment_id"
    ]

    wait_until(lambda: receiver.events(appointment_id), timeout=15)
    event_id = receiver.events(appointment_id)[0]["id"]

    def dead(webhook_id: str, state: str = "dead") -> list[dict]:
        log = deliveries(admin, webhook_id, state=state)
        return [d for d in log if d["event_id"] == event_id]

    wait_until(lambda: dead(hook["webhook_id"]) and dead(moved["webhook_id"]), timeout=30)
    for webhook_id, rx, status, error in (
        (hook["webhook_id"], receiver, 503, "HTTP 503"),
        (moved["webhook_id"], redirector, 307, "redirect not followed"),
    ):
        (found,) = dead(webhook_id)
        assert found["attempt_count"] == MAX_ATTEMPTS and found["dead_reason"] == "max attempts"
        assert [a["status_code"] for a in found["attempts"]] == [status] * MAX_ATTEMPTS
        assert {a["error"] for a in found["attempts"]} == {error}
        assert dead(webhook_id, "pending") == []
        assert len(rx.events(appointment_id)) == MAX_ATTEMPTS
    time.sleep(BACKOFF * 2**MAX_ATTEMPTS)
    assert len(receiver.events(appointment_id)) == MAX_ATTEMPTS  # nothing after dead
    assert all(r["path"] == "/hooks" for r in redirector.requests)  # the redirect not followed


DIE_AFTER_THE_CHANGE = """
import os, sys
import booking_service
from booking_service.core import booking
from booking_service.core.requests import BookAppointment
from shared.auth import Principal
from shared.clock import utcnow
from shared.config import Config

mongo_url, db, redis_url, schedule_url, hospital_id, day = sys.argv[1:]
cfg = Config(mongo_url=mongo_url, mongo_db=db, redis_url=redis_url,
             schedule_service_url=schedule_url)
app = booking_service.create_app(cfg, start_reconciler=False)
assert "booking.webhooks_worker" not in app.extensions  # this process delivers nothing
made = booking.book(app.extensions["booking.ctx"], Principal("ghost", "", "admin"),
                    BookAppointment(hospital_id=hospital_id, date=day, slot="11:00",
                                    patient={"name": "Ghost", "phone": "+8801000000001"}),
                    utcnow())
print(made["appointment_id"], flush=True)
os._exit(9)  # dies right after the change: its event is only in the appointment's outbox
"""


def test_3_a_change_by_a_process_that_dies_at_once_is_still_delivered(
    admin, subscribe, stack, mongo_url, mongo_db_name, redis_url, db
):
    _, receiver = subscribe(["appointment.created"])
    hid, day = create_hospital(admin, 5), next_weekday(6)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DIE_AFTER_THE_CHANGE,
            mongo_url,
            mongo_db_name,
            redis_url,
            stack.schedule_url,
            hid,
            str(day),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 9, proc.stderr
    appointment_id = proc.stdout.split()[0]
    wait_until(lambda: receiver.events(appointment_id), timeout=15)
    (created,) = receiver.events(appointment_id)
    assert created["type"] == "appointment.created" and created["data"]["serial"] == 1
    assert receiver.bad == []
    wait_until(
        lambda: "outbox" not in db.appointments.find_one({"_id": ObjectId(appointment_id)}),
        timeout=10,
    )
    assert "outbox_pending" not in db.appointments.find_one({"_id": ObjectId(appointment_id)})


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def test_4_a_process_killed_during_a_delivery_leaves_it_to_another(
    admin, patient, subscribe, stack, db
):
    hook, receiver = subscribe(["appointment.created"], lambda _id, n: "hang" if n == 1 else 200)
    hid, day = create_hospital(admin, 5), next_weekday(6)
    appointment_id = patient.post("/api/appointments", booking(hid, day, "09:00")).json()[
        "appointment_id"
    ]
    wait_until(lambda: receiver.events(appointment_id), timeout=15)
    event_id = receiver.events(appointment_id)[0]["id"]
    leased = db.webhook_deliveries.find_one({"_id": f"{event_id}:{hook['webhook_id']}"})
    assert leased["state"] == "pending" and leased["lease_owner"]
    pid = int(leased["lease_owner"].split(":")[1])
    master = stack.services["booking"].pid
    assert _parent_of(pid) == master  # a worker process of the running booking service
    os.kill(pid, signal.SIGKILL)  # dies during the attempt: no outcome was recorded
    killed_at = time.monotonic()
    receiver.release.set()

    wait_until(lambda: len(receiver.events(appointment_id)) == 2, timeout=LEASE + 15)
    assert time.monotonic() - killed_at >= LEASE - 1.5  # not before the lease ran out
    # The same webhook-id, twice at most.
    assert receiver.ids(appointment_id) == [event_id, event_id]
    assert receiver.bad == []
    wait_until(
        lambda: delivery_of(admin, hook["webhook_id"], event_id)["state"] == "delivered",
        timeout=10,
    )
    found = delivery_of(admin, hook["webhook_id"], event_id)
    lost, done = found["attempts"]
    assert lost["status_code"] is None and "lease expired" in lost["error"]
    assert done["status_code"] == 200
    time.sleep(1)
    assert len(receiver.events(appointment_id)) == 2
    # gunicorn replaced the killed worker: the service answers as before.
    wait_until(lambda: admin.get("/api/webhooks").status_code == 200, timeout=30)


# --- The relay's storage, against the MongoDB the system runs on -------------------------


@pytest.fixture
def relay_db(mongo_url, mongo_db_name):
    client = MongoClient(mongo_url, tz_aware=True)
    name = f"{mongo_db_name}_relay"
    yield client[name]
    client.drop_database(name)
    client.close()


def test_relay_queues_each_event_once_and_never_drops_one_pushed_meanwhile(relay_db):
    hooks = WebhookStore(relay_db)
    store, sources = DeliveryStore(relay_db), OutboxSources(relay_db)
    hook = {"_id": ObjectId(), "url": "http://127.0.0.1:9/", "active": True, "created_ms": 0}
    hook["events"] = ["appointment.created", "appointment.cancelled", "waitlist.offered"]
    hooks.insert(hook)
    now = utcnow()

    def push(col, oid, kind, version=None):
        made = outbox.event(kind, {"id": str(oid), "version": version}, now)
        update = {"$inc": {"version": 1}} if version is not None else {"$set": {}}
        col.update_one({"_id": oid}, outbox.with_event(update, made))
        return made

    appointment, entry = ObjectId(), ObjectId()
    relay_db.appointments.insert_one({"_id": appointment, "version": 0})
    relay_db.waitlist.insert_one({"_id": entry})
    first = push(relay_db.appointments, appointment, "appointment.created", 1)
    offered = push(relay_db.waitlist, entry, "waitlist.offered")

    for kind in OutboxSources.KINDS:
        (doc,) = sources.pending(kind, 10)
        # The same outbox relayed twice (two processes): each event queued once.
        assert relay_document(store, sources, [hook], kind, doc, 1000) == 1
        assert relay_document(store, sources, [hook], kind, doc, 1000) == 0
    assert sources.pending("appointment", 10) == [] and sources.pending("waitlist", 10) == []
    assert relay_db.webhook_deliveries.count_documents({}) == 2
    queued = relay_db.webhook_deliveries.find_one({"_id": f"{first['id']}:{hook['_id']}"})
    assert (queued["seq"], queued["subject"]) == (1, f"appointment:{appointment}")
    assert orjson.loads(queued["payload"]) == first
    assert relay_db.webhook_deliveries.find_one({"_id": f"{offered['id']}:{hook['_id']}"})

    # An event pushed after the relay read the document survives its clearing.
    second = push(relay_db.appointments, appointment, "appointment.cancelled", 2)
    (read,) = sources.pending("appointment", 10)
    third = push(relay_db.appointments, appointment, "appointment.cancelled", 3)
    assert relay_document(store, sources, [hook], "appointment", read, 2000) == 1
    (left,) = sources.pending("appointment", 10)
    assert outbox.events_of(left) == [third]
    relay_db.waitlist.update_one({"_id": entry}, {"$set": {"x": 1}})
    late = push(relay_db.waitlist, entry, "waitlist.offered")
    (read,) = sources.pending("waitlist", 10)
    later = push(relay_db.waitlist, entry, "waitlist.offered")
    assert relay_document(store, sources, [hook], "waitlist", read, 2000) == 1
    (left,) = sources.pending("waitlist", 10)
    assert outbox.events_of(left) == [later]
    assert late["id"] != later["id"] and second["id"] != third["id"]
