"""Holds: one place of a slot kept for a while (a patient paying, a waitlist offer), counted by
the same atomic gate as bookings (lua/reserve.lua) and given back by the gate itself when its
time is up: a hold past its time never blocks a booking, whether or not anything swept it.

Order of a hold, chosen so nothing can overbook and nothing outlives its time:
1. the user's live holds and offers are counted (Redis, atomically: at most HOLD_LIMIT at
   once; a waitlist offer counts as a hold of the entry's owner);
2. the gate takes the place, with the hold's expiry by Redis's clock;
3. MongoDB records the hold (the rebuild restores live holds from it). A process that dies
   between 2 and 3 leaves a place that comes back by itself at the expiry; one that cannot
   write 3 gives the place back at once.
A hold becomes an appointment once (lua/take_hold.lua moves its place to the appointment in
one step; booking.py), and is given back by DELETE, by its expiry, or by the reconciler:
ending a hold is the waitlist's (waitlist.end_hold), since an ended offer's place passes on.

A waitlist offer is a hold whose place the gate keeps a grace period past the offer's time
(`offer_grace_ms`, `kept_until_ms`): the offer can no longer be accepted, and the process
that ends it passes the place to the next entry in one step (lua/pass_hold.lua), so no
booking takes it in between. Without any process to do that, it frees at the grace's end.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis
from bson import ObjectId
from pymongo.errors import PyMongoError

from booking_service.adapters.capacity import Gate, hold_field
from booking_service.adapters.hold_store import HoldState
from booking_service.adapters.repository import epoch_ms, to_object_id
from booking_service.core.context import Context
from booking_service.core.places import (
    at_the_gate,
    find_owned,
    open_day,
    records_ttl,
    slot_full,
    still_published,
    units_of,
)
from booking_service.core.requests import HoldPlace
from booking_service.core.shapes import page_answer, public_hold
from shared.auth import Principal
from shared.errors import (
    HoldExpired,
    HoldMismatch,
    HoldNotFound,
    InvalidDate,
    ScheduleChanged,
    ServiceUnavailable,
    TooManyHolds,
)
from shared.slots import parse_date

log = logging.getLogger(__name__)


def offer_grace_ms(config) -> int:
    """How long past an offer's time the gate keeps its place for the next entry: three
    reconciler periods and five seconds (11 s by default), time for the reconciler to end the
    offer and pass it on."""
    return int((3 * config.reconcile_interval_seconds + 5) * 1000)


def place_hold(
    ctx: Context,
    user_id: str,
    request: HoldPlace,
    now: datetime,
    *,
    limit: int,
    waitlist_id: str | None = None,
) -> dict:
    """Hold one place (an appointment type's units) of a slot for the hospital's
    `hold_seconds`; returns the hold's record. `limit`: the user's live holds and offers at
    most (`hold_limit`); a waitlist offer counts as a hold of the entry's owner."""
    hospital_id, day_text, slot_start = request.hospital_id, request.date, request.slot
    practitioner_id = request.practitioner_id
    day = open_day(ctx, hospital_id, day_text, practitioner_id)
    configuration, schedule = day.configuration, day.schedule
    kind = day.kind(request.appointment_type)
    units = units_of(kind)
    slot = day.check(slot_start, now, units)

    oid = ObjectId()
    hold_id = str(oid)
    life_ms = configuration.hold_seconds * 1000
    claim_quota(ctx, user_id, hold_id, now, epoch_ms(now) + life_ms, limit)
    field = hold_field(hold_id, offered=waitlist_id is not None)
    grace_ms = offer_grace_ms(ctx.config) if waitlist_id is not None else 0
    ttl = records_ttl(schedule, day.day, now)

    def attempt() -> tuple[int, int, int]:
        return ctx.capacity.hold(
            hospital_id, day_text, slot_start, field, slot.capacity, ttl,
            units=units, practitioner_id=practitioner_id, life_ms=life_ms + grace_ms,
        )  # fmt: skip

    try:
        outcome, serial, kept_until_ms = at_the_gate(ctx, schedule, day.day, attempt)
    except (redis.RedisError, PyMongoError) as exc:
        forget_quota(ctx, user_id, hold_id)
        raise ServiceUnavailable("Holds are unavailable: the capacity store is down") from exc
    if outcome != Gate.TAKEN:
        forget_quota(ctx, user_id, hold_id)
        if outcome == Gate.FULL:
            raise slot_full(slot_start, day_text)
        raise ServiceUnavailable("Holds are unavailable: capacity records are rebuilding")
    doc = {
        "_id": oid,
        "hospital_id": hospital_id,
        "practitioner_id": practitioner_id,
        "date": day_text,
        "slot_start": slot_start,
        "units": units,
        "appointment_type": kind.code if kind is not None else None,
        "serial": serial,
        "field": field,
        "user_id": user_id,
        "state": HoldState.HELD,
        "created_ms": epoch_ms(now),
        "expires_ms": kept_until_ms - grace_ms,
    }
    if waitlist_id is not None:
        doc["waitlist_id"] = waitlist_id
        doc["kept_until_ms"] = kept_until_ms
    try:
        ctx.holds.insert(doc)
    except PyMongoError as exc:
        give_back(ctx, doc)
        forget_quota(ctx, user_id, hold_id)
        raise ServiceUnavailable("Holds are unavailable: the database is down") from exc
    _check_still_current(ctx, doc, schedule, now)
    return doc


def _check_still_current(ctx: Context, doc: dict, schedule, now: datetime) -> None:
    """After the hold's record: refuse unless the configuration checked is still the
    published one, as a booking is (booking.py, "Still current"): an edit fences, then
    looks for live holds in the slots it removes, so a hold written before the look is seen
    by it and one written after reads the fence or the new version here."""
    try:
        current = still_published(ctx, schedule)
    except redis.RedisError:
        current = None
    if current:
        return
    if ctx.holds.end(doc["_id"], HoldState.RELEASED, now) is not None:
        give_back(ctx, doc)
    forget_quota(ctx, doc["user_id"], str(doc["_id"]))
    if current is None:
        raise ServiceUnavailable("Holds are unavailable: the capacity store is down")
    raise ScheduleChanged(
        "The hospital's schedule changed while this hold was made; please try again"
    )


def hold(ctx: Context, who: Principal, request: HoldPlace, now: datetime) -> dict:
    """POST /api/holds: a place held for the caller."""
    count_change(ctx, who)
    return public_hold(
        place_hold(ctx, who.user_id, request, now, limit=hold_limit(ctx, who.at_desk))
    )


def list_holds(ctx: Context, who: Principal, query: dict, now: datetime) -> dict:
    """GET /api/holds: the caller's holds (staff and admin: all, filtered by hospital, doctor
    and dates, what an edit's conflict check must see), oldest first. `state=held`: the live
    ones, whose places the gate keeps (a waitlist offer's until its grace ends)."""
    if who.at_desk:
        for name in ("date_from", "date_to"):
            if name in query and parse_date(query[name]) is None:
                raise InvalidDate(f"{name} must be a date YYYY-MM-DD")
        found = {n: query[n] for n in ("hospital_id", "practitioner_id") if n in query}
        span = {
            op: query[n] for op, n in (("$gte", "date_from"), ("$lte", "date_to")) if n in query
        }
        if span:
            found["date"] = span
    else:
        found = {"user_id": who.user_id}  # a patient's own, whatever filters it sends
    state = query.get("state")
    if state is not None:
        found["state"] = state
    page, per_page = query["page"], query["per_page"]
    docs, total = ctx.holds.search(
        found, epoch_ms(now), page, per_page, live=state == HoldState.HELD
    )
    return page_answer("holds", [public_hold(d) for d in docs], page, per_page, total)


def hold_limit(ctx: Context, at_desk: bool) -> int:
    """The live holds and offers a user may have at once: HOLD_LIMIT (a desk's:
    DESK_HOLD_LIMIT)."""
    return ctx.config.desk_hold_limit if at_desk else ctx.config.hold_limit


def claim_quota(
    ctx: Context, user_id: str, hold_id: str, now: datetime, until_ms: int, limit: int
) -> None:
    """Count a new hold or offer against its user's live ones, atomically (Redis): 429
    too_many_holds when the user has `limit` already. Counted until `until_ms` or until
    `forget_quota`. While Redis's records are not complete (it lost them, and the
    reconciler has not rebuilt them yet), the user's live holds are counted again from
    MongoDB first (`restore_quota`)."""
    try:
        if not ctx.capacity.records_complete():
            restore_quota(ctx, now, user_id)
        counted = ctx.capacity.claim_hold_quota(user_id, hold_id, until_ms, limit)
    except redis.RedisError as exc:
        raise ServiceUnavailable("Holds are unavailable: the capacity store is down") from exc
    if not counted:
        raise TooManyHolds(f"At most {limit} live holds at once; use or release one first")


def count_change(ctx: Context, who: Principal) -> None:
    """A patient makes or gives back a hold or a waitlist entry: counted against
    HOLD_CHANGES_LIMIT (429 past it); a desk is not limited."""
    if not who.at_desk:
        ctx.limiter.check_hold_change(who.user_id)


def find_hold(ctx: Context, who: Principal, hold_id: str) -> dict:
    """A hold the caller may see (its own; staff and admin: any); 404 otherwise."""
    return find_owned(ctx.holds, who, hold_id, "user_id", HoldNotFound(f"No hold {hold_id!r}"))


def usable_hold(
    ctx: Context, who: Principal, hold_id: str, target: HoldPlace, now: datetime
) -> dict:
    """The live hold a booking or a move takes its place from: the caller's (a desk may use
    any), for exactly the place `target` names; 410 hold_expired when it is gone or unknown,
    409 hold_mismatch when it is for another place."""
    oid = to_object_id(hold_id)
    doc = ctx.holds.get(oid) if oid is not None else None
    if doc is None or (not who.at_desk and doc["user_id"] != who.user_id):
        raise HoldExpired(f"No live hold {hold_id!r}")
    if doc["state"] != HoldState.HELD or doc["expires_ms"] <= epoch_ms(now):
        raise HoldExpired(f"The hold {hold_id} has expired or was used")
    for name, held_for in (
        ("hospital_id", doc["hospital_id"]),
        ("practitioner_id", doc.get("practitioner_id")),
        ("date", doc["date"]),
        ("slot", doc["slot_start"]),
        ("appointment_type", doc.get("appointment_type")),
    ):
        asked = getattr(target, name)
        # The doctor must be the hold's (none is a place of the hospital's own); the type
        # may be left out (the hold's is taken).
        if asked != held_for and (asked is not None or name == "practitioner_id"):
            raise HoldMismatch(
                f"The hold {hold_id} is for {name} {held_for!r}, not {asked!r}",
                errors={name: [f"the hold is for {held_for!r}"]},
            )
    return doc


def use_hold(ctx: Context, doc: dict, appointment_id: str, now: datetime) -> None:
    """A booking took the hold's place: the hold is used (best effort: a hold left `held`
    in MongoDB is skipped by rebuilds, its appointment naming it, and ends at its time)."""
    try:
        ctx.holds.end(doc["_id"], HoldState.USED, now, appointment_id=appointment_id)
    except PyMongoError:
        log.warning("hold %s used by %s not recorded as used", doc["_id"], appointment_id)
    forget_quota(ctx, doc["user_id"], str(doc["_id"]))


def give_back(ctx: Context, doc: dict) -> None:
    try:
        ctx.capacity.free(
            doc["hospital_id"], doc["date"], doc["slot_start"], doc["field"],
            doc.get("practitioner_id"),
        )  # fmt: skip
    except redis.RedisError:
        log.warning("release of hold %s failed; it expires by itself", doc["_id"])


def restore_quota(ctx: Context, now: datetime, user_id: str | None = None) -> None:
    """Count the live holds and offers (of one user, or everyone's) against their users
    again, from MongoDB's records: after Redis lost its quota sets (idempotent)."""
    by_user: dict[str, list[tuple[str, int]]] = {}
    for doc in ctx.holds.live(epoch_ms(now), user_id):
        by_user.setdefault(doc["user_id"], []).append((str(doc["_id"]), int(doc["expires_ms"])))
    for user, live in by_user.items():
        ctx.capacity.restore_hold_quota(user, live)


def forget_quota(ctx: Context, user_id: str, hold_id: str) -> None:
    """The hold (or offer) no longer counts against its user."""
    try:
        ctx.capacity.free_hold_quota(user_id, hold_id)
    except redis.RedisError:
        pass  # it expires with the hold's time
