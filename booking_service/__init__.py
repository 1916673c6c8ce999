"""The booking service: accounts, appointments and the atomic capacity gate."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from booking_service.api.views import (
    appointments_blp,
    auth_blp,
    availability_blp,
    holds_blp,
    queue_blp,
    waitlist_blp,
)
from booking_service.bootstrap import Services, bootstrap, ensure_indexes
from booking_service.core.reconciler import Reconciler
from booking_service.integrations import calendars, webhooks
from booking_service.integrations.fhir import routes as fhir
from shared.config import Config
from shared.web import connect, create_base_app


def create_app(
    config: Config | None = None,
    *,
    services: Services | None = None,
    start_reconciler: bool | None = None,
) -> Flask:
    """Build the booking service app (one per gunicorn worker); `services`: adapters built
    elsewhere (tests' fakes) instead of MongoDB, Redis and the schedule service."""
    app, api = create_base_app(__name__, "Booking service", config)
    # The gateway appends the caller's address to X-Forwarded-For: trust that one hop, so
    # the per-address login limit counts callers, not the gateway.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    cfg: Config = app.config["SLOTBOOK"]
    if services is None:
        services = connect(app, bootstrap, ensure_indexes)
    context = services.context
    app.extensions["booking.ctx"] = context

    api.register_blueprint(auth_blp)
    api.register_blueprint(appointments_blp)
    api.register_blueprint(availability_blp)
    api.register_blueprint(queue_blp)
    api.register_blueprint(holds_blp)
    api.register_blueprint(waitlist_blp)

    # The integrations (API.md, "Integrations"): FHIR R4, iCalendar, webhooks; background work
    # (the webhook deliveries) runs where the reconciler does.
    run = cfg.reconciler_enabled if start_reconciler is None else start_reconciler
    fhir.init_app(app, api, context, cfg, run, services.hospitals)
    calendars.init_app(app, api, services.feeds, cfg)
    webhooks.init_app(app, api, services.webhooks, run)
    if run:
        reconciler = Reconciler(context)
        reconciler.start()
        app.extensions["booking.reconciler"] = reconciler
    return app
