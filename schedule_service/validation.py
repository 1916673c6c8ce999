"""Whole-document validation of a hospital configuration: every problem reported at once."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.ids import ID_RULE, has_control_characters, is_id
from shared.slots import TIME_RE, display_text, minutes, parse_date

SLOT_FIELDS = {"start", "end", "display", "capacity"}
OVERRIDE_FIELDS = {"closed", "reason", "slots"}
MAX_CAPACITY = 10_000
MAX_SLOTS_PER_DAY = 96


def valid_timezone(name) -> bool:
    """True for an IANA zone name this machine knows."""
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_slots(slots, path: str, errors: dict) -> list[dict]:
    """Validate one day's slot list; return it normalized (sorted, display filled)."""
    if not isinstance(slots, list):
        errors[path] = ["must be a list of slots"]
        return []
    if len(slots) > MAX_SLOTS_PER_DAY:
        errors[path] = [f"at most {MAX_SLOTS_PER_DAY} slots a day"]
    good = []
    timed = []  # every slot with valid times, for the overlap check whatever else is wrong
    for i, slot in enumerate(slots):
        where = f"{path}.{i}"
        if not isinstance(slot, dict):
            errors[where] = ["must be an object with start and end"]
            continue
        unknown = set(slot) - SLOT_FIELDS
        if unknown:
            errors[where] = [f"unknown field(s): {', '.join(sorted(unknown))}"]
        start, end = slot.get("start"), slot.get("end")
        ok = True
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, str) or not TIME_RE.match(value):
                errors[f"{where}.{name}"] = ["must be a time HH:MM (00:00 to 23:59)"]
                ok = False
        if ok and minutes(end) <= minutes(start):
            errors[f"{where}.end"] = [f"must be after start ({start})"]
            ok = False
        elif ok:
            timed.append((start, end))
        if "capacity" in slot and not _int_in(slot["capacity"], 1, MAX_CAPACITY):
            errors[f"{where}.capacity"] = [f"must be an integer from 1 to {MAX_CAPACITY}"]
            ok = False
        display = slot.get("display")
        if display is not None and (
            not isinstance(display, str) or len(display) > 100 or has_control_characters(display)
        ):
            errors[f"{where}.display"] = ["must be a text of at most 100 characters"]
            ok = False
        if ok:
            norm = {"start": start, "end": end, "display": display or display_text(start, end)}
            if "capacity" in slot:
                norm["capacity"] = slot["capacity"]
            good.append(norm)
    good.sort(key=lambda s: s["start"])
    timed.sort()
    for (p_start, p_end), (c_start, c_end) in zip(timed, timed[1:], strict=False):
        if minutes(c_start) < minutes(p_end):
            errors.setdefault(path, []).append(
                f"slots {p_start}-{p_end} and {c_start}-{c_end} overlap"
            )
    return good


def validate_hospital(body: dict, hospital_id: str | None = None) -> tuple[dict, dict]:
    """Check a Hospital document; return (normalized document, errors by field path)."""
    errors: dict[str, list[str]] = {}
    doc: dict = {}
    hid = body.get("hospital_id", hospital_id)
    if hospital_id is not None and hid != hospital_id:
        errors["hospital_id"] = [f"must match the path ({hospital_id})"]
    elif not is_id(hid):
        errors["hospital_id"] = [ID_RULE]
    doc["hospital_id"] = hid
    name = body.get("hospital_name")
    if (
        not isinstance(name, str)
        or not 1 <= len(name.strip()) <= 200
        or has_control_characters(name)
    ):
        errors["hospital_name"] = ["must be a text of 1 to 200 characters, no control characters"]
    doc["hospital_name"] = name
    tz = body.get("timezone", "Asia/Dhaka")
    if not valid_timezone(tz):
        errors["timezone"] = [f"unknown time zone: {tz!r} (use an IANA name like Asia/Dhaka)"]
    doc["timezone"] = tz
    cap = body.get("max_appointments_per_slot", 15)
    if not _int_in(cap, 1, MAX_CAPACITY):
        errors["max_appointments_per_slot"] = [f"must be an integer from 1 to {MAX_CAPACITY}"]
    doc["max_appointments_per_slot"] = cap
    window = body.get("advance_booking_days", 60)
    if not _int_in(window, 0, 366):
        errors["advance_booking_days"] = ["must be an integer from 0 to 366"]
    doc["advance_booking_days"] = window

    schedule = body.get("schedule", {})
    doc["schedule"] = {}
    if not isinstance(schedule, dict):
        errors["schedule"] = ["must be an object keyed by weekday '0' (Sunday) to '6'"]
    else:
        for key in sorted(schedule):
            day = schedule[key]
            if key not in {"0", "1", "2", "3", "4", "5", "6"}:
                errors[f"schedule.{key}"] = ["weekday keys are '0' (Sunday) to '6' (Saturday)"]
                continue
            if not isinstance(day, dict) or set(day) - {"slots"}:
                errors[f"schedule.{key}"] = ['must be an object {"slots": [...]}']
                continue
            doc["schedule"][key] = {
                "slots": _check_slots(day.get("slots", []), f"schedule.{key}.slots", errors)
            }

    overrides = body.get("date_overrides", {})
    doc["date_overrides"] = {}
    if not isinstance(overrides, dict):
        errors["date_overrides"] = ["must be an object keyed by date YYYY-MM-DD"]
    else:
        for key in sorted(overrides):
            value = overrides[key]
            where = f"date_overrides.{key}"
            if parse_date(key) is None:
                errors[where] = ["override keys must be dates YYYY-MM-DD"]
                continue
            if not isinstance(value, dict) or set(value) - OVERRIDE_FIELDS:
                errors[where] = ['must be {"closed": true, "reason": ...} or {"slots": [...]}']
                continue
            closed = value.get("closed", False)
            if not isinstance(closed, bool):
                errors[f"{where}.closed"] = ["must be true or false"]
                continue
            reason = value.get("reason")
            if reason is not None and (
                not isinstance(reason, str) or len(reason) > 200 or has_control_characters(reason)
            ):
                errors[f"{where}.reason"] = ["must be a text of at most 200 characters"]
            if closed and value.get("slots"):
                errors[where] = ["a closed date cannot also list slots"]
                continue
            if not closed and "slots" not in value:
                errors[where] = ['give either "closed": true or the date\'s "slots"']
                continue
            norm = (
                {"closed": True}
                if closed
                else {"slots": _check_slots(value.get("slots", []), f"{where}.slots", errors)}
            )
            if reason:
                norm["reason"] = reason
            doc["date_overrides"][key] = norm
    return doc, errors
