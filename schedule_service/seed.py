"""The seed hospitals, created idempotently: Gomoti, the original system's configuration
exactly as it was (one queue per hourly slot), and Dhanmondi, a clinic with three doctors,
sessions and appointment types (API v1.1)."""

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


DHANMONDI = {
    "hospital_id": "dhanmondi",
    "hospital_name": "Dhanmondi Specialist Clinic",
    "timezone": "Asia/Dhaka",
    # The clinic's own hours (its general desk, and the doctors who work them): hourly
    # slots from a session, every day but Friday.
    "schedule": {
        day: {"sessions": [{"start": "09:00", "end": "13:00", "slot_minutes": 60}]}
        for day in ("0", "1", "2", "3", "4", "6")
    },
    "max_appointments_per_slot": 8,
    "advance_booking_days": 30,
    "date_overrides": {"2026-12-16": {"closed": True, "reason": "Victory Day"}},
    # A slot's capacity counts units: a new patient takes two, a follow-up one.
    "appointment_types": {
        "new": {"name": "New patient", "units": 2, "minutes": 12},
        "followup": {"name": "Follow-up", "units": 1, "minutes": 6},
        "report": {"name": "Report review", "units": 1, "minutes": 4},
    },
    "default_appointment_type": "followup",
    "practitioners": {
        # His own evenings: 30-minute slots of six units.
        "helal": {
            "name": "Dr. Helal Uddin",
            "specialty": "Medicine",
            "active": True,
            "schedule": {
                day: {"sessions": [{"start": "17:00", "end": "20:00", "slot_minutes": 30}]}
                for day in ("1", "3", "6")
            },
            "date_overrides": {"2026-12-20": {"closed": True, "reason": "Conference"}},
            "max_appointments_per_slot": 6,
        },
        # No schedule of her own: the clinic's hours, at a capacity of her own.
        "rina": {
            "name": "Dr. Rina Akter",
            "specialty": "Paediatrics",
            "active": True,
            "max_appointments_per_slot": 4,
        },
        # Mornings of 20-minute slots and one listed afternoon hour.
        "karim": {
            "name": "Dr. Abdul Karim",
            "specialty": "Cardiology",
            "active": True,
            "schedule": {
                day: {
                    "sessions": [
                        {"start": "10:00", "end": "12:00", "slot_minutes": 20, "capacity": 3}
                    ],
                    "slots": [{"start": "15:00", "end": "16:00", "capacity": 6}],
                }
                for day in ("0", "2", "4")
            },
            "max_appointments_per_slot": 3,
        },
    },
}

SEEDED = (GOMOTI, DHANMONDI)


def seed_hospitals(db: Database, now: datetime) -> list[str]:
    """Create each seed hospital that does not exist; returns the ids created."""
    repo = HospitalRepository(db)
    created_ids = []
    for hospital in SEEDED:
        hospital_id = hospital["hospital_id"]
        if repo.get(hospital_id) is not None:
            continue
        if repo.insert(copy.deepcopy(hospital), now) is None:
            continue  # another seeder won
        repo.record_change(
            {
                "hospital_id": hospital_id,
                "version": 1,
                "changed_by": "seed",
                "changed_at": now,
                "action": "create",
                "changes": [],
            }
        )
        created_ids.append(hospital_id)
    return created_ids
