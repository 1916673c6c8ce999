"""Reading a hospital's published configuration version and its days' counts, in one round trip.

The booking service writes the capacity records (booking_service/adapters/capacity.py); both
services
read them here, through one method, `published_and_counts`: the version tells whether a
cached configuration is still current, the counts say how many places each slot holds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import redis

from . import keys
from .clients import is_cluster
from .versions import Published

_READY = keys.READY_FIELD.encode()
_EARLIEST = b"_e"  # the day's earliest hold expiry (booking_service/adapters/lua/places.lua)


class DayCounts(Mapping):
    """A day's counts by slot start, read-only, parsed from the reply on first use; equal (and
    hashed) by the reply itself, so answers can be cached by the counts they show."""

    __slots__ = ("_raw", "_hash", "_counts")

    def __init__(self, raw: tuple = ()):
        self._raw = raw  # (field, value, field, value, ...) as Redis sent them
        self._hash = hash(raw)
        self._counts: dict[str, int] | None = None

    def _parsed(self) -> dict[str, int]:
        if self._counts is None:
            raw = self._raw
            self._counts = {
                f.decode(): int(v) for f, v in zip(raw[::2], raw[1::2], strict=True) if f != _READY
            }
        return self._counts

    def __getitem__(self, slot: str) -> int:
        return self._parsed()[slot]

    def __iter__(self):
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DayCounts):
            return self._raw == other._raw
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())


NOTHING_BOOKED = DayCounts()

# Field prefixes of a day's counts hash besides the slots' booked units (the booking service's
# adapters/lua/places.lua): units held by live holds, of them offered to the waitlist, earliest
# expiry.
HELD_PREFIX, OFFERED_PREFIX, EXPIRES_PREFIX = "h:", "o:", "e:"


def held(counts: Mapping[str, int], slot: str) -> int:
    """Units of `slot` held by live holds (offers to the waitlist included)."""
    return counts.get(HELD_PREFIX + slot, 0)


def offered(counts: Mapping[str, int], slot: str) -> int:
    """Units of `slot` held for waitlist offers."""
    return counts.get(OFFERED_PREFIX + slot, 0)


def _hold_value(value: bytes) -> tuple[int, int] | None:
    """(units, expires_ms) of a holds-hash value that is a hold; None for an appointment's."""
    parts = value.split(b":")
    if len(parts) != 3:
        return None
    return int(parts[1]), int(parts[2])


def _without_expired(flat: tuple, stale: dict[str, dict], now_ms: int) -> tuple:
    """A day's counts reply with the holds of `stale` slots (slot -> its holds hash) counted
    again at `now_ms`: a hold past its time holds nothing, whether or not the gate has
    dropped it yet."""
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    for slot, hash_ in stale.items():
        live_held = live_offered = 0
        earliest = None
        for field, value in hash_.items():
            hold = _hold_value(value)
            if hold is None or hold[1] <= now_ms:
                continue
            live_held += hold[0]
            if field.startswith(b"o:"):
                live_offered += hold[0]
            earliest = hold[1] if earliest is None else min(earliest, hold[1])
        for prefix, value in (
            (HELD_PREFIX, live_held),
            (OFFERED_PREFIX, live_offered),
            (EXPIRES_PREFIX, earliest),
        ):
            name = (prefix + slot).encode()
            if value:
                fields[name] = str(value).encode()
            else:
                fields.pop(name, None)
    left = [int(v) for f, v in fields.items() if f[:2] == b"e:"]
    if left:
        fields[_EARLIEST] = str(min(left)).encode()
    else:
        fields.pop(_EARLIEST, None)
    return tuple(item for pair in sorted(fields.items()) for item in pair)


@dataclass(frozen=True)
class Snapshot:
    """What one read saw: the published version and each day's counts (None: unknown)."""

    published: Published
    counts: dict[str, Mapping[str, int] | None]


def _flat(raw) -> tuple:
    """A day's HGETALL reply as (field, value, ...): the script's list, or a cluster
    pipeline's dict (in field order, so one state of the records is one tuple)."""
    if isinstance(raw, dict):
        return tuple(item for pair in sorted(raw.items()) for item in pair)
    return tuple(raw)


class CapacityReader:
    """Read side of the capacity records (Redis or Redis Cluster)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        source = resources.files(__package__).joinpath("lua", "read_days.lua").read_text("utf-8")
        self._read_days = None if is_cluster(client) else client.register_script(source)

    def published_and_counts(
        self, hospital_id: str, dates: list[str], practitioner_id: str | None = None
    ) -> Snapshot:
        """The hospital's published version and the counts of `dates`; RedisError when Redis
        cannot answer (the caller decides what that means for its answer).

        A day's counts are known when the complete-records marker is present (every day was
        rebuilt since Redis last lost its data) or the day itself was rebuilt. The counts are
        the hospital's own (`practitioner_id` None) or the doctor's.
        """
        head = [keys.schedule_version_key(hospital_id), keys.RECORDS_COMPLETE_KEY]
        day_keys = [keys.counts_key(hospital_id, day, practitioner_id) for day in dates]
        if self._read_days is None:
            # On a cluster the days live on different slots: a pipeline, one round trip per
            # node.
            pipe = self.client.pipeline(transaction=False)
            for key in head:
                pipe.get(key)
            for key in day_keys:
                pipe.hgetall(key)
            replies = pipe.execute()
        else:
            replies = self._read_days(keys=head + day_keys)
        version_raw, complete, hashes = replies[0], replies[1], replies[2:]
        counts: dict[str, Mapping[str, int] | None] = {}
        expired: dict[str, list[str]] = {}
        now_ms = None
        for day, raw in zip(dates, hashes, strict=True):
            if not raw:  # no records for the day: nothing booked, if the marker vouches for it
                counts[day] = None if complete is None else NOTHING_BOOKED
                continue
            flat = _flat(raw)
            # (a value is a number, so the marker can only be a field)
            if complete is None and _READY not in flat:
                counts[day] = None
                continue
            if _EARLIEST in flat:  # a live hold in the day: is one past its time?
                now_ms = now_ms or int(time.time() * 1000)
                if int(flat[flat.index(_EARLIEST) + 1]) <= now_ms:
                    expired[day] = [
                        field[2:].decode()
                        for field, value in zip(flat[::2], flat[1::2], strict=True)
                        if field[:2] == b"e:" and int(value) <= now_ms
                    ]
            counts[day] = DayCounts(flat)
        if expired:
            self._recount_holds(hospital_id, practitioner_id, expired, counts, now_ms)
        return Snapshot(Published.from_raw(version_raw), counts)

    def _recount_holds(self, hospital_id, practitioner_id, expired, counts, now_ms) -> None:
        """Count again the holds of slots where one is past its time and the gate has not
        dropped it yet (one more round trip, only then): the answer never shows it held."""
        wanted = [(day, slot) for day, slots in expired.items() for slot in slots]
        pipe = self.client.pipeline(transaction=False)
        for day, slot in wanted:
            pipe.hgetall(keys.holds_key(hospital_id, day, slot, practitioner_id))
        by_day: dict[str, dict[str, dict]] = {}
        for (day, slot), hash_ in zip(wanted, pipe.execute(), strict=True):
            by_day.setdefault(day, {})[slot] = hash_
        for day, stale in by_day.items():
            counts[day] = DayCounts(_without_expired(counts[day]._raw, stale, now_ms))

    def for_answer(
        self, hospital_id: str, dates: list[str], practitioner_id: str | None = None
    ) -> Snapshot:
        """As `published_and_counts`, for read answers: while Redis cannot answer, nothing is
        known (the configuration then comes from its source, the counts are unknown)."""
        try:
            return self.published_and_counts(hospital_id, dates, practitioner_id)
        except redis.RedisError:
            return Snapshot(Published.unknown(), dict.fromkeys(dates))

    def published(self, hospital_id: str) -> Published:
        """Only the published version (a booking's second look, after its write-ahead
        record): one GET."""
        return Published.from_raw(self.client.get(keys.schedule_version_key(hospital_id)))
