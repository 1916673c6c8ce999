"""The Lua gate (booking_service/adapters/capacity.py) against a real Redis: units taken all or
none, per-doctor records under the hospital-day's hash tag, releases and rebuilds with units."""

from __future__ import annotations

from booking_service.adapters.capacity import CapacityRecords, Gate, SlotRecords
from shared import keys
from shared.capacity_reads import CapacityReader
from tests.helpers import at_once

DAY = "2030-01-05"


def built(records: CapacityRecords, hid: str, pid: str | None, capacity: int = 5) -> None:
    assert records.rebuild(hid, DAY, [SlotRecords("17:00", capacity, [], [])], 3600, pid)


def counts(client, hid: str, pid: str | None = None) -> dict:
    return dict(CapacityReader(client).published_and_counts(hid, [DAY], pid).counts[DAY])


def test_a_doctors_keys_share_the_hospital_days_hash_tag(hid):
    tag = keys.day_tag(hid, DAY)
    for key in (
        keys.counts_key(hid, DAY, "helal"),
        keys.holds_key(hid, DAY, "17:00", "helal"),
        keys.counts_key(hid, DAY),
        keys.holds_key(hid, DAY, "17:00"),
    ):
        assert tag in key and key.index(tag) == key.index("{")
    assert keys.counts_key(hid, DAY, "helal") != keys.counts_key(hid, DAY)


def test_units_are_taken_all_or_none_and_released_whole(client, hid):
    records = CapacityRecords(client)
    assert records.reserve(hid, DAY, "17:00", "a", 5, 60, units=2, practitioner_id="d") == (
        Gate.NOT_READY,
        0,
    )
    built(records, hid, "d")
    assert records.reserve(hid, DAY, "17:00", "a", 5, 60, units=2, practitioner_id="d") == (
        Gate.TAKEN,
        1,
    )
    assert records.reserve(hid, DAY, "17:00", "b", 5, 60, units=2, practitioner_id="d") == (
        Gate.TAKEN,
        2,
    )
    # one unit is left: two do not fit, one does
    assert records.reserve(hid, DAY, "17:00", "c", 5, 60, units=2, practitioner_id="d") == (
        Gate.FULL,
        4,
    )
    assert records.reserve(hid, DAY, "17:00", "e", 5, 60, units=1, practitioner_id="d") == (
        Gate.TAKEN,
        3,
    )
    assert counts(client, hid, "d") == {"17:00": 5}
    # a retry of a held id answers its serial and takes nothing more
    assert records.reserve(hid, DAY, "17:00", "a", 5, 60, units=2, practitioner_id="d") == (
        Gate.TAKEN,
        1,
    )
    assert records.free(hid, DAY, "17:00", "a", "d") is True
    assert records.free(hid, DAY, "17:00", "a", "d") is False
    assert counts(client, hid, "d") == {"17:00": 3}
    # the smallest free serial goes to the next
    assert records.reserve(hid, DAY, "17:00", "f", 5, 60, units=2, practitioner_id="d") == (
        Gate.TAKEN,
        1,
    )
    # the hospital's own records never saw any of it
    assert not client.exists(keys.counts_key(hid, DAY))


def test_a_rebuild_keeps_serials_and_units_and_fits_pending_oldest_first(client, hid):
    records = CapacityRecords(client)
    slot = SlotRecords(
        "17:00",
        5,
        held=[("x", 2, 2), ("y", 4, 1)],
        pending=[("p1", 3, 0), ("p2", 2, 0), ("p3", 1, 0)],
    )
    assert records.rebuild(hid, DAY, [slot], 3600, "rina")
    holds = client.hgetall(keys.holds_key(hid, DAY, "17:00", "rina"))
    # 3 units held; p1 (3) does not fit, p2 (2) does with the smallest free serial
    assert {k.decode(): v.decode() for k, v in holds.items()} == {
        "x": "2:2",
        "y": "4",
        "p2": "1:2",
    }
    assert counts(client, hid, "rina") == {"17:00": 5}
    assert records.rebuild(hid, DAY, [slot], 3600, "rina") is False  # already built


def test_v1_records_of_one_unit_read_as_before(client, hid):
    """A holds hash written before units existed (serials only) is read the same way."""
    records = CapacityRecords(client)
    built(records, hid, None, capacity=3)
    client.hset(keys.holds_key(hid, DAY, "17:00"), mapping={"old1": 1, "old2": 2})
    assert records.reserve(hid, DAY, "17:00", "n", 3, 60) == (Gate.TAKEN, 3)
    assert records.reserve(hid, DAY, "17:00", "m", 3, 60) == (Gate.FULL, 3)
    assert records.free(hid, DAY, "17:00", "old1")
    assert counts(client, hid) == {"17:00": 2}


def test_concurrent_mixed_units_never_exceed_capacity(client, hid):
    records = CapacityRecords(client)
    built(records, hid, "helal", capacity=10)

    def book(i: int) -> tuple[int, int, int]:
        units = 2 if i % 3 == 0 else 1
        outcome, value = records.reserve(
            hid, DAY, "17:00", f"id{i}", 10, 60, units=units, practitioner_id="helal"
        )
        return outcome, value, units

    outcomes = at_once(40, book)
    taken = [(serial, units) for outcome, serial, units in outcomes if outcome == Gate.TAKEN]
    assert sum(units for _, units in taken) <= 10
    assert len({serial for serial, _ in taken}) == len(taken)  # never shared
    assert counts(client, hid, "helal") == {"17:00": sum(units for _, units in taken)}


def test_each_change_is_announced_on_the_days_stream_in_the_same_step(client, hid):
    """shared/events.py: the gate's scripts append one `availability` entry per change, and
    none when nothing changed (a full slot, a place released twice, a day already built)."""
    from shared import events

    records = CapacityRecords(client)
    stream = events.stream_key(hid, DAY, "d")

    def announced() -> list[str]:
        return [fields[b"event"].decode() for _, fields in client.xrange(stream)]

    built(records, hid, "d", capacity=1)
    assert announced() == ["availability"]
    assert records.rebuild(hid, DAY, [SlotRecords("17:00", 1, [], [])], 3600, "d") is False
    assert records.reserve(hid, DAY, "17:00", "a", 1, 60, practitioner_id="d")[0] == Gate.TAKEN
    assert records.reserve(hid, DAY, "17:00", "b", 1, 60, practitioner_id="d")[0] == Gate.FULL
    assert records.free(hid, DAY, "17:00", "a", "d") is True
    assert records.free(hid, DAY, "17:00", "a", "d") is False
    assert announced() == ["availability"] * 3
    assert 0 < client.ttl(stream) <= 3600
    assert not client.exists(events.stream_key(hid, DAY))  # the hospital's own: untouched
