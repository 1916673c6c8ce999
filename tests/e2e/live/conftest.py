"""The whole system for the live tests: the `stack` of tests/e2e/conftest.py with the live
service's settings these tests need (heartbeats every second, gateway timeouts set low so a
stream visibly outlives them). The fixtures below keep the names of tests/e2e/conftest.py's, so
tests here use them as everywhere else (every test under tests/e2e is marked e2e); they are this
directory's own, so no other test sees these settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from devstack.stack import Stack
from tests.e2e import conftest as e2e
from tests.helpers import hospital_doc, own_database, publish_hospital, whole_system

HEARTBEAT_SECONDS = 1.0
GATEWAY_IDLE_TIMEOUT = 2
GATEWAY_READ_BODY_TIMEOUT = 3
LIVE_ENV = {"LIVE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}
GATEWAY_ENV = {
    "GATEWAY_IDLE_TIMEOUT": str(GATEWAY_IDLE_TIMEOUT),
    "GATEWAY_READ_BODY_TIMEOUT": str(GATEWAY_READ_BODY_TIMEOUT),
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory, mongo_url, redis_url, mongo_db_name) -> Iterator[Stack]:
    """One running system for the live tests, on a MongoDB database of its own (dropped at the
    end): it runs until the session ends, and its booking service must not work on the other
    stacks' documents (it would lease their webhook deliveries)."""
    directory = tmp_path_factory.mktemp("live-stack")
    db_name = f"{mongo_db_name}_live"
    system = whole_system(
        directory,
        mongo_url,
        redis_url,
        db_name,
        workers=1,
        extra_env=LIVE_ENV,
        gateway_env=GATEWAY_ENV,
    )
    with own_database(mongo_url, db_name), system as running:
        yield running


# The clients of tests/e2e/conftest.py, defined again here so that they are this stack's:
# a session fixture keeps one value per definition. (Its `hospital` is function-scoped, so it
# already asks this directory's `admin`.)
gateway = e2e.gateway
admin = e2e.admin


@pytest.fixture
def big_hospital(admin) -> dict:
    """A new hospital whose days have 286 slots (sessions of 5 minutes), so that one
    availability event is about 13 KB."""
    sessions = {"sessions": [{"start": "00:05", "end": "23:55", "slot_minutes": 5}]}
    doc = hospital_doc(f"big-{uuid.uuid4().hex[:8]}", schedule={str(d): sessions for d in range(7)})
    return publish_hospital(admin, doc)


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's Redis (where the services publish)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
