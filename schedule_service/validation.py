"""Whole-document validation of a hospital configuration: every problem reported at once.

A day (a weekday of a `schedule`, or an open date override) lists `slots` and/or `sessions`.
A session `{start, end, slot_minutes, capacity?}` stands for consecutive slots of
`slot_minutes` from `start`, as many as fit before (or exactly at) `end`; shared/slots.py
expands them. Here they are worked out only to check a day whole: its slots, listed and
generated, must not overlap, and a day has at most MAX_SLOTS_PER_DAY of them.

Problems are reported by dotted field path (`practitioners.helal.schedule.6.sessions.0.end`).
Any JSON value is answered with errors, never an exception; a bool is never an integer.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.ids import ID_RULE, has_control_characters, is_id
from shared.slots import TIME_RE, display_text, minutes, parse_date

SLOT_FIELDS = {"start", "end", "display", "capacity"}
SESSION_FIELDS = {"start", "end", "slot_minutes", "capacity"}
DAY_FIELDS = {"slots", "sessions"}
OVERRIDE_FIELDS = {"closed", "reason", "slots", "sessions"}
APPOINTMENT_TYPE_FIELDS = {"name", "units", "minutes"}
PRACTITIONER_FIELDS = {
    "name",
    "specialty",
    "active",
    "schedule",
    "date_overrides",
    "max_appointments_per_slot",
}
WEEKDAYS = {"0", "1", "2", "3", "4", "5", "6"}
MAX_CAPACITY = 10_000
# A 5-minute grid over 24 hours.
MAX_SLOTS_PER_DAY = 288
MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 240
MAX_APPOINTMENT_TYPES = 50
MAX_UNITS = 10_000
# How long a hold keeps its place (API.md, "Holds"): the hospital's `hold_seconds`.
MIN_HOLD_SECONDS, MAX_HOLD_SECONDS = 30, 1800
MAX_APPOINTMENT_MINUTES = 480
MAX_PRACTITIONERS = 200
# Where validate_practitioner reports a problem of the body as a whole (not an object,
# unknown fields); inside a hospital document that is `practitioners.<id>`.
PRACTITIONER_ROOT = "practitioner"
# Where validate_hospital reports a body that is not an object.
HOSPITAL_ROOT = "hospital"

TIME_RULE = "must be a time HH:MM (00:00 to 23:59)"
BOOL_RULE = "must be true or false"
DAY_SHAPE = '{"slots": [...], "sessions": [...]}'
SESSION_SHAPE = "with start, end and slot_minutes"
OVERRIDE_SHAPE = '{"closed": true, "reason": ...} or {"slots": [...], "sessions": [...]}'

Errors = dict[str, list[str]]
# A stretch of a day in minutes since midnight: (start, end).
Span = tuple[int, int]
# Checks one item (a slot, a session) at a path: its normalized form (None when it is
# invalid) and the spans of the slots it stands for.
ItemCheck = Callable[[object, str, Errors], tuple[dict | None, list[Span]]]


def valid_timezone(name) -> bool:
    """True for an IANA zone name this machine knows."""
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


# --- small checks ------------------------------------------------------------------------


def _add(errors: Errors, path: str, message: str) -> None:
    errors.setdefault(path, []).append(message)


def _at(path: str, name: str) -> str:
    """The path of field `name` of the object at `path` ("" is the document itself)."""
    return f"{path}.{name}" if path else name


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_text(value, low: int, high: int) -> bool:
    """A string of at most `high` characters, at least `low` of them not blank, no control
    characters."""
    return (
        isinstance(value, str)
        and len(value.strip()) >= low
        and len(value) <= high
        and not has_control_characters(value)
    )


def _check_int(
    obj: dict, name: str, path: str, errors: Errors, low: int, high: int, required=False
) -> bool:
    """obj[name] (when present, or `required`) is an integer from low to high."""
    if name not in obj and not required:
        return True
    if _int_in(obj.get(name), low, high):
        return True
    _add(errors, _at(path, name), f"must be an integer from {low} to {high}")
    return False


def _check_text(
    obj: dict, name: str, path: str, errors: Errors, high: int, *, low=0, nullable=False
) -> bool:
    """obj[name] (required when `low`, else when present) is a text (or null: `nullable`)."""
    if name not in obj and not low:
        return True
    value = obj.get(name)
    if (value is None and nullable) or _is_text(value, low, high):
        return True
    size = f"{low} to {high}" if low else f"at most {high}"
    _add(errors, _at(path, name), f"must be a text of {size} characters, no control characters")
    return False


def _check_object(value, allowed: set[str], path: str, errors: Errors, shape: str) -> bool:
    """False (reported) unless `value` is an object; its unknown fields are reported too."""
    if not isinstance(value, dict):
        _add(errors, path, f"must be an object {shape}")
        return False
    unknown = set(value) - allowed
    if unknown:
        _add(errors, path, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    return True


def _check_span(obj: dict, path: str, errors: Errors) -> Span | None:
    """The start and end of a slot or a session, when both are times and end is after start."""
    times = {}
    for name in ("start", "end"):
        value = obj.get(name)
        if isinstance(value, str) and TIME_RE.match(value):
            times[name] = minutes(value)
        else:
            _add(errors, f"{path}.{name}", TIME_RULE)
    if len(times) < 2:
        return None
    if times["end"] <= times["start"]:
        _add(errors, f"{path}.end", f"must be after start ({obj['start']})")
        return None
    return times["start"], times["end"]


def _hhmm(total: int) -> str:
    return f"{total // 60:02d}:{total % 60:02d}"


def _overlap(first: Span, second: Span) -> str:
    return (
        f"slots {_hhmm(first[0])}-{_hhmm(first[1])} and "
        f"{_hhmm(second[0])}-{_hhmm(second[1])} overlap"
    )


# --- a day: slots and sessions ------------------------------------------------------------


def _check_slot(slot, where: str, errors: Errors) -> tuple[dict | None, list[Span]]:
    if not _check_object(slot, SLOT_FIELDS, where, errors, "with start and end"):
        return None, []
    span = _check_span(slot, where, errors)
    ok = _check_int(slot, "capacity", where, errors, 1, MAX_CAPACITY)
    ok = _check_text(slot, "display", where, errors, 100, nullable=True) and ok
    if span is None or not ok:
        return None, [span] if span else []
    start, end = slot["start"], slot["end"]
    norm = {"start": start, "end": end, "display": slot.get("display") or display_text(start, end)}
    if "capacity" in slot:
        norm["capacity"] = slot["capacity"]
    return norm, [span]


def _check_session(session, where: str, errors: Errors) -> tuple[dict | None, list[Span]]:
    """A session and the slots it generates (those whatever else is wrong with it)."""
    if not _check_object(session, SESSION_FIELDS, where, errors, SESSION_SHAPE):
        return None, []
    span = _check_span(session, where, errors)
    step_ok = _check_int(
        session, "slot_minutes", where, errors, MIN_SLOT_MINUTES, MAX_SLOT_MINUTES, True
    )
    capacity_ok = _check_int(session, "capacity", where, errors, 1, MAX_CAPACITY)
    if span is None or not step_ok:
        return None, []
    step = session["slot_minutes"]
    generated = [(at, at + step) for at in range(span[0], span[1] - step + 1, step)]
    if not generated:
        _add(
            errors,
            f"{where}.slot_minutes",
            f"no slot of {step} minutes fits between {session['start']} and {session['end']}",
        )
        return None, []
    if not capacity_ok:
        return None, generated
    norm = {"start": session["start"], "end": session["end"], "slot_minutes": step}
    if "capacity" in session:
        norm["capacity"] = session["capacity"]
    return norm, generated


def _check_items(
    items, path: str, errors: Errors, noun: str, check: ItemCheck
) -> tuple[list[dict], list[list[Span]]]:
    """A list of slots or sessions: the valid ones normalized, sorted by start, and the spans
    of each item's slots, by index."""
    if not isinstance(items, list):
        _add(errors, path, f"must be a list of {noun}")
        return [], []
    good, spans = [], []
    for i, item in enumerate(items):
        norm, item_spans = check(item, f"{path}.{i}", errors)
        if norm is not None:
            good.append(norm)
        spans.append(item_spans)
    good.sort(key=lambda item: item["start"])
    return good, spans


def _check_slots(slots, path: str, errors: Errors) -> tuple[list[dict], list[list[Span]]]:
    """Validate one day's slot list: normalized (sorted, display filled), and each slot's span
    (when its times are valid, whatever else is wrong: for the overlap checks)."""
    good, spans = _check_items(slots, path, errors, "slots", _check_slot)
    if isinstance(slots, list) and len(slots) > MAX_SLOTS_PER_DAY:
        _add(errors, path, f"at most {MAX_SLOTS_PER_DAY} slots a day")
    timed = sorted(span for item in spans for span in item)
    for previous, current in zip(timed, timed[1:], strict=False):
        if current[0] < previous[1]:
            _add(errors, path, _overlap(previous, current))
    return good, spans


def _check_day(day: dict, path: str, errors: Errors) -> dict:
    """A day's slots and sessions: `{"slots": [...]}`, with `"sessions"` when it has some."""
    listed = day.get("slots", [])
    slots, listed_spans = _check_slots(listed, f"{path}.slots", errors)
    norm = {"slots": slots}
    if "sessions" in day:
        norm["sessions"], generated = _check_items(
            day["sessions"], f"{path}.sessions", errors, "sessions", _check_session
        )
        listed_count = len(listed) if isinstance(listed, list) else 0
        total = listed_count + sum(map(len, generated))
        if listed_count <= MAX_SLOTS_PER_DAY < total:
            _add(
                errors,
                path,
                f"at most {MAX_SLOTS_PER_DAY} slots a day, listed and generated ({total})",
            )
        _check_session_overlaps(listed_spans, generated, path, errors)
    return norm


def _check_session_overlaps(
    listed: list[list[Span]], generated: list[list[Span]], path: str, errors: Errors
) -> None:
    """Every slot of the day, listed and generated, by start: each that begins before the
    latest-ending one before it has ended overlaps it. Reported once for each pair of a
    session and another session or listed slot (two listed slots: _check_slots), and each
    message once (identical sessions give identical messages)."""
    spans = [(*span, "slot", i) for i, item in enumerate(listed) for span in item]
    spans += [(*span, "session", i) for i, item in enumerate(generated) for span in item]
    spans.sort()
    pairs, messages = set(), set()
    reach = None
    for span in spans:
        if reach is not None and span[0] < reach[1] and "session" in (reach[2], span[2]):
            pair, message = frozenset((reach[2:], span[2:])), _overlap(reach, span)
            if pair not in pairs and message not in messages:
                _add(errors, path, message)
            pairs.add(pair)
            messages.add(message)
        if reach is None or span[1] > reach[1]:
            reach = span


# --- a schedule and its date overrides (the hospital's, a doctor's) -----------------------


def _check_schedule(schedule, path: str, errors: Errors) -> dict:
    """Weekdays "0" (Sunday) to "6", each a day."""
    doc: dict = {}
    if not isinstance(schedule, dict):
        _add(errors, path, "must be an object keyed by weekday '0' (Sunday) to '6'")
        return doc
    for key in sorted(schedule, key=str):
        where = f"{path}.{key}"
        if key not in WEEKDAYS:
            _add(errors, where, "weekday keys are '0' (Sunday) to '6' (Saturday)")
        elif _check_object(schedule[key], DAY_FIELDS, where, errors, DAY_SHAPE):
            doc[key] = _check_day(schedule[key], where, errors)
    return doc


def _check_overrides(overrides, path: str, errors: Errors) -> dict:
    """Dates YYYY-MM-DD, each closed or a day of its own."""
    doc: dict = {}
    if not isinstance(overrides, dict):
        _add(errors, path, "must be an object keyed by date YYYY-MM-DD")
        return doc
    for key in sorted(overrides, key=str):
        where = f"{path}.{key}"
        if parse_date(key) is None:
            _add(errors, where, "override keys must be dates YYYY-MM-DD")
            continue
        norm = _check_override(overrides[key], where, errors)
        if norm is not None:
            doc[key] = norm
    return doc


def _check_override(value, where: str, errors: Errors) -> dict | None:
    if not _check_object(value, OVERRIDE_FIELDS, where, errors, OVERRIDE_SHAPE):
        return None
    closed = value.get("closed", False)
    if not isinstance(closed, bool):
        _add(errors, f"{where}.closed", BOOL_RULE)
        return None
    _check_text(value, "reason", where, errors, 200, nullable=True)
    listed = [name for name in ("slots", "sessions") if value.get(name)]
    if closed and listed:
        _add(errors, where, f"a closed date cannot also list {' or '.join(listed)}")
        return None
    if not closed and "slots" not in value and "sessions" not in value:
        _add(errors, where, 'give either "closed": true or the date\'s "slots" or "sessions"')
        return None
    norm = {"closed": True} if closed else _check_day(value, where, errors)
    if value.get("reason"):
        norm["reason"] = value["reason"]
    return norm


# --- appointment types and practitioners ---------------------------------------------------


def _check_by_id(value, path: str, errors: Errors, noun: str, limit: int, check: Callable) -> dict:
    """An object keyed by canonical ids (at most `limit`), each value checked by `check`."""
    doc: dict = {}
    if not isinstance(value, dict):
        _add(errors, path, f"must be an object keyed by {noun} id")
        return doc
    if len(value) > limit:
        _add(errors, path, f"at most {limit} {noun}s")
    for key in sorted(value, key=str):
        where = f"{path}.{key}"
        if not is_id(key):
            _add(errors, where, ID_RULE)
            continue
        norm = check(value[key], where, errors)
        if norm is not None:
            doc[key] = norm
    return doc


def _check_appointment_type(value, where: str, errors: Errors) -> dict | None:
    if not _check_object(value, APPOINTMENT_TYPE_FIELDS, where, errors, '{"name", "units"}'):
        return None
    ok = _check_text(value, "name", where, errors, 100, low=1)
    ok = _check_int(value, "units", where, errors, 1, MAX_UNITS, True) and ok
    ok = _check_int(value, "minutes", where, errors, 1, MAX_APPOINTMENT_MINUTES) and ok
    if not ok:
        return None
    norm = {"name": value["name"], "units": value["units"]}
    if "minutes" in value:
        norm["minutes"] = value["minutes"]
    return norm


def _check_default_type(body: dict, errors: Errors) -> None:
    """`default_appointment_type`, when given, names one of `appointment_types`."""
    default = body["default_appointment_type"]
    types = body.get("appointment_types")
    codes = {key for key in types if is_id(key)} if isinstance(types, dict) else set()
    if not codes:
        _add(errors, "default_appointment_type", "no appointment_types are defined")
    elif not isinstance(default, str) or default not in codes:
        _add(errors, "default_appointment_type", "must be a key of appointment_types")


def _check_practitioner(body, path: str, errors: Errors) -> dict | None:
    """One doctor at `path` ("" when the body is the doctor alone)."""
    root = path or PRACTITIONER_ROOT
    if not _check_object(body, PRACTITIONER_FIELDS, root, errors, '{"name": ...}'):
        return None
    _check_text(body, "name", path, errors, 200, low=1)
    _check_text(body, "specialty", path, errors, 200, nullable=True)
    active = body.get("active", True)
    if not isinstance(active, bool):
        _add(errors, _at(path, "active"), BOOL_RULE)
    _check_int(body, "max_appointments_per_slot", path, errors, 1, MAX_CAPACITY)
    doc = {"name": body.get("name")}
    if "specialty" in body:
        doc["specialty"] = body["specialty"]
    doc["active"] = active
    if "schedule" in body:
        doc["schedule"] = _check_schedule(body["schedule"], _at(path, "schedule"), errors)
    if "date_overrides" in body:
        where = _at(path, "date_overrides")
        doc["date_overrides"] = _check_overrides(body["date_overrides"], where, errors)
    if "max_appointments_per_slot" in body:
        doc["max_appointments_per_slot"] = body["max_appointments_per_slot"]
    return doc


def validate_practitioner(body, practitioner_id: str) -> tuple[dict, dict]:
    """Check one doctor (the body of `PUT .../practitioners/{practitioner_id}`); return
    (normalized doctor, errors by field path). The id comes from the path, not the body."""
    errors: Errors = {}
    if not is_id(practitioner_id):
        _add(errors, "practitioner_id", ID_RULE)
    doc = _check_practitioner(body, "", errors)
    return doc or {}, errors


# --- the hospital ---------------------------------------------------------------------------


def validate_hospital(body: dict, hospital_id: str | None = None) -> tuple[dict, dict]:
    """Check a Hospital document; return (normalized document, errors by field path)."""
    errors: Errors = {}
    doc: dict = {}
    if not isinstance(body, dict):
        _add(errors, HOSPITAL_ROOT, "must be an object")
        body = {}
    hid = body.get("hospital_id", hospital_id)
    if hospital_id is not None and hid != hospital_id:
        errors["hospital_id"] = [f"must match the path ({hospital_id})"]
    elif not is_id(hid):
        errors["hospital_id"] = [ID_RULE]
    doc["hospital_id"] = hid
    name = body.get("hospital_name")
    # Not _check_text: a v1 name's bound is on its stripped length, kept as it was.
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
    _check_int(body, "max_appointments_per_slot", "", errors, 1, MAX_CAPACITY)
    doc["max_appointments_per_slot"] = body.get("max_appointments_per_slot", 15)
    _check_int(body, "advance_booking_days", "", errors, 0, 366)
    doc["advance_booking_days"] = body.get("advance_booking_days", 60)
    if "hold_seconds" in body:  # optional (v1.1): a v1 document stays as it was
        _check_int(body, "hold_seconds", "", errors, MIN_HOLD_SECONDS, MAX_HOLD_SECONDS)
        doc["hold_seconds"] = body["hold_seconds"]
    doc["schedule"] = _check_schedule(body.get("schedule", {}), "schedule", errors)
    doc["date_overrides"] = _check_overrides(
        body.get("date_overrides", {}), "date_overrides", errors
    )
    if "appointment_types" in body:
        doc["appointment_types"] = _check_by_id(
            body["appointment_types"],
            "appointment_types",
            errors,
            "appointment type",
            MAX_APPOINTMENT_TYPES,
            _check_appointment_type,
        )
    if "default_appointment_type" in body:
        _check_default_type(body, errors)
        doc["default_appointment_type"] = body["default_appointment_type"]
    if "practitioners" in body:
        doc["practitioners"] = _check_by_id(
            body["practitioners"],
            "practitioners",
            errors,
            "practitioner",
            MAX_PRACTITIONERS,
            _check_practitioner,
        )
    return doc, errors
