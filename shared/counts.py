"""Read the booking service's capacity records: any number of days in one round trip."""

from __future__ import annotations

import redis

from . import keys


def read_day_counts(
    client: redis.Redis, hospital_id: str, days: list[str], extra: list[str] = ()
) -> tuple[dict[str, dict[str, int] | None], list]:
    """Counts per day (None where unknown) plus the values of `extra` keys, in one pipeline.

    A day's counts are known when the warmer's epoch marker is present (every day was
    rebuilt since Redis last lost its data) or the day itself was rebuilt. Redis errors
    propagate: the caller decides what an unreachable Redis means for its answer.
    """
    pipe = client.pipeline(transaction=False)
    for key in extra:
        pipe.get(key)
    pipe.get(keys.EPOCH_KEY)
    for day in days:
        pipe.hgetall(keys.counts_key(hospital_id, day))
    results = pipe.execute()
    extras, epoch, hashes = results[: len(extra)], results[len(extra)], results[len(extra) + 1 :]
    out: dict[str, dict[str, int] | None] = {}
    for day, raw in zip(days, hashes, strict=True):
        ready = keys.READY_FIELD.encode() in raw
        if epoch is None and not ready:
            out[day] = None
            continue
        out[day] = {k.decode(): int(v) for k, v in raw.items() if k != keys.READY_FIELD.encode()}
    return out, extras
