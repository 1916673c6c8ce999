"""What an edit changes, and which places (active appointments, live holds and offers) it
would strand."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests

from shared.configurations import Configuration
from shared.errors import ServiceUnavailable

FIELDS = (
    "hospital_name",
    "timezone",
    "max_appointments_per_slot",
    "advance_booking_days",
    "default_appointment_type",
)
SECTIONS = ("schedule", "date_overrides", "practitioners", "appointment_types")


def diff_documents(old: dict, new: dict) -> list[dict]:
    """A readable list of what changed between two configurations."""
    changes = []
    for field in FIELDS:
        if old.get(field) != new.get(field):
            changes.append({"field": field, "from": old.get(field), "to": new.get(field)})
    for section in SECTIONS:
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(
                    {"field": f"{section}.{key}", "from": before.get(key), "to": after.get(key)}
                )
    return changes


def removed_slots(old: dict, new: dict, now: datetime) -> dict[tuple[str | None, str], set[str]]:
    """The slots the edit removes (or whose day it closes) from today on, by (doctor or None
    for the hospital's own, date): a doctor the edit removes loses every slot."""
    before, after = Configuration.compile(old), Configuration.compile(new)
    today = before.schedule.today(now)
    horizon = max(before.schedule.advance_booking_days, after.schedule.advance_booking_days)
    removed: dict[tuple[str | None, str], set[str]] = {}
    for practitioner_id in [None, *sorted(before.practitioners)]:
        was = before.schedule_for(practitioner_id)
        kept_by = (
            after.schedule_for(practitioner_id)
            if practitioner_id is None or practitioner_id in after.practitioners
            else None
        )
        for offset in range(horizon + 1):
            day = today + timedelta(days=offset)
            kept = {s.start for s in kept_by.configured_slots(day)} if kept_by else set()
            gone = {s.start for s in was.configured_slots(day)} - kept
            if gone:
                removed[(practitioner_id, day.isoformat())] = gone
    return removed


@dataclass(frozen=True)
class Stranded:
    """What an edit would strand: appointments (where they are, or where a reschedule under
    way moves them) and live holds and waitlist offers, in the slots it removes or closes."""

    appointments: list[dict] = dataclasses.field(default_factory=list)
    holds: list[dict] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.appointments or self.holds)

    def message(self) -> str:
        """What a refused edit says."""
        held = f" and {len(self.holds)} held place(s)" if self.holds else ""
        return (
            f"The change removes or closes slots holding {len(self.appointments)} active "
            f'appointment(s){held}; send "force": true to apply it anyway'
        )


class ConflictChecker:
    """Asks the booking service (its API, with the admin's own token) for active appointments
    and live holds."""

    def __init__(self, session: requests.Session, booking_url: str, timeout: tuple[float, float]):
        self.session = session
        self.booking_url = booking_url.rstrip("/")
        self.timeout = timeout

    def stranded(self, old: dict, new: dict, now: datetime, authorization: str) -> Stranded:
        """Every place taken in slots the edit removes or closes: active appointments, those a
        reschedule under way is moving into them (its target place is taken already), and
        live holds and waitlist offers."""
        removed = removed_slots(old, new, now)
        if not removed:
            return Stranded()
        hospital_id = old["hospital_id"]
        span = {"hospital_id": hospital_id, "date_from": min(d for _, d in removed)}
        span["date_to"] = max(d for _, d in removed)
        found: dict[str, dict] = {}
        # pending too: a booking written ahead of its confirmation
        for status, place_of in (("active", _own_place), ("moving", _target_place)):
            for appt in self._list("appointments", {**span, "status": status}, authorization):
                if appt["hospital_id"] != hospital_id:
                    continue  # never another hospital's, whatever the answer holds
                doctor, day, start = place_of(appt)
                if start in removed.get((doctor, day), ()):  # (once, if both places are)
                    found.setdefault(
                        appt["appointment_id"], {k: appt[k] for k in SHOWN if k in appt}
                    )
        held = [
            {k: hold[k] for k in SHOWN_OF_HOLDS if k in hold}
            for hold in self._list("holds", {**span, "state": "held"}, authorization)
            if hold["hospital_id"] == hospital_id
            and hold["slot"] in removed.get((hold.get("practitioner_id"), hold["date"]), ())
        ]
        return Stranded(list(found.values()), held)

    def _list(self, what: str, params: dict, authorization: str):
        """The booking service's list `what` (`appointments`, `holds`) with these filters,
        page after page."""
        page = 1
        while True:
            try:
                resp = self.session.get(
                    f"{self.booking_url}/api/{what}",
                    params={**params, "page": page, "per_page": 500},
                    headers={"Authorization": authorization},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise ServiceUnavailable(
                    f"Cannot check booked {what}: the booking service is unavailable"
                ) from exc
            if resp.status_code != 200:
                raise ServiceUnavailable(
                    f"Cannot check booked {what} (booking service said {resp.status_code})"
                )
            body = resp.json()
            yield from body[what]
            if page * body.get("per_page", 500) >= body.get("total", 0):
                return
            page += 1


# What a refused edit shows of each appointment it would strand.
SHOWN = (
    "appointment_id",
    "date",
    "slot",
    "serial",
    "patient",
    "status",
    "practitioner",
    "moving_to",
)


# ... and of each hold or waitlist offer.
SHOWN_OF_HOLDS = (
    "hold_id",
    "date",
    "slot",
    "serial",
    "practitioner_id",
    "waitlist_id",
    "expires_at",
)


def _own_place(appt: dict) -> tuple[str | None, str, str]:
    """(doctor or None, date, slot start) of where the appointment is."""
    doctor = (appt.get("practitioner") or {}).get("practitioner_id")
    return doctor, appt["date"], appt["slot"]["start"]


def _target_place(appt: dict) -> tuple[str | None, str, str]:
    """(doctor or None, date, slot start) of where a reschedule under way moves it."""
    target = appt["moving_to"]
    return target.get("practitioner_id"), target["date"], target["slot"]
