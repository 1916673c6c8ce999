"""The scheduling resources of slotbook, built with fhir.resources' models. Pure: no I/O.

- a hospital is a `Location`, a doctor a `Practitioner` (doctors are keyed per hospital);
- each hospital's own schedule and each doctor's is a `Schedule`;
- a slot of a day, computed from the configuration, is a `Slot`, its remaining places (in
  units: capacity - booked - held, as `/api/availability` shows them) in an extension.

Each builder validates what it builds (the models are pydantic): a builder never answers
something that is not valid FHIR R4. Instants carry the hospital's offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from fhir.resources.location import Location
from fhir.resources.practitioner import Practitioner
from fhir.resources.schedule import Schedule
from fhir.resources.slot import Slot

from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir.datatypes import fhir_instant, reference
from shared.slots import Practitioner as Doctor
from shared.slots import Schedule as Planned

# Our own definitions (URNs: names, not addresses).
REMAINING_EXTENSION = "urn:slotbook:fhir:StructureDefinition:slot-remaining-places"
HOSPITAL_SYSTEM = "urn:slotbook:hospital_id"

# R4's SlotStatus value set; this server answers the first three.
FREE, BUSY, UNAVAILABLE = "free", "busy", "busy-unavailable"
SLOT_STATUSES = (FREE, BUSY, UNAVAILABLE, "busy-tentative", "entered-in-error")


def start_of_day(schedule: Planned, day: date) -> datetime:
    """The instant a date begins in the hospital's zone (its first minute, DST included)."""
    return schedule.starts_at(day, "00:00")


def hospital_name(doc: Mapping) -> str:
    """A hospital's name (its id when it has none)."""
    return str(doc.get("hospital_name") or doc["hospital_id"])


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
