"""An edit's conflict check (schedule_service/conflicts.py) over a stand-in of the booking
service's `GET /api/appointments`: which appointments an edit without `force` would strand."""

from __future__ import annotations

import copy
from functools import partial

from schedule_service.conflicts import ConflictChecker, Stranded
from tests.unit import builders
from tests.unit.builders import NOW, SAT

hospital = partial(builders.hospital, "booking")
DAY = SAT.isoformat()


class Answer:
    status_code = 200

    def __init__(self, body: dict):
        self.body = body

    def json(self) -> dict:
        return self.body


class BookingService:
    """The booking service's lists: appointments by status, and the live holds: what each
    query of the check is answered."""

    def __init__(self, by_status: dict[str, list[dict]], held: list[dict] | None = None):
        self.by_status = by_status
        self.held = held or []
        self.asked: list[str] = []

    def get(self, url, params, headers, timeout):
        if url.endswith("/api/holds"):
            assert params["state"] == "held"
            self.asked.append("holds")
            found, name = self.held, "holds"
        else:
            self.asked.append(params["status"])
            found, name = self.by_status.get(params["status"], []), "appointments"
        return Answer({name: found, "page": 1, "per_page": 500, "total": len(found)})


def appointment(slot: str, **more) -> dict:
    return {
        "appointment_id": "6745f0a1b2c3d4e5f6a7b8c9",
        "hospital_id": "h1",
        "date": DAY,
        "slot": {"start": slot, "end": "x"},
        "serial": 1,
        "status": "confirmed",
        **more,
    }


def without_the_evening() -> tuple[dict, dict]:
    """A hospital, and the edit that removes its Saturday 18:00 slot."""
    old = hospital()
    new = copy.deepcopy(old)
    new["schedule"]["6"]["slots"] = [{"start": "17:00", "end": "18:00"}]
    return old, new


def stranded(service: BookingService) -> list[dict]:
    """The appointments the edit strands (it strands no hold here)."""
    found = look(service)
    assert found.holds == []
    return found.appointments


def look(service: BookingService) -> Stranded:
    checker = ConflictChecker(service, "http://booking", (1, 1))
    old, new = without_the_evening()
    return checker.stranded(old, new, NOW, "Bearer t")


def test_an_appointment_in_a_removed_slot_is_stranded():
    service = BookingService({"active": [appointment("18:00"), appointment("17:00")]})
    assert [a["slot"]["start"] for a in stranded(service)] == ["18:00"]


def test_a_reschedule_under_way_into_a_removed_slot_is_stranded_too():
    """Issue 22: the place a move has taken in the removed slot counts, though the
    appointment is still at 17:00 (the check used to look only where appointments are)."""
    moving = appointment("17:00", moving_to={"date": DAY, "slot": "18:00"})
    service = BookingService({"active": [appointment("17:00")], "moving": [moving]})
    (found,) = stranded(service)
    assert found["moving_to"] == {"date": DAY, "slot": "18:00"}
    assert service.asked == ["active", "moving", "holds"]


def test_a_reschedule_under_way_into_a_kept_slot_strands_nothing():
    moving = appointment("18:00", moving_to={"date": DAY, "slot": "17:00"})
    assert stranded(BookingService({"moving": [moving]})) == []


def test_a_move_from_one_removed_slot_to_another_is_named_once():
    """Where it is and where it goes are both removed (the edit closes the whole evening and
    more): the refusal names the appointment once."""
    moving = appointment("18:00", moving_to={"date": DAY, "slot": "18:00"})
    service = BookingService({"active": [appointment("18:00")], "moving": [moving]})
    assert [a["appointment_id"] for a in stranded(service)] == [moving["appointment_id"]]


def a_hold(slot: str, **more) -> dict:
    return {
        "hold_id": "6745f0a1b2c3d4e5f6a7b8d0",
        "state": "held",
        "hospital_id": "h1",
        "practitioner_id": None,
        "date": DAY,
        "slot": slot,
        "serial": 2,
        **more,
    }


def test_live_holds_and_offers_in_a_removed_slot_are_stranded_too():
    """Issue 22, edits see every place: a hold or a waitlist offer in the removed slot
    refuses the edit as an appointment does; those in kept slots, of a doctor's schedule
    elsewhere or of another hospital do not."""
    offer = a_hold("18:00", hold_id="6745f0a1b2c3d4e5f6a7b8d1", waitlist_id="w1")
    service = BookingService(
        {},
        held=[
            a_hold("18:00"),
            offer,
            a_hold("17:00"),
            a_hold("18:00", practitioner_id="d1"),
            a_hold("18:00", hospital_id="h2"),
        ],
    )
    found = look(service)
    assert found.appointments == []
    assert [(h["hold_id"], h.get("waitlist_id")) for h in found.holds] == [
        ("6745f0a1b2c3d4e5f6a7b8d0", None),
        ("6745f0a1b2c3d4e5f6a7b8d1", "w1"),
    ]
    assert bool(found) and "2 held place(s)" in found.message()
