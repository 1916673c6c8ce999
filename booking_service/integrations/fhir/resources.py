"""FHIR R4 (4.0.1) resources of slotbook, built with fhir.resources' models. Pure: no I/O.

What maps to what (README, "FHIR R4"):
- a hospital is a `Location`, a doctor a `Practitioner` (doctors are keyed per hospital);
- each hospital's own schedule and each doctor's is a `Schedule`;
- a slot of a day, computed from the configuration, is a `Slot`, its remaining places (in
  units: capacity - booked - held, as `/api/availability` shows them) in an extension;
- an appointment is an `Appointment`, its patient a contained `Patient` (name and phone);
- every error is an `OperationOutcome` whose `details` carry our stable reason.

Each builder validates what it builds (the models are pydantic): a builder never answers
something that is not valid FHIR R4. Instants carry the hospital's offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from http import HTTPStatus

from fhir.resources.appointment import Appointment
from fhir.resources.bundle import Bundle
from fhir.resources.location import Location
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.practitioner import Practitioner
from fhir.resources.schedule import Schedule
from fhir.resources.slot import Slot
from pydantic import ValidationError as PydanticError

from booking_service.integrations.fhir import ids as fhir_ids
from shared.errors import ValidationError
from shared.slots import Practitioner as Doctor
from shared.slots import Schedule as Planned

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"
# Our own definitions: extensions, identifier and code systems (URNs: names, not addresses).
REMAINING_EXTENSION = "urn:slotbook:fhir:StructureDefinition:slot-remaining-places"
SERIAL_EXTENSION = "urn:slotbook:fhir:StructureDefinition:appointment-serial"
STATUS_EXTENSION = "urn:slotbook:fhir:StructureDefinition:appointment-status"
HOSPITAL_SYSTEM = "urn:slotbook:hospital_id"
APPOINTMENT_SYSTEM = "urn:slotbook:appointment_id"
TYPE_SYSTEM = "urn:slotbook:appointment_type"
ERROR_SYSTEM = "urn:slotbook:error"
# The contained Patient's local id in the appointments this server answers.
PATIENT_REF = "patient"

# Our appointment statuses -> FHIR's (AppointmentStatus). `in_consultation` has no FHIR
# status of its own: the patient is there and being seen, `arrived`; the exact status is in
# STATUS_EXTENSION. pending / rejected / abandoned appointments are never shown.
APPOINTMENT_STATUS = {
    "confirmed": "booked",
    "cancelled": "cancelled",
    "checked_in": "checked-in",
    "in_consultation": "arrived",
    "completed": "fulfilled",
    "no_show": "noshow",
}
OUR_STATUSES: dict[str, tuple[str, ...]] = {}
for _ours, _theirs in APPOINTMENT_STATUS.items():
    OUR_STATUSES[_theirs] = (*OUR_STATUSES.get(_theirs, ()), _ours)
# Every code of R4's AppointmentStatus value set (a search may name any of them).
FHIR_APPOINTMENT_STATUSES = (
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
)
# What a client may ask a new Appointment to be: the answer is `booked`, or an error.
BOOKABLE_STATUSES = ("proposed", "pending", "booked")
# R4's SlotStatus value set; this server answers the first three.
FREE, BUSY, UNAVAILABLE = "free", "busy", "busy-unavailable"
SLOT_STATUSES = (FREE, BUSY, UNAVAILABLE, "busy-tentative", "entered-in-error")

# An error's HTTP status -> the OperationOutcome issue type (R4 IssueType); some reasons
# have a closer one.
_ISSUE_BY_REASON = {
    "malformed_json": "structure",
    "duplicate_booking": "duplicate",
    "rate_limited": "throttled",
    "too_many_holds": "throttled",
    "gateway_timeout": "timeout",
}
_ISSUE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    414: "too-costly",
    415: "not-supported",
    422: "business-rule",
    428: "required",
    429: "throttled",
    502: "transient",
    503: "transient",
    504: "timeout",
}
# The fields of the REST booking body, as the FHIR Appointment of a create names them.
_FIELD_PATHS = {
    "hospital_id": "Appointment.slot[0].reference",
    "practitioner_id": "Appointment.slot[0].reference",
    "date": "Appointment.slot[0].reference",
    "slot": "Appointment.slot[0].reference",
    "patient": "Appointment.contained[0]",
    "patient.name": "Appointment.contained[0].name[0]",
    "patient.phone": "Appointment.contained[0].telecom",
    "reason": "Appointment.reasonCode[0].text",
    "appointment_type": "Appointment.appointmentType.coding[0].code",
}
MAX_ISSUES = 20


# Times.


def fhir_instant(moment: datetime, zone: tzinfo) -> str:
    """An instant as FHIR writes one, with the offset of `zone` (UTC's when that offset is not
    in whole minutes, which FHIR cannot write)."""
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    if offset.total_seconds() % 60:
        local = moment.astimezone(UTC)
    return local.isoformat(timespec="seconds")


def start_of_day(schedule: Planned, day: date) -> datetime:
    """The instant a date begins in the hospital's zone (its first minute, DST included)."""
    return schedule.starts_at(day, "00:00")


# References.


def reference(kind: str, fhir_id: str | None, display: str | None = None) -> dict:
    """A Reference to one of our resources; only `display` when its id cannot be written."""
    ref: dict = {} if fhir_id is None else {"reference": f"{kind}/{fhir_id}"}
    if display:
        ref["display"] = display
    return ref


def hospital_name(doc: Mapping) -> str:
    """A hospital's name (its id when it has none)."""
    return str(doc.get("hospital_name") or doc["hospital_id"])


# Resources.


def location(hospital: Mapping) -> Location:
    """A hospital as a Location."""
    hid = hospital["hospital_id"]
    return Location(
        id=fhir_ids.location_id(hid),
        identifier=[{"system": HOSPITAL_SYSTEM, "value": hid}],
        status="active",
        mode="instance",
        name=hospital_name(hospital),
    )


def practitioner(hospital_id: str, doctor: Doctor) -> Practitioner:
    """A doctor of a hospital as a Practitioner."""
    return Practitioner(
        id=fhir_ids.practitioner_id(hospital_id, doctor.practitioner_id),
        identifier=[
            {
                "system": f"urn:slotbook:hospital:{hospital_id}:practitioner_id",
                "value": doctor.practitioner_id,
            }
        ],
        active=doctor.active,
        name=[{"text": doctor.name}],
    )


def schedule(hospital: Mapping, planned: Planned, doctor: Doctor | None, now: datetime) -> Schedule:
    """A hospital's own schedule, or one doctor's, with its booking window as the planning
    horizon (today to the last bookable date, in the hospital's zone)."""
    hid, name = hospital["hospital_id"], hospital_name(hospital)
    today = planned.today(now)
    last = today + timedelta(days=planned.advance_booking_days)
    actors = [reference("Location", fhir_ids.location_id(hid), name)]
    fields: dict = {}
    if doctor is None:
        comment = f"{name}: the hospital's own slots"
        active = True
    else:
        pid = fhir_ids.practitioner_id(hid, doctor.practitioner_id)
        actors.insert(0, reference("Practitioner", pid, doctor.name))
        comment = f"{doctor.name} at {name}"
        active = doctor.active
        if doctor.specialty:
            fields["specialty"] = [{"text": doctor.specialty}]
    return Schedule(
        id=fhir_ids.schedule_id(hid, None if doctor is None else doctor.practitioner_id),
        active=active,
        actor=actors,
        planningHorizon={
            "start": fhir_instant(start_of_day(planned, today), planned.tz),
            "end": fhir_instant(start_of_day(planned, last + timedelta(days=1)), planned.tz),
        },
        comment=comment,
        **fields,
    )


@dataclass(frozen=True)
class SlotView:
    """A slot of a schedule on a date, as a Slot shows it."""

    hospital_id: str
    practitioner_id: str | None
    day: date
    start: str  # HH:MM, the wall time that names it
    starts: datetime
    ends: datetime
    zone: tzinfo
    status: str  # FREE, BUSY or UNAVAILABLE
    remaining: int | None  # None: counts unknown right now

    @property
    def fhir_id(self) -> str | None:
        """Its Slot id."""
        return fhir_ids.slot_id(self.hospital_id, self.practitioner_id, self.day, self.start)


def slot_status(*, started: bool, bookable_by_anyone: bool, remaining: int | None) -> str:
    """A slot's FHIR status: `busy-unavailable` once started or when its doctor takes no
    appointments, `busy` when no place is left, else `free` (also while counts are unknown:
    the gate decides at booking time)."""
    if started or not bookable_by_anyone:
        return UNAVAILABLE
    if remaining is not None and remaining <= 0:
        return BUSY
    return FREE


def slot(view: SlotView) -> Slot:
    """A Slot; its remaining places (units) in REMAINING_EXTENSION when counts are known."""
    fields: dict = {}
    if view.remaining is not None:
        fields["extension"] = [{"url": REMAINING_EXTENSION, "valueInteger": view.remaining}]
    schedule_ref = fhir_ids.schedule_id(view.hospital_id, view.practitioner_id)
    return Slot(
        id=view.fhir_id,
        schedule=reference("Schedule", schedule_ref),
        status=view.status,
        start=fhir_instant(view.starts, view.zone),
        end=fhir_instant(view.ends, view.zone),
        **fields,
    )


@dataclass(frozen=True)
class Place:
    """Where and when an appointment is, for its Appointment: its instants, the zone they are
    written in, the hospital's name."""

    starts: datetime
    ends: datetime
    zone: tzinfo
    hospital_name: str | None


def appointment(answer: Mapping, place: Place) -> Appointment:
    """An appointment (as the REST API shows it, repository.public) as an Appointment: its
    patient a contained Patient, the hospital and doctor participants, its Slot."""
    hid = answer["hospital_id"]
    doctor = answer.get("practitioner") or None
    doctor_id = doctor["practitioner_id"] if doctor else None
    patient = answer["patient"]
    participants = [
        {
            "actor": {"reference": f"#{PATIENT_REF}", "display": patient["name"]},
            "required": "required",
            "status": "accepted",
        }
    ]
    if doctor:
        pid = fhir_ids.practitioner_id(hid, doctor_id)
        participants.append(
            {"actor": reference("Practitioner", pid, doctor.get("name")), "status": "accepted"}
        )
    participants.append(
        {
            "actor": reference("Location", fhir_ids.location_id(hid), place.hospital_name or hid),
            "status": "accepted",
        }
    )
    extensions = [{"url": STATUS_EXTENSION, "valueCode": answer["status"]}]
    if answer.get("serial"):
        extensions.append({"url": SERIAL_EXTENSION, "valuePositiveInt": answer["serial"]})
    fields: dict = {}
    day = date.fromisoformat(answer["date"])
    slot_ref = fhir_ids.slot_id(hid, doctor_id, day, answer["slot"]["start"])
    if slot_ref is not None:
        fields["slot"] = [{"reference": f"Slot/{slot_ref}"}]
    if answer.get("appointment_type"):
        fields["appointmentType"] = {
            "coding": [{"system": TYPE_SYSTEM, "code": answer["appointment_type"]}]
        }
    if answer.get("reason"):
        fields["reasonCode"] = [{"text": answer["reason"]}]
    return Appointment(
        id=answer["appointment_id"],
        extension=extensions,
        identifier=[{"system": APPOINTMENT_SYSTEM, "value": answer["appointment_id"]}],
        status=APPOINTMENT_STATUS[answer["status"]],
        start=fhir_instant(place.starts, place.zone),
        end=fhir_instant(place.ends, place.zone),
        created=answer["created_at"],
        contained=[
            {
                "resourceType": "Patient",
                "id": PATIENT_REF,
                "name": [{"text": patient["name"]}],
                "telecom": [{"system": "phone", "value": patient["phone"]}],
            }
        ],
        participant=participants,
        **fields,
    )


def searchset(
    entries: Iterable[tuple[str, object]],
    self_url: str,
    next_url: str | None = None,
    total: int | None = None,
    warning: str | None = None,
) -> Bundle:
    """A searchset Bundle: each (fullUrl, resource) a match, `next` when there is more, and an
    OperationOutcome (search mode `outcome`) when the answer is incomplete."""
    items: list[dict] = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in entries
    ]
    if warning:
        outcome = OperationOutcome(
            issue=[{"severity": "warning", "code": "incomplete", "diagnostics": warning}]
        )
        items.append({"resource": outcome, "search": {"mode": "outcome"}})
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    fields: dict = {"entry": items} if items else {}
    if total is not None:
        fields["total"] = total
    return Bundle(type="searchset", link=links, **fields)


# Errors.


def _flatten(errors: object, path: str = "") -> list[tuple[str, str]]:
    """(field, message) pairs of an error document's `errors` (nested as marshmallow nests)."""
    if isinstance(errors, Mapping):
        pairs = []
        for key, value in errors.items():
            name = str(key) if not path else f"{path}.{key}"
            pairs.extend(_flatten(value, name))
        return pairs
    if isinstance(errors, list | tuple):
        pairs = []
        for value in errors:
            pairs.extend(_flatten(value, path) if isinstance(value, Mapping) else [(path, value)])
        return pairs
    return [] if errors is None else [(path, str(errors))]


def _expression(field: str) -> str | None:
    """The FHIRPath of a field an error names: our own checks name FHIRPaths; the REST body's
    fields are mapped to where a FHIR create gives them."""
    if field[:1].isupper():
        return field
    return _FIELD_PATHS.get(field)


def operation_outcome(
    status: int, reason: str, message: str, errors: object = None
) -> OperationOutcome:
    """An error as an OperationOutcome: one issue with our reason (`details.coding`, system
    ERROR_SYSTEM) and message, then one per invalid field (its FHIRPath in `expression`, or
    its name in `diagnostics` for a search parameter)."""
    if status >= 500:
        code = "exception" if status == 500 else _ISSUE_BY_STATUS.get(status, "transient")
    else:
        code = _ISSUE_BY_STATUS.get(status, "processing")
    code = _ISSUE_BY_REASON.get(reason, code)
    text = message or HTTPStatus(status).phrase
    issues: list[dict] = [
        {
            "severity": "error",
            "code": code,
            "details": {"coding": [{"system": ERROR_SYSTEM, "code": reason}], "text": text},
            "diagnostics": text,
        }
    ]
    for field, why in _flatten(errors)[: MAX_ISSUES - 1]:
        issue: dict = {"severity": "error", "code": "invalid" if status < 500 else code}
        expression = _expression(field) if field else None
        if expression is not None:
            issue["expression"] = [expression]
            issue["diagnostics"] = str(why)
        else:
            issue["diagnostics"] = f"{field}: {why}" if field else str(why)
        issues.append(issue)
    return OperationOutcome(issue=issues)


def outcome_of_error_body(status: int, body: object) -> OperationOutcome:
    """The OperationOutcome of an answer in the contract's error shape (code, error, message,
    errors), whatever layer made it."""
    doc = body if isinstance(body, Mapping) else {}
    reason = doc.get("error") if isinstance(doc.get("error"), str) else None
    message = doc.get("message") if isinstance(doc.get("message"), str) else None
    return operation_outcome(
        status,
        reason or "error",
        message or HTTPStatus(status).phrase,
        doc.get("errors"),
    )


# A create: the FHIR Appointment a client sends -> the REST booking body.

# The elements a create may carry (`id`, `meta` and `text` are ignored, as FHIR's create
# says of `id` and `meta`); anything else is refused rather than silently dropped.
_CREATE_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "status",
        "slot",
        "participant",
        "contained",
        "start",
        "end",
        "appointmentType",
        "reasonCode",
    }
)
_PATIENT_ELEMENTS = frozenset({"resourceType", "id", "name", "telecom"})
_NAME_ELEMENTS = frozenset({"text", "given", "family", "use"})
_TELECOM_ELEMENTS = frozenset({"system", "value", "use"})
_PARTICIPANT_ELEMENTS = frozenset({"actor", "status", "required", "type"})
_REFERENCE_ELEMENTS = frozenset({"reference", "display"})


@dataclass(frozen=True)
class BookingRequest:
    """What a FHIR create asks for, in our terms (each id canonical; the rest checked by the
    REST API's own schema, AppointmentCreateSchema, before it is booked)."""

    hospital_id: str
    practitioner_id: str | None
    day: date
    slot: str
    name: str
    phone: str
    appointment_type: str | None = None
    reason: str | None = None
    start: str | None = None
    end: str | None = None

    def body(self) -> dict:
        """The body `booking.book` takes (as POST /api/appointments receives it)."""
        body: dict = {
            "hospital_id": self.hospital_id,
            "date": self.day.isoformat(),
            "slot": self.slot,
            "patient": {"name": self.name, "phone": self.phone},
        }
        if self.practitioner_id is not None:
            body["practitioner_id"] = self.practitioner_id
        if self.appointment_type is not None:
            body["appointment_type"] = self.appointment_type
        if self.reason is not None:
            body["reason"] = self.reason
        return body


class _Problems:
    """Errors found in a create, by FHIRPath."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, why: str) -> None:
        self.errors.setdefault(path, []).append(why)

    def raise_any(self) -> None:
        if self.errors:
            raise ValidationError("The Appointment cannot be booked as sent", errors=self.errors)


def _only(value: object, allowed: frozenset, path: str, problems: _Problems) -> bool:
    """True when `value` is an object with no element but `allowed`."""
    if not isinstance(value, dict):
        problems.add(path, "must be an object")
        return False
    extra = sorted(str(k) for k in value if k not in allowed)
    for key in extra[:5]:
        problems.add(f"{path}.{key}", "is not supported by this server")
    return not extra


def _one(value: object, path: str, problems: _Problems) -> object | None:
    """The single item of a list of exactly one."""
    if not isinstance(value, list) or len(value) != 1:
        problems.add(path, "must be a list of exactly one")
        return None
    return value[0]


def _fhir_path(loc: tuple) -> str:
    path = "Appointment"
    for part in loc:
        if part == "__root__":
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _fhir_structure(raw: dict, problems: _Problems) -> None:
    """R4's own rules for an Appointment (types, cardinalities, required elements)."""
    try:
        Appointment.parse_obj(raw)
    except PydanticError as exc:
        for error in exc.errors()[:MAX_ISSUES]:
            problems.add(_fhir_path(tuple(error.get("loc", ()))), str(error.get("msg")))
    except (TypeError, ValueError, RecursionError, AttributeError, LookupError):
        # (fhir.resources raises LookupError for a contained resource of an empty type)
        problems.add("Appointment", "is not a valid FHIR R4 Appointment")


def _patient(raw: dict, problems: _Problems) -> tuple[str | None, str | None, str | None]:
    """(local id, name, phone) of the contained Patient."""
    item = _one(raw.get("contained"), "Appointment.contained", problems)
    path = "Appointment.contained[0]"
    if item is None or not _only(item, _PATIENT_ELEMENTS, path, problems):
        return None, None, None
    if item.get("resourceType") != "Patient":
        problems.add(f"{path}.resourceType", "must be Patient")
    local = item.get("id")
    if not isinstance(local, str):
        problems.add(f"{path}.id", "is required: the participant refers to it as #<id>")
        local = None
    name = None
    human = _one(item.get("name"), f"{path}.name", problems)
    if human is not None and _only(human, _NAME_ELEMENTS, f"{path}.name[0]", problems):
        text, given, family = human.get("text"), human.get("given", []), human.get("family")
        if text is not None:
            name = text if isinstance(text, str) else None
        elif isinstance(given, list) and all(isinstance(g, str) for g in given):
            words = [*given, family] if isinstance(family, str) else list(given)
            name = " ".join(w for w in words if w) or None
        if name is None:
            problems.add(f"{path}.name[0]", "must give text, or given and family names")
    phone = None
    telecom = item.get("telecom")
    if not isinstance(telecom, list) or not telecom:
        problems.add(f"{path}.telecom", "must list the patient's phone")
    else:
        for index, point in enumerate(telecom):
            here = f"{path}.telecom[{index}]"
            if not _only(point, _TELECOM_ELEMENTS, here, problems):
                continue
            if point.get("system") != "phone":
                problems.add(f"{here}.system", "only a phone is taken")
            elif phone is not None:
                problems.add(here, "give one phone")
            elif not isinstance(point.get("value"), str):
                problems.add(f"{here}.value", "must be the phone number")
            else:
                phone = point["value"]
        if phone is None:
            problems.add(f"{path}.telecom", "must list the patient's phone")
    return local, name, phone


def _slot(raw: dict, problems: _Problems) -> tuple[str, str | None, date, str] | None:
    """(hospital, doctor, date, HH:MM) of the Slot referenced."""
    item = _one(raw.get("slot"), "Appointment.slot", problems)
    path = "Appointment.slot[0]"
    if item is None or not _only(item, _REFERENCE_ELEMENTS, path, problems):
        return None
    ref = item.get("reference")
    found = None
    if isinstance(ref, str) and ref.startswith("Slot/"):
        found = fhir_ids.read_slot(ref.removeprefix("Slot/"))
    if found is None:
        problems.add(f"{path}.reference", "must be Slot/<id> of a slot this server lists")
    return found


def _participants(
    raw: dict,
    patient_ref: str | None,
    place: tuple[str, str | None, date, str] | None,
    problems: _Problems,
) -> None:
    """Exactly one participant is the contained Patient; any other is the slot's own hospital
    (Location) or doctor (Practitioner)."""
    listed = raw.get("participant")
    if not isinstance(listed, list) or not listed:
        problems.add("Appointment.participant", "must list the patient")
        return
    patients = 0
    for index, item in enumerate(listed):
        path = f"Appointment.participant[{index}]"
        if not _only(item, _PARTICIPANT_ELEMENTS, path, problems):
            continue
        actor = item.get("actor")
        if not _only(actor, _REFERENCE_ELEMENTS, f"{path}.actor", problems):
            continue
        ref = actor.get("reference")
        if not isinstance(ref, str):
            problems.add(f"{path}.actor.reference", "is required")
        elif patient_ref is not None and ref == f"#{patient_ref}":
            patients += 1
        elif not _is_the_slots(ref, place):
            problems.add(
                f"{path}.actor.reference",
                "must be the contained Patient (#id), or the slot's own Location or Practitioner",
            )
    if patients != 1:
        problems.add("Appointment.participant", "exactly one must refer to the contained Patient")


def _is_the_slots(ref: str, place: tuple[str, str | None, date, str] | None) -> bool:
    if place is None:
        return True  # the slot is refused already; say nothing more about its actors
    hospital_id, doctor_id = place[0], place[1]
    kind, _, fhir_id = ref.partition("/")
    if kind == "Location":
        return fhir_ids.read_location(fhir_id) == hospital_id
    if kind == "Practitioner":
        return doctor_id is not None and fhir_ids.read_practitioner(fhir_id) == (
            hospital_id,
            doctor_id,
        )
    return False


def _appointment_type(raw: dict, problems: _Problems) -> str | None:
    if "appointmentType" not in raw:
        return None
    path = "Appointment.appointmentType"
    concept = raw["appointmentType"]
    if not _only(concept, frozenset({"coding", "text"}), path, problems):
        return None
    coding = _one(concept.get("coding"), f"{path}.coding", problems)
    if coding is None:
        return None
    if not _only(coding, frozenset({"system", "code", "display"}), f"{path}.coding[0]", problems):
        return None
    if coding.get("system", TYPE_SYSTEM) != TYPE_SYSTEM:
        problems.add(f"{path}.coding[0].system", f"must be {TYPE_SYSTEM}")
    code = coding.get("code")
    if not isinstance(code, str):
        problems.add(f"{path}.coding[0].code", "must be a code of the hospital's types")
        return None
    return code


def _reason(raw: dict, problems: _Problems) -> str | None:
    if "reasonCode" not in raw:
        return None
    concept = _one(raw["reasonCode"], "Appointment.reasonCode", problems)
    if concept is None or not _only(
        concept, frozenset({"text"}), "Appointment.reasonCode[0]", problems
    ):
        return None
    text = concept.get("text")
    if not isinstance(text, str):
        problems.add("Appointment.reasonCode[0].text", "must be text")
        return None
    return text


def booking_request(raw: object) -> BookingRequest:
    """The booking a FHIR create asks for; 400 validation_error (by FHIRPath) for anything
    that is not an Appointment of the shape README's "FHIR R4" describes."""
    problems = _Problems()
    if not isinstance(raw, dict) or raw.get("resourceType") != "Appointment":
        problems.add("Appointment", "the body must be a FHIR Appointment resource")
        problems.raise_any()
    assert isinstance(raw, dict)
    _only(raw, _CREATE_ELEMENTS, "Appointment", problems)
    problems.raise_any()
    _fhir_structure(raw, problems)
    problems.raise_any()
    if raw.get("status") not in BOOKABLE_STATUSES:
        problems.add("Appointment.status", "must be booked (or proposed, pending)")
    place = _slot(raw, problems)
    patient_ref, name, phone = _patient(raw, problems)
    _participants(raw, patient_ref, place, problems)
    appointment_type = _appointment_type(raw, problems)
    reason = _reason(raw, problems)
    times = {}
    for element in ("start", "end"):
        value = raw.get(element)
        if value is not None and not isinstance(value, str):
            problems.add(f"Appointment.{element}", "must be an instant")
        times[element] = value
    problems.raise_any()
    assert place is not None and name is not None and phone is not None
    hospital_id, doctor_id, day, start = place
    return BookingRequest(
        hospital_id=hospital_id,
        practitioner_id=doctor_id,
        day=day,
        slot=start,
        name=name,
        phone=phone,
        appointment_type=appointment_type,
        reason=reason,
        start=times["start"],
        end=times["end"],
    )


def parse_instant(text: str) -> datetime | None:
    """A FHIR instant (with its offset) as an aware datetime; None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None
