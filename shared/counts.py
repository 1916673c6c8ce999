"""Read the booking service's capacity records: any number of days in one round trip."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import redis

from . import keys
from .clients import LuaScript, is_cluster

_READY = keys.READY_FIELD.encode()
_NOTHING_BOOKED: Mapping[str, int] = MappingProxyType({})
# A day's parsed counts by the raw reply they come from (bounded). The counts are read from
# Redis on every call; only their parsing is saved (~2.5 us a day, a 60-day calendar reads
# 60), since a day's records change only when someone books or cancels on it. The same reply
# also gives the same read-only mapping, which shared.availability renders from its cache.
_PARSED: dict[tuple, tuple[bool, Mapping[str, int]]] = {}
_MAX_PARSED = 4096

# One read-only call for a whole calendar: a single reply instead of one per day, which
# halves the service's cost of a 60-day calendar. Reads only the keys it is given.
_READ_ALL = LuaScript("""
local out = {}
for i, key in ipairs(KEYS) do
  if i <= tonumber(ARGV[1]) then
    out[i] = redis.call('GET', key) or false
  else
    out[i] = redis.call('HGETALL', key)
  end
end
return out
""")


def _fetch(client, days_keys: list[str], extra: list[str]) -> tuple[list, object, list]:
    """(extra values, epoch value, raw day hashes as flat or dict replies)."""
    head = [*extra, keys.EPOCH_KEY]
    if is_cluster(client):
        # On a cluster the days live on different slots: a pipeline, still one round trip
        # per node.
        pipe = client.pipeline(transaction=False)
        for key in head:
            pipe.get(key)
        for key in days_keys:
            pipe.hgetall(key)
        results = pipe.execute()
    else:
        results = _READ_ALL(client, head + days_keys, [len(head)])
    return results[: len(extra)], results[len(extra)], results[len(head) :]


def _parse(raw) -> tuple[bool, Mapping[str, int]]:
    """(has the ready marker, counts by slot) of one day's HGETALL reply."""
    if isinstance(raw, dict):  # a cluster pipeline's reply
        fields, values = raw.keys(), raw.values()
    else:  # the script's flat [field, value, ...]
        fields, values = raw[::2], raw[1::2]
    counts = {k.decode(): int(v) for k, v in zip(fields, values, strict=True) if k != _READY}
    return _READY in fields, MappingProxyType(counts)


def read_day_counts(
    client: redis.Redis, hospital_id: str, days: list[str], extra: list[str] = ()
) -> tuple[dict[str, Mapping[str, int] | None], list]:
    """Counts per day (None where unknown) plus the values of `extra` keys, in one round trip.

    A day's counts are known when the warmer's epoch marker is present (every day was
    rebuilt since Redis last lost its data) or the day itself was rebuilt. Redis errors
    propagate: the caller decides what an unreachable Redis means for its answer. The
    counts are read-only mappings, shared between calls that read the same records.
    """
    extras, epoch, hashes = _fetch(
        client, [keys.counts_key(hospital_id, day) for day in days], list(extra)
    )
    out: dict[str, Mapping[str, int] | None] = {}
    for day, raw in zip(days, hashes, strict=True):
        if not raw:  # no records for the day: nothing booked, if the epoch vouches for it
            out[day] = None if epoch is None else _NOTHING_BOOKED
            continue
        key = tuple(raw) if isinstance(raw, list) else tuple(raw.items())
        parsed = _PARSED.get(key)
        if parsed is None:
            parsed = _parse(raw)
            if len(_PARSED) >= _MAX_PARSED:
                _PARSED.clear()
            _PARSED[key] = parsed
        ready, counts = parsed
        out[day] = counts if ready or epoch is not None else None
    return out, extras
