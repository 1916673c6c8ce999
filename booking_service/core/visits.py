"""The day of the visit: the front desk moves appointments through their visit, and the
queue of a hospital-day (or one doctor's) is answered publicly, without names or phones.

Steps (API.md, "Day of the visit"), each one conditional update in MongoDB, so when two desks
press at once one wins and the other gets `409 invalid_transition`:
    check-in   confirmed              -> checked_in
    start      confirmed, checked_in  -> in_consultation
    complete   in_consultation        -> completed
    no-show    confirmed, checked_in  -> no_show
An appointment keeps its place and serial through its visit (its capacity is not released).

When will I be called? `estimated_call_at` walks the doctor's (or the hospital's own) queue of
that day in order (slot, then serial): the clock starts at now, plus what is left of the
consultation in progress; each appointment still waiting before this one is called no earlier
than its slot's start and takes `minutes`, which is
1. its appointment type's `minutes`, when the hospital's types give them; else
2. the mean consultation observed that day in this queue (started -> completed), once
   MIN_OBSERVED consultations are complete; else
3. its slot's length over the slot's capacity, times its units.
The appointment itself is called at the later of that clock and its own slot's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pymongo.errors import PyMongoError

from booking_service.adapters import outbox
from booking_service.adapters.repository import (
    CHECKED_IN,
    COMPLETED,
    CONFIRMED,
    IN_CONSULTATION,
    NO_SHOW,
    PLACED,
    epoch_ms,
)
from booking_service.core.context import Context
from booking_service.core.places import find_visible
from booking_service.core.shapes import appointment_data, public
from shared.auth import Principal
from shared.configurations import Configuration
from shared.errors import (
    InvalidDate,
    InvalidTransition,
    NotVisitDay,
    PractitionerNotFound,
    ServiceUnavailable,
)
from shared.slots import Schedule, iso_utc, minutes, parse_date

MIN_OBSERVED = 3
WAITING = (CONFIRMED, CHECKED_IN)


@dataclass(frozen=True)
class Step:
    """A move of the visit: from which statuses, to which, and the time it stamps."""

    from_statuses: tuple[str, ...]
    to_status: str
    stamp: str


STEPS = {
    "check-in": Step((CONFIRMED,), CHECKED_IN, "checked_in_at"),
    "start": Step((CONFIRMED, CHECKED_IN), IN_CONSULTATION, "started_at"),
    "complete": Step((IN_CONSULTATION,), COMPLETED, "completed_at"),
    "no-show": Step((CONFIRMED, CHECKED_IN), NO_SHOW, "no_show_at"),
}


def _configuration(ctx: Context, hospital_id: str) -> Configuration:
    snapshot = ctx.reader.for_answer(hospital_id, [])
    return ctx.configurations.current(hospital_id, snapshot.published)


def visit_step(ctx: Context, who: Principal, appointment_id: str, name: str, now: datetime) -> dict:
    """Move an appointment one step through its visit (staff or admin), on its own date."""
    step = STEPS[name]
    doc = find_visible(ctx, who, appointment_id)
    today = _configuration(ctx, doc["hospital_id"]).schedule.today(now).isoformat()
    if doc["date"] != today:
        raise NotVisitDay(
            f"Visit steps are made on the appointment's date ({doc['date']}); today is {today}"
        )
    changes = {
        step.stamp: iso_utc(now),
        f"{step.stamp[:-3]}_by": who.user_id,  # e.g. checked_in_by: who pressed it
        "updated_ms": epoch_ms(now),
    }
    if step.to_status == IN_CONSULTATION:
        changes["started_ms"] = epoch_ms(now)  # orders "now serving"
    changed = outbox.event(
        outbox.APPOINTMENT_STATUS_CHANGED,
        {
            **appointment_data(
                doc, status=step.to_status, version=doc.get("version", 0) + 1, **changes
            ),
            "previous_status": doc["status"],
        },
        now,
    )
    try:
        moved = ctx.appointments.move(
            doc["_id"], step.from_statuses, step.to_status, changes, changed
        )
    except PyMongoError as exc:
        raise ServiceUnavailable("Visit steps are unavailable: the database is down") from exc
    if moved is None:
        current = ctx.appointments.get(doc["_id"]) or doc
        raise InvalidTransition(
            f"Cannot {name} an appointment that is {current['status']}",
            current_status=current["status"],
        )
    ctx.events.queue(moved["hospital_id"], moved["date"], moved.get("practitioner_id"))
    return public(moved)


def _topic_docs(ctx: Context, hospital_id: str, day: str, practitioner_id: str | None):
    try:
        docs = ctx.appointments.on_day(hospital_id, day, PLACED)
    except PyMongoError as exc:
        raise ServiceUnavailable("The queue is unavailable: the database is down") from exc
    return [d for d in docs if d.get("practitioner_id") == practitioner_id]


def _now_serving(docs: list[dict]) -> dict | None:
    started = [d for d in docs if d.get("started_ms")]
    if not started:
        return None
    last = max(started, key=lambda d: d["started_ms"])
    return {"slot": last["slot_start"], "serial": last["serial"]}


def queue(
    ctx: Context, hospital_id: str, day_text: str, practitioner_id: str | None, now: datetime
) -> dict:
    """The public queue of a hospital-day (or a doctor's): per slot, how many are booked and
    where they are in their visit, and the serial now being served. No names, no phones."""
    day = parse_date(day_text)
    if day is None:
        raise InvalidDate(f"{day_text!r} is not a date YYYY-MM-DD")
    schedule = _configuration(ctx, hospital_id).schedule_for(practitioner_id)
    docs = _topic_docs(ctx, hospital_id, day_text, practitioner_id)
    starts = [s.start for s in schedule.day(day, now).slots]
    starts += sorted({d["slot_start"] for d in docs} - set(starts))
    slots = []
    for start in starts:
        group = [d for d in docs if d["slot_start"] == start]
        serving = _now_serving(group)
        slots.append(
            {
                "slot": start,
                "booked": len(group),
                "checked_in": sum(d["status"] == CHECKED_IN for d in group),
                "in_consultation": sum(d["status"] == IN_CONSULTATION for d in group),
                "completed": sum(d["status"] == COMPLETED for d in group),
                "no_show": sum(d["status"] == NO_SHOW for d in group),
                "now_serving": serving["serial"] if serving else None,
            }
        )
    return {
        "hospital_id": hospital_id,
        "date": day_text,
        "practitioner_id": practitioner_id,
        "now_serving": _now_serving(docs),
        "slots": slots,
    }


def _observed_minutes(docs: list[dict]) -> float | None:
    """The mean consultation of the day so far, once MIN_OBSERVED are complete."""
    spans = []
    for d in docs:
        if d["status"] == COMPLETED and d.get("started_at") and d.get("completed_at"):
            started = datetime.fromisoformat(d["started_at"].replace("Z", "+00:00"))
            completed = datetime.fromisoformat(d["completed_at"].replace("Z", "+00:00"))
            spans.append((completed - started).total_seconds() / 60)
    return sum(spans) / len(spans) if len(spans) >= MIN_OBSERVED else None


def _visit_minutes(
    configuration: Configuration, schedule: Schedule, day: date, observed: float | None
):
    """The minutes one appointment's consultation takes (the formula in the module's doc)."""

    def of(doc: dict) -> float:
        kind = configuration.appointment_types.get(doc.get("appointment_type") or "")
        if kind is not None and kind.minutes:
            return float(kind.minutes)
        if observed is not None:
            return observed
        slot = next(
            (s for s in schedule.configured_slots(day) if s.start == doc["slot_start"]), None
        )
        if slot is None:  # a slot the configuration no longer has
            return 0.0
        length = minutes(slot.end) - minutes(slot.start)
        return length / slot.capacity * doc.get("units", 1)

    return of


def position(ctx: Context, who: Principal, appointment_id: str, now: datetime) -> dict:
    """Where an appointment is in its queue: how many wait before it, the serial now being
    served, and when it is expected to be called (its owner, staff, admin)."""
    doc = find_visible(ctx, who, appointment_id)
    hospital_id, day_text = doc["hospital_id"], doc["date"]
    practitioner_id = doc.get("practitioner_id")
    configuration = _configuration(ctx, hospital_id)
    try:
        schedule = configuration.schedule_for(practitioner_id)
    except PractitionerNotFound:  # a doctor removed since (forced): the hospital's clock
        schedule = configuration.schedule
    day = parse_date(day_text)
    docs = sorted(
        _topic_docs(ctx, hospital_id, day_text, practitioner_id),
        key=lambda d: (d["slot_start"], d["serial"] or 0),
    )
    mine = (doc["slot_start"], doc["serial"] or 0)
    ahead = [
        d for d in docs if d["status"] in WAITING and (d["slot_start"], d["serial"] or 0) < mine
    ]
    took = _visit_minutes(configuration, schedule, day, _observed_minutes(docs))
    clock = now
    for d in docs:
        if d["status"] == IN_CONSULTATION and d.get("started_at"):
            started = datetime.fromisoformat(d["started_at"].replace("Z", "+00:00"))
            clock = max(clock, started + timedelta(minutes=took(d)))
    for d in ahead:
        clock = max(clock, schedule.starts_at(day, d["slot_start"])) + timedelta(minutes=took(d))
    called = max(clock, schedule.starts_at(day, doc["slot_start"]))
    waiting = doc["status"] in WAITING
    return {
        "appointment_id": str(doc["_id"]),
        "status": doc["status"],
        "slot": doc["slot_start"],
        "serial": doc["serial"],
        "ahead": len(ahead) if waiting else 0,
        "now_serving": _now_serving(docs),
        "estimated_call_at": iso_utc(called) if waiting else None,
    }
