"""What the calendars' unit tests share: a hospital as the booking service stores it and
calendars parsed back with icalendar (the appointment document is tests/unit/builders.py's)."""

from __future__ import annotations

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
