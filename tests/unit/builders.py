"""The unit tests' shared data: one clock, the callers, and the hospital configurations the
tests build on, and an appointment document as the booking service stores it. Import them
(`from tests.unit.builders import NOW, PATIENT, hospital`); tests/unit/conftest.py builds a
fake context with a hospital published from them.

A test changes what it needs with keywords: `hospital("booking", max_appointments_per_slot=1)`
(each call is a deep copy, so a test may edit what it gets).
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

from bson import ObjectId

from shared.auth import Principal, issue_token

# Tuesday 2026-11-24, 10:00 in Dhaka (04:00Z), and the days of its week.
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
MON, TUE, WED, THU, FRI, SAT, SUN = (date(2026, 11, 23) + timedelta(days=i) for i in range(7))
NEXT_MON, NEXT_SAT = MON + timedelta(days=7), SAT + timedelta(days=7)

PATIENT = Principal("p1", "p1@example.com", "patient")
OTHER = Principal("p2", "p2@example.com", "patient")
THIRD = Principal("p3", "p3@example.com", "patient")
STAFF = Principal("s1", "staff@example.com", "staff")
ADMIN = Principal("a1", "admin@example.com", "admin")


def bearer(app, role: str = "patient", user: str = "p1") -> dict:
    """The Authorization header of a token the app accepts, for `user` in `role` (for a minute)."""
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, user, f"{user}@x.io", role)}


def _day(*spans: tuple) -> dict:
    """A weekday of slots: ("17:00", "18:00") or ("11:00", "12:00", capacity)."""
    return {
        "slots": [dict(zip(("start", "end", "capacity"), span, strict=False)) for span in spans]
    }


HOSPITALS: dict[str, dict] = {
    # The booking core's: Tuesday and Saturday, 2 places a slot, Monday 30th closed.
    "booking": {
        "hospital_id": "h1",
        "hospital_name": "H1",
        "timezone": "Asia/Dhaka",
        "schedule": {
            "2": _day(("09:00", "10:00"), ("11:00", "12:00")),
            "6": _day(("17:00", "18:00"), ("18:00", "19:00")),
        },
        "max_appointments_per_slot": 2,
        "advance_booking_days": 10,
        "date_overrides": {"2026-11-30": {"closed": True, "reason": "Holiday"}},
        "version": 1,
    },
    # Holds, moves and the waitlist: Saturday's 17:00 and 18:00 and Sunday's 17:00, 2 places
    # each, holds of 5 minutes, a type of 2 units and one of 1.
    "holds": {
        "hospital_id": "h1",
        "hospital_name": "H1",
        "timezone": "Asia/Dhaka",
        "schedule": {
            "0": _day(("17:00", "18:00")),
            "6": _day(("17:00", "18:00"), ("18:00", "19:00")),
        },
        "max_appointments_per_slot": 2,
        "advance_booking_days": 10,
        "hold_seconds": 300,
        "appointment_types": {
            "new": {"name": "New", "units": 2},
            "followup": {"name": "Follow-up", "units": 1},
        },
        "version": 1,
    },
    # A clinic with doctors (3 places each, one inactive, one on leave on Saturday 28th) and
    # appointment types, open Saturdays 17:00-18:00.
    "doctors": {
        "hospital_id": "c1",
        "hospital_name": "Clinic",
        "timezone": "Asia/Dhaka",
        "schedule": {"6": _day(("17:00", "18:00"))},
        "max_appointments_per_slot": 5,
        "advance_booking_days": 10,
        "date_overrides": {},
        "appointment_types": {
            "new": {"name": "New patient", "units": 2, "minutes": 12},
            "followup": {"name": "Follow-up", "units": 1, "minutes": 5},
        },
        "practitioners": {
            "helal": {"name": "Dr. Helal", "active": True, "max_appointments_per_slot": 3},
            "rina": {"name": "Dr. Rina", "active": True, "max_appointments_per_slot": 3},
            "gone": {"name": "Dr. Gone", "active": False},
            "away": {
                "name": "Dr. Away",
                "active": True,
                "date_overrides": {"2026-11-28": {"closed": True, "reason": "Leave"}},
            },
        },
        "version": 1,
    },
    # The day of the visit: Tuesday 11:00-12:00 (6 places: 10 minutes each) and 12:00-13:00,
    # Wednesday 11:00-12:00, one doctor.
    "visits": {
        "hospital_id": "c1",
        "hospital_name": "Clinic",
        "timezone": "Asia/Dhaka",
        "schedule": {
            "2": _day(("11:00", "12:00", 6), ("12:00", "13:00")),
            "3": _day(("11:00", "12:00")),
        },
        "max_appointments_per_slot": 4,
        "advance_booking_days": 10,
        "date_overrides": {},
        "practitioners": {"helal": {"name": "Dr. Helal"}},
        "version": 1,
    },
    # The configuration model: Mondays 09:00-10:00 and 10:00-11:00 (20 places), Saturdays
    # 17:00-18:00, 15 places, a closed Monday and a Saturday of other hours.
    "model": {
        "hospital_id": "h",
        "hospital_name": "H",
        "timezone": "Asia/Dhaka",
        "schedule": {
            "1": _day(("09:00", "10:00"), ("10:00", "11:00", 20)),
            "6": _day(("17:00", "18:00")),
        },
        "max_appointments_per_slot": 15,
        "advance_booking_days": 60,
        "date_overrides": {
            "2026-12-07": {"closed": True, "reason": "Holiday"},
            "2026-12-05": _day(("08:00", "09:00")),
        },
        "version": 3,
    },
    # Slot generation: Mondays 17:00-18:00, 15 places, no version.
    "slots": {
        "hospital_id": "h",
        "hospital_name": "H",
        "timezone": "Asia/Dhaka",
        "schedule": {"1": _day(("17:00", "18:00"))},
        "max_appointments_per_slot": 15,
        "advance_booking_days": 60,
        "date_overrides": {},
    },
    # The seed's v1 shape as an admin sends it: one slot 17:00-18:00 on Mon, Wed, Thu, Sat.
    "v1": {
        "hospital_id": "gomoti",
        "hospital_name": "Gomoti Hospital",
        "timezone": "Asia/Dhaka",
        "schedule": {day: _day(("17:00", "18:00")) for day in "1346"},
    },
}


def hospital(kind: str, **changes) -> dict:
    """A fresh copy of the configuration HOSPITALS[kind], with these top-level fields changed."""
    doc = copy.deepcopy(HOSPITALS[kind])
    doc.update(changes)
    return doc


def appointment(**changes) -> dict:
    """An appointment document as the booking service stores it: Rahim Uddin's confirmed place
    7 in h1's 17:00-18:00 slot on Saturday 2026-11-28, booked by p1; these fields changed."""
    doc = {
        "_id": ObjectId("6a0000000000000000000001"),
        "hospital_id": "h1",
        "date": "2026-11-28",
        "slot_start": "17:00",
        "slot": {"start": "17:00", "end": "18:00", "display": "05:00 PM - 06:00 PM"},
        "serial": 7,
        "patient": {"name": "Rahim Uddin", "phone": "+8801712345678"},
        "booked_by": "p1",
        "status": "confirmed",
        "created_at": datetime(2026, 11, 20, 3, 0, 0, 123000, tzinfo=UTC),
        "updated_ms": 1_763_611_200_500,  # 2025-11-20T04:00:00.5Z
        "version": 1,
    }
    doc.update(changes)
    return doc
