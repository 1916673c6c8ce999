"""The running system for every test under tests/e2e: one `stack` (schedule, booking and live
services behind a real gateway) for the session, and its clients. Every test collected here
carries the `e2e` marker, so `pytest -m "not e2e"` (or `pytest tests/unit tests/integration`)
is the loop without the stack. tests/e2e/live and tests/e2e/gateway override some of these
fixtures with their own settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.helpers import Api, publish_hospital, seeded_admin, whole_system

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/e2e `e2e` (the marker `-m "not e2e"` deselects)."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, mongo_url, redis_url, mongo_db_name) -> Iterator[Stack]:
    """One running system for the e2e session (its own database name)."""
    directory = tmp_path_factory.mktemp("stack")
    with whole_system(directory, mongo_url, redis_url, mongo_db_name) as running:
        yield running


@pytest.fixture(scope="session")
def gateway(stack) -> Api:
    """An anonymous client of the gateway."""
    return Api(stack.gateway_url)


@pytest.fixture(scope="session")
def admin(gateway) -> Api:
    """The seeded admin, logged in."""
    return seeded_admin(gateway.base)


@pytest.fixture
def patient(gateway) -> Api:
    """A freshly registered patient, logged in."""
    return gateway.new_patient()


@pytest.fixture
def hospital(admin) -> dict:
    """A new hospital of its own for one test (isolation from the seeded Gomoti)."""
    return publish_hospital(admin)


@pytest.fixture
def clear_login_counters(redis_url: str) -> Iterator[None]:
    """Forget the failed logins that fuzzing the login operation counts against 127.0.0.1.

    The booking service counts failures per address (limit 50) and per account; fuzzing
    `/api/auth/login` from this process would otherwise lock every later login in the
    session out with 429. Only the local address's counter and the seeded admin's are
    deleted, by their exact keys.
    """
    import redis

    from booking_service.adapters.limits import subject
    from shared import keys

    names = [
        keys.rate_key("login-address", subject("127.0.0.1")),
        keys.rate_key("login-account", subject("portal@drhelal.com")),
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(*names)
        yield
        client.delete(*names)
    finally:
        client.close()
