"""Holds at the Lua gate (adapters/capacity.py, lua/places.lua) against a real Redis.

A hold takes units of a slot's capacity for a while, with a serial like an appointment's; it
is dropped by the next script that reads its slot once past its time, never shown as held by
the reader (shared/capacity_reads.py) after that time, turned into an appointment's place
once (take_hold), restored by a rebuild while live, and counted per user (hold_quota.lua).
"""

from __future__ import annotations

import threading
import time
import uuid

from booking_service.adapters.capacity import (
    CapacityRecords,
    Gate,
    SlotRecords,
    hold_field,
)
from shared import events, keys
from shared.capacity_reads import CapacityReader
from tests.helpers import at_once

DAY = "2030-01-05"
TTL = 3600
SHORT_LIFE_MS = 300  # a hold that is past its time after PAST_SHORT_LIFE seconds
PAST_SHORT_LIFE = 0.45
BRIEF_LIFE_MS = 1  # a hold past its time after PAST_BRIEF_LIFE: for tests that never need it live
PAST_BRIEF_LIFE = 0.02
LONG_LIFE_MS = 600_000


def built(
    records: CapacityRecords,
    hid: str,
    pid: str | None,
    capacity: int = 5,
    slots: tuple[str, ...] = ("17:00",),
) -> None:
    assert records.rebuild(hid, DAY, [SlotRecords(s, capacity, [], []) for s in slots], TTL, pid)


def without_earliest(found: dict) -> dict:
    """The counts without `_e`, once checked: the day's earliest `e:` (absent without)."""
    expiries = [v for k, v in found.items() if k.startswith("e:")]
    assert found.get("_e") == (min(expiries) if expiries else None), found
    return {k: v for k, v in found.items() if k != "_e"}


def counts(client, hid: str, pid: str | None = None) -> dict:
    """The day's counts as the reader answers them."""
    reader = CapacityReader(client)
    return without_earliest(dict(reader.published_and_counts(hid, [DAY], pid).counts[DAY]))


def stored_counts(client, hid: str, pid: str | None = None) -> dict:
    """The day's counts hash as stored (no reader correction), without the ready marker."""
    raw = client.hgetall(keys.counts_key(hid, DAY, pid))
    return without_earliest(
        {k.decode(): int(v) for k, v in raw.items() if k != keys.READY_FIELD.encode()}
    )


def holds(client, hid: str, slot: str = "17:00", pid: str | None = None) -> dict:
    raw = client.hgetall(keys.holds_key(hid, DAY, slot, pid))
    return {k.decode(): v.decode() for k, v in raw.items()}


def redis_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def announced(client, hid: str, pid: str | None = None) -> list[str]:
    stream = events.stream_key(hid, DAY, pid)
    return [fields[b"event"].decode() for _, fields in client.xrange(stream)]


def test_a_hold_takes_units_and_a_serial_and_counts_against_capacity(client, hid):
    records = CapacityRecords(client)
    field = hold_field("hold1")
    assert field == "h:hold1"
    assert records.hold(
        hid, DAY, "17:00", field, 5, TTL, units=2, practitioner_id="d", life_ms=LONG_LIFE_MS
    ) == (Gate.NOT_READY, 0, 0)
    built(records, hid, "d", capacity=5)
    before = redis_ms(client)
    outcome, serial, expires = records.hold(
        hid, DAY, "17:00", field, 5, TTL, units=2, practitioner_id="d", life_ms=LONG_LIFE_MS
    )
    after = redis_ms(client)
    assert (outcome, serial) == (Gate.TAKEN, 1)
    assert before + LONG_LIFE_MS <= expires <= after + LONG_LIFE_MS
    assert holds(client, hid, pid="d") == {field: f"1:2:{expires}"}
    assert stored_counts(client, hid, "d") == {"17:00": 0, "h:17:00": 2, "e:17:00": expires}
    assert counts(client, hid, "d") == {"17:00": 0, "h:17:00": 2, "e:17:00": expires}
    # a retry of the live hold answers the same serial and expiry and takes nothing more
    assert records.hold(
        hid, DAY, "17:00", field, 5, TTL, units=2, practitioner_id="d", life_ms=LONG_LIFE_MS
    ) == (Gate.TAKEN, 1, expires)
    # 3 units are left: an appointment of 3 fits, with the next serial; one more does not
    assert records.reserve(hid, DAY, "17:00", "a", 5, TTL, units=3, practitioner_id="d") == (
        Gate.TAKEN,
        2,
    )
    assert records.reserve(hid, DAY, "17:00", "b", 5, TTL, units=1, practitioner_id="d") == (
        Gate.FULL,
        5,
    )
    assert counts(client, hid, "d") == {"17:00": 3, "h:17:00": 2, "e:17:00": expires}
    # rebuild, hold, reserve: one entry each; the retry and the full reserve changed nothing
    assert announced(client, hid, "d") == ["availability"] * 3
    assert not client.exists(keys.counts_key(hid, DAY))  # the hospital's own: untouched


def test_a_hold_past_its_time_never_blocks_a_reserve(client, hid):
    records = CapacityRecords(client)
    built(records, hid, None, capacity=2)
    field = hold_field("brief")
    outcome, serial, _ = records.hold(
        hid, DAY, "17:00", field, 2, TTL, units=2, practitioner_id=None, life_ms=SHORT_LIFE_MS
    )
    assert (outcome, serial) == (Gate.TAKEN, 1)
    assert records.reserve(hid, DAY, "17:00", "early", 2, TTL) == (Gate.FULL, 2)
    time.sleep(PAST_SHORT_LIFE)
    # no sweep ran: the reserve itself drops the hold and takes its place (and its serial)
    assert records.reserve(hid, DAY, "17:00", "a", 2, TTL, units=2) == (Gate.TAKEN, 1)
    assert holds(client, hid) == {"a": "1:2"}
    assert stored_counts(client, hid) == {"17:00": 2}
    assert counts(client, hid) == {"17:00": 2}


def test_a_full_reserve_that_drops_an_expired_hold_writes_the_counts(client, hid):
    """The place freed by the expired hold is not enough, but the counts lose the hold."""
    records = CapacityRecords(client)
    built(records, hid, None, capacity=2)
    assert records.reserve(hid, DAY, "17:00", "a", 2, TTL) == (Gate.TAKEN, 1)
    assert records.hold(
        hid,
        DAY,
        "17:00",
        hold_field("x"),
        2,
        TTL,
        units=1,
        practitioner_id=None,
        life_ms=BRIEF_LIFE_MS,
    )[:2] == (Gate.TAKEN, 2)
    time.sleep(PAST_BRIEF_LIFE)
    assert records.reserve(hid, DAY, "17:00", "b", 2, TTL, units=2) == (Gate.FULL, 1)
    assert holds(client, hid) == {"a": "1"}
    assert stored_counts(client, hid) == {"17:00": 1}
    # rebuild, reserve a, hold, and the full reserve that dropped the hold
    assert announced(client, hid) == ["availability"] * 4


def test_the_reader_never_shows_an_expired_hold_as_held(client, hid):
    records = CapacityRecords(client)
    built(records, hid, "d", capacity=4, slots=("17:00", "18:00"))
    assert records.reserve(hid, DAY, "17:00", "a", 4, TTL, practitioner_id="d") == (Gate.TAKEN, 1)
    short = records.hold(
        hid,
        DAY,
        "17:00",
        hold_field("s", offered=True),
        4,
        TTL,
        units=2,
        practitioner_id="d",
        life_ms=SHORT_LIFE_MS,
    )
    live = records.hold(
        hid, DAY, "18:00", hold_field("l"), 4, TTL, units=3, practitioner_id="d", life_ms=60_000
    )
    assert short[:2] == (Gate.TAKEN, 2) and live[:2] == (Gate.TAKEN, 1)
    time.sleep(PAST_SHORT_LIFE)
    # no script has run since: the stored counts still show the expired hold...
    assert stored_counts(client, hid, "d") == {
        "17:00": 1,
        "h:17:00": 2,
        "o:17:00": 2,
        "e:17:00": short[2],
        "18:00": 0,
        "h:18:00": 3,
        "e:18:00": live[2],
    }
    # ...the reader does not
    assert counts(client, hid, "d") == {
        "17:00": 1,
        "18:00": 0,
        "h:18:00": 3,
        "e:18:00": live[2],
    }
    # and the reader only reads: the hold is dropped by the next script, not by it
    assert hold_field("s", offered=True) in holds(client, hid, "17:00", "d")


def test_take_hold_turns_the_hold_into_the_appointments_place_once(client, hid):
    records = CapacityRecords(client)
    field = hold_field("t")
    assert records.take_hold(hid, DAY, "17:00", field, "appt1", TTL, None) == (Gate.NOT_READY, 0)
    built(records, hid, None, capacity=5)
    assert records.reserve(hid, DAY, "17:00", "a", 5, TTL) == (Gate.TAKEN, 1)
    outcome, serial, _ = records.hold(
        hid, DAY, "17:00", field, 5, TTL, units=2, practitioner_id=None, life_ms=LONG_LIFE_MS
    )
    assert (outcome, serial) == (Gate.TAKEN, 2)
    assert records.take_hold(hid, DAY, "17:00", field, "appt1", TTL, None) == (Gate.TAKEN, 2)
    assert holds(client, hid) == {"a": "1", "appt1": "2:2"}
    assert stored_counts(client, hid) == {"17:00": 3}
    assert counts(client, hid) == {"17:00": 3}
    # taken once: another appointment finds it gone; the same one again is answered its serial
    assert records.take_hold(hid, DAY, "17:00", field, "appt2", TTL, None) == (Gate.FULL, 0)
    assert records.take_hold(hid, DAY, "17:00", field, "appt1", TTL, None) == (Gate.TAKEN, 2)
    assert holds(client, hid) == {"a": "1", "appt1": "2:2"}
    assert stored_counts(client, hid) == {"17:00": 3}
    # rebuild, reserve, hold, the one take (the refused and the repeated take changed nothing)
    assert len(announced(client, hid)) == 4


def test_an_expired_hold_cannot_be_taken(client, hid):
    records = CapacityRecords(client)
    built(records, hid, None, capacity=5)
    field = hold_field("late")
    assert records.hold(
        hid, DAY, "17:00", field, 5, TTL, units=2, practitioner_id=None, life_ms=BRIEF_LIFE_MS
    )[:2] == (Gate.TAKEN, 1)
    time.sleep(PAST_BRIEF_LIFE)
    assert records.take_hold(hid, DAY, "17:00", field, "appt3", TTL, None) == (Gate.FULL, 0)
    assert holds(client, hid) == {}
    assert stored_counts(client, hid) == {"17:00": 0}
    assert counts(client, hid) == {"17:00": 0}


def test_concurrent_holds_for_the_last_places_take_exactly_them(client, hid):
    records = CapacityRecords(client)
    built(records, hid, "helal", capacity=3)

    def take(i: int) -> tuple[int, int, int]:
        return records.hold(
            hid,
            DAY,
            "17:00",
            hold_field(f"c{i}"),
            3,
            TTL,
            units=1,
            practitioner_id="helal",
            life_ms=LONG_LIFE_MS,
        )

    outcomes = at_once(40, take)
    assert len(outcomes) == 40
    held = [serial for outcome, serial, _ in outcomes if outcome == Gate.TAKEN]
    assert sorted(held) == [1, 2, 3]
    assert sorted(o for o in outcomes if o[0] != Gate.TAKEN) == [(Gate.FULL, 3, 0)] * 37
    assert len(holds(client, hid, pid="helal")) == 3
    earliest = min(expires for outcome, _, expires in outcomes if outcome == Gate.TAKEN)
    assert counts(client, hid, "helal") == {"17:00": 0, "h:17:00": 3, "e:17:00": earliest}


def test_a_rebuild_restores_live_holds_and_skips_expired_ones(client, hid):
    records = CapacityRecords(client)
    now = redis_ms(client)
    live, offer = now + 60_000, now + 30_000
    slot = SlotRecords(
        "17:00",
        6,
        held=[("x", 2, 1)],
        pending=[
            ("h:live", 2, live),
            ("h:dead", 1, now - 1000),
            ("p", 1, 0),
            ("o:offer", 1, offer),
            ("h:toobig", 2, live),  # 5 of 6 units are taken by then: it does not fit
        ],
    )
    assert records.rebuild(hid, DAY, [slot], TTL, "rina")
    assert holds(client, hid, pid="rina") == {
        "x": "2",
        "h:live": f"1:2:{live}",
        "p": "3",
        "o:offer": f"4:1:{offer}",
    }
    expected = {"17:00": 2, "h:17:00": 3, "o:17:00": 1, "e:17:00": offer}
    assert stored_counts(client, hid, "rina") == expected
    assert counts(client, hid, "rina") == expected
    assert 0 < client.ttl(keys.holds_key(hid, DAY, "17:00", "rina")) <= TTL
    # the restored hold can be taken as any other
    assert records.take_hold(hid, DAY, "17:00", "h:live", "appt", TTL, "rina") == (Gate.TAKEN, 1)
    assert holds(client, hid, pid="rina")["appt"] == "1:2"
    assert counts(client, hid, "rina") == {"17:00": 4, "h:17:00": 1, "o:17:00": 1, "e:17:00": offer}


def test_releasing_a_hold_gives_its_place_back_once(client, hid):
    records = CapacityRecords(client)
    built(records, hid, "d", capacity=2)
    field = hold_field("r")
    assert records.hold(
        hid, DAY, "17:00", field, 2, TTL, units=2, practitioner_id="d", life_ms=LONG_LIFE_MS
    )[:2] == (Gate.TAKEN, 1)
    assert records.reserve(hid, DAY, "17:00", "a", 2, TTL, practitioner_id="d") == (Gate.FULL, 2)
    assert records.free(hid, DAY, "17:00", field, "d") is True
    assert holds(client, hid, pid="d") == {}
    assert stored_counts(client, hid, "d") == {"17:00": 0}
    assert records.free(hid, DAY, "17:00", field, "d") is False
    assert records.reserve(hid, DAY, "17:00", "a", 2, TTL, units=2, practitioner_id="d") == (
        Gate.TAKEN,
        1,
    )


def test_releasing_an_expired_hold_holds_nothing_and_keeps_counts_consistent(client, hid):
    records = CapacityRecords(client)
    built(records, hid, None, capacity=3)
    assert records.reserve(hid, DAY, "17:00", "a", 3, TTL) == (Gate.TAKEN, 1)
    field = hold_field("gone", offered=True)
    assert records.hold(
        hid, DAY, "17:00", field, 3, TTL, units=2, practitioner_id=None, life_ms=SHORT_LIFE_MS
    )[:2] == (Gate.TAKEN, 2)
    live = records.hold(
        hid,
        DAY,
        "17:00",
        hold_field("stay"),
        3,
        TTL,
        units=1,
        practitioner_id=None,
        life_ms=LONG_LIFE_MS,
    )
    assert live[:2] == (Gate.FULL, 3)  # the short hold still holds its units
    time.sleep(PAST_SHORT_LIFE)
    assert records.free(hid, DAY, "17:00", field) is False
    assert holds(client, hid) == {"a": "1"}
    assert stored_counts(client, hid) == {"17:00": 1}
    assert counts(client, hid) == {"17:00": 1}


def test_the_hold_quota_counts_a_users_live_holds(client):
    records = CapacityRecords(client)
    user = f"u-{uuid.uuid4().hex[:8]}"
    far = int(time.time() * 1000) + LONG_LIFE_MS
    assert records.claim_hold_quota(user, "h1", far, 2) is True
    assert records.claim_hold_quota(user, "h2", far, 2) is True
    assert records.claim_hold_quota(user, "h3", far, 2) is False
    records.free_hold_quota(user, "h1")
    assert records.claim_hold_quota(user, "h3", far, 2) is True
    assert records.claim_hold_quota(user, "h4", far, 2) is False
    # an entry past its expiry no longer counts
    records.free_hold_quota(user, "h2")
    soon = int(time.time() * 1000) + 200
    assert records.claim_hold_quota(user, "h5", soon, 2) is True
    assert records.claim_hold_quota(user, "h6", far, 2) is False
    time.sleep(0.3)
    assert records.claim_hold_quota(user, "h6", far, 2) is True
    members = client.zrange(keys.hold_quota_key(user), 0, -1)
    assert sorted(m.decode() for m in members) == ["h3", "h6"]
    assert 0 < client.pttl(keys.hold_quota_key(user)) <= LONG_LIFE_MS


def test_an_offered_hold_is_counted_as_offered(client, hid):
    records = CapacityRecords(client)
    built(records, hid, None, capacity=5)
    field = hold_field("w1", offered=True)
    assert field == "o:w1"
    outcome, serial, expires = records.hold(
        hid, DAY, "17:00", field, 5, TTL, units=2, practitioner_id=None, life_ms=LONG_LIFE_MS
    )
    assert (outcome, serial) == (Gate.TAKEN, 1)
    plain = records.hold(
        hid,
        DAY,
        "17:00",
        hold_field("p1"),
        5,
        TTL,
        units=1,
        practitioner_id=None,
        life_ms=LONG_LIFE_MS,
    )
    assert plain[:2] == (Gate.TAKEN, 2)
    assert holds(client, hid)[field] == f"1:2:{expires}"
    assert counts(client, hid) == {
        "17:00": 0,
        "h:17:00": 3,
        "o:17:00": 2,
        "e:17:00": min(expires, plain[2]),
    }
    assert records.free(hid, DAY, "17:00", field) is True
    assert counts(client, hid) == {"17:00": 0, "h:17:00": 1, "e:17:00": plain[2]}


def test_take_hold_for_an_appointment_already_placed_frees_the_hold(client, hid):
    """A rebuild may have placed the appointment itself: taking its hold then frees it."""
    records = CapacityRecords(client)
    assert records.rebuild(hid, DAY, [SlotRecords("17:00", 5, [], [])], 3600, None)
    assert records.reserve(hid, DAY, "17:00", "appt", 5, 3600) == (Gate.TAKEN, 1)
    outcome, serial, _ = records.hold(
        hid, DAY, "17:00", "h:x", 5, 3600, units=2, practitioner_id=None, life_ms=60_000
    )
    assert (outcome, serial) == (Gate.TAKEN, 2)
    assert records.take_hold(hid, DAY, "17:00", "h:x", "appt", 3600, None) == (Gate.TAKEN, 1)
    assert set(client.hgetall(keys.holds_key(hid, DAY, "17:00"))) == {b"appt"}
    assert client.hget(keys.counts_key(hid, DAY), "h:17:00") is None


def test_pass_hold_gives_a_live_holds_place_to_a_new_holder_in_one_step(client, hid):
    records = CapacityRecords(client)
    old, new = hold_field("w1", offered=True), hold_field("w2", offered=True)
    args = (hid, DAY, "17:00", old, new, TTL, "helal")
    assert records.pass_hold(*args, LONG_LIFE_MS) == (Gate.NOT_READY, 0, 0)
    built(records, hid, "helal", capacity=2)
    assert records.reserve(hid, DAY, "17:00", "a", 2, TTL, practitioner_id="helal") == (
        Gate.TAKEN,
        1,
    )
    first = records.hold(
        hid, DAY, "17:00", old, 2, TTL, units=1, practitioner_id="helal", life_ms=SHORT_LIFE_MS
    )
    assert first[:2] == (Gate.TAKEN, 2)
    before = redis_ms(client)
    outcome, serial, expires = records.pass_hold(*args, LONG_LIFE_MS)
    assert (outcome, serial) == (Gate.TAKEN, 2)
    assert before + LONG_LIFE_MS <= expires <= redis_ms(client) + LONG_LIFE_MS
    assert holds(client, hid, pid="helal") == {"a": "1", new: f"2:1:{expires}"}
    assert counts(client, hid, "helal") == {
        "17:00": 1,
        "h:17:00": 1,
        "o:17:00": 1,
        "e:17:00": expires,
    }
    time.sleep(PAST_SHORT_LIFE)  # the first hold's time is over: the new one's is not
    assert records.reserve(hid, DAY, "17:00", "b", 2, TTL, practitioner_id="helal")[0] == Gate.FULL
    # Passed once: the old hold is gone.
    assert records.pass_hold(*args, LONG_LIFE_MS) == (Gate.FULL, 0, 0)
    assert holds(client, hid, pid="helal") == {"a": "1", new: f"2:1:{expires}"}
    # An appointment's place is never passed.
    assert records.pass_hold(hid, DAY, "17:00", "a", "o:x", TTL, "helal", LONG_LIFE_MS) == (
        Gate.FULL,
        0,
        0,
    )
    assert holds(client, hid, pid="helal") == {"a": "1", new: f"2:1:{expires}"}


def test_a_hold_past_its_time_is_not_passed_and_its_place_is_free(client, hid):
    records = CapacityRecords(client)
    built(records, hid, None, capacity=1)
    old = hold_field("w1", offered=True)
    assert (
        records.hold(
            hid, DAY, "17:00", old, 1, TTL, units=1, practitioner_id=None, life_ms=BRIEF_LIFE_MS
        )[0]
        == Gate.TAKEN
    )
    time.sleep(PAST_BRIEF_LIFE)
    new = hold_field("w2", offered=True)
    assert records.pass_hold(hid, DAY, "17:00", old, new, TTL, None, LONG_LIFE_MS) == (
        Gate.FULL,
        0,
        0,
    )
    assert holds(client, hid) == {}
    assert stored_counts(client, hid) == {"17:00": 0}
    assert records.reserve(hid, DAY, "17:00", "b", 1, TTL) == (Gate.TAKEN, 1)


def test_concurrent_passes_of_one_hold_pass_it_once(client, hid):
    records = CapacityRecords(client)
    built(records, hid, None, capacity=1)
    old = hold_field("w0", offered=True)
    records.hold(hid, DAY, "17:00", old, 1, TTL, units=1, practitioner_id=None, life_ms=60_000)
    outcomes: list[int] = []
    barrier = threading.Barrier(12)

    def pass_to(n: int) -> None:
        mine = CapacityRecords(client)
        barrier.wait()
        got = mine.pass_hold(
            hid, DAY, "17:00", old, hold_field(f"w{n}", True), TTL, None, LONG_LIFE_MS
        )
        outcomes.append(got[0])

    threads = [threading.Thread(target=pass_to, args=(n,)) for n in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [Gate.FULL] * 11 + [Gate.TAKEN]
    (field,) = holds(client, hid)
    assert field.startswith("o:w") and field != old
    assert counts(client, hid)["o:17:00"] == 1
