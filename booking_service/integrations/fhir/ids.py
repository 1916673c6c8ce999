"""Our identifiers as FHIR ids, and back. Pure: no I/O.

Our ids match `^[a-z0-9][a-z0-9_-]{0,63}$` (shared/ids.py); a FHIR id matches
`[A-Za-z0-9\\-\\.]{1,64}`, with no `_`. A FHIR id here is one or more of our ids
("parts"), written with two rules:

- inside a part, each `_` is written `..`;
- parts are joined by a single `.`.

`gomoti` -> `gomoti`, (`dhanmondi`, `helal`) -> `dhanmondi.helal`, `h_1` -> `h..1`,
(`a_`, `b`) -> `a...b`. Reading left to right, `..` is an `_` and a lone `.` a separator.
This is unambiguous because a part never starts with `_` (so a run of dots between two parts
is its first part's trailing underscores, in pairs, then one separator) and never is empty.
`decode` accepts only what `encode` writes (it encodes its answer again and compares), so
every resource has exactly one FHIR id: no alias (`GOMOTI`, `gomoti.`, `a.-b`) decodes.
An id longer than 64 characters once encoded cannot be written: `encode` answers None and
the resource does not exist over FHIR.
"""

from __future__ import annotations

import re
from datetime import date

from shared.ids import TIME_PATTERN, is_id
from shared.slots import parse_date

MAX_LENGTH = 64
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DAY = re.compile(r"[0-9]{8}")
_HHMM = re.compile(TIME_PATTERN.replace(":", ""))
# The date and wall time a Slot id ends with: `.YYYYMMDD.HHMM`.
SLOT_SUFFIX_LENGTH = 14
# The longest Schedule id whose every Slot id still fits in 64 characters.
MAX_SCHEDULE_ID_LENGTH = MAX_LENGTH - SLOT_SUFFIX_LENGTH


def is_fhir_id(value: object) -> bool:
    """True when `value` has the syntax of a FHIR id (whatever it names)."""
    return isinstance(value, str) and FHIR_ID.fullmatch(value) is not None


def encode(*parts: str) -> str | None:
    """The FHIR id of these ids (each canonical); None when it would be over 64 characters."""
    if not parts or not all(is_id(part) for part in parts):
        raise ValueError("every part must be an id in its canonical form")
    text = ".".join(part.replace("_", "..") for part in parts)
    return text if len(text) <= MAX_LENGTH else None


def decode(fhir_id: object) -> tuple[str, ...] | None:
    """The ids a FHIR id names, each canonical; None for anything `encode` never writes."""
    if not is_fhir_id(fhir_id):
        return None
    parts: list[str] = []
    current: list[str] = []
    text = str(fhir_id)
    i = 0
    while i < len(text):
        if text[i] != ".":
            current.append(text[i])
            i += 1
        elif text.startswith("..", i):
            current.append("_")
            i += 2
        else:
            parts.append("".join(current))
            current = []
            i += 1
    parts.append("".join(current))
    if not all(is_id(part) for part in parts) or encode(*parts) != text:
        return None
    return tuple(parts)


# What each kind of resource's id names.


def location_id(hospital_id: str) -> str | None:
    """A hospital's Location id."""
    return encode(hospital_id)


def practitioner_id(hospital_id: str, doctor_id: str) -> str | None:
    """A doctor's Practitioner id (doctors are keyed per hospital)."""
    return encode(hospital_id, doctor_id)


def schedule_id(hospital_id: str, doctor_id: str | None) -> str | None:
    """The Schedule id of a hospital's own schedule or of one doctor's; None when its Slot ids
    could not all be written (the Schedule is then not served at all)."""
    parts = (hospital_id,) if doctor_id is None else (hospital_id, doctor_id)
    text = encode(*parts)
    if text is None or len(text) > MAX_SCHEDULE_ID_LENGTH:
        return None
    return text


def slot_id(hospital_id: str, doctor_id: str | None, day: date, start: str) -> str | None:
    """A Slot's id: its schedule's, the date and the wall time (`gomoti.20261128.1700`)."""
    schedule = schedule_id(hospital_id, doctor_id)
    if schedule is None:
        return None
    return f"{schedule}.{day.strftime('%Y%m%d')}.{start.replace(':', '')}"


def read_location(fhir_id: object) -> str | None:
    """The hospital a Location id names."""
    parts = decode(fhir_id)
    return parts[0] if parts is not None and len(parts) == 1 else None


def read_practitioner(fhir_id: object) -> tuple[str, str] | None:
    """(hospital, doctor) a Practitioner id names."""
    parts = decode(fhir_id)
    return (parts[0], parts[1]) if parts is not None and len(parts) == 2 else None


def read_schedule(fhir_id: object) -> tuple[str, str | None] | None:
    """(hospital, doctor or None) a Schedule id names."""
    parts = decode(fhir_id)
    if parts is None or len(parts) > 2 or len(str(fhir_id)) > MAX_SCHEDULE_ID_LENGTH:
        return None
    return (parts[0], parts[1] if len(parts) == 2 else None)


def read_slot(fhir_id: object) -> tuple[str, str | None, date, str] | None:
    """(hospital, doctor or None, date, `HH:MM`) a Slot id names."""
    parts = decode(fhir_id)
    if parts is None or len(parts) not in (3, 4):
        return None
    *owner, day_text, hhmm = parts
    when = read_day_and_time(day_text, hhmm)
    doctor = owner[1] if len(owner) == 2 else None
    if when is None or schedule_id(owner[0], doctor) is None:
        return None
    return owner[0], doctor, when[0], when[1]


def read_day_and_time(day_text: str, hhmm: str) -> tuple[date, str] | None:
    """(date, `HH:MM`) of `YYYYMMDD` and `HHMM` (a Slot id's tail, a page cursor)."""
    if not _DAY.fullmatch(day_text) or not _HHMM.fullmatch(hhmm):
        return None
    day = parse_date(f"{day_text[:4]}-{day_text[4:6]}-{day_text[6:]}")
    return None if day is None else (day, f"{hhmm[:2]}:{hhmm[2:]}")
