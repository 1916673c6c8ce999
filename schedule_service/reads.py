"""The read paths: a hospital's current configuration and a run of days' counts, in one
Redis round trip (version key, epoch marker and every day's counts hash together)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import redis

from shared import keys
from shared.counts import read_day_counts
from shared.slots import Day

from .catalog import Catalog, Entry


def read_days(
    catalog: Catalog,
    client: redis.Redis,
    hospital_id: str,
    days_for: Callable[[Entry], list[Day]],
) -> tuple[Entry, list[Day], dict[str, Mapping[str, int] | None]]:
    """The current entry, the days it yields, and their counts by date (None where unknown)."""
    entry = catalog.cached(hospital_id) or catalog.resolve(hospital_id, None, redis_ok=False)
    days = days_for(entry)
    dates = [day.iso for day in days]
    version_key = keys.schedule_version_key(hospital_id)
    try:
        counts, (version_raw,) = read_day_counts(client, hospital_id, dates, [version_key])
    except redis.RedisError:
        # Redis is down: the configuration comes from MongoDB, the counts are unknown.
        entry = catalog.resolve(hospital_id, None, redis_ok=False)
        days = days_for(entry)
        return entry, days, dict.fromkeys(day.iso for day in days)
    fresh = catalog.resolve(hospital_id, version_raw)
    if fresh is not entry:
        days = days_for(fresh)
        new_dates = [day.iso for day in days]
        if new_dates != dates:
            try:
                counts, _ = read_day_counts(client, hospital_id, new_dates)
            except redis.RedisError:
                counts = dict.fromkeys(new_dates)
    return fresh, days, counts
