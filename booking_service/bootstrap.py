"""The booking service's adapters, built in one place: `bootstrap` and `ensure_indexes`.

`bootstrap` returns `Services`: the core's `Context` (the repositories, the capacity gate, the
schedule service's client: what the service layer works with) and beside it the stores of the
integrations (the feed store of calendars/, the webhooks' stores and sender, the list of
hospitals FHIR's searches list). The integrations' stores are not in the Context because the
core sits below the integrations and never imports them; each integration's `init_app` is
handed its own. `create_app(config)` builds Services from the settings
(`shared.web.connect(app, bootstrap, ensure_indexes)`); a unit test builds the same from fakes
(tests/unit/fakes.py, `fake_services`) and passes it to `create_app(config, services=...)`, so
no test puts an adapter into a running app.

`ensure_indexes` makes every index of the service (idempotent), each store module's own:
nothing else creates an index.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from pymongo.database import Database

from booking_service.adapters import hold_store, repository, waitlist_store
from booking_service.adapters.capacity import CapacityRecords
from booking_service.adapters.hold_store import HoldRepository
from booking_service.adapters.limits import Limiter, RedisCounters
from booking_service.adapters.repository import (
    AppointmentRepository,
    IdempotencyRepository,
    UserRepository,
)
from booking_service.adapters.schedule_client import ScheduleSource
from booking_service.adapters.waitlist_store import WaitlistRepository
from booking_service.core.context import Context
from booking_service.integrations.calendars import store as feeds_store
from booking_service.integrations.calendars.store import FeedRepository
from booking_service.integrations.fhir.directory import Directory, HospitalList
from booking_service.integrations.webhooks import store as webhooks_store
from booking_service.integrations.webhooks.service import Webhooks, destinations_checked
from booking_service.integrations.webhooks.store import DeliveryStore, OutboxSources, WebhookStore
from booking_service.integrations.webhooks.transport import HttpSender
from shared.capacity_reads import CapacityReader
from shared.config import Config
from shared.configurations import ConfigurationCache
from shared.events import LiveEvents


@dataclass(frozen=True)
class Services:
    """Everything the booking service's app works with, built once per process: the core's
    context, and the integrations' stores (which the core never sees)."""

    context: Context
    feeds: FeedRepository
    webhooks: Webhooks
    hospitals: Directory | None = None  # FHIR's listings (None: they answer 503)


def make_context(cfg: Config, db: Database, client, load) -> Context:
    """The service layer's context over MongoDB `db` and the Redis `client`; `load(hospital_id)`
    fetches a configuration from its source (the schedule service's API in production)."""
    return Context(
        config=cfg,
        appointments=AppointmentRepository(db),
        capacity=CapacityRecords(client),
        reader=CapacityReader(client),
        configurations=ConfigurationCache(load),
        users=UserRepository(db),
        idempotency=IdempotencyRepository(db),
        limiter=Limiter(RedisCounters(client), cfg),
        events=LiveEvents(client),
        holds=HoldRepository(db),
        waitlist=WaitlistRepository(db),
    )


def bootstrap(cfg: Config, db: Database, client) -> Services:
    """The services over MongoDB `db`, the Redis `client` and the schedule service's API."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32))
    timeout = (cfg.upstream_connect_timeout, cfg.upstream_read_timeout)
    source = ScheduleSource(session, cfg.schedule_service_url, timeout)
    context = make_context(cfg, db, client, source.load)
    webhooks = Webhooks(
        config=cfg,
        hooks=WebhookStore(db),
        deliveries=DeliveryStore(db),
        sources=OutboxSources(db),
        sender=HttpSender(guarded=destinations_checked(cfg)),
    )
    return Services(
        context=context,
        feeds=FeedRepository(db),
        webhooks=webhooks,
        hospitals=HospitalList(session, cfg.schedule_service_url, timeout),
    )


def ensure_indexes(db: Database) -> None:
    """Create every index of the booking service (idempotent): the appointments', users' and
    idempotency keys' (adapters/repository.py), the holds' and the waitlist's (hold_store.py,
    waitlist_store.py), the feeds' and the
    webhooks' and their deliveries' (their integrations' store.py)."""
    repository.ensure_indexes(db)
    hold_store.ensure_indexes(db)
    waitlist_store.ensure_indexes(db)
    feeds_store.ensure_indexes(db)
    webhooks_store.ensure_indexes(db)
