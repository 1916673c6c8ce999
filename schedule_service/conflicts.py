"""What an edit changes, and which active appointments it would strand."""

from __future__ import annotations

from datetime import datetime, timedelta

import requests

from shared.errors import ServiceUnavailable
from shared.slots import compile_schedule

FIELDS = ("hospital_name", "timezone", "max_appointments_per_slot", "advance_booking_days")


def diff_documents(old: dict, new: dict) -> list[dict]:
    """A readable list of what changed between two configurations."""
    changes = []
    for field in FIELDS:
        if old.get(field) != new.get(field):
            changes.append({"field": field, "from": old.get(field), "to": new.get(field)})
    for section in ("schedule", "date_overrides"):
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(
                    {"field": f"{section}.{key}", "from": before.get(key), "to": after.get(key)}
                )
    return changes


def removed_slots(old: dict, new: dict, now: datetime) -> dict[str, set[str]]:
    """Dates from today on whose slots the edit removes (or whose day it closes)."""
    before, after = compile_schedule(old), compile_schedule(new)
    today = before.today(now)
    horizon = max(before.advance_booking_days, after.advance_booking_days)
    removed: dict[str, set[str]] = {}
    for offset in range(horizon + 1):
        day = today + timedelta(days=offset)
        kept = {s.start for s in after.configured_slots(day)}
        gone = {s.start for s in before.configured_slots(day)} - kept
        if gone:
            removed[day.isoformat()] = gone
    return removed


class ConflictChecker:
    """Asks the booking service (its API, with the admin's own token) for active appointments."""

    def __init__(self, session: requests.Session, booking_url: str, timeout: tuple[float, float]):
        self.session = session
        self.booking_url = booking_url.rstrip("/")
        self.timeout = timeout

    def stranded(self, old: dict, new: dict, now: datetime, authorization: str) -> list[dict]:
        """Active appointments in slots the edit removes or closes."""
        removed = removed_slots(old, new, now)
        if not removed:
            return []
        dates = sorted(removed)
        found = []
        page = 1
        while True:
            try:
                resp = self.session.get(
                    f"{self.booking_url}/api/appointments",
                    params={
                        "hospital_id": old["hospital_id"],
                        # pending too: a booking written ahead of its confirmation
                        "status": "active",
                        "date_from": dates[0],
                        "date_to": dates[-1],
                        "page": page,
                        "per_page": 500,
                    },
                    headers={"Authorization": authorization},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise ServiceUnavailable(
                    "Cannot check booked appointments: the booking service is unavailable"
                ) from exc
            if resp.status_code != 200:
                raise ServiceUnavailable(
                    f"Cannot check booked appointments (booking service said {resp.status_code})"
                )
            body = resp.json()
            for appt in body["appointments"]:
                if appt["hospital_id"] != old["hospital_id"]:
                    continue  # never another hospital's, whatever the answer holds
                if appt["slot"]["start"] in removed.get(appt["date"], ()):
                    found.append(
                        {
                            k: appt[k]
                            for k in (
                                "appointment_id",
                                "date",
                                "slot",
                                "serial",
                                "patient",
                                "status",
                            )
                        }
                    )
            if page * body.get("per_page", 500) >= body.get("total", 0):
                return found
            page += 1
