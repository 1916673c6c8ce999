"""An appointment as a FHIR R4 `Appointment`, built with fhir.resources' model: its patient
a contained `Patient` (name and phone), its hospital and doctor participants, its `Slot`.
Pure: no I/O.

The builder validates what it builds (the model is pydantic): it never answers something
that is not valid FHIR R4. Instants carry the hospital's offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from fhir.resources.appointment import Appointment

from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir.datatypes import fhir_instant, reference

# Our own definitions: extensions, identifier and code systems (URNs: names, not addresses).
SERIAL_EXTENSION = "urn:slotbook:fhir:StructureDefinition:appointment-serial"
STATUS_EXTENSION = "urn:slotbook:fhir:StructureDefinition:appointment-status"
APPOINTMENT_SYSTEM = "urn:slotbook:appointment_id"
TYPE_SYSTEM = "urn:slotbook:appointment_type"
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


@dataclass(frozen=True)
class Place:
    """Where and when an appointment is, for its Appointment: its instants, the zone they are
    written in, the hospital's name."""

    starts: datetime
    ends: datetime
    zone: tzinfo
    hospital_name: str | None


def appointment(answer: Mapping, place: Place) -> Appointment:
    """An appointment (as the REST API shows it, shapes.public) as an Appointment: its
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
