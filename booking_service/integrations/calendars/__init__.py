"""iCalendar (API.md, "Integrations"): an appointment's .ics, and revocable feed URLs."""

from booking_service.integrations.calendars.routes import init_app

__all__ = ["init_app"]
