"""The booking service's context: its adapters, built in one place.

`create_app(config)` builds them from the settings; a test builds the same Context from
fakes (tests/unit/fakes.py) and passes it to `create_app(config, context=...)`.
"""

from __future__ import annotations

import requests
from pymongo.database import Database

from booking_service.adapters.capacity import CapacityRecords
from booking_service.adapters.limits import Limiter, RedisCounters
from booking_service.adapters.repository import (
    AppointmentRepository,
    HoldRepository,
    IdempotencyRepository,
    UserRepository,
    WaitlistRepository,
)
from booking_service.adapters.schedule_client import ScheduleSource
from booking_service.core.context import Context
from shared.capacity_reads import CapacityReader
from shared.config import Config
from shared.configurations import ConfigurationCache
from shared.events import LiveEvents


def bootstrap(cfg: Config, db: Database, client) -> Context:
    """The context over MongoDB `db`, the Redis `client` and the schedule service's API."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32))
    source = ScheduleSource(
        session, cfg.schedule_service_url, (cfg.upstream_connect_timeout, cfg.upstream_read_timeout)
    )
    return Context(
        config=cfg,
        appointments=AppointmentRepository(db),
        capacity=CapacityRecords(client),
        reader=CapacityReader(client),
        configurations=ConfigurationCache(source.load),
        users=UserRepository(db),
        idempotency=IdempotencyRepository(db),
        limiter=Limiter(RedisCounters(client), cfg),
        events=LiveEvents(client),
        holds=HoldRepository(db),
        waitlist=WaitlistRepository(db),
    )
