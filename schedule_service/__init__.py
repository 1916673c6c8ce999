"""The schedule service: hospital configurations and the slots they generate."""

from __future__ import annotations

from flask import Flask

from shared.config import Config
from shared.web import connect, create_base_app

from .bootstrap import bootstrap
from .repository import ensure_indexes
from .service import Context


def create_app(config: Config | None = None, *, context: Context | None = None) -> Flask:
    """Build the schedule service app (one per gunicorn worker); `context`: adapters built
    elsewhere instead of MongoDB, Redis and the booking service."""
    app, api = create_base_app(__name__, "Schedule service", config)
    if context is None:
        context = connect(app, bootstrap, ensure_indexes)
    app.extensions["schedule.ctx"] = context

    from .views import blp

    api.register_blueprint(blp)
    return app
