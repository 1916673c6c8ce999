"""Webhooks (API.md, "Integrations"): signed deliveries of appointment and waitlist events."""

from booking_service.integrations.webhooks.routes import init_app

__all__ = ["init_app"]
