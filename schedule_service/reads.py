"""The read paths: a hospital's current configuration and a run of dates' counts, in one
Redis round trip (version key, epoch marker and every day's counts hash together)."""

from __future__ import annotations

from collections.abc import Callable

import redis

from shared import keys
from shared.counts import read_day_counts

from .catalog import Catalog, Entry


def read_days(
    catalog: Catalog,
    client: redis.Redis,
    hospital_id: str,
    dates_for: Callable[[Entry], list[str]],
) -> tuple[Entry, list[str], dict[str, dict[str, int] | None]]:
    """The current entry, the dates it yields, and their counts (None where unknown)."""
    entry = catalog.cached(hospital_id) or catalog.resolve(hospital_id, None, redis_ok=False)
    days = dates_for(entry)
    version_key = keys.schedule_version_key(hospital_id)
    try:
        counts, (version_raw,) = read_day_counts(client, hospital_id, days, [version_key])
    except redis.RedisError:
        # Redis is down: the configuration comes from MongoDB, the counts are unknown.
        entry = catalog.resolve(hospital_id, None, redis_ok=False)
        days = dates_for(entry)
        return entry, days, dict.fromkeys(days)
    fresh = catalog.resolve(hospital_id, version_raw)
    if fresh is not entry:
        new_days = dates_for(fresh)
        if new_days != days:
            days = new_days
            try:
                counts, _ = read_day_counts(client, hospital_id, days)
            except redis.RedisError:
                counts = dict.fromkeys(days)
    return fresh, days, counts
