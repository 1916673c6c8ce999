"""The Gomoti configuration of the original system, seeded idempotently."""

from __future__ import annotations

import copy
from datetime import datetime

from pymongo.database import Database

from shared.slots import display_text

from .repository import HospitalRepository


def _hourly(first: int, last: int) -> list[dict]:
    slots = []
    for hour in range(first, last):
        start, end = f"{hour:02d}:00", f"{hour + 1:02d}:00"
        slots.append({"start": start, "end": end, "display": display_text(start, end)})
    return slots


GOMOTI = {
    "hospital_id": "gomoti",
    "hospital_name": "Gomoti Hospital",
    "timezone": "Asia/Dhaka",
    "schedule": {
        "1": {"slots": _hourly(17, 22)},  # Monday 5 PM - 10 PM
        "3": {"slots": _hourly(17, 22)},  # Wednesday
        "4": {"slots": _hourly(16, 22)},  # Thursday 4 PM - 10 PM (one extra slot)
        "6": {"slots": _hourly(17, 22)},  # Saturday
    },
    "max_appointments_per_slot": 15,
    "advance_booking_days": 60,
    "date_overrides": {},
}


def seed_hospitals(db: Database, now: datetime) -> bool:
    """Create the Gomoti configuration unless it exists; True when it was created."""
    repo = HospitalRepository(db)
    if repo.get("gomoti") is not None:
        return False
    created = repo.insert(copy.deepcopy(GOMOTI), now)
    if created is not None:
        repo.record_change(
            {
                "hospital_id": "gomoti",
                "version": 1,
                "changed_by": "seed",
                "changed_at": now,
                "action": "create",
                "changes": [],
            }
        )
    return created is not None
