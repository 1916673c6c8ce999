"""The atomic capacity gate: Redis Lua scripts, one round trip per decision."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources

import redis

from shared import keys
from shared.clients import LuaScript

HELD, FULL, NOT_READY = 1, 0, -1
_FINISH_WARM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], '1')
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def _script(name: str) -> LuaScript:
    return LuaScript(resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8"))


_RESERVE = _script("reserve.lua")
_RELEASE = _script("release.lua")
_REBUILD = _script("rebuild.lua")


@dataclass(frozen=True)
class SlotRecords:
    """What MongoDB says one slot holds, for a rebuild."""

    slot: str
    capacity: int
    held: list[tuple[str, int]]
    pending: list[str]


class CapacityGate:
    """Reservations per slot, as appointment id -> serial in a Redis hash."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def reserve(
        self,
        hospital_id: str,
        day: str,
        slot: str,
        appointment_id: str,
        capacity: int,
        ttl: int,
    ) -> tuple[int, int]:
        """(HELD, serial), (FULL, booked) or (NOT_READY, 0)."""
        outcome, value = _RESERVE(
            self.client,
            [keys.counts_key(hospital_id, day), keys.holds_key(hospital_id, day, slot)],
            [slot, appointment_id, capacity, ttl],
        )
        return int(outcome), int(value)

    def release(self, hospital_id: str, day: str, slot: str, appointment_id: str) -> bool:
        """Give the place of `appointment_id` back; True when it held one."""
        return bool(
            _RELEASE(
                self.client,
                [keys.counts_key(hospital_id, day), keys.holds_key(hospital_id, day, slot)],
                [slot, appointment_id],
            )
        )

    def rebuild(self, hospital_id: str, day: str, slots: list[SlotRecords], ttl: int) -> bool:
        """Build a day's records from MongoDB's truth unless built already; True if built."""
        spec = [
            {
                "slot": s.slot,
                "capacity": s.capacity,
                "held": [list(p) for p in s.held],
                "pending": list(s.pending),
            }
            for s in slots
        ]
        # cjson decodes an empty list as an object; it is only iterated, so that is fine.
        return bool(
            _REBUILD(
                self.client,
                [keys.counts_key(hospital_id, day)]
                + [keys.holds_key(hospital_id, day, s.slot) for s in slots],
                [ttl, json.dumps(spec)],
            )
        )

    def begin_warm(self) -> str:
        """Start a full rebuild; returns the token that finish_warm checks."""
        token = uuid.uuid4().hex
        self.client.set(keys.WARMING_KEY, token, ex=3600)
        return token

    def finish_warm(self, token: str) -> bool:
        """Set the epoch, unless Redis lost its data again while the rebuild ran."""
        return bool(self.client.eval(_FINISH_WARM, 2, keys.WARMING_KEY, keys.EPOCH_KEY, token))

    def epoch_present(self) -> bool:
        """False after Redis lost its data and before the warmer rebuilt it."""
        return bool(self.client.exists(keys.EPOCH_KEY))
