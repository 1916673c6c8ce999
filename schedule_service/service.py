"""Service layer of the schedule service: plain functions over its repository and clients."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import redis
from pymongo.errors import PyMongoError

from shared import versions
from shared.auth import Principal
from shared.capacity_reads import CapacityReader, Snapshot
from shared.configurations import ConfigurationCache
from shared.errors import (
    EditConflict,
    HospitalExists,
    HospitalNotFound,
    InvalidSchedule,
    PreconditionFailed,
    ScheduleConflict,
    ServiceUnavailable,
)
from shared.slots import Day, Schedule

from .conflicts import ConflictChecker, diff_documents
from .repository import HospitalRepository
from .validation import validate_hospital

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What the service layer works with, built once per process (bootstrap.py)."""

    repo: HospitalRepository
    redis: redis.Redis
    configurations: ConfigurationCache
    reader: CapacityReader
    conflicts: ConflictChecker


def _read(ctx: Context, hospital_id: str, days: list[Day]) -> Snapshot:
    """The published version and the counts of `days`; while Redis is down, the
    configuration comes from MongoDB and the counts are unknown."""
    return ctx.reader.for_answer(hospital_id, [day.iso for day in days])


def _days(
    ctx: Context, hospital_id: str, plan: Callable[[Schedule], list[Day]]
) -> list[tuple[Day, Mapping[str, int] | None]]:
    """The days `plan` expands from the current schedule, with their counts: one Redis round
    trip while this process's copy is current (the days are planned from it first)."""
    cached = ctx.configurations.cached(hospital_id)
    days = plan(cached.schedule) if cached is not None else []
    snapshot = _read(ctx, hospital_id, days)
    current = ctx.configurations.current(hospital_id, snapshot.published)
    if current is not cached:
        fresh = plan(current.schedule)
        if [d.iso for d in fresh] != [d.iso for d in days]:
            snapshot = _read(ctx, hospital_id, fresh)
        days = fresh
    return [(day, snapshot.counts[day.iso]) for day in days]


def day(ctx: Context, hospital_id: str, when: date, now: datetime):
    """One date of a hospital with its counts: the `available` answer."""
    ((planned, counts),) = _days(ctx, hospital_id, lambda schedule: [schedule.day(when, now)])
    return planned, counts


def calendar(ctx: Context, hospital_id: str, start: date | None, count: int, now: datetime):
    """`count` dates from `start` (default: today in the hospital's zone) with their counts."""

    def plan(schedule: Schedule) -> list[Day]:
        return schedule.days(start or schedule.today(now), count, now)

    return _days(ctx, hospital_id, plan)


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
    return ctx.configurations.current(hospital_id, _read(ctx, hospital_id, []).published).doc


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
    _publish(ctx, doc["hospital_id"], 1)
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


@_one_edit_at_a_time
def replace_hospital(
    ctx: Context,
    hospital_id: str,
    body: dict,
    who: Principal,
    now: datetime,
    *,
    if_match: str | None,
    force: bool,
    authorization: str,
) -> tuple[dict, list[dict]]:
    """Replace a configuration; returns it and the appointments it strands (when forced).

    Order (see shared.versions and booking_service.booking._check_still_current): the
    hospital's edit lock, then the fence (version key `editing`), then the look for active
    appointments in removed slots, then the write, then the new version. A booking checked
    against the old configuration is either seen by the look (the edit is refused) or reads
    the fence after writing its record and is refused itself.
    """
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
    doc = _validated(body, hospital_id)
    _mark_editing(ctx, hospital_id)
    try:
        stranded = ctx.conflicts.stranded(current, doc, now, authorization)
        if stranded and not force:
            raise ScheduleConflict(
                f"The change removes or closes slots holding {len(stranded)} active "
                'appointment(s); send "force": true to apply it anyway',
                appointments=stranded,
            )
    except BaseException:
        _publish(ctx, hospital_id, current["version"])  # lift the fence: nothing changed
        raise
    try:
        updated = ctx.repo.replace(doc, current["version"], now)
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
            "changed_by": who.email or who.user_id,
            "changed_by_id": who.user_id,
            "changed_at": now,
            "action": "replace",
            "forced": bool(stranded),
            "changes": diff_documents(current, doc),
        }
    )
    _publish(ctx, hospital_id, updated["version"])
    return updated, stranded
