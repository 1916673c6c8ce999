"""The schedule service: hospital configurations and the slots they generate."""

from __future__ import annotations

import requests
from flask import Flask

from shared.clients import init_clients, redis_ping
from shared.config import Config
from shared.web import add_readiness_check, create_base_app

from .catalog import Catalog
from .conflicts import ConflictChecker
from .repository import HospitalRepository, ensure_indexes
from .service import Context


def create_app(config: Config | None = None) -> Flask:
    """Build the schedule service app (one per gunicorn worker)."""
    app, api = create_base_app(__name__, "Schedule service", config)
    cfg: Config = app.config["SLOTBOOK"]
    init_clients(app)
    db = app.extensions["slotbook.db"]
    client = app.extensions["slotbook.redis"]
    repo = HospitalRepository(db)
    session = requests.Session()
    app.extensions["schedule.ctx"] = Context(
        repo=repo,
        redis=client,
        catalog=Catalog(repo, client),
        conflicts=ConflictChecker(
            session,
            cfg.booking_service_url,
            (cfg.upstream_connect_timeout, cfg.upstream_read_timeout),
        ),
    )
    try:
        ensure_indexes(db)
    except Exception:  # noqa: BLE001 - MongoDB may come up later; /readyz reports it
        app.logger.warning("could not ensure indexes at start")
    add_readiness_check(
        app, "mongodb", lambda: app.extensions["slotbook.mongo"].admin.command("ping")
    )
    add_readiness_check(app, "redis", lambda: redis_ping(client))

    from .views import blp

    api.register_blueprint(blp)
    return app
