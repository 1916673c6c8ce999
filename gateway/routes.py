"""The gateway's route table: public path prefix -> the service that owns it."""

from __future__ import annotations

from shared.config import Config

SCHEDULE, BOOKING = "schedule", "booking"

ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/dynamic-slots/", SCHEDULE),
    ("/api/appointments", BOOKING),
    ("/api/availability/", BOOKING),
    ("/api/auth/", BOOKING),
)


def service_urls(cfg: Config) -> dict[str, str]:
    """Base URL of each service."""
    return {
        SCHEDULE: cfg.schedule_service_url.rstrip("/"),
        BOOKING: cfg.booking_service_url.rstrip("/"),
    }


def route(path: str) -> str | None:
    """The service for a public path, or None."""
    for prefix, service in ROUTES:
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return service
    return None
