"""What the calendars' unit tests share: a hospital and an appointment document as the
booking service stores them, and calendars parsed back with icalendar."""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId
from icalendar import Calendar

NY = "America/New_York"


def hospital(**changes) -> dict:
    doc = {
        "hospital_id": "h1",
        "hospital_name": "Gomoti Hospital",
        "timezone": "Asia/Dhaka",
        "schedule": {
            str(d): {
                "slots": [{"start": "17:00", "end": "18:00"}, {"start": "18:00", "end": "19:00"}]
            }
            for d in range(7)
        },
        "max_appointments_per_slot": 3,
        "advance_booking_days": 10,
        "date_overrides": {},
        "practitioners": {"helal": {"name": "Dr. Helal Uddin", "specialty": "Medicine"}},
        "version": 1,
    }
    doc.update(changes)
    return doc


def appointment(**changes) -> dict:
    """An appointment document as the booking service stores it."""
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


def parse(body: bytes) -> Calendar:
    calendar = Calendar.from_ical(body)
    assert calendar.name == "VCALENDAR"
    return calendar


def only_event(calendar: Calendar):
    (event,) = calendar.events
    return event


def feed_token(answer: dict) -> str:
    """The secret in a new feed's URL."""
    return answer["url"].split("?token=", 1)[1]
