"""The booking service: accounts, appointments and the atomic capacity gate."""

from __future__ import annotations

import requests
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from shared.clients import init_clients, redis_ping
from shared.config import Config
from shared.web import add_readiness_check, create_base_app

from .booking import Context
from .gate import CapacityGate
from .limits import Limiter
from .reconciler import Reconciler
from .repository import (
    AppointmentRepository,
    IdempotencyRepository,
    UserRepository,
    ensure_indexes,
)
from .schedule_client import ScheduleClient


def create_app(config: Config | None = None, *, start_reconciler: bool | None = None) -> Flask:
    """Build the booking service app (one per gunicorn worker)."""
    app, api = create_base_app(__name__, "Booking service", config)
    # The gateway appends the caller's address to X-Forwarded-For: trust that one hop, so
    # the per-address login limit counts callers, not the gateway.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    cfg: Config = app.config["SLOTBOOK"]
    init_clients(app)
    db = app.extensions["slotbook.db"]
    client = app.extensions["slotbook.redis"]
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
    session.mount("http://", adapter)
    ctx = Context(
        config=cfg,
        appointments=AppointmentRepository(db),
        gate=CapacityGate(client),
        redis=client,
        schedules=ScheduleClient(
            session,
            cfg.schedule_service_url,
            (cfg.upstream_connect_timeout, cfg.upstream_read_timeout),
        ),
    )
    app.extensions["booking.ctx"] = ctx
    app.extensions["booking.users"] = UserRepository(db)
    app.extensions["booking.idempotency"] = IdempotencyRepository(db)
    app.extensions["booking.limiter"] = Limiter(client, cfg)
    try:
        ensure_indexes(db)
    except Exception:  # noqa: BLE001 - MongoDB may come up later; /readyz reports it
        app.logger.warning("could not ensure indexes at start")
    add_readiness_check(
        app, "mongodb", lambda: app.extensions["slotbook.mongo"].admin.command("ping")
    )
    add_readiness_check(app, "redis", lambda: redis_ping(client))

    from .views import appointments_blp, auth_blp, availability_blp

    api.register_blueprint(auth_blp)
    api.register_blueprint(appointments_blp)
    api.register_blueprint(availability_blp)

    run = cfg.reconciler_enabled if start_reconciler is None else start_reconciler
    if run:
        reconciler = Reconciler(ctx)
        reconciler.start()
        app.extensions["booking.reconciler"] = reconciler
    return app
