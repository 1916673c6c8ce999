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
from enum import IntEnum
from importlib import resources

import redis
from redis.exceptions import NoScriptError

from shared import events, keys
from shared.clients import is_cluster
from shared.versions import parse_version


class Gate(IntEnum):
    """What a gate script decided (its first value): the place is taken (kept for its owner:
    an appointment, a hold, an offer passed on), the slot is full, or the day's records are
    not built (rebuild them from MongoDB, then ask again)."""

    TAKEN = 1
    FULL = 0
    NOT_READY = -1
    # The hospital's published version, read in the same round trip just before the step
    # (`expect_version`), was not the one expected: an edit began. Whatever the step took,
    # the caller gives back (it frees its owner's places).
    CHANGED = -2


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


def _gate_script(name: str) -> str:
    """A script of the gate, after the functions every one of them counts places with."""
    return _source("places.lua") + "\n" + _source(name)


def hold_field(hold_id: str, offered: bool = False) -> str:
    """The field of a hold in its slot's holds hash (`o:` when offered to the waitlist)."""
    return f"{'o' if offered else 'h'}:{hold_id}"


@dataclass(frozen=True)
class SlotRecords:
    """What MongoDB says one slot holds, for a rebuild."""

    slot: str
    capacity: int
    held: list[tuple[str, int, int]]  # (appointment id, serial, units), confirmed
    # (field, units, expires_ms: 0 for an appointment[, always: 1 for a live hold, placed
    # whether or not it fits]), in order: live holds, then appointments written ahead of
    # their place or moving here, oldest first
    pending: list[tuple]


class CapacityRecords:
    """Places per slot, as appointment id -> serial in a Redis hash."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._cluster = is_cluster(client)
        self._reserve = client.register_script(_gate_script("reserve.lua"))
        self._release = client.register_script(_gate_script("release.lua"))
        self._take_hold = client.register_script(_gate_script("take_hold.lua"))
        self._pass_hold = client.register_script(_gate_script("pass_hold.lua"))
        self._rebuild = client.register_script(_gate_script("rebuild.lua"))
        self._hold_quota = client.register_script(_source("hold_quota.lua"))
        self._restore_quota = client.register_script(_source("restore_quota.lua"))
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
        expect_version: int | None = None,
    ) -> tuple[int, int]:
        """Take `units` of the slot's capacity, all or none: (TAKEN, serial), (FULL, units
        taken) or (NOT_READY, 0): the day must be rebuilt first. With `expect_version`, the
        hospital's published version is read first in the same round trip: (CHANGED, 0)
        when it is another (see Gate.CHANGED)."""
        outcome, value, _ = self._take(
            hospital_id, day, slot, appointment_id, capacity, ttl, units, practitioner_id, 0,
            expect_version,
        )  # fmt: skip
        return outcome, value

    def hold(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        field: str,
        capacity: int,
        ttl: int,
        *,
        units: int,
        practitioner_id: str | None,
        life_ms: int,
    ) -> tuple[int, int, int]:
        """Hold `units` places for `life_ms` (by Redis's clock): (TAKEN, serial, expires_ms),
        (FULL, units taken, 0) or (NOT_READY, 0, 0)."""
        return self._take(
            hospital_id, day, slot, field, capacity, ttl, units, practitioner_id, life_ms
        )

    def _take(
        self, hospital_id, day, slot, field, capacity, ttl, units, practitioner_id, life,
        expect_version=None,
    ):  # fmt: skip
        reply = self._step(
            self._reserve,
            [
                keys.counts_key(hospital_id, day, practitioner_id),
                keys.holds_key(hospital_id, day, slot, practitioner_id),
                events.stream_key(hospital_id, day, practitioner_id),
            ],
            [slot, field, capacity, ttl, units, events.STREAM_LENGTH, life],
            hospital_id,
            expect_version,
        )
        return int(reply[0]), int(reply[1]), int(reply[2]) if len(reply) > 2 else 0

    def _step(self, script, keys_: list, args: list, hospital_id: str, expect_version):
        """Run one gate script; with `expect_version`, after a GET of the hospital's version
        key in the same round trip (a pipeline), and [CHANGED, 0, 0] when the version read is
        not the one expected. (A cluster's pipelines refuse scripts: there, the GET first,
        and the script only when the version is the one expected.)"""
        if expect_version is None:
            return script(keys=keys_, args=args)
        version_key = keys.schedule_version_key(hospital_id)
        if self._cluster:
            if parse_version(self.client.get(version_key)) != expect_version:
                return [Gate.CHANGED, 0, 0]
            return script(keys=keys_, args=args)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(version_key)
        # The script by its SHA: a Script object in a pipeline would add a SCRIPT EXISTS
        # round trip to every execute. A server that lost its scripts (NOSCRIPT: nothing ran)
        # gets it loaded and run on its own.
        pipe.evalsha(script.sha, len(keys_), *keys_, *args)
        version_raw, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):
            reply = script(keys=keys_, args=args)
        for answer in (reply, version_raw):
            if isinstance(answer, Exception):
                raise answer
        if parse_version(version_raw) != expect_version:
            return [Gate.CHANGED, 0, 0]
        return reply

    def take_hold(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        field: str,
        appointment_id: str,
        ttl: int,
        practitioner_id: str | None,
        expect_version: int | None = None,
    ) -> tuple[int, int]:
        """Turn a live hold into the appointment's place: (TAKEN, serial), (FULL, 0) when the
        hold is gone, (NOT_READY, 0) when the day must be rebuilt first; `expect_version` as
        for `reserve`."""
        reply = self._step(
            self._take_hold,
            [
                keys.counts_key(hospital_id, day, practitioner_id),
                keys.holds_key(hospital_id, day, slot, practitioner_id),
                events.stream_key(hospital_id, day, practitioner_id),
            ],
            [slot, field, appointment_id, ttl, events.STREAM_LENGTH],
            hospital_id,
            expect_version,
        )
        return int(reply[0]), int(reply[1])

    def pass_hold(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        field: str,
        to_field: str,
        ttl: int,
        practitioner_id: str | None,
        life_ms: int,
    ) -> tuple[int, int, int]:
        """Give a live hold's place (serial and units) to the holder `to_field` for `life_ms`,
        in one step: (TAKEN, serial, expires_ms), (FULL, 0, 0) when the hold is gone,
        (NOT_READY, 0, 0) when the day's records are not built."""
        reply = self._pass_hold(
            keys=[
                keys.counts_key(hospital_id, day, practitioner_id),
                keys.holds_key(hospital_id, day, slot, practitioner_id),
                events.stream_key(hospital_id, day, practitioner_id),
            ],
            args=[slot, field, to_field, life_ms, ttl, events.STREAM_LENGTH],
        )
        return int(reply[0]), int(reply[1]), int(reply[2])

    def claim_hold_quota(self, user_id: str, hold_id: str, expires_ms: int, limit: int) -> bool:
        """Count a hold against its user's live holds; False when the user has `limit`."""
        return bool(
            self._hold_quota(keys=[keys.hold_quota_key(user_id)], args=[hold_id, expires_ms, limit])
        )

    def restore_hold_quota(self, user_id: str, live: list[tuple[str, int]]) -> None:
        """Count these live holds and offers (hold id, expiry ms) against their user again,
        after Redis lost its quota set (idempotent)."""
        if live:
            # (int(): hiredis packs no int subclass, e.g. bson's Int64 read from MongoDB)
            args = [v for hold_id, expires_ms in live for v in (str(hold_id), int(expires_ms))]
            self._restore_quota(keys=[keys.hold_quota_key(user_id)], args=args)

    def holds_place(
        self, hospital_id: str, day: str, slot: str, field: str, practitioner_id: str | None
    ) -> bool | None:
        """Whether the gate keeps a place under `field` (a hold's) in the slot; None when the
        day's records are not built (nothing can be told)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hexists(keys.counts_key(hospital_id, day, practitioner_id), "_ready")
        pipe.hexists(keys.holds_key(hospital_id, day, slot, practitioner_id), field)
        ready, present = pipe.execute()
        return bool(present) if ready else None

    def free_hold_quota(self, user_id: str, hold_id: str) -> None:
        """A hold no longer counts against its user (used, given back or refused)."""
        self.client.zrem(keys.hold_quota_key(user_id), hold_id)

    def free(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        appointment_id: str,
        practitioner_id: str | None = None,
    ) -> bool:
        """Give the places of `appointment_id` (or a hold's field) back; True when it held
        some."""
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
