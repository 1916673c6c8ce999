"""Reading a hospital's published configuration version and its days' counts, in one round trip.

The booking service writes the capacity records (booking_service/capacity.py); both services
read them here, through one method, `published_and_counts`: the version tells whether a
cached configuration is still current, the counts say how many places each slot holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import redis

from . import keys
from .clients import is_cluster
from .versions import Published

_READY = keys.READY_FIELD.encode()


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
        for day, raw in zip(dates, hashes, strict=True):
            if not raw:  # no records for the day: nothing booked, if the marker vouches for it
                counts[day] = None if complete is None else NOTHING_BOOKED
                continue
            flat = _flat(raw)
            # (a value is a number, so the marker can only be a field)
            counts[day] = DayCounts(flat) if complete is not None or _READY in flat else None
        return Snapshot(Published.from_raw(version_raw), counts)

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
