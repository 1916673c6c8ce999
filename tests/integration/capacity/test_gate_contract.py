"""The capacity gate's contract: each case runs against the fake the unit tests use
(tests/unit/fakes.py's FakeCapacity) and the real gate (booking_service/adapters/capacity.py's
CapacityRecords, its Lua scripts on the session's valkey), with the same calls and the same
expected answers. A unit test over the fake is only as good as this test says the fake is.

What the two read back differs in form, not in meaning, and `GateUnderTest` hides only that:
the counts are compared as the units booked (`17:00`), held (`h:17:00`) and offered (`o:17:00`)
per slot, without the real counts' zeros and expiry fields (`e:`, `_e`: the fake keeps none),
and the announcements as how many the day's records made (the fake lists them, the real gate appends
them to the day's stream). Time passes for the fake by its clock, for valkey by sleeping.

What the fake deliberately leaves out is said where it shows, not checked as if it were there:
keys' TTLs (`ttl` is ignored), hash tags and Redis Cluster, the announcement of an expired hold
dropped by a refused reserve, and the leader lock's expiry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from booking_service.adapters.capacity import CapacityRecords, Gate, SlotRecords, hold_field
from shared import events, keys
from shared.capacity_reads import CapacityReader
from shared.versions import parse_version
from tests.unit.fakes import FakeCapacity

DAY = "2030-01-05"
TTL = 3600
LONG_LIFE_MS = 600_000
SHORT_LIFE_MS = 300
PAST_SHORT_LIFE = 0.45  # seconds after which a hold of SHORT_LIFE_MS is past its time
BRIEF_LIFE_MS = 1  # past its time after PAST_BRIEF_LIFE: for cases that never need it live
PAST_BRIEF_LIFE = 0.02


class GateUnderTest:
    """One implementation of the capacity records and what a case reads back from it."""

    real: bool
    records: CapacityRecords | FakeCapacity

    def __init__(self) -> None:
        self.hid = f"h-{uuid.uuid4().hex[:8]}"

    def build(self, capacity: int, pid: str | None = None, held=(), pending=()) -> bool:
        """Rebuild the day's 17:00 (for `pid`) from these records; True when it built it."""
        slot = SlotRecords("17:00", capacity, list(held), list(pending))
        return self.records.rebuild(self.hid, DAY, [slot], TTL, pid)

    def reserve(self, appointment_id: str, capacity: int, units: int = 1, pid=None, **more):
        return self.records.reserve(
            self.hid, DAY, "17:00", appointment_id, capacity, TTL, units=units, practitioner_id=pid,
            **more,
        )  # fmt: skip

    def publish(self, version: str) -> None:
        """Set the hospital's published version key (an int, or `editing`)."""
        raise NotImplementedError

    def hold(self, field: str, capacity: int, units: int = 1, life_ms: int = LONG_LIFE_MS):
        return self.records.hold(
            self.hid, DAY, "17:00", field, capacity, TTL, units=units, practitioner_id=None,
            life_ms=life_ms,
        )  # fmt: skip

    def counts(self, pid: str | None = None) -> dict[str, int]:
        """Units per slot as a reader sees them (whether a day is built, only a script tells:
        the reader's answer for an unbuilt day depends on what else the Redis holds)."""
        raise NotImplementedError

    def announced(self, pid: str | None = None) -> int:
        raise NotImplementedError

    def now_ms(self) -> int:
        raise NotImplementedError

    def pass_time(self, seconds: float) -> None:
        raise NotImplementedError


class FakeGate(GateUnderTest):
    real = False

    def __init__(self) -> None:
        super().__init__()
        self.records = FakeCapacity()
        self.records.clock_ms = int(time.time() * 1000)
        self.versions: dict[str, str] = {}
        self.records.published_version = lambda hid: parse_version(self.versions.get(hid))

    def publish(self, version):
        self.versions[self.hid] = version

    def counts(self, pid=None):
        return {k: v for k, v in self.records.counts(self.hid, DAY, pid).items() if v}

    def announced(self, pid=None):
        return self.records.events.sent.count(("availability", self.hid, DAY, pid))

    def now_ms(self):
        return self.records.now_ms()

    def pass_time(self, seconds):
        self.records.clock_ms += int(seconds * 1000)


class ValkeyGate(GateUnderTest):
    real = True

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client
        self.records = CapacityRecords(client)

    def publish(self, version):
        self.client.set(keys.schedule_version_key(self.hid), version)

    def counts(self, pid=None):
        found = CapacityReader(self.client).published_and_counts(self.hid, [DAY], pid).counts[DAY]
        return {k: v for k, v in dict(found or {}).items() if v and not k.startswith(("e:", "_e"))}

    def announced(self, pid=None):
        return self.client.xlen(events.stream_key(self.hid, DAY, pid))

    def now_ms(self):
        seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000

    def pass_time(self, seconds):
        time.sleep(seconds)


@pytest.fixture(params=["fake", "valkey"])
def gate(request) -> Iterator[GateUnderTest]:
    """The same gate's contract over FakeCapacity and over CapacityRecords on valkey."""
    if request.param == "fake":
        yield FakeGate()
        return
    client = request.getfixturevalue("client")  # tests/integration/conftest.py
    yield ValkeyGate(client)


def test_nothing_is_taken_before_the_day_is_built(gate):
    assert gate.reserve("a", 2) == (Gate.NOT_READY, 0)
    assert gate.hold(hold_field("x"), 2) == (Gate.NOT_READY, 0, 0)
    assert gate.records.take_hold(gate.hid, DAY, "17:00", "h:x", "a", TTL, None) == (
        Gate.NOT_READY,
        0,
    )
    assert gate.build(2) is True
    assert gate.build(2) is False  # built once: a second rebuild changes nothing
    assert gate.announced() == 1


def test_places_are_reserved_until_full_and_a_retry_takes_nothing(gate):
    gate.build(2)
    assert gate.reserve("a", 2) == (Gate.TAKEN, 1)
    assert gate.reserve("b", 2) == (Gate.TAKEN, 2)
    assert gate.reserve("c", 2) == (Gate.FULL, 2)
    assert gate.reserve("a", 2) == (Gate.TAKEN, 1)  # a retry answers its serial
    assert gate.counts() == {"17:00": 2}
    assert gate.announced() == 3  # the rebuild and two places; the refusal and retry: nothing


def test_a_release_gives_the_place_back_once_and_the_smallest_serial_is_reused(gate):
    gate.build(3)
    for appointment_id in ("a", "b", "c"):
        gate.reserve(appointment_id, 3)
    assert gate.records.free(gate.hid, DAY, "17:00", "a") is True
    assert gate.records.free(gate.hid, DAY, "17:00", "a") is False
    assert gate.counts() == {"17:00": 2}
    assert gate.reserve("d", 3) == (Gate.TAKEN, 1)
    assert gate.announced() == 6  # rebuild, three places, one release, one place


def test_units_are_taken_all_or_none_per_doctor(gate):
    gate.build(5, pid="d")
    assert gate.reserve("a", 5, units=2, pid="d") == (Gate.TAKEN, 1)
    assert gate.reserve("b", 5, units=2, pid="d") == (Gate.TAKEN, 2)
    assert gate.reserve("c", 5, units=2, pid="d") == (Gate.FULL, 4)  # one unit left: not two
    assert gate.reserve("e", 5, units=1, pid="d") == (Gate.TAKEN, 3)
    assert gate.counts("d") == {"17:00": 5}
    assert gate.records.free(gate.hid, DAY, "17:00", "a", "d") is True
    assert gate.counts("d") == {"17:00": 3}
    # the hospital's own records are apart: not built, nothing counted
    assert gate.counts() == {}
    assert gate.reserve("f", 5) == (Gate.NOT_READY, 0)


def test_a_hold_takes_units_until_its_time_and_then_frees_them(gate):
    gate.build(2)
    field = hold_field("brief")
    before = gate.now_ms()
    outcome, serial, expires = gate.hold(field, 2, units=2, life_ms=SHORT_LIFE_MS)
    assert (outcome, serial) == (Gate.TAKEN, 1)
    assert before + SHORT_LIFE_MS <= expires <= gate.now_ms() + SHORT_LIFE_MS
    assert gate.hold(field, 2, units=2, life_ms=SHORT_LIFE_MS) == (Gate.TAKEN, 1, expires)  # retry
    assert gate.counts() == {"h:17:00": 2}
    assert gate.reserve("early", 2) == (Gate.FULL, 2)
    gate.pass_time(PAST_SHORT_LIFE)
    assert gate.counts() == {}  # past its time, a hold is never shown as held
    # no sweep ran: the reserve itself drops the hold and takes its place and serial
    assert gate.reserve("a", 2, units=2) == (Gate.TAKEN, 1)
    assert gate.counts() == {"17:00": 2}


def test_a_refused_reserve_still_drops_an_expired_hold(gate):
    gate.build(2)
    assert gate.reserve("a", 2) == (Gate.TAKEN, 1)
    assert gate.hold(hold_field("x"), 2, life_ms=BRIEF_LIFE_MS)[:2] == (Gate.TAKEN, 2)
    gate.pass_time(PAST_BRIEF_LIFE)
    assert gate.reserve("b", 2, units=2) == (Gate.FULL, 1)
    assert gate.counts() == {"17:00": 1}
    # rebuild, a, the hold; the real script also announces the counts it rewrote when it
    # dropped the hold, the fake drops it without a word (FakeCapacity._live): not modelled.
    assert gate.announced() == (4 if gate.real else 3)


def test_take_hold_turns_a_live_hold_into_the_appointments_place_once(gate):
    gate.build(5)
    assert gate.reserve("a", 5) == (Gate.TAKEN, 1)
    field = hold_field("t")
    assert gate.hold(field, 5, units=2)[:2] == (Gate.TAKEN, 2)
    take = gate.records.take_hold
    assert take(gate.hid, DAY, "17:00", field, "appt1", TTL, None) == (Gate.TAKEN, 2)
    assert take(gate.hid, DAY, "17:00", field, "appt1", TTL, None) == (Gate.TAKEN, 2)  # retry
    assert take(gate.hid, DAY, "17:00", field, "appt2", TTL, None) == (Gate.FULL, 0)  # hold used
    assert gate.counts() == {"17:00": 3}  # the appointment keeps the hold's 2 units
    assert gate.records.free(gate.hid, DAY, "17:00", "appt1") is True
    assert gate.counts() == {"17:00": 1}


def test_a_step_that_expects_a_version_reads_it_first_and_answers_changed(gate):
    """Issue 26: a booking's "still current" look goes with its gate step (one round trip,
    the version read just before the script). Another version, or an edit's fence, answers
    CHANGED; the step has run all the same, and its caller gives the place back."""
    gate.build(3)
    gate.publish("7")
    assert gate.reserve("a", 3, expect_version=7) == (Gate.TAKEN, 1)
    gate.publish("editing")
    assert gate.reserve("b", 3, expect_version=7) == (Gate.CHANGED, 0)
    assert gate.counts() == {"17:00": 2}
    assert gate.records.free(gate.hid, DAY, "17:00", "b") is True
    gate.publish("8")
    field = hold_field("t")
    assert gate.hold(field, 3)[:2] == (Gate.TAKEN, 2)
    take = gate.records.take_hold
    assert take(gate.hid, DAY, "17:00", field, "c", TTL, None, expect_version=7) == (
        Gate.CHANGED,
        0,
    )
    assert gate.reserve("d", 3, expect_version=8) == (Gate.TAKEN, 3)
    assert gate.counts() == {"17:00": 3}


def test_a_step_that_expects_a_version_loads_a_script_the_server_lost(client):
    """The pipelined step runs its script by SHA: after SCRIPT FLUSH (a restarted Redis),
    the script is loaded and the step made once."""
    gate = ValkeyGate(client)
    gate.build(2)
    gate.publish("3")
    client.script_flush()
    assert gate.reserve("a", 2, expect_version=3) == (Gate.TAKEN, 1)
    assert gate.reserve("a", 2, expect_version=3) == (Gate.TAKEN, 1)  # a retry takes nothing
    assert gate.counts() == {"17:00": 1}


def test_an_expired_hold_cannot_be_taken_or_passed(gate):
    gate.build(2)
    field = hold_field("late")
    assert gate.hold(field, 2, life_ms=BRIEF_LIFE_MS)[:2] == (Gate.TAKEN, 1)
    gate.pass_time(PAST_BRIEF_LIFE)
    assert gate.records.take_hold(gate.hid, DAY, "17:00", field, "a", TTL, None) == (Gate.FULL, 0)
    assert gate.records.pass_hold(
        gate.hid, DAY, "17:00", field, hold_field("next", offered=True), TTL, None, LONG_LIFE_MS
    ) == (Gate.FULL, 0, 0)
    assert gate.counts() == {}


def test_pass_hold_gives_a_live_holds_place_to_a_new_holder(gate):
    gate.build(2)
    field, offered = hold_field("first"), hold_field("w1", offered=True)
    assert gate.hold(field, 2, units=2)[:2] == (Gate.TAKEN, 1)
    before = gate.now_ms()
    outcome, serial, expires = gate.records.pass_hold(
        gate.hid, DAY, "17:00", field, offered, TTL, None, LONG_LIFE_MS
    )
    assert (outcome, serial) == (Gate.TAKEN, 1)
    assert before + LONG_LIFE_MS <= expires <= gate.now_ms() + LONG_LIFE_MS
    assert gate.counts() == {"h:17:00": 2, "o:17:00": 2}  # an offered hold is held and offered
    # the first holder's field is gone: passing it again finds nothing
    assert gate.records.pass_hold(
        gate.hid, DAY, "17:00", field, hold_field("w2", offered=True), TTL, None, LONG_LIFE_MS
    ) == (Gate.FULL, 0, 0)


def test_a_release_gives_a_holds_place_back_once(gate):
    gate.build(1)
    field = hold_field("r")
    assert gate.hold(field, 1)[:2] == (Gate.TAKEN, 1)
    assert gate.records.free(gate.hid, DAY, "17:00", field) is True
    assert gate.records.free(gate.hid, DAY, "17:00", field) is False
    assert gate.reserve("a", 1) == (Gate.TAKEN, 1)


def test_a_rebuild_keeps_serials_and_units_and_fits_pending_oldest_first(gate):
    now = gate.now_ms()
    held = [("a", 2, 2)]  # appointment a: serial 2, 2 units
    pending = [
        ("b", 1, 0),  # an appointment written ahead of its place: serial 1 is free
        (hold_field("gone"), 1, now - 1000),  # a hold past its time: skipped
        (hold_field("live"), 1, now + LONG_LIFE_MS),  # serial 3
        ("c", 2, 0),  # does not fit any more (5 of 4 units)
    ]
    assert gate.build(4, held=held, pending=pending) is True
    assert gate.counts() == {"17:00": 3, "h:17:00": 1}
    assert gate.reserve("b", 4) == (Gate.TAKEN, 1)  # retries answer the serials the rebuild gave
    assert gate.reserve("a", 4, units=2) == (Gate.TAKEN, 2)
    assert gate.hold(hold_field("live"), 4)[:2] == (Gate.TAKEN, 3)
    assert gate.reserve("d", 4) == (Gate.FULL, 4)


def test_a_rebuild_restores_a_live_hold_whether_or_not_it_fits(gate):
    """A live hold had its place (an edit lowered the capacity since): `always` restores it
    over the capacity, and what is left for appointments written ahead is nothing."""
    now = gate.now_ms()
    held = [("a", 1, 1)]
    pending = [
        (hold_field("kept"), 1, now + LONG_LIFE_MS, 1),  # serial 2, over the capacity of 1
        ("b", 1, 0, 0),  # no room left
    ]
    assert gate.build(1, held=held, pending=pending) is True
    assert gate.counts() == {"17:00": 1, "h:17:00": 1}
    assert gate.hold(hold_field("kept"), 1)[:2] == (Gate.TAKEN, 2)
    assert gate.reserve("b", 1) == (Gate.FULL, 2)


def test_a_users_quota_is_restored_after_redis_lost_it(gate):
    user = f"u-{uuid.uuid4().hex[:8]}"
    later = gate.now_ms() + LONG_LIFE_MS
    gate.records.restore_hold_quota(user, [("h1", later), ("h2", later)])
    gate.records.restore_hold_quota(user, [("h1", later)])  # idempotent
    assert gate.records.claim_hold_quota(user, "h3", later, 2) is False
    assert gate.records.claim_hold_quota(user, "h3", later, 3) is True


def test_the_hold_quota_counts_a_users_live_holds(gate):
    user = f"u-{uuid.uuid4().hex[:8]}"
    later = gate.now_ms() + LONG_LIFE_MS
    assert gate.records.claim_hold_quota(user, "h1", later, 2) is True
    assert gate.records.claim_hold_quota(user, "h2", later, 2) is True
    assert gate.records.claim_hold_quota(user, "h3", later, 2) is False
    gate.records.free_hold_quota(user, "h1")
    assert gate.records.claim_hold_quota(user, "h3", later, 2) is True
    # a hold past its time no longer counts
    other = f"u-{uuid.uuid4().hex[:8]}"
    assert gate.records.claim_hold_quota(other, "old", gate.now_ms() - 1, 1) is True
    assert gate.records.claim_hold_quota(other, "new", later, 1) is True


def test_one_process_leads_until_its_lock_expires(gate):
    lock = f"test-lead-{uuid.uuid4().hex[:8]}"
    assert gate.records.lead(lock, "p1", 60_000) is True
    assert gate.records.lead(lock, "p2", 60_000) is False
    assert gate.records.lead(lock, "p1", 60_000) is True  # the leader keeps it
    if not gate.real:
        return  # FakeCapacity's lock never expires: unit tests run one process
    assert gate.records.lead(lock, "p1", 200) is True  # kept, for 200 ms more
    time.sleep(0.3)
    assert gate.records.lead(lock, "p3", 60_000) is True
