"""A create: the FHIR Appointment a client sends -> the REST booking body. Pure: no I/O.

A create is strict: anything that is not an Appointment of the shape README's "FHIR R4"
describes is `400 validation_error`, each problem named by its FHIRPath.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhir.resources.appointment import Appointment
from pydantic import ValidationError as PydanticError

from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir.appointments import TYPE_SYSTEM
from booking_service.integrations.fhir.outcomes import MAX_ISSUES
from shared.errors import ValidationError

# What a client may ask a new Appointment to be: the answer is `booked`, or an error.
BOOKABLE_STATUSES = ("proposed", "pending", "booked")
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
