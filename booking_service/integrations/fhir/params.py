"""The search parameters of the FHIR API: which exist, and each value checked. Pure: no I/O.

A search is strict: a parameter this server does not support (or a modifier, `name:exact`),
a parameter given twice where it takes one value, a value that is not in its canonical form
(ASCII digits, FHIR ids that decode to canonical ids, dates from 1900 to 9998) is
`400 validation_error` naming the parameter, never a guess. `SEARCH_PARAMS` is also what
the CapabilityStatement lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from fhir.resources.capabilitystatement import CapabilityStatement

from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir.appointments import (
    FHIR_APPOINTMENT_STATUSES,
    OUR_STATUSES,
    SERIAL_EXTENSION,
    STATUS_EXTENSION,
    TYPE_SYSTEM,
)
from booking_service.integrations.fhir.datatypes import FHIR_VERSION, MEDIA_TYPE
from booking_service.integrations.fhir.outcomes import ERROR_SYSTEM
from booking_service.integrations.fhir.scheduling import REMAINING_EXTENSION, SLOT_STATUSES
from shared.errors import ValidationError
from shared.ids import ascii_uint, is_appointment_id
from shared.slots import parse_date

# Results: `_count` (page size) and the page positions of `next` links.
SLOT_COUNT = (100, 500)  # (default, maximum)
APPOINTMENT_COUNT = (50, 200)
# Location, Practitioner and Schedule searches. A search by _id or actor without _count
# answers every match at once (at most MAX_LIST hospitals' schedules), as it always has.
LISTING_COUNT = (50, 200)
MAX_PAGE = 100_000
MAX_LIST = 10  # values of one parameter (`a,b,c`: any of them)
# `_summary`: `count` answers the number of matches only; `false` is the whole answer.
SUMMARIES = ("count", "false")
# `_format`: JSON only, however a client names it.
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})


@dataclass(frozen=True)
class Param:
    """One search parameter, as the CapabilityStatement lists it."""

    name: str
    type: str  # SearchParamType
    documentation: str


def _paging(bounds: tuple[int, int], default_note: str = "") -> tuple[Param, ...]:
    """`_count` and `_page` of a search paged by page numbers."""
    return (
        Param("_count", "number", f"page size, 1..{bounds[1]} (default {bounds[0]}{default_note})"),
        Param("_page", "number", f"page number, 1..{MAX_PAGE} (the Bundle's next link)"),
    )


_SUMMARY = Param(
    "_summary",
    "token",
    "count: a searchset Bundle with the number of matches (total) and no entries",
)

SEARCH_PARAMS: dict[str, tuple[Param, ...]] = {
    "Location": (
        Param("_id", "token", f"Location ids, comma separated (at most {MAX_LIST})"),
        *_paging(LISTING_COUNT),
        _SUMMARY,
    ),
    "Practitioner": (
        Param("_id", "token", f"Practitioner ids, comma separated (at most {MAX_LIST})"),
        *_paging(LISTING_COUNT),
        _SUMMARY,
    ),
    "Schedule": (
        Param("_id", "token", "Schedule ids, comma separated (at most 10)"),
        Param(
            "actor",
            "reference",
            "Location/<id> (the hospital's own schedule and each of its doctors') or "
            "Practitioner/<id> (that doctor's); comma separated (at most 10)",
        ),
        Param("active", "token", "true or false"),
        *_paging(LISTING_COUNT, "; by _id or actor: every match"),
        _SUMMARY,
    ),
    "Slot": (
        Param("schedule", "reference", "Schedule/<id> (required, one)"),
        Param(
            "start",
            "date",
            "ge, gt, le, lt a date (the hospital's day) or a dateTime with its offset; "
            "eq (or no prefix) a date: that day. At most one lower and one upper bound; "
            "the booking window bounds every search",
        ),
        Param("status", "token", "free, busy, busy-unavailable (comma separated)"),
        Param("_count", "number", f"page size, 1..{SLOT_COUNT[1]} (default {SLOT_COUNT[0]})"),
        Param("_cursor", "string", "where a page starts: follow the Bundle's next link"),
        _SUMMARY,
    ),
    "Appointment": (
        Param("_id", "token", "Appointment ids (24 hex), comma separated (at most 10)"),
        Param("status", "token", "AppointmentStatus codes, comma separated"),
        Param(
            "date",
            "date",
            "eq, ge, gt, le, lt a date YYYY-MM-DD: the appointment's day in the hospital's "
            "zone (at most one lower and one upper bound)",
        ),
        Param("location", "reference", "Location/<id>: the hospital"),
        Param("practitioner", "reference", "Practitioner/<id>: the doctor"),
        Param("slot", "reference", "Slot/<id>"),
        Param(
            "_count",
            "number",
            f"page size, 1..{APPOINTMENT_COUNT[1]} (default {APPOINTMENT_COUNT[0]})",
        ),
        Param("_page", "number", f"page number, 1..{MAX_PAGE} (the Bundle's next link)"),
        _SUMMARY,
    ),
}
# Accepted everywhere (metadata and reads too).
COMMON_PARAMS = frozenset({"_format"})

_DATE = r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
_DATE_VALUE = re.compile(
    _DATE + r"(?:T([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]{1,9}))?)?"
    # `+` in a query string is a space unless the client escaped it (%2B): read it as `+`.
    r"(Z|[+ -](?:0[0-9]|1[0-4]):[0-5][0-9]))?"
)
_PREFIX = re.compile("(eq|ne|gt|lt|ge|le|sa|eb|ap)")
LOWER, UPPER = ("ge", "gt"), ("le", "lt")


def invalid(name: str, why: str) -> ValidationError:
    """400 validation_error about one parameter."""
    return ValidationError(f"The search parameter {name} is not valid: {why}", {name: [why]})


def check_names(args: Mapping, resource: str | None) -> None:
    """Every parameter is one this search supports (400 naming the first that is not)."""
    allowed = set(COMMON_PARAMS)
    if resource is not None:
        allowed.update(p.name for p in SEARCH_PARAMS[resource])
    for name in args:
        if name not in allowed:
            if ":" in name and name.partition(":")[0] in allowed:
                raise invalid(name, "modifiers are not supported")
            supported = ", ".join(sorted(allowed))
            raise invalid(name, f"not supported here (supported: {supported})")


def check_format(args) -> None:
    """`_format`, when given, asks for JSON (406 otherwise is the caller's to raise)."""
    value = single(args, "_format")
    if value is not None and value not in JSON_FORMATS:
        raise invalid("_format", "only JSON is served (json, application/fhir+json)")


def single(args, name: str) -> str | None:
    """The one value of a parameter that takes one; None when absent."""
    values = args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise invalid(name, "give it once")
    if values[0] == "":
        raise invalid(name, "must not be empty")
    return values[0]


def listed(args, name: str) -> list[str] | None:
    """The comma-separated values of a parameter given once; None when absent."""
    value = single(args, name)
    if value is None:
        return None
    # (counted before it is split: a list of 10,000 values is refused as cheaply as 11)
    if value.count(",") >= MAX_LIST:
        raise invalid(name, f"must be 1 to {MAX_LIST} values separated by commas")
    items = value.split(",")
    if any(item == "" for item in items):
        raise invalid(name, f"must be 1 to {MAX_LIST} values separated by commas")
    return items


def summary_count(args) -> bool:
    """`_summary`: True for `count` (the number of matches only); `false`, or absent: the
    whole answer."""
    value = single(args, "_summary")
    if value is not None and value not in SUMMARIES:
        raise invalid("_summary", "only count (and false) are supported")
    return value == "count"


def count(args, bounds: tuple[int, int]) -> int:
    """`_count`: ASCII digits, 1..maximum; the default when absent."""
    default, maximum = bounds
    value = single(args, "_count")
    if value is None:
        return default
    number = ascii_uint(value)
    if number is None or not 1 <= number <= maximum:
        raise invalid("_count", f"must be a number 1 to {maximum} (ASCII digits)")
    return number


def page(args) -> int:
    """`_page`: ASCII digits, 1..MAX_PAGE; 1 when absent."""
    value = single(args, "_page")
    if value is None:
        return 1
    number = ascii_uint(value)
    if number is None or not 1 <= number <= MAX_PAGE:
        raise invalid("_page", f"must be a number 1 to {MAX_PAGE} (ASCII digits)")
    return number


def reference_id(name: str, value: str, kind: str) -> str:
    """The id of a reference value `Kind/id` (or a bare `id`)."""
    if "/" in value:
        given, _, value = value.partition("/")
        if given != kind or not value:
            raise invalid(name, f"must be {kind}/<id>")
    if not fhir_ids.is_fhir_id(value):
        raise invalid(name, f"{value!r} is not a FHIR id")
    return value


def typed_reference(name: str, value: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    """(kind, id) of a reference `Kind/id` of one of `kinds`."""
    kind, slash, fhir_id = value.partition("/")
    if not slash or kind not in kinds:
        raise invalid(name, "must be " + " or ".join(f"{k}/<id>" for k in kinds))
    return kind, reference_id(name, value, kind)


def decoded(name: str, fhir_id: str, read):
    """What a FHIR id names (`read`: a fhir_ids reader); 400 when it names nothing ours."""
    found = read(fhir_id)
    if found is None:
        raise invalid(name, f"{fhir_id!r} names nothing on this server")
    return found


def boolean(args, name: str) -> bool | None:
    """A token true/false."""
    value = single(args, name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise invalid(name, "must be true or false")
    return value == "true"


def tokens(args, name: str, allowed: tuple[str, ...]) -> set[str] | None:
    """Codes of a value set, comma separated (no system)."""
    values = listed(args, name)
    if values is None:
        return None
    for value in values:
        if value not in allowed:
            raise invalid(name, f"{value!r} is not one of {', '.join(allowed)}")
    return set(values)


@dataclass(frozen=True)
class DateParam:
    """One value of a date parameter: a prefix and a day or an instant."""

    prefix: str  # eq, ge, gt, le, lt
    day: date | None = None
    moment: datetime | None = None  # aware

    @property
    def is_lower(self) -> bool:
        return self.prefix in LOWER

    @property
    def is_upper(self) -> bool:
        return self.prefix in UPPER


def date_value(name: str, text: str) -> DateParam:
    """`[prefix]YYYY-MM-DD` or `[prefix]YYYY-MM-DDThh:mm[:ss[.f]](Z|+hh:mm)`."""
    prefix = "eq"
    if _PREFIX.match(text[:2]):
        prefix, text = text[:2], text[2:]
    if prefix not in ("eq", "ge", "gt", "le", "lt"):
        raise invalid(name, f"the prefix {prefix} is not supported (eq, ge, gt, le, lt)")
    match = _DATE_VALUE.fullmatch(text)
    day = parse_date(match.group(1)) if match else None
    if match is None or day is None:
        raise invalid(name, "must be a date YYYY-MM-DD (1900..9998) or a dateTime with its offset")
    if match.group(2) is None:
        return DateParam(prefix, day=day)
    hour, minute = int(match.group(2)), int(match.group(3))
    second = int(match.group(4) or 0)
    micro = int((match.group(5) or "0")[:6].ljust(6, "0"))
    zone_text = match.group(6)
    if zone_text == "Z":
        zone = UTC
    else:
        sign = -1 if zone_text[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(zone_text[1:3]), minutes=int(zone_text[4:6])))
    moment = datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=zone)
    return DateParam(prefix, moment=moment)


def date_range(args, name: str, *, days_only: bool = False) -> tuple[DateParam, ...]:
    """The values of a date parameter: one `eq`, or at most one lower and one upper bound."""
    values = args.getlist(name)
    if len(values) > 2:
        raise invalid(name, "give at most a lower and an upper bound")
    found = tuple(date_value(name, value) for value in values)
    if days_only and any(item.moment is not None for item in found):
        raise invalid(name, "takes a date YYYY-MM-DD")
    if any(item.prefix == "eq" and item.moment is not None for item in found):
        raise invalid(name, "eq takes a date; give a dateTime with ge, gt, le or lt")
    equals = [item for item in found if item.prefix == "eq"]
    if equals and len(found) > 1:
        raise invalid(name, "eq cannot be combined with other bounds")
    if sum(item.is_lower for item in found) > 1 or sum(item.is_upper for item in found) > 1:
        raise invalid(name, "give at most one lower (ge, gt) and one upper (le, lt) bound")
    return found


def day_bounds(found: tuple[DateParam, ...]) -> tuple[date | None, date | None]:
    """(first, last) days, both included, of date-only bounds."""
    first = last = None
    for item in found:
        assert item.day is not None
        if item.prefix in ("eq", "ge"):
            first = item.day
        if item.prefix in ("eq", "le"):
            last = item.day
        if item.prefix == "gt":
            first = item.day + timedelta(days=1)
        if item.prefix == "lt":
            last = item.day - timedelta(days=1)
    return first, last


_CURSOR = re.compile(r"([0-9]{8})\.([0-9]{4})")


def cursor(args) -> tuple[date, str] | None:
    """`_cursor`: (date, HH:MM) of the first slot of a page, as `next` links write it."""
    value = single(args, "_cursor")
    if value is None:
        return None
    match = _CURSOR.fullmatch(value)
    found = fhir_ids.read_day_and_time(*match.groups()) if match else None
    if found is None:
        raise invalid("_cursor", "is not a position this server wrote")
    return found


def write_cursor(day: date, start: str) -> str:
    """The `_cursor` of a slot."""
    return f"{day.strftime('%Y%m%d')}.{start.replace(':', '')}"


def appointment_ids(args) -> list[str] | None:
    """`_id`: appointment ids (24 lowercase hex digits), each once, in the order given."""
    values = listed(args, "_id")
    if values is None:
        return None
    for value in values:
        if not is_appointment_id(value):
            raise invalid("_id", f"{value!r} is not an appointment id (24 lowercase hex)")
    return list(dict.fromkeys(values))


def schedule_ids(args) -> list[tuple[str, str | None]] | None:
    """`_id` of a Schedule search: (hospital, doctor or None) of each."""
    return resource_ids(args, "Schedule", fhir_ids.read_schedule)


def resource_ids(args, kind: str, read) -> list | None:
    """`_id` of a search of `kind`: what each id names (`read`: a fhir_ids reader), each
    once, in the order given; 400 for an id that is not one `encode` writes."""
    values = listed(args, "_id")
    if values is None:
        return None
    found = [decoded("_id", reference_id("_id", v, kind), read) for v in values]
    return list(dict.fromkeys(found))


def appointment_statuses(args) -> set[str] | None:
    """`status`: FHIR codes -> our statuses (a code no appointment of ours has matches none)."""
    codes = tokens(args, "status", FHIR_APPOINTMENT_STATUSES)
    if codes is None:
        return None
    return {ours for code in codes for ours in OUR_STATUSES.get(code, ())}


def slot_statuses(args) -> set[str] | None:
    """`status` of a Slot search."""
    return tokens(args, "status", SLOT_STATUSES)


# What this server does: the CapabilityStatement lists exactly this, nothing more.

INTERACTIONS: dict[str, tuple[str, ...]] = {
    "Location": ("read", "search-type"),
    "Practitioner": ("read", "search-type"),
    "Schedule": ("read", "search-type"),
    "Slot": ("read", "search-type"),
    "Appointment": ("read", "search-type", "create"),
}
_DOCUMENTATION = {
    "Location": (
        "A hospital (public). Id: the hospital's id (see ids). A search without _id lists "
        "every hospital, ordered by id, paged by _count (the next page is the Bundle's next "
        "link); Bundle.total is the number of matches."
    ),
    "Practitioner": (
        "A doctor of a hospital (public). Id: <hospital>.<doctor>. A search without _id "
        "lists every doctor of every hospital, ordered by hospital and doctor, paged by "
        "_count (the Bundle's next link); Bundle.total is the number of matches."
    ),
    "Schedule": (
        "One per hospital (its own slots) and one per doctor (public). A search without _id "
        "or actor lists every Schedule (each hospital's own, then its doctors'), paged by "
        "_count (the Bundle's next link); by _id or actor, every match is one page unless "
        "_count is given. Bundle.total is the number of matches."
    ),
    "Slot": (
        "Computed from the hospital's configuration (public; nothing is stored). Only dates "
        "inside the booking window have slots. The remaining places (units: capacity - "
        "booked - held) are in the extension " + REMAINING_EXTENSION + " (valueInteger), "
        "absent while counts are unknown (the searchset then carries a warning "
        "OperationOutcome). Results are ordered by date and start, `_count` a page; the next "
        "page is the Bundle's next link. Slot search needs schedule."
    ),
    "Appointment": (
        "Needs a bearer token (POST /api/auth/login). A patient reads and searches its own "
        "appointments; staff and admins any. Create books through the same gate as "
        "POST /api/appointments (rules, limits, Idempotency-Key): status booked, exactly one "
        "slot (Slot/<id>), one contained Patient with name (text, or given and family) and "
        "one telecom of system phone, referenced by a participant as #<its id>; optional "
        "appointmentType (system " + TYPE_SYSTEM + ") and reasonCode[0].text. Nothing else "
        "is accepted. Statuses: confirmed booked, cancelled cancelled, checked_in checked-in, "
        "in_consultation arrived, completed fulfilled, no_show noshow (ours in the extension "
        + STATUS_EXTENSION
        + "; the serial in "
        + SERIAL_EXTENSION
        + ")."
    ),
}
STATEMENT_DATE = "2026-11-28"


def capability_statement(base_url: str) -> CapabilityStatement:
    """This server's CapabilityStatement: the resources, interactions and search parameters
    that work, each documented."""
    resources = []
    for kind, interactions in INTERACTIONS.items():
        entry: dict = {
            "type": kind,
            "documentation": _DOCUMENTATION[kind],
            "interaction": [{"code": code} for code in interactions],
            "versioning": "no-version",
            "readHistory": False,
            "updateCreate": False,
            "conditionalCreate": False,
            "conditionalRead": "not-supported",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
        }
        if kind in SEARCH_PARAMS:
            entry["searchParam"] = [
                {"name": p.name, "type": p.type, "documentation": p.documentation}
                for p in SEARCH_PARAMS[kind]
            ]
        resources.append(entry)
    return CapabilityStatement(
        status="active",
        date=STATEMENT_DATE,
        publisher="slotbook",
        kind="instance",
        software={"name": "slotbook"},
        implementation={"description": "slotbook appointment booking", "url": base_url},
        fhirVersion=FHIR_VERSION,
        format=[MEDIA_TYPE, "json"],
        rest=[
            {
                "mode": "server",
                "documentation": (
                    "JSON only. Ids: our ids with each _ written .. and parts joined by . "
                    "(an id over 64 characters once written cannot be served). Errors are "
                    "OperationOutcomes whose details.coding (system " + ERROR_SYSTEM + ") is "
                    "the REST API's reason. Unknown search parameters are refused (400). "
                    "_id takes a comma-separated list (at most " + str(MAX_LIST) + ") "
                    "wherever it is accepted; every search takes _summary=count."
                ),
                "security": {
                    "description": (
                        "Bearer tokens of POST /api/auth/login, as the REST API: metadata, "
                        "Location, Practitioner, Schedule and Slot are public; Appointment "
                        "needs a token."
                    )
                },
                "resource": resources,
            }
        ],
    )
