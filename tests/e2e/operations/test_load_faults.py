"""Faults and restarts under a steady booking load, against real servers.

Each test runs a system of its own: its own MongoDB (nx-27017 in a tmp dir), its own Redis
(no AOF) and its own three services, so it may kill -9 and restart the databases, and stop
and start booking-service processes, without touching anything else. Every loop is bounded
in requests and in time; everything listens on 127.0.0.1 only.

1. kill -9 Redis, then kill -9 MongoDB, each restarted on the same port (and, for MongoDB,
   the same data), while 8 threads book: nothing over capacity, no confirmed booking lost,
   serials unique, counts converge to MongoDB's, no pending appointment left behind.
2. A rolling restart of the booking service (two processes, SIGTERM one at a time) while
   8 threads book with an Idempotency-Key each and fail over to the other process on a
   connection error only: no booking lost or doubled, no 5xx answer.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
from pymongo import MongoClient
from pymongo.database import Database

from devstack.servers import MongoServer, RedisServer, ServiceProcess
from devstack.stack import Stack
from tests.helpers import TEST_ENV, Api, hospital_doc, seeded_admin, wait_until

THREADS = 8
CAPACITY = 3
SLOTS = ("09:00", "10:00", "11:00")
DAYS = 12
REQUEST_TIMEOUT = 20.0


# ---------------------------------------------------------------- a private system


@dataclass
class System:
    """A private system: its own MongoDB, Redis and services, and a new hospital to book
    (new_hospital: its id and the dates to book)."""

    stack: Stack
    mongo_server: MongoServer
    redis_server: RedisServer
    db: Database
    admin: Api
    hospital_id: str
    days: list[str]
    extra: list[ServiceProcess] = field(default_factory=list)


@contextmanager
def private_system(base: Path, db_name: str) -> Iterator[System]:
    """Start MongoDB, Redis and the stack on free loopback ports and create the hospital;
    stop all of it after."""
    mongo_server = MongoServer(base / "mongo" / "data")
    redis_server = RedisServer(base / "redis", appendonly=False)
    stack: Stack | None = None
    client: MongoClient | None = None
    system: System | None = None
    try:
        mongo_server.start()
        redis_server.start()
        stack = Stack(
            base / "stack",
            mongo_url=mongo_server.url,
            redis_url=redis_server.url,
            workers=2,
            threads=4,
            extra_env=dict(TEST_ENV, MONGO_DB=db_name),
        )
        stack.start()
        client = MongoClient(mongo_server.url, tz_aware=True, serverSelectionTimeoutMS=10_000)
        admin = seeded_admin(stack.gateway_url)
        hospital_id, days = new_hospital(admin)
        system = System(
            stack, mongo_server, redis_server, client[db_name], admin, hospital_id, days
        )
        yield system
    finally:
        for proc in system.extra if system else []:
            proc.stop()
        if stack is not None:
            stack.stop()
        redis_server.stop()
        mongo_server.stop()
        if client is not None:
            client.close()


def new_hospital(admin: Api) -> tuple[str, list[str]]:
    """A hospital open every day with SLOTS of CAPACITY places, and the DAYS dates to book."""
    resp = admin.post(
        "/api/dynamic-slots/hospitals",
        hospital_doc(max_appointments_per_slot=CAPACITY, advance_booking_days=60),
    )
    assert resp.status_code == 201, resp.text
    today = datetime.now(ZoneInfo("Asia/Dhaka")).date()
    days = [str(today + timedelta(days=2 + i)) for i in range(DAYS)]
    return resp.json()["hospital_id"], days


class Targets:
    """Which slot a request asks for: dates open one after another over the load's duration,
    so slots keep filling up (201s, then 409s) from the first second to the last."""

    def __init__(self, days: list[str], duration: float):
        self.days = days
        self.duration = duration

    def opening(self, k: int) -> float:
        """Seconds into the load when the k-th date (from 0) starts being asked for."""
        return k * self.duration / len(self.days)

    def pick(self, rng: random.Random, elapsed: float) -> tuple[str, str]:
        opened = min(len(self.days), 1 + int(elapsed / self.duration * len(self.days)))
        if rng.random() < 0.6:
            day = self.days[opened - 1]
        else:
            day = rng.choice(self.days[:opened])
        return day, rng.choice(SLOTS)


class Phases:
    """The phases of a load run: the one it is in (`now`) and when each began, in seconds after
    the run's start `t0`; the run stops at `stop_at`."""

    def __init__(self, first: str, seconds: float) -> None:
        self.now = first
        self.timeline: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self.stop_at = self.t0 + seconds

    def enter(self, phase: str) -> None:
        self.now = phase
        self.timeline.append((time.monotonic() - self.t0, phase))

    def __str__(self) -> str:
        return ", ".join(f"{t:.1f} s {p}" for t, p in self.timeline)


def phone_for(worker: int, n: int) -> str:
    """A distinct phone per logical booking."""
    return f"+88019{worker:02d}{n:06d}"


def booking_body(hospital_id: str, day: str, slot: str, phone: str) -> dict:
    return {
        "hospital_id": hospital_id,
        "date": day,
        "slot": slot,
        "patient": {"name": "Load Tester", "phone": phone},
    }


@dataclass
class Outcome:
    """One HTTP exchange (or transport failure) as the client saw it."""

    phase: str
    url: str
    phone: str
    day: str
    slot: str
    status: int | None  # None: no HTTP answer (transport error)
    content_type: str = ""
    body: object = None
    error: str = ""
    replayed: bool = False
    attempt: int = 1
    took: float = 0.0


def exchange(
    session: requests.Session, url: str, token: str, body: dict, key: str | None
) -> tuple[requests.Response | None, str]:
    """POST one booking; (response, "") or (None, exception class name)."""
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        return (
            session.post(
                url + "/api/appointments", json=body, headers=headers, timeout=REQUEST_TIMEOUT
            ),
            "",
        )
    except requests.ConnectionError as exc:
        text = str(exc)
        if "refused" in text:
            return None, "ConnectionError(refused)"
        if "aborted" in text or "reset" in text or "RemoteDisconnected" in text:
            return None, "ConnectionError(dropped)"
        return None, "ConnectionError(other)"
    except requests.RequestException as exc:
        return None, type(exc).__name__


def fill(outcome: Outcome, resp: requests.Response | None, error: str) -> Outcome:
    if resp is None:
        outcome.error = error
        return outcome
    outcome.status = resp.status_code
    outcome.content_type = resp.headers.get("Content-Type", "")
    outcome.replayed = resp.headers.get("Idempotent-Replayed") == "true"
    try:
        outcome.body = resp.json()
    except ValueError:
        outcome.body = resp.text[:300]
    return outcome


def shape_problem(o: Outcome) -> str | None:
    """Why a non-2xx answer is not the contract's error document (None when it is)."""
    if o.status is None or o.status < 300:
        return None
    body = o.body
    if not o.content_type.startswith("application/json") or not isinstance(body, dict):
        return f"{o.status} not JSON: {o.content_type!r} {body!r}"
    if body.get("code") != o.status:
        return f"{o.status} with code {body.get('code')!r}: {body!r}"
    for name in ("status", "message", "error"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{o.status} without {name}: {body!r}"
    return None


def run_threads(worker: Callable[[int], None], count: int, limit: float) -> float:
    """Run `worker(i)` in `count` threads; every worker must end by itself within `limit`."""
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(count)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, limit - (time.monotonic() - started)))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"load threads still running after {limit} s: {alive}"
    return time.monotonic() - started


# ---------------------------------------------------------------- MongoDB's truth


def truth(db: Database, hospital_id: str) -> list[dict]:
    return list(db.appointments.find({"hospital_id": hospital_id}))


def confirmed_counts(docs: list[dict]) -> dict[tuple[str, str], int]:
    counts: Counter = Counter()
    for d in docs:
        if d["status"] == "confirmed":
            counts[(d["date"], d["slot_start"])] += 1
    return dict(counts)


def assert_capacity_and_serials(docs: list[dict]) -> None:
    """(a) no slot over capacity, (c) serials unique per slot, within 1..capacity."""
    serials: dict[tuple[str, str], list[int]] = defaultdict(list)
    for d in docs:
        if d["status"] == "confirmed":
            serials[(d["date"], d["slot_start"])].append(d["serial"])
    over = {k: len(v) for k, v in serials.items() if len(v) > CAPACITY}
    assert not over, f"slots over capacity {CAPACITY}: {over}"
    dup = {k: sorted(v) for k, v in serials.items() if len(set(v)) != len(v)}
    assert not dup, f"serials repeated within a slot: {dup}"
    bad = {k: v for k, v in serials.items() if not all(1 <= s <= CAPACITY for s in v)}
    assert not bad, f"serials outside 1..{CAPACITY}: {bad}"


def assert_acknowledged_exist(docs: list[dict], outcomes: list[Outcome]) -> int:
    """(b) every 201 is a confirmed appointment in MongoDB, as the client was told."""
    by_id = {str(d["_id"]): d for d in docs}
    acknowledged = [o for o in outcomes if o.status == 201]
    lost, wrong = [], []
    for o in acknowledged:
        appt = o.body
        doc = by_id.get(appt["appointment_id"])
        if doc is None or doc["status"] != "confirmed":
            lost.append((appt["appointment_id"], doc and doc["status"]))
            continue
        seen = (doc["date"], doc["slot_start"], doc["serial"], doc["patient"]["phone"])
        told = (appt["date"], appt["slot"]["start"], appt["serial"], o.phone)
        if seen != told:
            wrong.append((appt["appointment_id"], told, seen))
    assert not lost, f"{len(lost)} booking(s) answered 201 but not confirmed in MongoDB: {lost}"
    assert not wrong, f"201 answers that disagree with MongoDB: {wrong}"
    return len(acknowledged)


def assert_counts_converge(gateway: Api, db: Database, hospital_id: str, days: list[str]):
    """(d) every date's counts shown by /api/availability equal MongoDB's confirmed counts."""
    last: dict = {}

    def equal() -> bool:
        expected = confirmed_counts(truth(db, hospital_id))
        for day in days:
            resp = gateway.get(f"/api/availability/{hospital_id}/{day}")
            if resp.status_code != 200:
                last[day] = resp.status_code
                return False
            body = resp.json()
            shown = {s: v["booked"] for s, v in body["slots"].items()}
            wanted = {s: expected.get((day, s), 0) for s in SLOTS}
            if body["counts"] != "live" or shown != wanted:
                last[day] = {"counts": body["counts"], "shown": shown, "mongo": wanted}
                return False
        return True

    try:
        return wait_until(equal, timeout=20, step=0.5)
    except AssertionError as exc:
        raise AssertionError(f"availability never matched MongoDB: {last}") from exc


def no_pending(db: Database, hospital_id: str) -> bool:
    return db.appointments.count_documents({"hospital_id": hospital_id, "status": "pending"}) == 0


def tally(outcomes: list[Outcome]) -> dict[str, Counter]:
    """Per phase: how many answers had which status (transport errors by name)."""
    out: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        out[o.phase][o.status if o.status is not None else o.error] += 1
    return out


def print_tally(title: str, outcomes: list[Outcome]) -> None:
    print(f"\n{title}")
    for phase, counts in tally(outcomes).items():
        line = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=str))
        print(f"  {phase:<14} {sum(counts.values()):>5} requests  {line}")


# ---------------------------------------------------------------- 1. databases killed


def test_kill_9_redis_then_mongodb_under_booking_load(tmp_path):
    load_seconds = 20.0
    with private_system(tmp_path, "loadfaults") as system:
        stack, db, token = system.stack, system.db, system.admin.token
        hospital_id, days = system.hospital_id, system.days
        targets = Targets(days, load_seconds)
        # half the threads call the booking service directly, half go through the gateway
        urls = [stack.booking_url, stack.gateway_url]
        phases = Phases("before", load_seconds)
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        t0, stop_at, enter = phases.t0, phases.stop_at, phases.enter

        def worker(i: int) -> None:
            rng = random.Random(i)
            session = requests.Session()
            url = urls[i % len(urls)]
            n = 0
            while time.monotonic() < stop_at and n < 5000:
                n += 1
                day, slot = targets.pick(rng, time.monotonic() - t0)
                phone = phone_for(i, n)
                o = Outcome(phases.now, url, phone, day, slot, None)
                sent = time.monotonic()
                resp, error = exchange(
                    session, url, token, booking_body(hospital_id, day, slot, phone), None
                )
                fill(o, resp, error)
                o.took = time.monotonic() - sent
                with lock:
                    outcomes.append(o)
                if resp is None:
                    time.sleep(0.05)

        def faults() -> None:
            # phases label requests by the moment they were sent
            # each fault strikes just after a fresh date opened, while its slots are being
            # booked, so some bookings are caught between their MongoDB and Redis writes
            time.sleep(max(0.0, t0 + targets.opening(2) + 0.03 - time.monotonic()))
            enter("redis_down")
            system.redis_server.kill()
            time.sleep(1.5)
            enter("redis_restart")
            system.redis_server.start()  # same port, empty: no AOF
            enter("redis_back")
            time.sleep(max(0.0, t0 + targets.opening(6) + 0.03 - time.monotonic()))
            enter("mongo_down")
            system.mongo_server.kill()
            # longer than MONGO_TIMEOUT_MS (3 s), so waiting requests give up with a 503
            time.sleep(4.0)
            enter("mongo_restart")
            system.mongo_server.start()  # same port, same data directory
            enter("mongo_back")

        reads: list[Outcome] = []

        def reader() -> None:
            # a page showing the newest date's slots, as users keep reading it; these reads
            # also restore the schedule version key that Redis lost (the schedule service's
            # configuration cache puts it back), as they would in production
            session = requests.Session()
            while time.monotonic() < stop_at:
                day = targets.days[-1]
                o = Outcome(phases.now, stack.gateway_url, "", day, "", None)
                try:
                    resp = session.get(
                        f"{stack.gateway_url}/api/dynamic-slots/available/{hospital_id}/{day}",
                        timeout=REQUEST_TIMEOUT,
                    )
                    fill(o, resp, "")
                except requests.RequestException as exc:
                    o.error = type(exc).__name__
                reads.append(o)
                time.sleep(0.25)

        driver = threading.Thread(target=faults, daemon=True)
        driver.start()
        read_thread = threading.Thread(target=reader, daemon=True)
        read_thread.start()
        took = run_threads(worker, THREADS, load_seconds + REQUEST_TIMEOUT + 10)
        driver.join(timeout=30)
        read_thread.join(timeout=REQUEST_TIMEOUT + 5)
        assert not driver.is_alive(), "the fault driver did not finish"
        assert not read_thread.is_alive(), "the reader did not finish"
        assert phases.now == "mongo_back"
        print_tally(f"kill -9 under load: {len(outcomes)} requests in {took:.1f} s", outcomes)
        print(f"  timeline: {phases}")
        slowest = max(outcomes, key=lambda o: o.took)
        print(f"  slowest answer: {slowest.took:.1f} s ({slowest.phase}, {slowest.status})")

        print_tally(f"reads of the available slots during the same time: {len(reads)}", reads)
        read_errors = Counter(
            (o.phase, o.status, o.body.get("message") if isinstance(o.body, dict) else o.error)
            for o in reads
            if o.status != 200
        )
        for (phase, status, message), count in sorted(read_errors.items(), key=str):
            print(f"    {phase:<14} {status} x{count}: {message}")

        # every non-2xx answer is the contract's error document
        problems = [p for o in outcomes + reads if (p := shape_problem(o))]
        assert not problems, problems[:10]
        # the services themselves stayed up: every request got an HTTP answer
        transport = [(o.phase, o.url, o.error) for o in outcomes if o.status is None]
        assert not transport, Counter(transport)
        reasons = Counter(
            (o.status, o.body.get("error")) for o in outcomes if o.status and o.status >= 300
        )
        print(f"  non-2xx reasons: {dict(reasons)}")
        messages = Counter(
            (o.phase, o.url == stack.gateway_url, o.status, o.body.get("message"))
            for o in outcomes
            if o.status and o.status >= 500
        )
        for (phase, via_gateway, status, message), count in sorted(messages.items()):
            where = "gateway" if via_gateway else "booking"
            print(f"    {phase:<14} {where:<8} {status} x{count}: {message}")
        unexpected = {k: v for k, v in reasons.items() if k[0] not in (409, 503, 504)}
        assert not unexpected, unexpected
        # bookings came back after each fault
        by_phase = tally(outcomes)
        assert by_phase["before"][201] > 0, by_phase["before"]
        assert by_phase["redis_down"][503] > 0, by_phase["redis_down"]  # the faults bit
        assert by_phase["redis_back"][201] > 0, by_phase["redis_back"]
        assert by_phase["mongo_back"][201] > 0, by_phase["mongo_back"]

        # (e) the reconciler closes what the faults left pending (3 s timeout, 0.5 s passes)
        settled = wait_until(lambda: no_pending(db, hospital_id), timeout=8)
        docs = truth(db, hospital_id)
        assert_capacity_and_serials(docs)  # (a), (c)
        acknowledged = assert_acknowledged_exist(docs, outcomes)  # (b)
        converged = assert_counts_converge(Api(stack.gateway_url), db, hospital_id, days)  # (d)
        assert no_pending(db, hospital_id)

        told_not_booked = {o.phone for o in outcomes if o.status != 201}
        silent = [
            d
            for d in docs
            if d["status"] == "confirmed" and d["patient"]["phone"] in told_not_booked
        ]
        statuses = Counter(d["status"] for d in docs)
        print(
            f"  201s: {acknowledged}, all confirmed in MongoDB; MongoDB now {dict(statuses)}; "
            f"confirmed although the client got no 201: {len(silent)}; "
            f"no pending {settled:.1f} s after the load; counts converged in {converged:.1f} s"
        )


# ---------------------------------------------------------------- 2. rolling restart


def test_rolling_restart_of_the_booking_service_under_load(tmp_path):
    load_seconds = 24.0
    with private_system(tmp_path, "rolling") as system:
        stack, db, token = system.stack, system.db, system.admin.token
        hospital_id, days = system.hospital_id, system.days
        first = stack.services["booking"]
        second = stack.extra_service("booking-b", "booking", workers=2, threads=4)
        system.extra.append(second)
        urls = [first.url, second.url]
        targets = Targets(days, load_seconds)
        phases = Phases("both_up", load_seconds)
        outcomes: list[Outcome] = []  # every attempt, retries included
        final: dict[str, Outcome] = {}  # Idempotency-Key -> the answer the client kept
        unanswered: list[str] = []
        lock = threading.Lock()
        t0, stop_at, enter = phases.t0, phases.stop_at, phases.enter

        def worker(i: int) -> None:
            rng = random.Random(100 + i)
            sessions = [requests.Session() for _ in urls]
            n = 0
            while time.monotonic() < stop_at and n < 5000:
                n += 1
                day, slot = targets.pick(rng, time.monotonic() - t0)
                phone = phone_for(i, n)
                key = f"load-{uuid.uuid4().hex}"
                body = booking_body(hospital_id, day, slot, phone)
                target = (i + n) % len(urls)
                kept = None
                give_up = time.monotonic() + 30
                for attempt in range(1, 41):
                    o = Outcome(phases.now, urls[target], phone, day, slot, None)
                    o.attempt = attempt
                    sent = time.monotonic()
                    resp, error = exchange(sessions[target], urls[target], token, body, key)
                    fill(o, resp, error)
                    o.took = time.monotonic() - sent
                    with lock:
                        outcomes.append(o)
                    retry = resp is None and error.startswith("ConnectionError")
                    # the same key again, also when the first try is still running elsewhere
                    in_progress = (
                        o.status == 409
                        and isinstance(o.body, dict)
                        and o.body.get("error") == "idempotency_key_in_progress"
                    )
                    if not (retry or in_progress) or time.monotonic() > give_up:
                        kept = o
                        break
                    target = (target + 1) % len(urls)  # a load balancer tries the other one
                    time.sleep(0.02)
                with lock:
                    if kept is None or kept.status is None:
                        unanswered.append(key)
                    if kept is not None:
                        final[key] = kept

        def rolling() -> None:
            for name, proc in (("first", first), ("second", second)):
                time.sleep(4.0)
                enter(f"{name}_stopping")
                proc.stop()  # SIGTERM: gunicorn finishes in-flight requests, then exits
                enter(f"{name}_down")
                time.sleep(1.0)
                proc.start()  # the new version, same port
                enter(f"{name}_back")

        driver = threading.Thread(target=rolling, daemon=True)
        driver.start()
        took = run_threads(worker, THREADS, load_seconds + 60)
        driver.join(timeout=60)
        assert not driver.is_alive(), "the restart driver did not finish"
        assert phases.now == "second_back"
        assert first.running and second.running

        retries = sum(1 for o in outcomes if o.attempt > 1)
        refused = Counter(o.error for o in outcomes if o.status is None)
        print_tally(
            f"rolling restart under load: {len(final)} bookings, {len(outcomes)} requests "
            f"({retries} retries) in {took:.1f} s",
            outcomes,
        )
        print(f"  timeline: {phases}")
        print(f"  transport errors (all retried on the other process): {dict(refused)}")
        in_progress = sum(
            1
            for o in outcomes
            if isinstance(o.body, dict) and o.body.get("error") == "idempotency_key_in_progress"
        )
        print(f"  retries answered 409 idempotency_key_in_progress: {in_progress}")
        kept_status = Counter(o.status for o in final.values())
        print(f"  final answers: {dict(kept_status)}")

        problems = [p for o in outcomes if (p := shape_problem(o))]
        assert not problems, problems[:10]
        assert not unanswered, f"{len(unanswered)} booking(s) never got an HTTP answer"
        # only a connection error is retried, and the restart never answers 5xx
        fivexx = [(o.phase, o.url, o.status, o.body) for o in outcomes if (o.status or 0) >= 500]
        assert not fivexx, fivexx[:10]
        other = {o.error for o in outcomes if o.status is None and "Connection" not in o.error}
        assert not other, other
        reasons = Counter(
            (o.status, o.body.get("error")) for o in final.values() if o.status != 201
        )
        print(f"  non-201 final reasons: {dict(reasons)}")
        assert set(reasons) <= {(409, "slot_full")}, reasons
        assert kept_status[201] > 0

        settled = wait_until(lambda: no_pending(db, hospital_id), timeout=8)
        docs = truth(db, hospital_id)
        assert_capacity_and_serials(docs)
        acknowledged = assert_acknowledged_exist(docs, list(final.values()))
        # a retried request never made a second appointment: one record per logical booking
        per_phone = Counter(d["patient"]["phone"] for d in docs)
        doubled = {p: c for p, c in per_phone.items() if c > 1}
        assert not doubled, doubled
        confirmed_phones = {d["patient"]["phone"] for d in docs if d["status"] == "confirmed"}
        told = {o.phone for o in final.values() if o.status == 201}
        assert confirmed_phones == told, (
            f"confirmed but not told: {confirmed_phones - told}; told: {told - confirmed_phones}"
        )
        # a replayed 201 is the same appointment as the first answer with that key
        ids_by_phone: dict[str, set] = defaultdict(set)
        for o in outcomes:
            if o.status == 201:
                ids_by_phone[o.phone].add(o.body["appointment_id"])
        assert all(len(ids) == 1 for ids in ids_by_phone.values())
        converged = assert_counts_converge(Api(stack.gateway_url), db, hospital_id, days)
        print(
            f"  201s: {acknowledged}, replays: {sum(o.replayed for o in outcomes)}; "
            f"MongoDB {dict(Counter(d['status'] for d in docs))}; no pending after "
            f"{settled:.1f} s; counts converged in {converged:.1f} s"
        )
