"""The capacity records in Redis: the atomic gate every booking passes, one script a decision.

A slot's places are a Redis hash, appointment id -> serial (and units, when an appointment
takes more than one: `keys.holds_key`); the day's counts hash mirrors the units each slot
holds for the readers (shared/capacity_reads.py). Every script that changes them also appends
the change to the day's live events stream (shared/events.py), in the same atomic step. The
hospital's own slots and each doctor's have records of their own (`practitioner_id`), under
the same hash tag. Each decision
is one Lua script (`lua/`, loaded with redis-py's `register_script`), and every key a script
touches shares the hash tag `{hospital:date}`, so it runs on one Redis Cluster slot.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources

import redis

from shared import events, keys

HELD, FULL, NOT_READY = 1, 0, -1


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class SlotRecords:
    """What MongoDB says one slot holds, for a rebuild."""

    slot: str
    capacity: int
    held: list[tuple[str, int, int]]  # (appointment id, serial, units), confirmed
    pending: list[tuple[str, int]]  # (appointment id, units), oldest first


class CapacityRecords:
    """Places per slot, as appointment id -> serial in a Redis hash."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._reserve = client.register_script(_source("reserve.lua"))
        self._release = client.register_script(_source("release.lua"))
        self._rebuild = client.register_script(_source("rebuild.lua"))
        self._finish_rebuild = client.register_script(_source("finish_rebuild.lua"))

    def reserve(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        appointment_id: str,
        capacity: int,
        ttl: int,
        *,
        units: int = 1,
        practitioner_id: str | None = None,
    ) -> tuple[int, int]:
        """Take `units` of the slot's capacity, all or none: (HELD, serial), (FULL, units
        booked) or (NOT_READY, 0): the day must be rebuilt first."""
        outcome, value = self._reserve(
            keys=[
                keys.counts_key(hospital_id, day, practitioner_id),
                keys.holds_key(hospital_id, day, slot, practitioner_id),
                events.stream_key(hospital_id, day, practitioner_id),
            ],
            args=[slot, appointment_id, capacity, ttl, units, events.STREAM_LENGTH],
        )
        return int(outcome), int(value)

    def release(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        appointment_id: str,
        practitioner_id: str | None = None,
    ) -> bool:
        """Give the places of `appointment_id` back; True when it held some."""
        return bool(
            self._release(
                keys=[
                    keys.counts_key(hospital_id, day, practitioner_id),
                    keys.holds_key(hospital_id, day, slot, practitioner_id),
                    events.stream_key(hospital_id, day, practitioner_id),
                ],
                args=[slot, appointment_id, events.STREAM_LENGTH],
            )
        )

    def rebuild(
        self,
        hospital_id: str,
        day: str,
        slots: list[SlotRecords],
        ttl: int,
        practitioner_id: str | None = None,
    ) -> bool:
        """Build a day's records from MongoDB's truth unless built already; True if built."""
        spec = [
            {
                "slot": s.slot,
                "capacity": s.capacity,
                "held": [list(p) for p in s.held],
                "pending": [list(p) for p in s.pending],
            }
            for s in slots
        ]
        # cjson decodes an empty list as an object; it is only iterated, so that is fine.
        return bool(
            self._rebuild(
                keys=[
                    keys.counts_key(hospital_id, day, practitioner_id),
                    events.stream_key(hospital_id, day, practitioner_id),
                ]
                + [keys.holds_key(hospital_id, day, s.slot, practitioner_id) for s in slots],
                args=[ttl, json.dumps(spec), events.STREAM_LENGTH],
            )
        )

    def begin_full_rebuild(self) -> str:
        """Start rebuilding every day; returns the token `finish_full_rebuild` checks."""
        token = uuid.uuid4().hex
        self.client.set(keys.FULL_REBUILD_KEY, token, ex=3600)
        return token

    def finish_full_rebuild(self, token: str) -> bool:
        """Mark every day's records complete, unless Redis lost its data again meanwhile."""
        return bool(
            self._finish_rebuild(
                keys=[keys.FULL_REBUILD_KEY, keys.RECORDS_COMPLETE_KEY], args=[token]
            )
        )

    def records_complete(self) -> bool:
        """False after Redis lost its data and before a full rebuild finished."""
        return bool(self.client.exists(keys.RECORDS_COMPLETE_KEY))

    def lead(self, lock_key: str, identity: str, ttl_ms: int) -> bool:
        """Take or keep a lock that makes one process of many the leader; True when held."""
        if self.client.set(lock_key, identity, nx=True, px=ttl_ms):
            return True
        if self.client.get(lock_key) == identity.encode():
            self.client.pexpire(lock_key, ttl_ms)
            return True
        return False
