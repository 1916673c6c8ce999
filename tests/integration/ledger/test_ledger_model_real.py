"""The ledger model's integration twin (issue 22, item 5): the state machine of
tests/unit/ledger/ledger_support.py, fewer examples, over real stores: the capacity gate's
Lua scripts and the rate limits on a private valkey, the repositories on the session's
MongoDB (nx-27017, or $MONGO_URL) in a database of this test's own. Each example starts
clean (the valkey flushed, the collections dropped and their indexes made again).

What differs from the fast run: time is the wall clock (valkey's, for hold expiries), so
no rule moves it on; PENDING_TIMEOUT_SECONDS is -1, so `recover` needs no wait (the machine
is sequential: nothing is pending but what a crash left; and nx-27017's `find` compares a
datetime bound in whole seconds, `created_at < now` missing what was written in the same
second, so 0 would not do); the hospital lives in an Etc/GMT zone where it is about 09:00
now, so today still has its slots to come.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime

import pytest
import redis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from pymongo import MongoClient

from booking_service.bootstrap import ensure_indexes, make_context
from shared import keys, versions
from shared.config import Config
from tests.unit.ledger.ledger_support import ENDS, LedgerModel, ledger_config

COLLECTIONS = ("appointments", "holds", "waitlist", "users", "idempotency_keys")


def zone_at_nine(now: datetime) -> str:
    """An Etc/GMT zone where it is between 09:00 and 10:00 at `now` (Etc/GMT-5 is UTC+5)."""
    offset = (9 - now.hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


class WallClock:
    """The real clock: the core's `now` is the process's, hold expiries valkey's."""

    can_advance = False

    def __init__(self, client: redis.Redis):
        self.client = client

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        raise AssertionError("the wall clock is not moved on")

    def gate_ms(self) -> int:
        seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000


class RealBackend:
    """One example's stores: the valkey flushed, the collections dropped, then the Context
    booking_service/bootstrap.py builds (its schedule source in this process)."""

    def __init__(self, config: Config, client: redis.Redis, db):
        client.flushdb()
        for name in COLLECTIONS:
            db.drop_collection(name)
        ensure_indexes(db)
        self.client, self.db = client, db
        self.docs: dict[str, dict] = {}
        self.clock = WallClock(client)
        self.timezone = zone_at_nine(self.clock())
        self.ctx = make_context(config, db, client, self.load)

    def publish(self, doc: dict) -> None:
        self.docs[doc["hospital_id"]] = copy.deepcopy(doc)
        versions.publish(self.client, doc["hospital_id"], doc["version"])

    def fence(self, hospital_id: str) -> None:
        versions.mark_editing(self.client, hospital_id)

    def load(self, hospital_id: str) -> dict | None:
        return copy.deepcopy(self.docs.get(hospital_id))

    def _all(self, name: str) -> list[dict]:
        return sorted(self.db[name].find(), key=lambda d: d["_id"])

    def appointments(self) -> list[dict]:
        return self._all("appointments")

    def holds(self) -> list[dict]:
        return self._all("holds")

    def entries(self) -> list[dict]:
        return self._all("waitlist")

    def gate(self, hospital_id: str, pid: str | None, day: str, slot: str) -> dict:
        """field -> (serial, units, expires_ms: 0 for an appointment), as lua/places.lua
        writes them (expired holds included)."""
        found = {}
        for field, value in self.client.hgetall(
            keys.holds_key(hospital_id, day, slot, pid)
        ).items():
            parts = [int(p) for p in value.decode().split(":")]
            serial, units, expires = (parts + [1, 0][len(parts) - 1 :])[:3]
            found[field.decode()] = (serial, units, expires)
        return found

    def ready(self, hospital_id: str, pid: str | None, day: str) -> bool:
        return bool(self.client.hexists(keys.counts_key(hospital_id, day, pid), keys.READY_FIELD))

    def lose_day(self, hospital_id: str, pid: str | None, day: str) -> None:
        lost = [keys.counts_key(hospital_id, day, pid), keys.RECORDS_COMPLETE_KEY]
        lost += [keys.holds_key(hospital_id, day, slot, pid) for slot in ENDS]
        self.client.delete(*lost)

    def lose_everything(self) -> None:
        """The capacity records and the hold quotas (as FakeCapacity.lose_everything)."""
        for pattern in ("cap:*", "holds:user:*"):
            for key in self.client.scan_iter(match=pattern):
                self.client.delete(key)

    def close(self) -> None:
        pass


@pytest.fixture
def real_stores(redis_factory, mongo_url, mongo_db_name):
    """A private valkey (flushed by every example) and a database of this test's own."""
    server = redis_factory("ledger", appendonly=False)
    client = redis.Redis.from_url(server.url)
    mongo = MongoClient(mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True)
    name = f"{mongo_db_name}_ledger"
    assert name.startswith("test_")
    yield client, mongo[name]
    mongo.drop_database(name)
    mongo.close()
    client.close()


def test_the_ledger_model_holds_over_real_valkey_and_mongodb(real_stores):
    client, db = real_stores

    class RealLedger(LedgerModel):
        config = ledger_config(pending_timeout_seconds=-1)

        @staticmethod
        def backend_factory(config: Config) -> RealBackend:
            return RealBackend(config, client, db)

    started = time.monotonic()
    run_state_machine_as_test(
        RealLedger,
        settings=settings(
            max_examples=12,
            stateful_step_count=30,
            deadline=None,
            database=None,
            derandomize=True,  # the same 12 every run: `make test` never fails by the draw
            # no explain phase: tracing every line over real stores takes minutes
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    print(f"12 examples in {time.monotonic() - started:.1f} s")
