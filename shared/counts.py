"""Read the booking service's capacity records: any number of days in one round trip."""

from __future__ import annotations

import redis
from redis.commands.core import Script

from . import keys
from .clients import is_cluster

# One read-only call for a whole calendar: a single reply instead of one per day, which
# halves the service's cost of a 60-day calendar. Reads only the keys it is given.
_READ_ALL = """
local out = {}
for i, key in ipairs(KEYS) do
  if i <= tonumber(ARGV[1]) then
    out[i] = redis.call('GET', key) or false
  else
    out[i] = redis.call('HGETALL', key)
  end
end
return out
"""
_read_all: Script | None = None


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
        global _read_all
        if _read_all is None:  # one Script (its SHA); each call runs on the given client
            _read_all = client.register_script(_READ_ALL)
        results = _read_all(keys=head + days_keys, args=[len(head)], client=client)
    return results[: len(extra)], results[len(extra)], results[len(head) :]


def _as_dict(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


def read_day_counts(
    client: redis.Redis, hospital_id: str, days: list[str], extra: list[str] = ()
) -> tuple[dict[str, dict[str, int] | None], list]:
    """Counts per day (None where unknown) plus the values of `extra` keys, in one round trip.

    A day's counts are known when the warmer's epoch marker is present (every day was
    rebuilt since Redis last lost its data) or the day itself was rebuilt. Redis errors
    propagate: the caller decides what an unreachable Redis means for its answer.
    """
    extras, epoch, hashes = _fetch(
        client, [keys.counts_key(hospital_id, day) for day in days], list(extra)
    )
    ready_field = keys.READY_FIELD.encode()
    out: dict[str, dict[str, int] | None] = {}
    for day, raw in zip(days, hashes, strict=True):
        fields = _as_dict(raw)
        if epoch is None and ready_field not in fields:
            out[day] = None
            continue
        out[day] = {k.decode(): int(v) for k, v in fields.items() if k != ready_field}
    return out, extras
