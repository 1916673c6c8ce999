"""The Redis key layout, defined once. The booking service writes the capacity records;
the schedule service only reads them, and writes only the schedule version keys.

Keys of one hospital-day share the hash tag `{hospital:date}`, so one Lua script touches
one Redis Cluster slot.
"""

from __future__ import annotations

# Present while every day's records match MongoDB (set by the reconciler after a full
# rebuild). Gone after Redis loses its data: counts are then unknown until the reconciler
# has rebuilt them. (The key's name is older than the constant's; it is kept so a running
# Redis needs no migration.)
RECORDS_COMPLETE_KEY = "cap:{epoch}"
# Set while a full rebuild runs; a flush during the rebuild deletes it, and the complete
# marker is then not set, so the next pass rebuilds again.
FULL_REBUILD_KEY = "cap:{epoch}:warming"
# Field of a day's counts hash saying the day was built from MongoDB.
READY_FIELD = "_ready"


def day_tag(hospital_id: str, day: str) -> str:
    """The hash tag that keeps one hospital-day on one cluster slot."""
    return f"{{{hospital_id}:{day}}}"


def counts_key(hospital_id: str, day: str, practitioner_id: str | None = None) -> str:
    """Hash: slot start -> units held, plus `_ready`: the hospital's own records, or a
    doctor's (same hash tag: a hospital-day stays on one cluster slot)."""
    # day_tag written out: a calendar builds 60 of these per request.
    if practitioner_id is None:
        return f"cap:{{{hospital_id}:{day}}}:counts"
    return f"cap:{{{hospital_id}:{day}}}:p:{practitioner_id}:counts"


def holds_key(hospital_id: str, day: str, slot: str, practitioner_id: str | None = None) -> str:
    """Hash: appointment id -> its serial (`serial`, or `serial:units` when it takes more than
    one unit), one field per appointment holding a place in the slot."""
    if practitioner_id is None:
        return f"cap:{day_tag(hospital_id, day)}:holds:{slot}"
    return f"cap:{day_tag(hospital_id, day)}:p:{practitioner_id}:holds:{slot}"


def schedule_version_key(hospital_id: str) -> str:
    """The current configuration version of a hospital (written by the schedule service)."""
    return f"sched:version:{hospital_id}"


def rate_key(kind: str, subject: str) -> str:
    """A rate-limit counter."""
    return f"rl:{kind}:{subject}"


def edit_lock_key(hospital_id: str) -> str:
    """Held while one edit of a hospital runs: its edits are made one at a time."""
    return f"sched:edit-lock:{hospital_id}"


def hold_quota_key(user_id: str) -> str:
    """Sorted set: a user's live holds, hold id -> expiry (ms), for the per-user limit."""
    return f"holds:user:{{{user_id}}}"
