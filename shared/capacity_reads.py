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
NOTHING_BOOKED: Mapping[str, int] = {}


@dataclass(frozen=True)
class Snapshot:
    """What one read saw: the published version and each day's counts (None: unknown)."""

    published: Published
    counts: dict[str, Mapping[str, int] | None]


def _parse(raw) -> tuple[bool, dict[str, int]]:
    """(the day was built from MongoDB, counts by slot) of one day's HGETALL reply."""
    if isinstance(raw, dict):  # a cluster pipeline's reply
        fields, values = list(raw), list(raw.values())
    else:  # the script's flat [field, value, ...]
        fields, values = raw[::2], raw[1::2]
    counts = {f.decode(): int(v) for f, v in zip(fields, values, strict=True) if f != _READY}
    return _READY in fields, counts


class CapacityReader:
    """Read side of the capacity records (Redis or Redis Cluster)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        source = resources.files(__package__).joinpath("lua", "read_days.lua").read_text("utf-8")
        self._read_days = None if is_cluster(client) else client.register_script(source)

    def published_and_counts(self, hospital_id: str, dates: list[str]) -> Snapshot:
        """The hospital's published version and the counts of `dates`; RedisError when Redis
        cannot answer (the caller decides what that means for its answer).

        A day's counts are known when the complete-records marker is present (every day was
        rebuilt since Redis last lost its data) or the day itself was rebuilt.
        """
        head = [keys.schedule_version_key(hospital_id), keys.RECORDS_COMPLETE_KEY]
        day_keys = [keys.counts_key(hospital_id, day) for day in dates]
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
            ready, parsed = _parse(raw)
            counts[day] = parsed if ready or complete is not None else None
        return Snapshot(Published.from_raw(version_raw), counts)
