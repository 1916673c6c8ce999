"""Answer documents of the read endpoints: a day's slots merged with its counts. Pure.

`day_json` (a day as `available` and `calendar` show it) and `counts_json` (as the
`availability` answers show it) write the documents as compact UTF-8 JSON text from each
slot's fields serialised once, and reuse the part of an open day that its slots and counts
make (see _SLOT_PARTS). Measured for 60 days: a calendar costs 533 us of CPU as dicts then
`json.dumps`, 224 us this way, 68 us when the counts did not change since the last request;
a bulk answer 354, 209 and 55 us. tests/unit/test_read_caches.py holds them to the bytes of
the dict documents the services answered with before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from .slots import OPEN, Day, Slot

LIVE = "live"
UNKNOWN = "unknown"


_JSON_BOOL = {True: "true", False: "false"}
# The part of an open day's JSON that its slots and counts make, by the identity of the slots
# (a compiled schedule's, shared by its dates) and of the counts (shared.counts gives the same
# records the same read-only mapping), with the started flags: so a calendar whose counts did
# not change is mostly looked up, not written again (~5 us an open day). An entry keeps both
# objects, so their ids cannot be reused while it exists; only read-only counts are cached.
_SLOT_PARTS: dict[tuple, tuple[tuple[Slot, ...], Mapping | None, str]] = {}
_MAX_SLOT_PARTS = 4096
# The same parts of a day without slots, by whether its counts are known.
_NO_DAY_SLOTS = {
    True: f'"slots":[],"total_capacity":0,"total_booked":0,"total_available":0,"counts":"{LIVE}"',
    False: '"slots":[],"total_capacity":0,"total_booked":null,"total_available":null,'
    f'"counts":"{UNKNOWN}"',
}
_NO_COUNT_SLOTS = {True: '"slots":{},"total_booked":0', False: '"slots":{},"total_booked":null'}


@lru_cache(maxsize=1024)
def json_text(value: str) -> str:
    """A string as a JSON string (json_response's encoding)."""
    return json.dumps(value, ensure_ascii=False)


def _cached(kind: str, slots: tuple[Slot, ...], extra, booked, write) -> str:
    """`write()`, through _SLOT_PARTS when `booked` is None or read-only."""
    if booked is not None and type(booked) is not MappingProxyType:
        return write()
    key = (kind, id(slots), extra, id(booked))
    entry = _SLOT_PARTS.get(key)
    if entry is not None and entry[0] is slots and entry[1] is booked:
        return entry[2]
    text = write()
    if len(_SLOT_PARTS) >= _MAX_SLOT_PARTS:
        _SLOT_PARTS.clear()
    _SLOT_PARTS[key] = (slots, booked, text)
    return text


def day_json(day: Day, booked: Mapping[str, int] | None, lead: str = "") -> str:
    """A day as `available` and `calendar` show it (`booked` None: counts unknown), as JSON
    text; `lead`: members to write first, serialised (`"hospital_id":"gomoti",`)."""
    if day.slots:
        slots = _cached("day", day.slots, day.started, booked, lambda: _day_slots(day, booked))
    else:
        slots = _NO_DAY_SLOTS[booked is not None]
    reason = f',"reason":{json_text(day.reason)}' if day.reason else ""
    return (
        f'{{{lead}"date":"{day.iso}","weekday":{day.weekday},"status":{json_text(day.status)},'
        f"{slots}{reason}}}"
    )


def _day_slots(day: Day, booked: Mapping[str, int] | None) -> str:
    """`"slots":[...],"total_capacity":..,"counts":".."` of `day_json`."""
    known = booked is not None
    slots = []
    total_capacity = total_booked = total_available = 0
    for slot, started in zip(day.slots, day.started, strict=True):
        capacity = slot.capacity
        total_capacity += capacity
        if known:
            count = booked.get(slot.start, 0)
            available = capacity - count if count < capacity else 0
            total_booked += count
            total_available += available
            bookable = _JSON_BOOL[not started and available > 0]
            slots.append(
                f'{{{slot.json_members},"booked":{count},"available":{available},'
                f'"bookable":{bookable}}}'
            )
        else:
            bookable = _JSON_BOOL[not started]
            slots.append(
                f'{{{slot.json_members},"booked":null,"available":null,"bookable":{bookable}}}'
            )
    if known:
        totals = f'{total_booked},"total_available":{total_available},"counts":"{LIVE}"'
    else:
        totals = f'null,"total_available":null,"counts":"{UNKNOWN}"'
    return f'"slots":[{",".join(slots)}],"total_capacity":{total_capacity},"total_booked":{totals}'


def counts_json(day: Day, booked: Mapping[str, int] | None, lead: str = "") -> str:
    """A day as the lightweight `availability` answers show it, as JSON text; `lead` as for
    `day_json`."""
    reason = f',"reason":{json_text(day.reason)}' if day.reason else ""
    if day.status == OPEN and day.slots:
        members = _cached("counts", day.slots, None, booked, lambda: _open_counts(day, booked))
        return f"{{{lead}{members}{reason}}}"
    slots = _NO_COUNT_SLOTS[booked is not None]
    counts = LIVE if booked is not None else UNKNOWN
    return f'{{{lead}{slots},"status":{json_text(day.status)},"counts":"{counts}"{reason}}}'


def _open_counts(day: Day, booked: Mapping[str, int] | None) -> str:
    """The members of `counts_json` for an open day, but its reason."""
    # By start, as the document's object keeps one entry per start.
    slots: dict[str, str] = {}
    total = 0
    for slot in day.slots:
        start, capacity = slot.start, slot.capacity
        if booked is not None:
            count = booked.get(start, 0)
            available = capacity - count if count < capacity else 0
            slots[start] = (
                f'{json_text(start)}:{{"capacity":{capacity},"booked":{count},'
                f'"available":{available}}}'
            )
            total += count
        else:
            slots[start] = (
                f'{json_text(start)}:{{"capacity":{capacity},"booked":null,"available":null}}'
            )
    if booked is not None:
        rest = f'{total},"status":"{OPEN}","counts":"{LIVE}"'
    else:
        rest = f'null,"status":"{OPEN}","counts":"{UNKNOWN}"'
    return f'"slots":{{{",".join(slots.values())}}},"total_booked":{rest}'
