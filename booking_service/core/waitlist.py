"""The waitlist: patients waiting for a place of a full day (a slot of it, when they name
one), first come first served per hospital, doctor (or none) and date.

When a place comes back (a cancel, a move away, a hold given back or past its time), the
process that freed it offers it at once (`offer_places`); the reconciler offers what is left
every pass, which also covers places an edit adds (capacity raised, a day reopened). An
offer is a hold made for the entry (holds.py, `o:` field: the live stream's `offered`
counts show it, no personal data), so the gate decides: one place, one offer. An entry is
claimed (`waiting` -> `offering`) before its hold is made, so two processes never offer one
entry; an offer not accepted in time passes to the next entry (`expired`): its place goes
straight to the next entry that fits, which no booking can take in between (`pass_offer`).

This module also ends holds (`end_hold`, `release_hold`, `expire_holds`) and reacts to every
freed place (`place_freed`): ending an offer's hold passes it on, and an offer withdrawn while
it was made ends its hold, so offers and ended holds call each other. Below it, holds.py
makes and uses holds and knows nothing of the waitlist; above it, cancel.py and moves.py
free places through `place_freed`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from booking_service.adapters import outbox
from booking_service.adapters.capacity import Gate, hold_field
from booking_service.adapters.hold_store import HoldState
from booking_service.adapters.repository import dup_guard, epoch_ms, to_object_id
from booking_service.adapters.waitlist_store import EntrySearch, EntryStatus
from booking_service.core import booking, holds
from booking_service.core.context import Context
from booking_service.core.places import (
    check_bookable,
    current_configuration,
    day_counts,
    find_owned,
    open_day,
    records_ttl,
    taken_units,
    units_of,
)
from booking_service.core.requests import BookAppointment, HoldPlace, JoinWaitlist
from booking_service.core.shapes import page_answer, public_entry
from shared.auth import Principal
from shared.errors import (
    DomainError,
    HoldExpired,
    InvalidDate,
    InvalidTransition,
    OutsideBookingWindow,
    PractitionerInactive,
    ServiceUnavailable,
    SlotFull,
    SlotNotFound,
    TooManyHolds,
    TooManyWaitlistEntries,
    WaitlistDuplicate,
    WaitlistEntryNotFound,
)
from shared.slots import BEYOND_WINDOW, PAST, parse_date

log = logging.getLogger(__name__)

# Entries looked at per offer round (the first ones that fit are offered).
MAX_ENTRIES_PER_ROUND = 200


def join(ctx: Context, who: Principal, request: JoinWaitlist, now: datetime) -> dict:
    """POST /api/waitlist: wait for a place of a day (of one slot, when `slot` is given)."""
    holds.count_change(ctx, who)
    hospital_id, day_text = request.hospital_id, request.date
    practitioner_id, slot_start = request.practitioner_id, request.slot
    day = parse_date(day_text)
    if day is None:
        raise InvalidDate(f"{day_text!r} is not a date YYYY-MM-DD")
    configuration = current_configuration(ctx, hospital_id)
    schedule = configuration.schedule_for(practitioner_id)
    if practitioner_id is not None and not configuration.practitioner(practitioner_id).active:
        raise PractitionerInactive(f"{practitioner_id} is not taking appointments")
    kind = configuration.appointment_type(request.appointment_type)
    planned = schedule.day(day, now)
    if planned.status in (PAST, BEYOND_WINDOW):
        raise OutsideBookingWindow(f"{day_text} is outside the booking window")
    if slot_start is not None:
        check_bookable(schedule, day, slot_start, now)
    elif not planned.slots:
        raise SlotNotFound(f"{day_text} has no slots to wait for")
    oid = ObjectId()
    doc = {
        "_id": oid,
        "hospital_id": hospital_id,
        "practitioner_id": practitioner_id,
        "date": day_text,
        "slot_start": slot_start,
        "patient": request.patient,
        "appointment_type": kind.code if kind is not None else None,
        "units": units_of(kind),
        "user_id": who.user_id,
        "status": EntryStatus.WAITING,
        "wait_guard": dup_guard(hospital_id, day_text, request.patient["phone"], practitioner_id),
        "created_ms": epoch_ms(now),
    }
    if who.at_desk:
        doc["desk"] = True  # its offers count against the desk's hold limit
    limit = None if who.at_desk else ctx.config.waitlist_limit
    try:
        counted = _insert_counted(ctx, doc, limit)
    except DuplicateKeyError as exc:
        raise WaitlistDuplicate(
            f"{request.patient['phone']} is already waiting for {hospital_id} on {day_text}"
        ) from exc
    if not counted:
        raise TooManyWaitlistEntries(f"At most {limit} waitlist entries at once")
    # A place may be free already (or have come back while this entry was written).
    place_freed(ctx, hospital_id, practitioner_id, day_text, now)
    return answer(ctx, ctx.waitlist.get(oid) or doc)


def _insert_counted(ctx: Context, doc: dict, limit: int | None) -> bool:
    """Write a new entry as one of its user's `limit` live entries at most (None: no limit),
    exactly under concurrent joins: each live entry of a limited user takes one of `limit`
    numbered marks (`quota_guard` "<user>#<k>", unique in MongoDB) until it ends. False when
    every mark is taken; DuplicateKeyError when the phone waits already."""
    if limit is None:
        ctx.waitlist.insert(doc)
        return True
    for mark in range(limit):
        try:
            ctx.waitlist.insert({**doc, "quota_guard": f"{doc['user_id']}#{mark}"})
            return True
        except DuplicateKeyError:
            if ctx.waitlist.waits(doc["wait_guard"]):
                raise
    return False


def answer(ctx: Context, doc: dict) -> dict:
    """An entry with its position among the waiting (1: the next offered)."""
    if doc["status"] != EntryStatus.WAITING:
        return public_entry(doc)
    ahead = ctx.waitlist.waiting(doc["hospital_id"], doc.get("practitioner_id"), doc["date"])
    ids = [d["_id"] for d in ahead]
    position = ids.index(doc["_id"]) + 1 if doc["_id"] in ids else len(ids) + 1
    return public_entry(doc, position)


def find_entry(ctx: Context, who: Principal, waitlist_id: str) -> dict:
    """An entry the caller may see (its own; staff and admin: any); 404 otherwise."""
    missing = WaitlistEntryNotFound(f"No waitlist entry {waitlist_id!r}")
    return find_owned(ctx.waitlist, who, waitlist_id, "user_id", missing)


def list_entries(ctx: Context, who: Principal, query: dict) -> dict:
    """GET /api/waitlist: the caller's entries (staff and admin: all, filtered)."""
    if who.at_desk:
        narrowed = ("hospital_id", "practitioner_id", "date", "status")
        search = EntrySearch(**{name: query.get(name) for name in narrowed})
    else:
        search = EntrySearch(user_id=who.user_id, status=query.get("status"))
    page, per_page = query["page"], query["per_page"]
    docs, total = ctx.waitlist.search(search, page, per_page)
    return page_answer("entries", [public_entry(d) for d in docs], page, per_page, total)


def leave(ctx: Context, who: Principal, waitlist_id: str, now: datetime) -> dict:
    """DELETE /api/waitlist/{id}: stop waiting; an offer held is given back (and passed on).
    Idempotent."""
    holds.count_change(ctx, who)
    doc = find_entry(ctx, who, waitlist_id)
    for status in (EntryStatus.WAITING, EntryStatus.OFFERED):
        left = ctx.waitlist.move(
            doc["_id"], status, EntryStatus.CANCELLED, {"updated_ms": epoch_ms(now)}
        )
        if left is not None:
            if status == EntryStatus.OFFERED:
                _end_offer_hold(ctx, left, now)
            return public_entry(left)
    current = ctx.waitlist.get(doc["_id"]) or doc
    if current["status"] in (EntryStatus.CANCELLED, EntryStatus.EXPIRED):
        return public_entry(current)
    raise InvalidTransition(f"The entry is {current['status']}; it cannot be withdrawn now")


def accept(ctx: Context, who: Principal, waitlist_id: str, now: datetime) -> dict:
    """POST /api/waitlist/{id}/accept: book the offered place (201: the appointment)."""
    doc = find_entry(ctx, who, waitlist_id)
    if doc["status"] != EntryStatus.OFFERED:
        if doc["status"] == EntryStatus.EXPIRED:
            raise HoldExpired("The offer has expired")
        raise InvalidTransition(f"The entry is {doc['status']}, not offered")
    if doc["offer_expires_ms"] <= epoch_ms(now):
        raise HoldExpired("The offer has expired")
    if not who.at_desk:  # an appointment made: counted as every booking is (BOOKING_LIMIT)
        ctx.limiter.check_booking(who.user_id)
    # The appointment is the entry's owner's, whoever accepts (a desk may, for them).
    owner = Principal(doc["user_id"], "", "patient")
    request = BookAppointment(
        hospital_id=doc["hospital_id"],
        practitioner_id=doc.get("practitioner_id"),
        date=doc["date"],
        slot=doc["offered_slot"],
        patient=doc["patient"],
        appointment_type=doc.get("appointment_type"),
        hold_id=doc["hold_id"],
    )
    appointment = booking.book(ctx, owner, request, now)
    accepted = {"appointment_id": appointment["appointment_id"], "updated_ms": epoch_ms(now)}
    # (the reconciler may have seen the offer's time pass while the booking took its place)
    if ctx.waitlist.move(doc["_id"], EntryStatus.OFFERED, EntryStatus.ACCEPTED, accepted) is None:
        ctx.waitlist.move(doc["_id"], EntryStatus.EXPIRED, EntryStatus.ACCEPTED, accepted)
    return appointment


def offer_places(
    ctx: Context, hospital_id: str, practitioner_id: str | None, day: str, now: datetime
) -> int:
    """Offer the day's free places to its waiting entries, first come first served, each to
    the first entry it fits; returns the offers made."""
    entries = ctx.waitlist.waiting(hospital_id, practitioner_id, day)[:MAX_ENTRIES_PER_ROUND]
    if not entries:
        return 0
    try:
        counted = day_counts(ctx, hospital_id, [parse_date(day)], now, practitioner_id)
    except DomainError:
        return 0  # the hospital or the doctor is gone: nothing to offer
    ((planned, counts),) = counted.days
    if counts is None or planned.status != "open":
        return 0
    room = {
        slot.start: slot.capacity - taken_units(counts, slot.start)
        for slot, started in zip(planned.slots, planned.started, strict=True)
        if not started
    }
    offers = 0
    for entry in entries:
        wanted = [entry["slot_start"]] if entry.get("slot_start") else list(room)
        fitting = [s for s in wanted if room.get(s, 0) >= entry.get("units", 1)]
        if not fitting:
            continue
        made = _offer(ctx, entry, fitting, now)
        if made is not None:
            offers += 1
            room[made] -= entry.get("units", 1)
        if not any(v > 0 for v in room.values()):
            break
    return offers


def _offer(ctx: Context, entry: dict, slots: list[str], now: datetime) -> str | None:
    """Claim the entry and hold a place of one of `slots` for it; the slot offered, None when
    no place was left (the entry waits on) or another process claimed it."""
    claimed = ctx.waitlist.move(
        entry["_id"], EntryStatus.WAITING, EntryStatus.OFFERING, {"claimed_ms": epoch_ms(now)}
    )
    if claimed is None:
        return None
    for slot in slots:
        target = HoldPlace(
            hospital_id=entry["hospital_id"],
            practitioner_id=entry.get("practitioner_id"),
            date=entry["date"],
            slot=slot,
            appointment_type=entry.get("appointment_type"),
        )
        limit = holds.hold_limit(ctx, entry.get("desk", False))
        try:
            hold = holds.place_hold(
                ctx, entry["user_id"], target, now, limit=limit, waitlist_id=str(entry["_id"])
            )
        except SlotFull:
            continue
        except TooManyHolds:
            break  # its owner holds as many places as it may: it waits on, the place goes on
        except DomainError as exc:  # the slot started, the day closed, ...
            log.info("waitlist %s: no offer in %s: %s", entry["_id"], slot, exc.message)
            continue
        return slot if _offered(ctx, entry, hold, now) else None
    ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.WAITING, {})
    return None


def _offered(ctx: Context, entry: dict, hold: dict, now: datetime) -> bool:
    """A claimed entry's place is held (`hold`): the entry is `offered`, with its webhook
    event. False when it was withdrawn meanwhile: the place goes on to the next entry."""
    offer = {
        "hold_id": str(hold["_id"]),
        "offered_slot": hold["slot_start"],
        "offer_expires_ms": hold["expires_ms"],
        "updated_ms": epoch_ms(now),
    }
    made = outbox.event(
        outbox.WAITLIST_OFFERED,
        public_entry({**entry, **offer, "status": EntryStatus.OFFERED}),
        now,
    )
    if (
        ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.OFFERED, offer, made)
        is None
    ):
        end_hold(ctx, hold, HoldState.RELEASED, now)
        return False
    return True


def pass_offer(ctx: Context, hold: dict, state: str, now: datetime) -> dict | None:
    """An offer's hold ends (`expired`, or `released`: declined): its place goes straight to
    the first waiting entry it fits (lua/pass_hold.lua), with its serial, so no booking can
    take it in between. The ended hold, or None when it was not passed (no entry fits, the
    slot started, the hold is gone): the caller then frees the place as any hold's."""
    hospital_id, practitioner_id = hold["hospital_id"], hold.get("practitioner_id")
    day_text, slot_start, units = hold["date"], hold["slot_start"], hold.get("units", 1)
    fits = [
        entry
        for entry in ctx.waitlist.waiting(hospital_id, practitioner_id, day_text)
        if entry.get("slot_start") in (None, slot_start) and entry.get("units", 1) == units
    ]
    if not fits:
        return None
    try:
        day = open_day(ctx, hospital_id, day_text, practitioner_id)
        day.check(slot_start, now)
    except DomainError:
        return None  # the slot started, the day closed, the doctor left: no offer
    configuration = day.configuration
    ttl = records_ttl(day.schedule, day.day, now)
    grace_ms = holds.offer_grace_ms(ctx.config)
    life_ms = configuration.hold_seconds * 1000 + grace_ms
    for entry in fits[:MAX_ENTRIES_PER_ROUND]:
        claimed = ctx.waitlist.move(
            entry["_id"], EntryStatus.WAITING, EntryStatus.OFFERING, {"claimed_ms": epoch_ms(now)}
        )
        if claimed is None:
            continue  # another process offers it something
        oid = ObjectId()
        try:  # an offer counts as a hold of the entry's owner
            until_ms = epoch_ms(now) + configuration.hold_seconds * 1000
            limit = holds.hold_limit(ctx, entry.get("desk", False))
            holds.claim_quota(ctx, entry["user_id"], str(oid), now, until_ms, limit)
        except TooManyHolds:
            ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.WAITING, {})
            continue  # it waits on; the place goes to the next entry
        except ServiceUnavailable:
            ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.WAITING, {})
            return None
        field = hold_field(str(oid), offered=True)
        try:
            outcome, serial, kept_until_ms = ctx.capacity.pass_hold(
                hospital_id, day_text, slot_start, hold["field"], field, ttl, practitioner_id,
                life_ms,
            )  # fmt: skip
        except redis.RedisError:
            outcome = None
        if outcome != Gate.TAKEN:
            holds.forget_quota(ctx, entry["user_id"], str(oid))
            ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.WAITING, {})
            return None
        passed = {  # the same place (and serial), now the entry's
            **hold,
            "_id": oid,
            "field": field,
            "serial": serial,
            "user_id": entry["user_id"],
            "appointment_type": entry.get("appointment_type"),
            "state": HoldState.HELD,
            "created_ms": epoch_ms(now),
            "expires_ms": kept_until_ms - grace_ms,
            "kept_until_ms": kept_until_ms,
            "waitlist_id": str(entry["_id"]),
            "passed_from": str(hold["_id"]),
        }
        try:
            ctx.holds.insert(passed)
        except PyMongoError:
            log.warning("waitlist %s: passed offer not recorded; its place is freed", oid)
            holds.give_back(ctx, passed)
            holds.forget_quota(ctx, entry["user_id"], str(oid))
            ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.WAITING, {})
            return None
        ended = ctx.holds.end(hold["_id"], state, now) or {**hold, "state": state}
        holds.forget_quota(ctx, hold["user_id"], str(hold["_id"]))
        _offer_over(ctx, ended, now)
        _offered(ctx, claimed, passed, now)
        return ended
    return None


def _offer_over(ctx: Context, hold: dict, now: datetime) -> None:
    """The entry an ended offer hold was for: `expired` when it ran out, `withdrawn` when
    its owner gave it back."""
    ended = EntryStatus.EXPIRED if hold["state"] == HoldState.EXPIRED else EntryStatus.CANCELLED
    ctx.waitlist.move(
        to_object_id(hold["waitlist_id"]),
        EntryStatus.OFFERED,
        ended,
        {"updated_ms": epoch_ms(now)},
        hold_id=str(hold["_id"]),
    )


def hold_ended(ctx: Context, hold: dict, now: datetime) -> None:
    """A hold was given back or ran out (`end_hold`): an offer it carried is over (the
    entry expires), and its place goes to the next entry."""
    if hold.get("waitlist_id"):
        _offer_over(ctx, hold, now)  # run out, or given back by its owner (declined)
    place_freed(ctx, hold["hospital_id"], hold.get("practitioner_id"), hold["date"], now)


def _end_offer_hold(ctx: Context, entry: dict, now: datetime) -> None:
    hold = ctx.holds.get(to_object_id(entry["hold_id"]))
    if hold is not None:
        end_hold(ctx, hold, HoldState.RELEASED, now)


def upkeep(ctx: Context, now: datetime, claim_timeout_ms: int) -> int:
    """The reconciler's part: entries left `offering` by a process that died go back to
    waiting; offers past their time whose hold a booking took are `accepted`, the others
    `expired` (their holds end and pass the place on); then every day with waiting entries
    gets its free places offered. Returns the offers made."""
    for entry in ctx.waitlist.stale(
        EntryStatus.OFFERING, "claimed_ms", epoch_ms(now) - claim_timeout_ms
    ):
        ctx.waitlist.move(entry["_id"], EntryStatus.OFFERING, EntryStatus.WAITING, {})
    for entry in ctx.waitlist.stale(EntryStatus.OFFERED, "offer_expires_ms", epoch_ms(now)):
        hold = ctx.holds.get(to_object_id(entry["hold_id"]))
        if hold is not None and hold.get("appointment_id"):
            ctx.waitlist.move(
                entry["_id"],
                EntryStatus.OFFERED,
                EntryStatus.ACCEPTED,
                {"appointment_id": hold["appointment_id"]},
            )
        elif hold is not None and hold["state"] == HoldState.HELD:
            end_hold(ctx, hold, HoldState.EXPIRED, now)  # expires the entry, offers the place
        else:
            ctx.waitlist.move(
                entry["_id"],
                EntryStatus.OFFERED,
                EntryStatus.EXPIRED,
                {"updated_ms": epoch_ms(now)},
            )
    offers = 0
    since = (now.date()).isoformat()
    for hospital_id, practitioner_id, day in ctx.waitlist.days_waiting(since):
        try:
            offers += offer_places(ctx, hospital_id, practitioner_id, day, now)
        except (redis.RedisError, PyMongoError) as exc:
            log.warning("waitlist offers for %s %s failed: %s", hospital_id, day, exc)
    return offers


# Freed places. A place that comes back (a cancel, a move away, a hold given back or past its
# time) is offered to the waitlist here, the one module that both makes offers and ends holds:
# ending an offer's hold passes its place on to the next entry (`pass_offer`), and an offer
# withdrawn while it was made ends its hold.


def place_freed(
    ctx: Context, hospital_id: str, practitioner_id: str | None, day: str, now: datetime
) -> None:
    """A place of the day came back: offer it to the day's waitlist (best effort: the
    reconciler offers what is left)."""
    try:
        offer_places(ctx, hospital_id, practitioner_id, day, now)
    except (redis.RedisError, PyMongoError) as exc:
        log.warning("waitlist offers for %s %s not made now: %s", hospital_id, day, exc)


def release_hold(ctx: Context, who: Principal, hold_id: str, now: datetime) -> None:
    """DELETE /api/holds/{id}: give the place back (idempotent; a used hold is 409)."""
    holds.count_change(ctx, who)
    doc = holds.find_hold(ctx, who, hold_id)
    if doc["state"] == HoldState.USED:
        raise InvalidTransition("The hold was used by a booking; cancel the appointment instead")
    end_hold(ctx, doc, HoldState.RELEASED, now)


def end_hold(ctx: Context, doc: dict, state: str, now: datetime) -> dict | None:
    """End a live hold (`released` or `expired`), free its place and offer it to the
    waitlist (a waitlist offer's place passes straight to the next entry that fits, when
    one does); the ended record, None when it had ended already."""
    if doc.get("waitlist_id") and doc["state"] == HoldState.HELD:
        passed = pass_offer(ctx, doc, state, now)
        if passed is not None:
            return passed
    ended = ctx.holds.end(doc["_id"], state, now)
    if ended is None:
        return None
    holds.give_back(ctx, ended)
    holds.forget_quota(ctx, ended["user_id"], str(ended["_id"]))
    hold_ended(ctx, ended, now)
    return ended


def end_lost_holds(ctx: Context, now: datetime) -> int:
    """Live holds and offers whose places the gate no longer keeps (a rebuild of a day that
    Redis lost restores live holds only while they fit: an edit lowered the capacity
    meanwhile) end as `expired`, their offers with them, and no longer count against their
    users; one a booking is taking (its appointment names it) is left to that booking.
    Returns how many."""
    ended = 0
    for doc in ctx.holds.live(epoch_ms(now)):
        kept = ctx.capacity.holds_place(
            doc["hospital_id"], doc["date"], doc["slot_start"], doc["field"],
            doc.get("practitioner_id"),
        )  # fmt: skip
        if kept is None or kept or ctx.appointments.uses_hold(str(doc["_id"])):
            continue
        if end_hold(ctx, doc, HoldState.EXPIRED, now) is not None:
            log.warning("hold %s had lost its place; ended", doc["_id"])
            ended += 1
    return ended


def expire_holds(ctx: Context, now: datetime) -> int:
    """Holds past their time still recorded live: end them, free their places (the gate has
    usually dropped them already) and pass their places on; returns how many."""
    return sum(
        end_hold(ctx, doc, HoldState.EXPIRED, now) is not None
        for doc in ctx.holds.expired(epoch_ms(now))
    )
