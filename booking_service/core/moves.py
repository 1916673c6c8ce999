"""Reschedule: one appointment moved to another place, keeping its id, never losing both
places and never keeping both.

Order of a move (the new place is taken before the old one is given back):
1. MongoDB records the intent on the appointment (`moving`: the target and a token), only
   if it is confirmed, still where the caller saw it, and not moving already;
2. the gate takes the target place under the appointment's id (or the place of the
   caller's hold); a rebuild of the target day meanwhile keeps it (`for_rebuild`);
3. MongoDB moves the appointment (date, slot, serial, guards, `moves` history) if its token
   is still current, and records the old place as `release_pending`;
4. the gate gives the old place back, and `release_pending` is cleared.
A process that dies after 1 or 2 leaves `moving`: the reconciler forgets the move and gives
the target place back (the appointment stays where it was). One that dies after 3 leaves
`release_pending`: the reconciler gives the old place back. A full target, a duplicate or
an edit refused at 2 or 3 undo what was done, and nothing changes.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import redis
from pymongo.errors import DuplicateKeyError, PyMongoError

from booking_service.adapters import outbox
from booking_service.adapters.capacity import Gate
from booking_service.adapters.repository import (
    CONFIRMED,
    dup_guard,
    epoch_ms,
    has_started,
    serial_guard,
)
from booking_service.core import holds, places
from booking_service.core.context import Context
from booking_service.core.requests import HoldPlace, MoveAppointment
from booking_service.core.shapes import appointment_data, public
from booking_service.core.waitlist import place_freed
from shared.auth import Principal
from shared.errors import (
    AppointmentChanged,
    AppointmentInPast,
    DuplicateBooking,
    HoldExpired,
    InvalidTransition,
    ScheduleChanged,
    ServiceUnavailable,
)
from shared.slots import iso_utc

log = logging.getLogger(__name__)


def reschedule(
    ctx: Context, who: Principal, appointment_id: str, request: MoveAppointment, now: datetime
) -> dict:
    """POST /api/appointments/{id}/reschedule: the same appointment in a new place."""
    doc = places.find_visible(ctx, who, appointment_id)
    if doc.get("release_pending") and not finish_release(ctx, doc):
        # a move before this one left its old place to free, and it cannot be freed now
        raise ServiceUnavailable("Moving is unavailable: the capacity store is down")
    if doc["status"] != CONFIRMED:
        raise InvalidTransition(
            f"Only a confirmed appointment can be moved (it is {doc['status']})"
        )
    if has_started(doc, now):
        raise AppointmentInPast("A past appointment cannot be moved")
    hospital_id = doc["hospital_id"]
    day_text, slot_start = request.date, request.slot
    practitioner_id = request.practitioner_id or doc.get("practitioner_id")
    day = places.open_day(ctx, hospital_id, day_text, practitioner_id)
    schedule, practitioner = day.schedule, day.practitioner
    held_place = None
    if request.hold_id is not None:
        target = HoldPlace(
            hospital_id, day_text, slot_start, practitioner_id, request.appointment_type
        )
        held_place = holds.usable_hold(ctx, who, request.hold_id, target, now)
    kind = day.kind(
        request.appointment_type
        or (held_place or {}).get("appointment_type")
        or doc.get("appointment_type")
    )
    units = held_place["units"] if held_place else places.units_of(kind)
    if (day_text, slot_start, practitioner_id) == (
        doc["date"],
        doc["slot_start"],
        doc.get("practitioner_id"),
    ):
        raise InvalidTransition("The appointment is in that slot already")
    slot = day.check(slot_start, now, None if held_place is not None else units)

    oid = doc["_id"]
    token = uuid.uuid4().hex
    move = {
        "token": token,
        "hospital_id": hospital_id,
        "practitioner_id": practitioner_id,
        "date": day_text,
        "slot_start": slot_start,
        "units": units,
        "started_ms": epoch_ms(now),
    }
    try:
        begun = ctx.appointments.begin_move(oid, (doc["date"], doc["slot_start"]), move)
    except PyMongoError as exc:
        raise ServiceUnavailable("Moving is unavailable: the database is down") from exc
    if begun is None:
        raise InvalidTransition("The appointment changed or is being moved; please retry")

    def undo(release_target: bool) -> None:
        if ctx.appointments.abort_move(oid, token) and release_target:
            places.free_place(ctx, {**begun, **_place(move)})

    published = ctx.reader.published(hospital_id)
    if published.version != schedule.version:
        undo(False)
        raise ScheduleChanged(
            "The hospital's schedule changed while this move was made; please try again"
        )
    try:
        outcome, serial = places.take_place(
            ctx, schedule, day.day, slot_start, str(oid), slot.capacity, units, held_place
        )
    except (redis.RedisError, PyMongoError) as exc:
        undo(True)
        raise ServiceUnavailable("Moving is unavailable: the capacity store is down") from exc
    if outcome != Gate.TAKEN:
        undo(outcome != Gate.FULL)
        if held_place is not None:
            raise HoldExpired(f"The hold {held_place['_id']} has expired")
        raise places.slot_full(slot_start, day_text)

    source = {
        "date": doc["date"],
        "slot": doc["slot_start"],
        "serial": doc["serial"],
    }
    if doc.get("practitioner_id"):
        source["practitioner_id"] = doc["practitioner_id"]
    history = [*doc.get("moves", []), {"from": source, "moved_at": iso_utc(now), "by": who.user_id}]
    changes = {
        "date": day_text,
        "slot_start": slot_start,
        "slot": slot.as_dict(),
        "serial": serial,
        "units": units,
        "starts_ms": epoch_ms(schedule.starts_at(day.day, slot_start)),
        "dup_guard": dup_guard(hospital_id, day_text, doc["patient"]["phone"], practitioner_id),
        "serial_guard": serial_guard(hospital_id, day_text, slot_start, serial, practitioner_id),
        "moves": history,
        "release_pending": {"token": token, **_place(doc)},
        "updated_ms": epoch_ms(now),
    }
    changes.update(places.placed_with(practitioner, kind, held_place))
    try:
        rescheduled = outbox.event(
            outbox.APPOINTMENT_RESCHEDULED,
            appointment_data(doc, **changes, version=doc.get("version", 0) + 1),
            now,
        )
        moved = ctx.appointments.commit_move(oid, token, changes, rescheduled)
    except DuplicateKeyError as exc:
        undo(True)
        raise DuplicateBooking(
            f"{doc['patient']['phone']} already holds an appointment at {hospital_id} on {day_text}"
        ) from exc
    except PyMongoError as exc:
        undo(True)
        raise ServiceUnavailable("Moving is unavailable: the database is down") from exc
    if moved is None:
        # Forgotten and its target freed, unless the reconciler did both already (it gave up
        # on this slow move); a cancel or a visit step that won leaves no move behind either.
        undo(True)
        current = ctx.appointments.get(oid) or begun
        if current["status"] != CONFIRMED:  # a cancel or a visit step won the race
            raise AppointmentChanged(
                f"The appointment became {current['status']} while it was moved; it was not",
                current_status=current["status"],
            )
        # the reconciler abandoned the move while this process was slow
        raise ServiceUnavailable("The move took too long and was not made; please retry")
    if held_place is not None:
        holds.use_hold(ctx, held_place, str(oid), now)
    finish_release(ctx, moved)
    old_pid = doc.get("practitioner_id")
    ctx.events.queue(hospital_id, doc["date"], old_pid)
    ctx.events.queue(hospital_id, day_text, practitioner_id)
    place_freed(ctx, hospital_id, old_pid, doc["date"], now)
    return public(ctx.appointments.get(oid) or moved)


def _place(where: dict) -> dict:
    """The fields `free_place` needs to give a place back."""
    return {
        "hospital_id": where["hospital_id"],
        "date": where["date"],
        "slot_start": where["slot_start"],
        "practitioner_id": where.get("practitioner_id"),
    }


def finish_release(ctx: Context, doc: dict) -> bool:
    """Give back the old place of a committed move, then forget it; True when done."""
    pending = doc["release_pending"]
    if not places.free_place(ctx, {"_id": doc["_id"], **_place(pending)}):
        return False
    ctx.appointments.source_released(doc["_id"], pending["token"])
    return True


def repair(ctx: Context, now: datetime) -> tuple[int, int]:
    """The reconciler's part: moves whose process died before committing are forgotten and
    their target places given back; committed moves whose old place is still held get it
    freed. Returns (moves undone, old places freed)."""
    before = epoch_ms(now) - int(ctx.config.pending_timeout_seconds * 1000)
    undone = 0
    for doc in ctx.appointments.stale_moves(before):
        move = doc["moving"]
        # Forgotten first: a slow mover's commit then fails on its token, and never finds
        # its target place given back under it.
        if ctx.appointments.abort_move(doc["_id"], move["token"]):
            places.free_place(ctx, {"_id": doc["_id"], **_place(move)})
            undone += 1
    freed = 0
    for doc in ctx.appointments.unreleased_sources():
        if finish_release(ctx, doc):
            freed += 1
            pending = doc["release_pending"]
            place_freed(
                ctx, pending["hospital_id"], pending.get("practitioner_id"), pending["date"], now
            )
    return undone, freed
