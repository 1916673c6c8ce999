"""FHIR searches that list (Location, Practitioner and Schedule without _id or actor, or by
_id lists) and their pages: plain functions over the booking service's Context, each resource
built as a read builds it (service.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from booking_service.core.context import Context
from booking_service.integrations.fhir import ids as fhir_ids
from booking_service.integrations.fhir import scheduling
from booking_service.integrations.fhir.directory import Listed
from booking_service.integrations.fhir.service import configurations_of, page_of, schedule_resource

# Every hospital, by id (directory.py): what a search without _id lists; called only then.
Hospitals = Callable[[], tuple[Listed, ...]]


@dataclass(frozen=True)
class Found:
    """A page of a Location, Practitioner or Schedule search, and the number of matches."""

    resources: list
    total: int


def _built(keys: list, number: int, count: int, build: Callable) -> Found:
    """The page of `keys` (every match, in order), each built (`build`: None when what it
    names is gone since it was listed)."""
    found = [build(key) for key in page_of(keys, number, count)]
    return Found([item for item in found if item is not None], len(keys))


def search_locations(
    ctx: Context, hospitals: Hospitals, ids: list[str] | None, number: int, count: int
) -> Found:
    """Locations by id (those that exist), or every hospital; a page of them."""
    config_of = configurations_of(ctx)

    def build(hospital_id: str):
        config = config_of(hospital_id)
        return None if config is None else scheduling.location(config.doc)

    if ids is not None:
        found = [item for item in (build(hid) for hid in ids) if item is not None]
        return Found(page_of(found, number, count), len(found))
    keys = [h.hospital_id for h in hospitals() if fhir_ids.location_id(h.hospital_id)]
    return _built(keys, number, count, build)


def search_practitioners(
    ctx: Context,
    hospitals: Hospitals,
    ids: list[tuple[str, str]] | None,
    number: int,
    count: int,
) -> Found:
    """Practitioners by id (those that exist), or every doctor of every hospital (by
    hospital, then doctor); a page of them."""
    config_of = configurations_of(ctx)

    def build(key: tuple[str, str]):
        hospital_id, doctor_id = key
        config = config_of(hospital_id)
        if config is None or doctor_id not in config.practitioners:
            return None
        return scheduling.practitioner(hospital_id, config.practitioners[doctor_id])

    if ids is not None:
        found = [item for item in (build(key) for key in ids) if item is not None]
        return Found(page_of(found, number, count), len(found))
    keys = [
        (h.hospital_id, doctor_id)
        for h in hospitals()
        for doctor_id, _ in h.doctors
        if fhir_ids.practitioner_id(h.hospital_id, doctor_id)
    ]
    return _built(keys, number, count, build)


def list_schedules(
    ctx: Context,
    hospitals: Hospitals,
    active: bool | None,
    number: int,
    count: int,
    now: datetime,
) -> Found:
    """Every Schedule (each hospital's own, then its doctors'), `active` filtering; a page."""
    keys: list[tuple[str, str | None]] = []
    for h in hospitals():
        owners = [(None, True), *h.doctors]
        keys.extend(
            (h.hospital_id, doctor_id)
            for doctor_id, is_active in owners
            if (active is None or is_active == active)
            and fhir_ids.schedule_id(h.hospital_id, doctor_id)
        )
    config_of = configurations_of(ctx)

    def build(key: tuple[str, str | None]):
        hospital_id, doctor_id = key
        config = config_of(hospital_id)
        if config is None or (doctor_id is not None and doctor_id not in config.practitioners):
            return None
        return schedule_resource(config, doctor_id, now)

    return _built(keys, number, count, build)
