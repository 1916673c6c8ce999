"""Answer documents of the read endpoints: a day's slots merged with its counts. Pure."""

from __future__ import annotations

from .slots import OPEN, Day

LIVE = "live"
UNKNOWN = "unknown"


def day_view(day: Day, booked: dict[str, int] | None) -> dict:
    """A day as `available` and `calendar` show it; `booked` None means counts unknown."""
    slots = []
    total_capacity = total_booked = total_available = 0
    known = booked is not None
    for slot, started in zip(day.slots, day.started, strict=True):
        count = booked.get(slot.start, 0) if known else None
        available = max(0, slot.capacity - count) if known else None
        slots.append(
            {
                "start": slot.start,
                "end": slot.end,
                "display": slot.display,
                "capacity": slot.capacity,
                "booked": count,
                "available": available,
                "bookable": not started and (available is None or available > 0),
            }
        )
        total_capacity += slot.capacity
        if known:
            total_booked += count
            total_available += available
    view = {
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
        view["reason"] = day.reason
    return view


def counts_view(day: Day, booked: dict[str, int] | None) -> dict:
    """A day as the lightweight `availability` answer shows it."""
    slots = {}
    total = 0
    known = booked is not None
    if day.status == OPEN:
        for slot in day.slots:
            count = booked.get(slot.start, 0) if known else None
            slots[slot.start] = {
                "capacity": slot.capacity,
                "booked": count,
                "available": max(0, slot.capacity - count) if known else None,
            }
            if known:
                total += count
    view = {
        "slots": slots,
        "total_booked": total if known else None,
        "status": day.status,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        view["reason"] = day.reason
    return view
