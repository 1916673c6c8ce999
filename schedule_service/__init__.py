"""The schedule service: hospital configurations and the slots they generate."""

from __future__ import annotations

from flask import Flask

from shared.clients import init_clients, redis_ping
from shared.config import Config
from shared.web import add_readiness_check, create_base_app

from .bootstrap import bootstrap
from .repository import ensure_indexes
from .service import Context


def create_app(config: Config | None = None, *, context: Context | None = None) -> Flask:
    """Build the schedule service app (one per gunicorn worker); `context`: adapters built
    elsewhere instead of MongoDB, Redis and the booking service."""
    app, api = create_base_app(__name__, "Schedule service", config)
    cfg: Config = app.config["SLOTBOOK"]
    if context is None:
        init_clients(app)
        db = app.extensions["slotbook.db"]
        client = app.extensions["slotbook.redis"]
        context = bootstrap(cfg, db, client)
        try:
            ensure_indexes(db)
        except Exception:  # noqa: BLE001 - MongoDB may come up later; /readyz reports it
            app.logger.warning("could not ensure indexes at start")
        mongo = app.extensions["slotbook.mongo"]
        add_readiness_check(app, "mongodb", lambda: mongo.admin.command("ping"))
        add_readiness_check(app, "redis", lambda: redis_ping(client))
    app.extensions["schedule.ctx"] = context

    from .views import blp

    api.register_blueprint(blp)
    return app
