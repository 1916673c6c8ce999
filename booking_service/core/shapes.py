"""How the API shows an appointment, a hold and a waitlist entry: one builder per resource,
used by every answer (written once, by orjson) and by the webhook events that carry them.
The schemas in api/schemas.py document the same shapes for OpenAPI, field for field and in
the same order (tests/unit/booking/test_shapes.py holds them to it)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.slots import iso_utc

# When each step happened (ISO 8601 UTC), as the API shows them.
VISIT_STAMPS = ("cancelled_at", "checked_in_at", "started_at", "completed_at", "no_show_at")


def public(doc: dict) -> dict:
    """An appointment as the API shows it."""
    out = {
        "appointment_id": str(doc["_id"]),
        "status": doc["status"],
        "hospital_id": doc["hospital_id"],
        "date": doc["date"],
        "slot": doc["slot"],
        "serial": doc.get("serial"),
        "patient": doc["patient"],
        "reason": doc.get("reason"),
        "booked_by": doc["booked_by"],
        "created_at": iso_utc(doc["created_at"]),
    }
    for stamp in VISIT_STAMPS:
        if doc.get(stamp):
            out[stamp] = doc[stamp]
    if doc.get("practitioner"):
        out["practitioner"] = doc["practitioner"]
    if doc.get("appointment_type"):
        out["appointment_type"] = doc["appointment_type"]
        out["units"] = doc.get("units", 1)
    if doc.get("hold_id"):
        out["hold_id"] = doc["hold_id"]
    if doc.get("moves"):
        out["rescheduled_from"] = doc["moves"][-1]["from"]
        out["moves"] = doc["moves"]
    if doc.get("moving"):  # a reschedule under way (an admin's edit must see where to)
        move = doc["moving"]
        out["moving_to"] = {"date": move["date"], "slot": move["slot_start"]}
        if move.get("practitioner_id"):
            out["moving_to"]["practitioner_id"] = move["practitioner_id"]
    return out


def appointment_data(doc: dict, **changes) -> dict:
    """What an appointment event says: the appointment after the change (as the API shows it,
    patient included: a clinic's SMS gateway needs the phone) and its version."""
    after = {**doc, **changes}
    data = public(after)
    data["version"] = after.get("version", 0)
    return data


def public_hold(doc: dict) -> dict:
    """A hold as the API shows it."""
    out = {
        "hold_id": str(doc["_id"]),
        "state": doc["state"],
        "expires_at": iso_utc(datetime.fromtimestamp(doc["expires_ms"] / 1000, tz=UTC)),
        "hospital_id": doc["hospital_id"],
        "practitioner_id": doc.get("practitioner_id"),
        "date": doc["date"],
        "slot": doc["slot_start"],
        "serial": doc.get("serial"),
        "units": doc.get("units", 1),
        "appointment_type": doc.get("appointment_type"),
    }
    if doc.get("waitlist_id"):
        out["waitlist_id"] = doc["waitlist_id"]
    if doc.get("appointment_id"):
        out["appointment_id"] = doc["appointment_id"]
    return out


def public_entry(doc: dict, position: int | None = None) -> dict:
    """A waitlist entry as the API shows it."""
    out = {"waitlist_id": str(doc["_id"]), "status": doc["status"]}
    if position is not None:
        out["position"] = position
    out |= {
        "hospital_id": doc["hospital_id"],
        "practitioner_id": doc.get("practitioner_id"),
        "date": doc["date"],
        "slot": doc.get("slot_start"),
        "patient": doc["patient"],
        "appointment_type": doc.get("appointment_type"),
        "created_at": iso_utc(_instant(doc["created_ms"])),
    }
    if doc.get("hold_id"):
        out["hold_id"] = doc["hold_id"]
        out["offered_slot"] = doc.get("offered_slot")
        out["offer_expires_at"] = iso_utc(_instant(doc["offer_expires_ms"]))
    if doc.get("appointment_id"):
        out["appointment_id"] = doc["appointment_id"]
    return out


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def page_answer(name: str, items: list, page: int, per_page: int, total: int) -> dict:
    """A page of a list, as every list answers it: the items under `name`, the page, its
    size and the total."""
    return {name: items, "page": page, "per_page": per_page, "total": total}
