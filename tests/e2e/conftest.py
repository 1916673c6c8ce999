"""The whole system over real HTTP: databases, seed, three gunicorn services, the gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.helpers import Api

# Settings that make the tests quick without changing behaviour: cheap bcrypt, a fast
# reconciler and no booking limit in the way of tests that book many places.
TEST_ENV = {
    "BCRYPT_ROUNDS": "4",
    "RECONCILE_INTERVAL_SECONDS": "0.5",
    "PENDING_TIMEOUT_SECONDS": "3",
    "BOOKING_LIMIT": "100000",
    "ACCESS_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory, mongo_url, redis_url, mongo_db_name) -> Iterator[Stack]:
    """One running system for the e2e session (its own database name)."""
    env = dict(TEST_ENV, MONGO_DB=mongo_db_name)
    with Stack(
        tmp_path_factory.mktemp("stack"),
        mongo_url=mongo_url,
        redis_url=redis_url,
        workers=2,
        threads=4,
        extra_env=env,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def gateway(stack) -> Api:
    """An anonymous client of the gateway."""
    return Api(stack.gateway_url)


@pytest.fixture(scope="session")
def admin(gateway) -> Api:
    """The seeded admin, logged in."""
    return gateway.login("portal@drhelal.com", "123456")


@pytest.fixture
def patient(gateway) -> Api:
    """A freshly registered patient, logged in."""
    return gateway.new_patient()


@pytest.fixture
def hospital(admin) -> dict:
    """A new hospital of its own for one test (isolation from the seeded Gomoti)."""
    from tests.helpers import hospital_doc

    resp = admin.post("/api/dynamic-slots/hospitals", hospital_doc())
    assert resp.status_code == 201, resp.text
    return resp.json()
