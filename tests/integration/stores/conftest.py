"""The stores' tests share the session's real MongoDB (nx-27017, or $MONGO_URL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from booking_service.bootstrap import ensure_indexes


@pytest.fixture(scope="module")
def db(mongo_url, mongo_db_name) -> Iterator[Database]:
    """The session's database, with every index of the booking service (the one
    ensure_indexes)."""
    client = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    database = client[mongo_db_name]
    ensure_indexes(database)
    yield database
    client.close()
