"""What the booking service's MongoDB stores share: majority writes (MongoDB is the source of
truth: a write acknowledged is a write a failover keeps), a new record, a record by id."""

from __future__ import annotations

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

MAJORITY = WriteConcern(w="majority", wtimeout=5000)


def insert_new(col: Collection, doc: dict) -> bool:
    """Insert `doc`; False when a unique index says it exists already."""
    try:
        col.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


class Records:
    """One collection of records, written with majority write concern."""

    collection: str  # the collection's name (each store names its own)

    def __init__(self, db: Database):
        self.col = db.get_collection(self.collection, write_concern=MAJORITY)

    def insert(self, doc: dict) -> None:
        """Write a new record (DuplicateKeyError when a unique index refuses it)."""
        self.col.insert_one(doc)

    def get(self, oid: ObjectId) -> dict | None:
        """One record by id."""
        return self.col.find_one({"_id": oid})
