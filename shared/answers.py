"""The read answers' documents, made in one place: a day's slots merged with its counts.

`day_document` is a day as `available` and `calendar` show it, `counts_document` as the
lightweight `availability` answers show it. shared.web.json_answer writes them (orjson: a
60-day calendar in one C call). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from .slots import OPEN, Day

LIVE = "live"
UNKNOWN = "unknown"


def day_document(day: Day, counts: Mapping[str, int] | None) -> dict:
    """A day with its slots and counts (`counts` None: unknown while Redis is unavailable)."""
    known = counts is not None
    slots = []
    total_capacity = total_booked = total_available = 0
    for slot, started in zip(day.slots, day.started, strict=True):
        capacity = slot.capacity
        total_capacity += capacity
        if known:
            booked = counts.get(slot.start, 0)
            available = capacity - booked if booked < capacity else 0
            total_booked += booked
            total_available += available
            bookable = not started and available > 0
        else:
            booked = available = None
            bookable = not started
        slots.append(
            {
                "start": slot.start,
                "end": slot.end,
                "display": slot.display,
                "capacity": capacity,
                "booked": booked,
                "available": available,
                "bookable": bookable,
            }
        )
    document = {
        "date": day.iso,
        "weekday": day.weekday,
        "status": day.status,
        "slots": slots,
        "total_capacity": total_capacity,
        "total_booked": total_booked if known else None,
        "total_available": total_available if known else None,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        document["reason"] = day.reason
    return document


def counts_document(day: Day, counts: Mapping[str, int] | None) -> dict:
    """A day's counts only: `{"slots": {"17:00": {capacity, booked, available}}, ...}`."""
    known = counts is not None
    slots: dict[str, dict] = {}
    total = 0
    if day.status == OPEN:
        for slot in day.slots:
            if known:
                booked = counts.get(slot.start, 0)
                available = slot.capacity - booked if booked < slot.capacity else 0
                total += booked
            else:
                booked = available = None
            slots[slot.start] = {
                "capacity": slot.capacity,
                "booked": booked,
                "available": available,
            }
    document = {
        "slots": slots,
        "total_booked": total if known else None,
        "status": day.status,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        document["reason"] = day.reason
    return document
