"""The schedule service's context: its adapters, built in one place."""

from __future__ import annotations

import logging

import redis
import requests
from pymongo.database import Database

from shared import versions
from shared.capacity_reads import CapacityReader
from shared.config import Config
from shared.configurations import ConfigurationCache

from .conflicts import ConflictChecker
from .repository import HospitalRepository
from .service import Context

log = logging.getLogger(__name__)


def bootstrap(cfg: Config, db: Database, client: redis.Redis) -> Context:
    """The context over MongoDB `db`, the Redis `client` and the booking service's API."""
    repo = HospitalRepository(db)

    def restore(hospital_id: str, version: int) -> None:
        try:
            versions.restore(client, hospital_id, version)
        except redis.RedisError:
            log.warning("could not restore the version key of %s", hospital_id)

    return Context(
        repo=repo,
        redis=client,
        configurations=ConfigurationCache(repo.get, restore),
        reader=CapacityReader(client),
        conflicts=ConflictChecker(
            requests.Session(),
            cfg.booking_service_url,
            (cfg.upstream_connect_timeout, cfg.upstream_read_timeout),
        ),
    )
