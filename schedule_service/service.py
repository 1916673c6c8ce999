"""Service layer of the schedule service: plain functions over its repository and clients."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import redis
from pymongo.errors import PyMongoError

from shared import events, versions
from shared.answers import CountedDays
from shared.auth import Principal
from shared.capacity_reads import CapacityReader, Snapshot
from shared.configurations import Configuration, ConfigurationCache
from shared.errors import (
    EditConflict,
    HospitalExists,
    HospitalNotFound,
    InvalidSchedule,
    PractitionerNotFound,
    PreconditionFailed,
    ScheduleConflict,
    ServiceUnavailable,
)
from shared.slots import Day, Schedule

from .conflicts import ConflictChecker, Stranded, diff_documents
from .repository import HospitalRepository
from .validation import validate_hospital, validate_practitioner

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What the service layer works with, built once per process (bootstrap.py)."""

    repo: HospitalRepository
    redis: redis.Redis
    configurations: ConfigurationCache
    reader: CapacityReader
    conflicts: ConflictChecker


@dataclass(frozen=True)
class Asked:
    """What a read asks about: the hospital, its own schedule or a doctor's, and the
    appointment type whose fit each slot reports (None: none)."""

    hospital_id: str
    practitioner_id: str | None = None
    appointment_type: str | None = None


def _read(ctx: Context, asked: Asked, days: list[Day]) -> Snapshot:
    """The published version and the counts of `days`; while Redis is down, the
    configuration comes from MongoDB and the counts are unknown."""
    return ctx.reader.for_answer(
        asked.hospital_id, [day.iso for day in days], asked.practitioner_id
    )


def _planned(
    configuration: Configuration | None, asked: Asked, plan: Callable[[Schedule], list[Day]]
) -> list[Day]:
    if configuration is None or (
        asked.practitioner_id is not None
        and asked.practitioner_id not in configuration.practitioners
    ):
        return []
    return plan(configuration.schedule_for(asked.practitioner_id))


def _days(ctx: Context, asked: Asked, plan: Callable[[Schedule], list[Day]]) -> CountedDays:
    """The days `plan` expands from the current schedule (the hospital's, or the doctor's),
    with their counts: one Redis round trip while this process's copy is current (the days
    are planned from it first)."""
    cached = ctx.configurations.cached(asked.hospital_id)
    days = _planned(cached, asked, plan)
    snapshot = _read(ctx, asked, days)
    current = ctx.configurations.current(asked.hospital_id, snapshot.published)
    schedule = current.schedule_for(asked.practitioner_id)  # 404 for an unknown doctor
    if current is not cached:
        fresh = plan(schedule)
        if [d.iso for d in fresh] != [d.iso for d in days]:
            snapshot = _read(ctx, asked, fresh)
        days = fresh
    return CountedDays(
        [(day, snapshot.counts[day.iso]) for day in days],
        current.units_asked(asked.appointment_type),
    )


def day(ctx: Context, asked: Asked, when: date, now: datetime) -> CountedDays:
    """One date with its counts: the `available` answer."""
    return _days(ctx, asked, lambda schedule: [schedule.day(when, now)])


def calendar(
    ctx: Context, asked: Asked, start: date | None, count: int, now: datetime
) -> CountedDays:
    """`count` dates from `start` (default: today in the hospital's zone) with their counts."""

    def plan(schedule: Schedule) -> list[Day]:
        return schedule.days(start or schedule.today(now), count, now)

    return _days(ctx, asked, plan)


def practitioners(ctx: Context, hospital_id: str) -> list[dict]:
    """A hospital's doctors, by id."""
    current = ctx.configurations.current(hospital_id, _read(ctx, Asked(hospital_id), []).published)
    return [current.practitioners[pid].summary() for pid in sorted(current.practitioners)]


def get_hospital(ctx: Context, hospital_id: str) -> dict:
    """The configuration document as MongoDB holds it now; 404 hospital_not_found."""
    doc = ctx.repo.get(hospital_id)
    if doc is None:
        raise HospitalNotFound(f"No hospital with id {hospital_id!r}")
    return doc


def current_hospital(ctx: Context, hospital_id: str) -> dict:
    """The current configuration, from this process's cache while the published version
    matches; a version key Redis lost is restored, so the booking service's revalidation
    through this endpoint brings it back."""
    return ctx.configurations.current(hospital_id, _read(ctx, Asked(hospital_id), []).published).doc


def _validated(body: dict, hospital_id: str | None) -> dict:
    doc, errors = validate_hospital(body, hospital_id)
    if errors:
        raise InvalidSchedule(f"The schedule has {len(errors)} problem(s)", errors=errors)
    return doc


def _mark_editing(ctx: Context, hospital_id: str) -> None:
    try:
        versions.mark_editing(ctx.redis, hospital_id)
    except redis.RedisError as exc:
        # Without the sentinel, other processes could keep using their cached copy.
        raise ServiceUnavailable("Schedules cannot be changed while Redis is unavailable") from exc


def _publish(ctx: Context, hospital_id: str, version: int) -> None:
    try:
        versions.publish(ctx.redis, hospital_id, version)
    except redis.RedisError:
        pass  # the sentinel expires and readers restore the version from MongoDB
    ctx.configurations.forget(hospital_id)


def _published_change(ctx: Context, hospital_id: str, version: int) -> None:
    """A new version written: published to the readers, and announced to the live streams
    (best effort: shared.events)."""
    _publish(ctx, hospital_id, version)
    events.publish_edit(ctx.redis, hospital_id)


def create_hospital(ctx: Context, body: dict, who: Principal, now: datetime) -> dict:
    """Create a hospital at version 1 (admin). No reader can hold a copy of a hospital that
    does not exist yet, so no fence is needed; the version is published once it exists."""
    doc = _validated(body, None)
    created = ctx.repo.insert(doc, now)
    if created is None:
        raise HospitalExists(f"A hospital with id {doc['hospital_id']!r} exists")
    ctx.repo.record_change(
        {
            "hospital_id": doc["hospital_id"],
            "version": 1,
            "changed_by": who.email or who.user_id,
            "changed_by_id": who.user_id,
            "changed_at": now,
            "action": "create",
            "changes": diff_documents({}, doc),
        }
    )
    _published_change(ctx, doc["hospital_id"], 1)
    return created


def _one_edit_at_a_time(func):
    """Run an edit of `hospital_id` under the hospital's edit lock (shared.versions)."""

    @functools.wraps(func)
    def locked(ctx: Context, hospital_id: str, *args, **kwargs):
        try:
            with versions.edit_lock(ctx.redis, hospital_id):
                return func(ctx, hospital_id, *args, **kwargs)
        except versions.EditInProgress as exc:
            raise EditConflict("Another edit of this hospital is in progress; retry") from exc
        except redis.RedisError as exc:
            raise ServiceUnavailable(
                "Schedules cannot be changed while Redis is unavailable"
            ) from exc

    return locked


def _current_matching(ctx: Context, hospital_id: str, if_match: str | None) -> dict:
    """The stored configuration, when `If-Match` (if sent) names its ETag; else 412."""
    current = get_hospital(ctx, hospital_id)
    etag = f'"{hospital_id}-v{current["version"]}"'
    if (
        if_match
        and if_match.strip() != "*"
        and etag not in [t.strip() for t in if_match.split(",")]
    ):
        raise PreconditionFailed(
            f"The configuration changed (now version {current['version']}); reload and retry",
            current_version=current["version"],
        )
    return current


@dataclass(frozen=True)
class EditRequest:
    """Who edits, when, and how: what every admin edit carries besides its subject."""

    who: Principal
    now: datetime
    if_match: str | None  # the ETag the admin last read, if sent
    force: bool  # apply even if it strands active appointments
    authorization: str  # the admin's own bearer token, for the conflict check


@_one_edit_at_a_time
def replace_hospital(
    ctx: Context, hospital_id: str, body: dict, edit: EditRequest
) -> tuple[dict, Stranded]:
    """Replace a configuration; returns it and the appointments it strands (when forced)."""
    current = _current_matching(ctx, hospital_id, edit.if_match)
    return _apply(ctx, current, _validated(body, hospital_id), edit, "replace")


def _editable(current: dict) -> dict:
    """A stored configuration as an admin would send it (without version and timestamp)."""
    return {k: v for k, v in current.items() if k not in ("version", "updated_at")}


@_one_edit_at_a_time
def put_practitioner(
    ctx: Context, hospital_id: str, practitioner_id: str, body: dict, edit: EditRequest
) -> tuple[dict, Stranded]:
    """Create or replace one doctor of a hospital: an edit of the hospital's configuration
    (its version, ETag, validation, conflict check and audit)."""
    current = _current_matching(ctx, hospital_id, edit.if_match)
    practitioner, errors = validate_practitioner(body, practitioner_id)
    if errors:
        raise InvalidSchedule(f"The practitioner has {len(errors)} problem(s)", errors=errors)
    doc = _editable(current)
    doc["practitioners"] = {**(current.get("practitioners") or {}), practitioner_id: practitioner}
    return _apply(ctx, current, _validated(doc, hospital_id), edit, "practitioner_put")


@_one_edit_at_a_time
def delete_practitioner(
    ctx: Context, hospital_id: str, practitioner_id: str, edit: EditRequest
) -> tuple[dict, Stranded]:
    """Remove one doctor of a hospital (refused while it strands active appointments,
    unless forced)."""
    current = _current_matching(ctx, hospital_id, edit.if_match)
    remaining = dict(current.get("practitioners") or {})
    if remaining.pop(practitioner_id, None) is None:
        raise PractitionerNotFound(f"No practitioner {practitioner_id!r} at {hospital_id}")
    doc = _editable(current)
    doc.pop("practitioners", None)
    if remaining:
        doc["practitioners"] = remaining
    return _apply(ctx, current, _validated(doc, hospital_id), edit, "practitioner_delete")


def _apply(
    ctx: Context, current: dict, doc: dict, edit: EditRequest, action: str
) -> tuple[dict, Stranded]:
    """Write a validated configuration in place of `current`; returns it and the
    appointments it strands (when forced).

    Order (see shared.versions and booking_service.core.booking._check_still_current): the
    hospital's edit lock (taken by the caller), then the fence (version key `editing`), then
    the look for active appointments in removed slots, then the write, then the new version.
    A booking checked against the old configuration is either seen by the look (the edit is
    refused) or reads the fence after writing its record and is refused itself.
    """
    hospital_id = current["hospital_id"]
    _mark_editing(ctx, hospital_id)
    try:
        stranded = ctx.conflicts.stranded(current, doc, edit.now, edit.authorization)
        if stranded and not edit.force:
            held = {"holds": stranded.holds} if stranded.holds else {}
            raise ScheduleConflict(stranded.message(), appointments=stranded.appointments, **held)
    except BaseException:
        _publish(ctx, hospital_id, current["version"])  # lift the fence: nothing changed
        raise
    try:
        updated = ctx.repo.replace(doc, current["version"], edit.now)
    except PyMongoError:
        # Written or not, MongoDB knows: publish what it holds, or leave the fence to expire
        # (meanwhile every reader goes to MongoDB).
        with contextlib.suppress(PyMongoError):
            stored = ctx.repo.get(hospital_id)
            if stored is not None:
                _publish(ctx, hospital_id, stored["version"])
        raise
    if updated is None:
        _publish(ctx, hospital_id, current["version"])
        raise PreconditionFailed("The configuration changed meanwhile; reload and retry")
    ctx.repo.record_change(
        {
            "hospital_id": hospital_id,
            "version": updated["version"],
            "changed_by": edit.who.email or edit.who.user_id,
            "changed_by_id": edit.who.user_id,
            "changed_at": edit.now,
            "action": action,
            "forced": bool(stranded),
            "changes": diff_documents(current, doc),
        }
    )
    _published_change(ctx, hospital_id, updated["version"])
    return updated, stranded
