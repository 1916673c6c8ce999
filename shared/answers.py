"""The read answers' documents, made in one place: a day's slots merged with its counts.

`day_document` is a day as `available` and `calendar` show it, `counts_document` as the
lightweight `availability` answers show it. shared.web.json_answer writes them (orjson: a
60-day calendar in one C call). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from .capacity_reads import DayCounts, held, offered
from .slots import OPEN, Day


@dataclass(frozen=True)
class CountedDays:
    """Dates as a schedule has them, each with its counts (None: unknown while Redis is down
    or rebuilding); `units`: what the appointment type a read asks about takes (None: it asks
    about none)."""

    days: list[tuple[Day, Mapping[str, int] | None]]
    units: int | None = None


def about(hospital_id: str, practitioner_id: str | None) -> dict:
    """The head of a read answer: the hospital, and the doctor when one was asked for (a v1
    request's answer is v1's, byte for byte)."""
    if practitioner_id is None:
        return {"hospital_id": hospital_id}
    return {"hospital_id": hospital_id, "practitioner_id": practitioner_id}


LIVE = "live"
UNKNOWN = "unknown"

# The one cache of the read answers: a day's document by (kind, the day, its counts), all
# values (a day's dates, status, slots and started flags; the counts as Redis sent them), so
# a calendar whose counts did not change is looked up, not built again. Bounded; answers
# whose counts are not such values (tests' plain dicts) are built every time.
_DOCUMENTS: dict[tuple, dict] = {}
_MAX_DOCUMENTS = 8192


def _kept(cache: dict, limit: int, key: tuple, build: Callable[[], object]):
    """`cache[key]`, built first when missing; the cache is emptied when it holds `limit`."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= limit:
            cache.clear()
        value = cache[key] = build()
    return value


def _cached(kind: str, day: Day, counts, units: int | None, build) -> dict:
    if counts is not None and type(counts) is not DayCounts:
        return build(day, counts, units)
    key = (kind, day.key, counts, units)
    return _kept(_DOCUMENTS, _MAX_DOCUMENTS, key, lambda: build(day, counts, units))


# The whole answers of many days (a calendar, a bulk read), written: by their kind, the
# hospital, the doctor, the units asked about and each day with its counts (the documents'
# own keys), so a read whose counts did not change costs neither the documents' lookups nor
# the writing. Few (each holds up to 92 days' bytes, ~40 KB): the ones asked for again are
# the same few hospitals' calendars while nothing is booked.
_ANSWERS: dict[tuple, bytes] = {}
_MAX_ANSWERS = 256


def _written(key_head: tuple, counted: CountedDays, build: Callable[[], dict]) -> bytes:
    days = counted.days
    if any(counts is not None and type(counts) is not DayCounts for _, counts in days):
        return orjson.dumps(build())
    key = (*key_head, counted.units, tuple((day.key, counts) for day, counts in days))
    return _kept(_ANSWERS, _MAX_ANSWERS, key, lambda: orjson.dumps(build()))


def calendar_body(hospital_id: str, practitioner_id: str | None, counted: CountedDays) -> bytes:
    """The `calendar` answer, written (its days from `counted`, the first one its start)."""

    def build() -> dict:
        return {
            **about(hospital_id, practitioner_id),
            "start": counted.days[0][0].iso,
            "days": [day_document(day, counts, counted.units) for day, counts in counted.days],
        }

    return _written(("calendar", hospital_id, practitioner_id), counted, build)


def bulk_body(hospital_id: str, practitioner_id: str | None, counted: CountedDays) -> bytes:
    """The `availability/bulk` answer, written: each date's counts document."""

    def build() -> dict:
        return {
            **about(hospital_id, practitioner_id),
            "dates": {
                day.iso: counts_document(day, counts, counted.units) for day, counts in counted.days
            },
        }

    return _written(("bulk", hospital_id, practitioner_id), counted, build)


def day_document(day: Day, counts: Mapping[str, int] | None, units: int | None = None) -> dict:
    """A day with its slots and counts (`counts` None: unknown while Redis is unavailable);
    with `units` (an appointment type asked about), each slot says whether it `fits`.
    The document is shared: the caller writes it, never changes it."""
    return _cached("day", day, counts, units, _day_document)


def counts_document(day: Day, counts: Mapping[str, int] | None, units: int | None = None) -> dict:
    """A day's counts only: `{"slots": {"17:00": {capacity, booked, held, offered,
    available}}, ...}` (`held` counts every live hold, `offered` those of waitlist offers).
    The document is shared: the caller writes it, never changes it."""
    return _cached("counts", day, counts, units, _counts_document)


def _fits(available: int | None, units: int) -> bool | None:
    """Whether `units` fit in what a slot has left (None: unknown)."""
    return None if available is None else available >= units


def _day_document(day: Day, counts: Mapping[str, int] | None, units: int | None) -> dict:
    known = counts is not None
    slots = []
    total_capacity = total_booked = total_held = total_available = 0
    for slot, started in zip(day.slots, day.started, strict=True):
        capacity = slot.capacity
        total_capacity += capacity
        if known:
            booked = counts.get(slot.start, 0)
            on_hold = held(counts, slot.start)
            taken = booked + on_hold
            available = capacity - taken if taken < capacity else 0
            total_booked += booked
            total_held += on_hold
            total_available += available
            bookable = not started and available > 0
        else:
            booked = on_hold = available = None
            bookable = not started
        answer = {
            "start": slot.start,
            "end": slot.end,
            "display": slot.display,
            "capacity": capacity,
            "booked": booked,
            "held": on_hold,
            "available": available,
            "bookable": bookable,
        }
        if units is not None:
            answer["fits"] = bookable and _fits(available, units)
        slots.append(answer)
    document = {
        "date": day.iso,
        "weekday": day.weekday,
        "status": day.status,
        "slots": slots,
        "total_capacity": total_capacity,
        "total_booked": total_booked if known else None,
        "total_held": total_held if known else None,
        "total_available": total_available if known else None,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        document["reason"] = day.reason
    return document


def _counts_document(day: Day, counts: Mapping[str, int] | None, units: int | None) -> dict:
    known = counts is not None
    slots: dict[str, dict] = {}
    total = 0
    if day.status == OPEN:
        for slot in day.slots:
            if known:
                booked = counts.get(slot.start, 0)
                on_hold = held(counts, slot.start)
                for_waitlist = offered(counts, slot.start)
                taken = booked + on_hold
                available = slot.capacity - taken if taken < slot.capacity else 0
                total += booked
            else:
                booked = on_hold = for_waitlist = available = None
            slots[slot.start] = {
                "capacity": slot.capacity,
                "booked": booked,
                "held": on_hold,
                "offered": for_waitlist,
                "available": available,
            }
            if units is not None:
                slots[slot.start]["fits"] = _fits(available, units)
    document = {
        "slots": slots,
        "total_booked": total if known else None,
        "status": day.status,
        "counts": LIVE if known else UNKNOWN,
    }
    if day.reason:
        document["reason"] = day.reason
    return document
