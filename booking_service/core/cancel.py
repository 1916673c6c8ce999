"""Cancelling: an appointment gives its place back at once, and the place is offered to the
day's waitlist.

Order: MongoDB closes the appointment (`confirmed` -> `cancelled`, with its webhook event, in
one conditional update: a concurrent cancel finds it closed and answers the same); then the
gate frees the place (a process that dies before that leaves it to the reconciler's sweep of
recently closed appointments); then the waitlist is offered the place (best effort: the
reconciler offers what is left).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import PyMongoError

from booking_service.adapters import outbox
from booking_service.adapters.repository import CANCELLED, CONFIRMED, has_started
from booking_service.core.context import Context
from booking_service.core.places import find_visible, free_place
from booking_service.core.shapes import appointment_data, public
from booking_service.core.waitlist import place_freed
from shared.auth import Principal
from shared.errors import AppointmentInPast, InvalidTransition, ServiceUnavailable
from shared.slots import iso_utc


def cancel(ctx: Context, who: Principal, appointment_id: str, now: datetime) -> dict:
    """Cancel (idempotent) and free the place at once."""
    doc = find_visible(ctx, who, appointment_id)
    if doc["status"] == CANCELLED:
        return public(doc)
    if doc["status"] != CONFIRMED:
        raise InvalidTransition(
            f"Only a confirmed appointment can be cancelled (it is {doc['status']})"
        )
    if has_started(doc, now):
        raise AppointmentInPast("A past appointment cannot be cancelled")
    stamps = {"cancelled_at": iso_utc(now), "cancelled_by": who.user_id}
    cancelled = outbox.event(
        outbox.APPOINTMENT_CANCELLED,
        appointment_data(doc, status=CANCELLED, version=doc.get("version", 0) + 1, **stamps),
        now,
    )
    try:
        closed = ctx.appointments.close(doc["_id"], CONFIRMED, CANCELLED, now, cancelled, **stamps)
    except PyMongoError as exc:
        raise ServiceUnavailable("Cancelling is unavailable: the database is down") from exc
    if closed is None:  # another change won the race: a cancel (then this one is the same)
        current = ctx.appointments.get(doc["_id"]) or doc
        if current["status"] == CANCELLED:
            return public(current)
        raise InvalidTransition(  # or a visit step: the appointment is not cancelled
            f"Only a confirmed appointment can be cancelled (it is {current['status']})",
            current_status=current["status"],
        )
    free_place(ctx, doc)
    ctx.events.queue(doc["hospital_id"], doc["date"], doc.get("practitioner_id"))
    place_freed(ctx, doc["hospital_id"], doc.get("practitioner_id"), doc["date"], now)
    return public(closed)
