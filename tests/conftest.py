"""Session-wide fixtures of tests/integration and tests/e2e: MongoDB and Redis URLs (external if
set, else embedded servers started once per session), and private servers for kill/restart tests.

The builders of the unit tests are in tests/unit/builders.py and tests/unit/conftest.py; the running
system (`stack`, `gateway`, `admin`, `patient`, `hospital`) in tests/e2e/conftest.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.servers import MongoServer, RedisServer
from tests.helpers import Started


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
def started() -> Iterator[Started]:
    """Processes this test starts (`started.start(process)`), all stopped at its teardown."""
    processes = Started()
    yield processes
    processes.stop_all()


@pytest.fixture
def redis_factory(tmp_path: Path, started: Started) -> Callable[..., RedisServer]:
    """Start private RedisServers (for kill/restart tests); all are stopped at teardown."""

    def make(name: str = "redis", **kwargs: object) -> RedisServer:
        directory = tmp_path / f"{name}-{len(started)}"
        return started.start(RedisServer(directory, **kwargs))  # type: ignore[arg-type]

    return make


@pytest.fixture
def mongo_factory(tmp_path: Path, started: Started) -> Callable[..., MongoServer]:
    """Start private MongoServers (for kill/restart tests); all are stopped at teardown."""

    def make(name: str = "mongo", **kwargs: object) -> MongoServer:
        directory = tmp_path / f"{name}-{len(started)}" / "data"
        return started.start(MongoServer(directory, **kwargs))  # type: ignore[arg-type]

    return make
