"""Fixtures of the integration tests that use the session's real Redis directly."""

from __future__ import annotations

import uuid

import pytest
import redis


@pytest.fixture
def client(redis_url):
    """A client of the session's Redis (tests/conftest.py)."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def hid():
    """A hospital id of one test's own: no key of another test shares it."""
    return f"h-{uuid.uuid4().hex[:8]}"
