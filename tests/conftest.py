"""Session-wide fixtures: MongoDB and Redis URLs (external if set, else embedded servers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.servers import MongoServer, RedisServer
from devstack.stack import Stack
from tests.helpers import Api, whole_system


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a MongoDB: $MONGO_URL if set, else an embedded nx-27017 for the session."""
    external = os.environ.get("MONGO_URL")
    if external:
        yield external
        return
    with MongoServer(tmp_path_factory.mktemp("mongo") / "data") as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | None]:
    """The embedded RedisServer of the session, or None when $REDIS_URL points elsewhere."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    # No AOF: session data is throwaway, and fsyncs would only slow the suite down.
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    """URL of a Redis: $REDIS_URL if set, else the session's embedded valkey-server."""
    return os.environ.get("REDIS_URL") or redis_server.url  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def mongo_db_name(mongo_url: str) -> Iterator[str]:
    """A database name unique to this session; only this database is dropped at the end."""
    from pymongo import MongoClient

    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    # Drop exactly the database we named, never anything else: MONGO_URL may be a dev's server.
    assert name.startswith("test_")
    client: MongoClient = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private RedisServers (for kill/restart tests); all are stopped at teardown."""
    started: list[RedisServer] = []

    def make(name: str = "redis", **kwargs: object) -> RedisServer:
        server = RedisServer(tmp_path / f"{name}-{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def mongo_factory(tmp_path: Path) -> Iterator[Callable[..., MongoServer]]:
    """Start private MongoServers (for kill/restart tests); all are stopped at teardown."""
    started: list[MongoServer] = []

    def make(name: str = "mongo", **kwargs: object) -> MongoServer:
        server = MongoServer(tmp_path / f"{name}-{len(started)}" / "data", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield make
    for server in reversed(started):
        server.stop()


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


def pytest_collection_modifyitems(config, items):
    """Tests over real HTTP through a gateway carry the `e2e` marker: those in tests/e2e and
    tests/gateway (a real Caddy) and any test that uses the running system (`stack`), so
    `pytest -m "not e2e"` is the fast loop."""
    for item in items:
        path = str(item.path)
        if (
            "/tests/e2e/" in path
            or "/tests/gateway/" in path
            or "stack" in getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.e2e)
