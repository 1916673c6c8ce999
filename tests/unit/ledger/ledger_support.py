"""A model of the ledger of places (issue 22, item 5): a hypothesis state machine over the
booking service layer (booking_service.core.*, called as booking_service/api/views.py and
the FHIR routes call it), with every way to take or free a place as a rule, and the ledger's
promises as invariants checked after every step.

The machine reaches its stores through a backend (`FakeBackend` here: tests/unit/fakes.py;
the integration twin, tests/integration/ledger/test_ledger_model_real.py, swaps in real
valkey and nx-27017), so one machine runs against both. A backend gives the core's
Context, the schedule source (publish a configuration, fence an edit), a clock, and a raw
view of the records (the gate's places, the appointments, holds and entries) for the
invariants.

Faults. Every operation rule draws a `fault` (a third of them get one), fired at the
operation's n-th write (a call of a store method that changes MongoDB or Redis, `WRITES`):
`crash` (the process dies before that write: `Crash`, a BaseException nothing in the code
catches), `error` (the store refuses it: PyMongoError / RedisError), `lost_reply` (the write
is made, then the store errs, as a timed-out reply does) or `edit` (an admin edit runs just
before that write: a race between the operation and the edit). After a crash or a store
error the ledger may be half-written until `recover` (at once, or a later rule: other
operations run on the half-done ledger meanwhile): the clock past PENDING_TIMEOUT_SECONDS,
one reconciler pass, then the strict ledger must hold again, except for what only the
clock ends (a hold's place whose record was never written, a hold record whose place is
gone): those are kept as leftovers until their time.

Invariants (`strict`: only while no fault is outstanding):
- per slot, units taken at the gate <= the slot's capacity (or what a lowering edit left
  there, going down as places are freed; a slot an edit removed has capacity 0);
- strict: every place at the gate has exactly one live owner record (an appointment
  confirmed or in its visit, a live hold, a live offer) with its units (and an
  appointment's serial), and every live owner has its place; nothing pending, moving or
  waiting for its old place to be freed;
- strict: the counts the availability read shows equal the appointments (booked) and the
  gate's holds (held, offered);
- no active appointment, move target or live hold outside the current configuration,
  unless a forced edit put it there;
- quotas: live holds and offers per patient <= HOLD_LIMIT, live waitlist entries per
  patient <= WAITLIST_LIMIT, appointments a patient made in the last hour <= BOOKING_LIMIT.
Domain errors are refusals; a 503 (ServiceUnavailable) with no fault injected or
outstanding, or any other exception, fails the machine.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import redis
from hypothesis import event, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pymongo.errors import AutoReconnect, PyMongoError

from booking_service.adapters import waitlist_store
from booking_service.adapters.hold_store import HoldState, kept_until_ms
from booking_service.adapters.repository import (
    ACTIVE,
    CANCELLED,
    CONFIRMED,
    PENDING,
    PLACED,
    epoch_ms,
)
from booking_service.adapters.waitlist_store import LIVE_ENTRIES
from booking_service.core import (
    booking,
    cancel,
    holds,
    moves,
    places,
    reconciler,
    visits,
    waitlist,
)
from booking_service.core.requests import (
    AppointmentCreateSchema,
    BookAppointment,
    HoldPlace,
    JoinWaitlist,
    MoveAppointment,
)
from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir import service as fhir_service
from booking_service.integrations.fhir.appointment_create import booking_request
from booking_service.integrations.fhir.appointments import TYPE_SYSTEM
from schedule_service.conflicts import ConflictChecker
from shared.capacity_reads import held, offered
from shared.config import Config
from shared.configurations import Configuration
from shared.errors import DomainError, ServiceUnavailable
from shared.slots import js_weekday
from tests.unit import builders
from tests.unit.builders import ADMIN, NOW, OTHER, PATIENT, STAFF, THIRD
from tests.unit.fakes import fake_context

HID = "h1"
DR = "dr"
# Today: 11:00 (2 places) and 12:00 (1); LATER days ahead: 17:00 (2). The doctor works the
# same slots, 1 place each. Holds last HOLD_SECONDS; types: `new` 2 units, `followup` 1.
MORNING, EVENING = ("11:00", "12:00"), ("17:00",)
ENDS = {"11:00": "12:00", "12:00": "13:00", "17:00": "18:00"}
CAPACITY = {"11:00": 2, "12:00": 1, "17:00": 2}
LATER = 4
HOLD_SECONDS = 120
TYPES = (None, "followup", "new")
EDITS = (
    "rename",
    "close_today",
    "close_later",
    "drop_noon",
    "narrow",
    "widen",
    "no_doctor",
    "original",
)
# The edits that race an operation: those that take something away (a day, a slot, a doctor,
# capacity), and one that changes nothing the places depend on.
RACING_EDITS = ("close_today", "close_later", "drop_noon", "narrow", "no_doctor", "rename")
PEOPLE = {p.user_id: p for p in (PATIENT, OTHER, THIRD, STAFF, ADMIN)}
PATIENTS = (PATIENT.user_id, OTHER.user_id, THIRD.user_id)
CALLERS = (*PATIENTS, STAFF.user_id)
PHONES = {
    PATIENT.user_id: ("+8801711000001", "+8801711000002"),
    OTHER.user_id: ("+8801722000001", "+8801722000002"),
    THIRD.user_id: ("+8801733000001", "+8801733000002"),
    STAFF.user_id: ("+8801744000001", "+8801744000002"),
}
HOUR = timedelta(hours=1)

# The store methods that write (MongoDB, or Redis), where a fault can be injected.
WRITES = {
    "appointments": (
        "mongo",
        {
            "insert_pending",
            "confirm",
            "close",
            "mark_released",
            "begin_move",
            "commit_move",
            "abort_move",
            "source_released",
            "move",
        },
    ),
    "holds": ("mongo", {"insert", "end", "delete_ended"}),
    "waitlist": ("mongo", {"insert", "move", "delete_ended"}),
    "capacity": (
        "redis",
        {
            "reserve",
            "hold",
            "take_hold",
            "pass_hold",
            "claim_hold_quota",
            "free_hold_quota",
            "free",
            "rebuild",
            "begin_full_rebuild",
            "finish_full_rebuild",
        },
    ),
}


def ledger_config(**changes) -> Config:
    """Small limits, so the machine reaches them."""
    settings = {
        "bcrypt_rounds": 4,
        "pending_timeout_seconds": 30,
        "reconcile_interval_seconds": 2,
        "hold_limit": 1,
        "waitlist_limit": 1,
        "booking_limit": 1,
        "hold_changes_limit": 12,
    }
    return Config(**{**settings, **changes})


def ledger_hospital(today: date, timezone: str) -> dict:
    """The machine's hospital: today's two slots and one a few days later, a doctor working
    them, a type of 2 units."""

    def day(starts: tuple[str, ...]) -> dict:
        return {"slots": [{"start": s, "end": ENDS[s], "capacity": CAPACITY[s]} for s in starts]}

    later = today + timedelta(days=LATER)
    return builders.hospital(
        "holds",
        hospital_id=HID,
        timezone=timezone,
        schedule={str(js_weekday(today)): day(MORNING), str(js_weekday(later)): day(EVENING)},
        hold_seconds=HOLD_SECONDS,
        practitioners={DR: {"name": "Dr. Model", "max_appointments_per_slot": 1}},
        version=1,
    )


def edited(original: dict, variant: str, today: date) -> dict:
    """`original` as an admin edit of kind `variant` leaves it (each from the original, so
    `original` puts back whatever another edit removed)."""
    doc = copy.deepcopy(original)
    now_key, later_key = str(js_weekday(today)), str(js_weekday(today + timedelta(days=LATER)))
    slots = doc["schedule"][now_key]["slots"]
    if variant == "rename":
        doc["hospital_name"] = "H1 (renamed)"
    elif variant == "close_today":
        del doc["schedule"][now_key]
    elif variant == "close_later":
        del doc["schedule"][later_key]
    elif variant == "drop_noon":
        doc["schedule"][now_key]["slots"] = [s for s in slots if s["start"] != "12:00"]
    elif variant == "narrow":
        slots[0]["capacity"] = 1
    elif variant == "widen":
        slots[0]["capacity"] = 3
        doc["schedule"][later_key]["slots"][0]["capacity"] = 3
    elif variant == "no_doctor":
        del doc["practitioners"]
    return doc


# --- clocks and backends -------------------------------------------------------------------


class FakeClock:
    """The model's clock: the core's `now`, the fake gate's clock (hold expiries) and the
    reconciler's `utcnow`, moved on together."""

    can_advance = True

    def __init__(self, capacity, start: datetime = NOW):
        self.capacity = capacity
        self.now = start
        capacity.clock_ms = epoch_ms(start)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.capacity.clock_ms = epoch_ms(self.now)

    def gate_ms(self) -> int:
        return self.capacity.clock_ms


class FakeBackend:
    """One example's stores over tests/unit/fakes.py (fake_context)."""

    timezone = "Asia/Dhaka"

    def __init__(self, config: Config):
        self.ctx, self.schedules = fake_context(config)
        self.clock = FakeClock(self.ctx.capacity)

    def publish(self, doc: dict) -> None:
        """The configuration written and its version published (schedule_service._apply)."""
        self.schedules.publish(doc)

    def fence(self, hospital_id: str) -> None:
        """An edit begins: readers go to the source (the version key `editing`)."""
        self.schedules.begin_edit(hospital_id)

    def load(self, hospital_id: str) -> dict:
        return copy.deepcopy(self.schedules.docs[hospital_id])

    def appointments(self) -> list[dict]:
        return _by_id(self.ctx.appointments.docs.values())

    def holds(self) -> list[dict]:
        return _by_id(self.ctx.holds.docs.values())

    def entries(self) -> list[dict]:
        return _by_id(self.ctx.waitlist.docs.values())

    def gate(self, hospital_id: str, pid: str | None, day: str, slot: str) -> dict:
        """A slot's places as the gate keeps them, expired holds included: field -> (serial,
        units, expires_ms: 0 for an appointment)."""
        return dict(self.ctx.capacity.places.get((hospital_id, pid, day, slot), {}))

    def ready(self, hospital_id: str, pid: str | None, day: str) -> bool:
        """Whether the gate has the day's records (else it answers NOT_READY and the day is
        rebuilt from MongoDB before any place is taken)."""
        return (hospital_id, pid, day) in self.ctx.capacity.ready

    def lose_day(self, hospital_id: str, pid: str | None, day: str) -> None:
        """Redis loses a day's records, and with them the marker that every day's records
        are complete (so readers do not vouch for the lost day)."""
        capacity = self.ctx.capacity
        for key in [k for k in capacity.places if k[:3] == (hospital_id, pid, day)]:
            del capacity.places[key]
        capacity.ready.discard((hospital_id, pid, day))
        capacity.complete = False

    def lose_everything(self) -> None:
        """Redis loses every capacity record and quota (rate-limit counters and published
        versions are not the ledger's: the real twin keeps them too)."""
        self.ctx.capacity.lose_everything()

    def close(self) -> None:
        pass


def _by_id(docs) -> list[dict]:
    return sorted((copy.deepcopy(d) for d in docs), key=lambda d: d["_id"])


# --- faults --------------------------------------------------------------------------------


class Crash(BaseException):
    """The process dies here: nothing after it runs, no handler of the code catches it."""


@dataclass(frozen=True)
class Fault:
    kind: str  # crash, error, lost_reply, edit
    at: int  # the operation's n-th write
    edit: str = "rename"  # kind edit: which edit races the operation
    forced: bool = False
    recover: bool = False  # recover at once (else other steps run on the half-done ledger)


# A third of the operations run with a fault at one of their first writes (an edit racing
# them, two times in five).
FAULTS = st.one_of(
    st.none(),
    st.none(),
    st.builds(
        Fault,
        kind=st.sampled_from(("crash", "error", "lost_reply", "edit", "edit")),
        at=st.integers(1, 4),
        edit=st.sampled_from(RACING_EDITS),
        forced=st.booleans(),
        recover=st.booleans(),
    ),
)


class Injector:
    """Counts one operation's writes and fires its armed fault at the n-th."""

    def __init__(self, run_edit: Callable[[str, bool], object]):
        self.run_edit = run_edit
        self.fault: Fault | None = None
        self.fired: Fault | None = None
        self.writes = 0

    def arm(self, fault: Fault | None) -> None:
        self.fault, self.fired, self.writes = fault, None, 0

    def disarm(self) -> Fault | None:
        fired, self.fault, self.fired = self.fired, None, None
        return fired

    def around(self, store: str, name: str, call: Callable[[], object]):
        if self.fault is None:
            return call()
        self.writes += 1
        if self.writes != self.fault.at:
            return call()
        fault, self.fault = self.fault, None
        self.fired = fault
        note(f"fault {fault.kind} at write {fault.at}: {name}")
        error = AutoReconnect if store == "mongo" else redis.ConnectionError
        if fault.kind == "crash":
            raise Crash(f"the process died before {name}")
        if fault.kind == "error":
            raise error(f"injected: {name} failed")
        if fault.kind == "lost_reply":
            call()
            raise error(f"injected: {name} was made, its reply lost")
        self.run_edit(fault.edit, fault.forced)
        return call()


class Faulty:
    """A store whose writes pass the injector."""

    def __init__(self, target, store: str, writes: set[str], injector: Injector):
        self._target, self._store, self._writes, self._injector = target, store, writes, injector

    def __getattr__(self, name: str):
        attr = getattr(self._target, name)
        if name not in self._writes:
            return attr
        label = f"{type(self._target).__name__}.{name}"

        def write(*args, **kwargs):
            return self._injector.around(self._store, label, lambda: attr(*args, **kwargs))

        return write


# --- the booking service's API, as the schedule service's conflict check calls it ----------


class _Answer:
    def __init__(self, status: int, body: dict):
        self.status_code, self._body = status, body

    def json(self) -> dict:
        return self._body


class BookingApi:
    """A requests.Session stand-in for schedule_service.conflicts.ConflictChecker: its GETs
    answered by the service layer the booking service's views call."""

    def __init__(self, machine: LedgerModel):
        self.machine = machine

    def get(self, url: str, params=None, headers=None, timeout=None) -> _Answer:
        path = urlsplit(url).path
        query = dict(params or {})
        for name in ("page", "per_page"):
            if name in query:
                query[name] = int(query[name])
        ctx = self.machine.ctx
        if path == "/api/appointments":
            return _Answer(200, booking.list_appointments(ctx, ADMIN, query))
        if path == "/api/holds" and hasattr(holds, "list_holds"):
            return _Answer(200, holds.list_holds(ctx, ADMIN, query, self.machine.clock()))
        raise AssertionError(f"the conflict check asks GET {path}: answer it in BookingApi")


# --- the ledger as the records show it -----------------------------------------------------


@dataclass(frozen=True)
class Owner:
    place: tuple
    units: int
    serial: int | None  # an appointment's (a hold's changes when a rebuild restores it)
    until_ms: int | None  # a hold's: when the gate lets its place go


@dataclass(frozen=True)
class Problem:
    key: tuple
    text: str
    until_ms: int | None = None  # only the clock ends it (then a crash may leave it)


@dataclass(frozen=True)
class Records:
    """The records after a step, read once: the owner records, and the gate's places that
    are live (`gate`: place -> field -> (serial, units, expires_ms: 0 for an appointment))
    of the days whose records it has (`ready`: (doctor, date))."""

    appointments: list[dict]
    holds: list[dict]
    entries: list[dict]
    gate: dict[tuple, dict[str, tuple[int, int, int]]]
    ready: frozenset
    now_ms: int  # by the gate's clock

    def taken(self, where: tuple) -> int:
        return sum(units for _, units, _ in self.gate[where].values())

    def live_holds(self) -> list[dict]:
        """Holds and offers recorded live whose places the gate keeps (till their grace)."""
        return [
            d for d in self.holds if d["state"] == HoldState.HELD and kept_until_ms(d) > self.now_ms
        ]

    def used_holds(self) -> set[str]:
        """Holds an active appointment took its place from."""
        return {
            d["hold_id"] for d in self.appointments if d["status"] in ACTIVE and d.get("hold_id")
        }


def place_of(doc: dict) -> tuple:
    return doc.get("practitioner_id"), doc["date"], doc["slot_start"]


def _key(kind: str, field: str) -> tuple:
    """A problem's key: a hold's (whatever the problem: a crash leaves it till its time),
    else the kind and the appointment."""
    return ("hold", field) if field.startswith(("h:", "o:")) else (kind, field)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LedgerModel(RuleBasedStateMachine):
    """The ledger of places under every operation, fault and edit (see the module's doc)."""

    backend_factory: Callable[[Config], object] = FakeBackend
    config: Config = ledger_config()

    def __init__(self):
        super().__init__()
        self.backend = type(self).backend_factory(self.config)
        self.injector = Injector(self._edit)
        raw = self.backend.ctx
        wrapped = {
            name: Faulty(getattr(raw, name), store, names, self.injector)
            for name, (store, names) in WRITES.items()
        }
        self.ctx = dataclasses.replace(raw, **wrapped)
        self.clock = self.backend.clock
        self._saved = [(m, m.utcnow) for m in (places, reconciler, waitlist_store)]
        for module, _ in self._saved:
            module.utcnow = self.clock
        self.today = self.clock().astimezone(ZoneInfo(self.backend.timezone)).date()
        days = {self.today.isoformat(): MORNING}
        days[(self.today + timedelta(days=LATER)).isoformat()] = EVENING
        self.days = list(days)
        self.places = [
            (pid, d, s) for pid in (None, DR) for d, starts in days.items() for s in starts
        ]
        self.original = ledger_hospital(self.today, self.backend.timezone)
        self.backend.publish(self.original)
        self.checker = ConflictChecker(BookingApi(self), "http://booking", (1.0, 1.0))
        self.outstanding = False  # a crash or a store error may have left the ledger half-done
        self.leftovers: dict[tuple, int] = {}  # problem key -> when the clock ends it
        self.forced: set[tuple] = set()  # (kind, id, place) forced edits left outside
        self.allowance: dict[tuple, int] = {}  # place -> units a lowering edit left there
        self.desk_accepted: set[str] = set()  # hold ids of offers a desk accepted
        self.last_sweep = self.clock() - timedelta(minutes=10)
        self._seen: Records | None = None

    def teardown(self):
        for module, original in self._saved:
            module.utcnow = original
        self.backend.close()

    # --- running an operation --------------------------------------------------------------

    def _op(self, name: str, call: Callable[[], object], fault: Fault | None):
        """Run one operation of the service layer with `fault` (if any); its answer, None
        when it was refused or died. Each starts a second after the last (requests come one
        after another: the rebuild orders places by when they were taken)."""
        if self.clock.can_advance:
            self.clock.advance(1)
        self.injector.arm(fault)
        answer, outcome = None, "ok"
        try:
            answer = call()
        except Crash:
            outcome = "crash"
        except DomainError as exc:
            outcome = exc.reason
            fired = self.injector.fired
            if (
                isinstance(exc, ServiceUnavailable)
                and not self.outstanding
                and (fired is None or fired.kind == "edit")
            ):
                raise AssertionError(f"{name}: 503 with no fault: {exc.message}") from exc
        except (PyMongoError, redis.RedisError) as exc:
            fired = self.injector.fired
            if fired is None or fired.kind not in ("error", "lost_reply"):
                raise
            outcome = f"raw {type(exc).__name__}"
        finally:
            fired = self.injector.disarm()
            self._seen = None
        event(f"{name}: {outcome}" + (f" ({fired.kind})" if fired else ""))
        note(f"{name}: {outcome}")
        if fired is not None and fired.kind != "edit":
            self.outstanding = True
            if fired.recover:
                self.recover()
        return answer

    def _caller(self, user_id: str):
        return PEOPLE[user_id]

    def _patient(self, user_id: str, phone: int) -> dict:
        return {"name": f"Patient {user_id}", "phone": PHONES[user_id][phone]}

    @staticmethod
    def _pick(docs: list[dict], index: int, likely: Callable[[dict], bool] | None = None):
        """The index-th record (round the list), of those `likely` to be taken when there
        are any, else of all (refusals are rules too)."""
        pool = [d for d in docs if likely(d)] if likely else []
        return (pool or docs)[index % len(pool or docs)]

    # --- rules: taking and freeing places --------------------------------------------------

    @rule(
        who=st.sampled_from(CALLERS),
        phone=st.integers(0, 1),
        place=st.integers(0, 5),
        kind=st.sampled_from(TYPES),
        api=st.sampled_from(("rest", "fhir")),
        fault=FAULTS,
    )
    def book(self, who, phone, place, kind, api, fault):
        pid, day, slot = self.places[place]
        caller, patient = self._caller(who), self._patient(who, phone)

        def call():
            now = self.clock()
            if api == "rest":
                body = {"hospital_id": HID, "date": day, "slot": slot, "patient": patient}
                body |= {"practitioner_id": pid} if pid else {}
                body |= {"appointment_type": kind} if kind else {}
                loaded = AppointmentCreateSchema().load(body)  # what the view's schema does
            else:
                raw = fhir_appointment(pid, day, slot, patient, kind)
                loaded = fhir_service.booking_body(self.ctx, booking_request(raw), now)
            return booking.book_once(self.ctx, caller, BookAppointment(**loaded), now)[1]

        answer = self._op(f"book ({api})", call, fault)
        self._check_answer(answer, CONFIRMED)

    @rule(
        who=st.sampled_from(CALLERS),
        place=st.integers(0, 5),
        kind=st.sampled_from(TYPES),
        fault=FAULTS,
    )
    def hold(self, who, place, kind, fault):
        pid, day, slot = self.places[place]
        request = HoldPlace(HID, day, slot, pid, kind)
        self._op(
            "hold", lambda: holds.hold(self.ctx, self._caller(who), request, self.clock()), fault
        )

    @precondition(lambda self: self.records().holds)
    @rule(
        i=st.integers(0, 7),
        by_desk=st.booleans(),
        phone=st.integers(0, 1),
        fault=FAULTS,
    )
    def book_hold(self, i, by_desk, phone, fault):
        doc = self._pick(self.records().holds, i, lambda d: d["state"] == HoldState.HELD)
        caller = STAFF if by_desk else self._caller(doc["user_id"])
        pid, day, slot = place_of(doc)
        body = {
            "hospital_id": HID,
            "date": day,
            "slot": slot,
            "patient": self._patient(doc["user_id"], phone),
            "hold_id": str(doc["_id"]),
        }
        body |= {"practitioner_id": pid} if pid else {}
        request = BookAppointment(**AppointmentCreateSchema().load(body))
        answer = self._op(
            "book a hold",
            lambda: booking.book_once(self.ctx, caller, request, self.clock())[1],
            fault,
        )
        self._check_answer(answer, CONFIRMED)

    @precondition(lambda self: self.records().holds)
    @rule(
        i=st.integers(0, 7),
        by_desk=st.booleans(),
        fault=FAULTS,
    )
    def release_hold(self, i, by_desk, fault):
        doc = self._pick(self.records().holds, i)
        caller = STAFF if by_desk else self._caller(doc["user_id"])
        hold_id = str(doc["_id"])
        self._op(
            "release a hold",
            lambda: waitlist.release_hold(self.ctx, caller, hold_id, self.clock()),
            fault,
        )

    @precondition(lambda self: self.records().appointments)
    @rule(
        i=st.integers(0, 7),
        place=st.integers(0, 5),
        kind=st.sampled_from(TYPES),
        with_hold=st.none() | st.integers(0, 3),
        by_desk=st.booleans(),
        fault=FAULTS,
    )
    def reschedule(self, i, place, kind, with_hold, by_desk, fault):
        doc = self._pick(self.records().appointments, i, lambda d: d["status"] == CONFIRMED)
        caller = STAFF if by_desk else self._caller(doc["booked_by"])
        pid, day, slot = self.places[place]
        hold_id = None
        if with_hold is not None:
            mine = [h for h in self.records().holds if h["user_id"] == caller.user_id]
            hold_id = str(self._pick(mine, with_hold)["_id"]) if mine else None
        asked = MoveAppointment(day, slot, pid, kind, hold_id)
        oid = str(doc["_id"])
        answer = self._op(
            "reschedule",
            lambda: moves.reschedule(self.ctx, caller, oid, asked, self.clock()),
            fault,
        )
        self._check_answer(answer, CONFIRMED)

    @precondition(lambda self: self.records().appointments)
    @rule(
        i=st.integers(0, 7),
        by_desk=st.booleans(),
        fault=FAULTS,
    )
    def cancel(self, i, by_desk, fault):
        doc = self._pick(self.records().appointments, i, lambda d: d["status"] == CONFIRMED)
        caller = STAFF if by_desk else self._caller(doc["booked_by"])
        oid = str(doc["_id"])
        answer = self._op(
            "cancel", lambda: cancel.cancel(self.ctx, caller, oid, self.clock()), fault
        )
        self._check_answer(answer, CANCELLED)

    @rule(
        who=st.sampled_from(CALLERS),
        phone=st.integers(0, 1),
        place=st.integers(0, 5),
        whole_day=st.booleans(),
        kind=st.sampled_from(TYPES),
        fault=FAULTS,
    )
    def join_waitlist(self, who, phone, place, whole_day, kind, fault):
        pid, day, slot = self.places[place]
        asked = JoinWaitlist(
            HID, day, self._patient(who, phone), pid, None if whole_day else slot, kind
        )
        self._op(
            "join the waitlist",
            lambda: waitlist.join(self.ctx, self._caller(who), asked, self.clock()),
            fault,
        )

    @precondition(lambda self: self.records().entries)
    @rule(
        i=st.integers(0, 7),
        by_desk=st.booleans(),
        fault=FAULTS,
    )
    def accept_offer(self, i, by_desk, fault):
        doc = self._pick(self.records().entries, i, lambda d: d["status"] == "offered")
        caller = STAFF if by_desk else self._caller(doc["user_id"])
        if by_desk and doc.get("hold_id"):
            self.desk_accepted.add(doc["hold_id"])  # not the patient's booking: not counted
        oid = str(doc["_id"])
        answer = self._op(
            "accept an offer", lambda: waitlist.accept(self.ctx, caller, oid, self.clock()), fault
        )
        self._check_answer(answer, CONFIRMED)

    @precondition(lambda self: self.records().entries)
    @rule(
        i=st.integers(0, 7),
        by_desk=st.booleans(),
        fault=FAULTS,
    )
    def leave_waitlist(self, i, by_desk, fault):
        doc = self._pick(self.records().entries, i)
        caller = STAFF if by_desk else self._caller(doc["user_id"])
        oid = str(doc["_id"])
        self._op(
            "leave the waitlist", lambda: waitlist.leave(self.ctx, caller, oid, self.clock()), fault
        )

    @precondition(lambda self: self.records().appointments)
    @rule(
        i=st.integers(0, 7),
        step=st.sampled_from(tuple(visits.STEPS)),
        fault=FAULTS,
    )
    def visit_step(self, i, step, fault):
        doc = self._pick(self.records().appointments, i, lambda d: d["status"] in PLACED)
        oid = str(doc["_id"])
        answer = self._op(
            f"visit {step}",
            lambda: visits.visit_step(self.ctx, STAFF, oid, step, self.clock()),
            fault,
        )
        self._check_answer(answer, visits.STEPS[step].to_status)

    # --- rules: time, the reconciler, Redis, edits, faults ---------------------------------

    @precondition(lambda self: self.clock.can_advance)
    @rule(seconds=st.sampled_from((5, 31, HOLD_SECONDS + 1, HOLD_SECONDS + 12)))
    def time_passes(self, seconds):
        self.clock.advance(seconds)
        self._seen = None

    @rule(fault=FAULTS)
    def expire_holds(self, fault):
        self._op("expire holds", lambda: waitlist.expire_holds(self.ctx, self.clock()), fault)

    @rule(fault=FAULTS)
    def waitlist_upkeep(self, fault):
        timeout_ms = int(self.config.pending_timeout_seconds * 1000)
        self._op(
            "waitlist upkeep", lambda: waitlist.upkeep(self.ctx, self.clock(), timeout_ms), fault
        )

    @rule(fault=FAULTS)
    def reconcile(self, fault):
        swept = self._op(
            "reconcile", lambda: reconciler.reconcile_once(self.ctx, self.last_sweep), fault
        )
        if swept is not None:
            self.last_sweep = swept

    @rule(pid=st.sampled_from((None, DR)), later=st.booleans())
    def redis_loses_a_day(self, pid, later):
        self.backend.lose_day(HID, pid, self.days[int(later)])
        self._seen = None

    @rule()
    def redis_loses_everything(self):
        self.backend.lose_everything()
        self._seen = None

    @rule(variant=st.sampled_from(EDITS), forced=st.booleans())
    def admin_edit(self, variant, forced):
        self._edit(variant, forced)

    @precondition(lambda self: self.outstanding)
    @rule()
    def recover(self):
        """What follows a crash: PENDING_TIMEOUT_SECONDS later, one reconciler pass; then the
        ledger is whole again, but for what only a hold's time ends."""
        if self.clock.can_advance:
            self.clock.advance(self.config.pending_timeout_seconds + 1)
        self.last_sweep = reconciler.reconcile_once(self.ctx, self.last_sweep)
        self.outstanding = False
        self._seen = None
        for problem in self._problems(self.records(), strict=True):
            assert problem.until_ms is not None, f"not repaired after a crash: {problem.text}"
            self.leftovers[problem.key] = problem.until_ms
            event(f"recover: leftover {problem.key[0]}")

    # --- an admin edit, as the schedule service makes it ------------------------------------

    def _edit(self, variant: str, forced: bool) -> bool:
        """schedule_service.service._apply over this backend: fence, conflict check
        (schedule_service.conflicts, asking this booking service), then the new version, or
        the old one back when refused."""
        current = self.backend.load(HID)
        new = edited(self.original, variant, self.today)
        new["version"] = current["version"] + 1
        self.backend.fence(HID)
        try:
            stranded = self.checker.stranded(current, new, self.clock(), "Bearer admin")
        except BaseException:
            self.backend.publish(current)
            raise
        if stranded and not forced:
            self.backend.publish(current)
            event(f"edit {variant}: refused")
            return False
        seen, configuration = self._read(), Configuration.compile(new)
        if forced:
            self.forced |= self._outside(seen, configuration)
        for where in self.places:
            left = max(seen.taken(where), self._claimed(seen, where))
            if left > self._capacity(configuration, where):
                self.allowance[where] = max(self.allowance.get(where, 0), left)
        self.backend.publish(new)
        self._seen = None
        event(f"edit {variant}: applied" + (" (forced)" if forced else ""))
        note(f"edit {variant} -> version {new['version']}, stranded: {stranded!r}")
        return True

    # --- reading the ledger ----------------------------------------------------------------

    def records(self) -> Records:
        """The records as they are after the last step (read once per step)."""
        if self._seen is None:
            self._seen = self._read()
        return self._seen

    def _read(self) -> Records:
        now_ms = self.clock.gate_ms()
        gate = {}
        for where in self.places:
            held_now = self.backend.gate(HID, *where).items()
            # an appointment, or a hold within its time (the gate drops the others)
            gate[where] = {f: v for f, v in held_now if not v[2] or v[2] > now_ms}
        ready = {(pid, day) for pid in (None, DR) for day in self.days}
        return Records(
            appointments=self.backend.appointments(),
            holds=self.backend.holds(),
            entries=self.backend.entries(),
            gate=gate,
            ready=frozenset(k for k in ready if self.backend.ready(HID, *k)),
            now_ms=now_ms,
        )

    def _configuration(self) -> Configuration:
        return Configuration.compile(self.backend.load(HID))

    @staticmethod
    def _capacity(configuration: Configuration, where: tuple) -> int:
        pid, day, slot = where
        if pid is not None and pid not in configuration.practitioners:
            return 0
        schedule = configuration.schedule_for(pid)
        found = [s for s in schedule.configured_slots(date.fromisoformat(day)) if s.start == slot]
        return found[0].capacity if found else 0

    @staticmethod
    def _claimed(seen: Records, where: tuple) -> int:
        """Units the records claim in a place: appointments (pending ones too), moves under
        way, live holds."""
        units = 0
        for doc in seen.appointments:
            if doc["status"] in ACTIVE and place_of(doc) == where:
                units += doc.get("units", 1)
            move = doc.get("moving")
            if move and doc["status"] == CONFIRMED and place_of(move) == where:
                units += move["units"]
        for doc in seen.live_holds():
            units += doc["units"] if place_of(doc) == where else 0
        return units

    def _outside(self, seen: Records, configuration: Configuration) -> set[tuple]:
        """Every owner the configuration has no place for: (kind, id, place), an
        appointment's move under way by the place it moves to (where, once it commits, the
        appointment is)."""
        found = set()
        for doc in seen.appointments:
            oid = str(doc["_id"])
            if doc["status"] in ACTIVE and not self._capacity(configuration, place_of(doc)):
                found.add(("appointment", oid, place_of(doc)))
            move = doc.get("moving")
            if (
                move
                and doc["status"] == CONFIRMED
                and not self._capacity(configuration, place_of(move))
            ):
                found.add(("appointment", oid, place_of(move)))
        for doc in seen.live_holds():
            if not self._capacity(configuration, place_of(doc)):
                found.add(("hold", str(doc["_id"]), place_of(doc)))
        return found

    def _problems(self, seen: Records, strict: bool) -> list[Problem]:
        """What the gate and the owner records disagree on. Not `strict` (a fault
        outstanding): only the units and serials of the places that have their owner."""
        problems: list[Problem] = []
        expected: dict[str, Owner] = {}
        optional: dict[str, set] = defaultdict(set)  # places a half-done owner may hold
        used = seen.used_holds()
        for doc in seen.appointments:
            oid = str(doc["_id"])
            if doc["status"] in PLACED:
                expected[oid] = Owner(place_of(doc), doc.get("units", 1), doc["serial"], None)
            elif doc["status"] == PENDING:
                optional[oid].add(place_of(doc))
                problems.append(Problem(("pending", oid), f"appointment {oid} left pending"))
            move = doc.get("moving")
            if move and doc["status"] == CONFIRMED:
                optional[oid].add(place_of(move))
                problems.append(Problem(("moving", oid), f"appointment {oid} left moving"))
            release = doc.get("release_pending")
            if release:
                optional[oid].add(place_of(release))
                problems.append(Problem(("release", oid), f"{oid}'s old place not freed"))
        for doc in seen.live_holds():
            hold_id, until = str(doc["_id"]), kept_until_ms(doc)
            if hold_id in used:  # its place is the appointment's now
                problems.append(
                    Problem(("hold", doc["field"]), f"hold {hold_id} used, left held", until)
                )
                continue
            expected[doc["field"]] = Owner(place_of(doc), doc["units"], None, until)
        if not strict:
            problems = []
        found = set()
        for where, fields in seen.gate.items():
            for field, (serial, units, expires) in fields.items():
                owner = expected.get(field)
                if owner is not None and owner.place == where:
                    found.add(field)
                    if owner.units != units or owner.serial not in (None, serial):
                        problems.append(
                            Problem(
                                ("differs", field),
                                f"{field} at {where}: gate has serial {serial}, {units} units; "
                                f"its record {owner.serial}, {owner.units}",
                            )
                        )
                elif strict and where not in optional.get(field, ()):
                    problems.append(
                        Problem(
                            _key("place", field),
                            f"{field} holds {units} unit(s) at {where} with no live owner",
                            expires or None,
                        )
                    )
        for field, owner in expected.items():
            # (a day the gate lost gets its places back when it is rebuilt)
            if strict and field not in found and owner.place[:2] in seen.ready:
                problems.append(
                    Problem(
                        _key("owner", field),
                        f"{field} is live with no place at {owner.place}",
                        owner.until_ms,
                    )
                )
        return problems

    def _check_answer(self, answer, status: str) -> None:
        """An operation that answered did what it said (no fault: nothing else ran)."""
        if answer is None or self.outstanding:
            return
        stored = next(
            d for d in self.records().appointments if str(d["_id"]) == answer["appointment_id"]
        )
        assert stored["status"] == answer["status"] == status, (answer, stored["status"])

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def no_slot_over_its_capacity(self):
        seen, configuration = self.records(), self._configuration()
        for where in self.places:
            taken, claimed = seen.taken(where), self._claimed(seen, where)
            capacity = self._capacity(configuration, where)
            allowed = max(capacity, self.allowance.get(where, 0))
            assert taken <= allowed, f"{where}: {taken} units taken, capacity {capacity}"
            if where in self.allowance:  # what an edit left there goes as it is freed
                left = min(self.allowance[where], max(taken, claimed))
                if left > capacity:
                    self.allowance[where] = left
                else:
                    del self.allowance[where]

    @invariant()
    def every_place_has_one_owner_and_every_owner_its_place(self):
        seen = self.records()
        self.leftovers = {k: t for k, t in self.leftovers.items() if t > seen.now_ms}
        problems = self._problems(seen, strict=not self.outstanding)
        problems = [p for p in problems if p.key not in self.leftovers]
        assert not problems, "\n".join(p.text for p in problems)

    @invariant()
    def the_counts_read_are_the_appointments(self):
        if self.outstanding:
            return
        seen, configuration = self.records(), self._configuration()
        booked: dict[tuple, int] = defaultdict(int)
        for doc in seen.appointments:
            if doc["status"] in PLACED:
                booked[place_of(doc)] += doc.get("units", 1)
        for pid in (None, DR):
            if pid is not None and pid not in configuration.practitioners:
                continue  # the availability of a doctor removed is a 404
            dates = [date.fromisoformat(d) for d in self.days]
            counted = places.day_counts(self.ctx, HID, dates, self.clock(), pid)
            for (_, counts), day in zip(counted.days, self.days, strict=True):
                if counts is None:
                    continue  # unknown until rebuilt: not shown as counts
                for where in [w for w in self.places if w[:2] == (pid, day)]:
                    slot, gate = where[2], seen.gate[where]
                    shown = (counts.get(slot, 0), held(counts, slot), offered(counts, slot))
                    truth = (
                        booked[where],
                        sum(units for _, units, expires in gate.values() if expires),
                        sum(v[1] for f, v in gate.items() if v[2] and f.startswith("o:")),
                    )
                    assert shown == truth, f"{where}: read shows {shown}, records say {truth}"

    @invariant()
    def nothing_outside_the_configuration_unless_forced(self):
        seen, forced = self.records(), set(self.forced)
        for doc in seen.holds:  # an offer passed on keeps the place it was passed
            if ("hold", doc.get("passed_from"), place_of(doc)) in forced:
                forced.add(("hold", str(doc["_id"]), place_of(doc)))
        outside = self._outside(seen, self._configuration()) - forced
        assert not outside, f"outside the configuration, no forced edit put them there: {outside}"

    @invariant()
    def every_quota(self):
        seen, now = self.records(), self.clock()
        used = seen.used_holds()
        live_holds: dict[str, int] = defaultdict(int)
        for doc in seen.live_holds():
            where = place_of(doc)
            if (
                doc["expires_ms"] > seen.now_ms  # (an offer's grace is not the patient's)
                and str(doc["_id"]) not in used
                # a live hold keeps a place (or its day is to be rebuilt): a record a store
                # error left without one is the ledger's invariant's, until its time
                and (doc["field"] in seen.gate[where] or where[:2] not in seen.ready)
            ):
                live_holds[doc["user_id"]] += 1
        entries: dict[str, int] = defaultdict(int)
        for doc in seen.entries:
            entries[doc["user_id"]] += doc["status"] in LIVE_ENTRIES
        made: dict[str, int] = defaultdict(int)
        for doc in seen.appointments:
            if (
                doc["status"] in (*PLACED, CANCELLED)
                and doc.get("hold_id") not in self.desk_accepted
                and _aware(doc["created_at"]) > now - HOUR
            ):
                made[doc["booked_by"]] += 1
        for user in PATIENTS:
            assert live_holds[user] <= self.config.hold_limit, (
                f"{user} has {live_holds[user]} live holds and offers (HOLD_LIMIT "
                f"{self.config.hold_limit})"
            )
            assert entries[user] <= self.config.waitlist_limit, (
                f"{user} has {entries[user]} live waitlist entries (WAITLIST_LIMIT "
                f"{self.config.waitlist_limit})"
            )
            assert made[user] <= self.config.booking_limit, (
                f"{user} made {made[user]} appointments within the hour (BOOKING_LIMIT "
                f"{self.config.booking_limit})"
            )


def fhir_appointment(pid: str | None, day: str, slot: str, patient: dict, kind: str | None) -> dict:
    """A FHIR Appointment a client creates for that slot (as FHIR `POST Appointment` takes it)."""
    slot_id = fhir_ids.slot_id(HID, pid, date.fromisoformat(day), slot)
    participants = [
        {"actor": {"reference": "#pat"}, "status": "accepted"},
        {"actor": {"reference": f"Location/{fhir_ids.location_id(HID)}"}, "status": "accepted"},
    ]
    if pid is not None:
        reference = f"Practitioner/{fhir_ids.practitioner_id(HID, pid)}"
        participants.append({"actor": {"reference": reference}, "status": "accepted"})
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "name": [{"text": patient["name"]}],
                "telecom": [{"system": "phone", "value": patient["phone"]}],
            }
        ],
        "participant": participants,
    }
    if kind is not None:
        body["appointmentType"] = {"coding": [{"system": TYPE_SYSTEM, "code": kind}]}
    return body
