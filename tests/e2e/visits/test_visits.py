"""The day of the visit through the gateway (API.md, "Day of the visit"): the staff role and
`POST /api/auth/users`, visit steps (atomic, audited, on the appointment's date), the public
queue and an appointment's position."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from tests.helpers import Api, assert_error_shape, booking, hospital_doc, open_tonight


def new_user(admin: Api, gateway: Api, role: str) -> Api:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"name": "Desk", "email": email, "phone": "+8801700000001", "password": "front-desk-1"}
    resp = admin.post("/api/auth/users", dict(body, role=role))
    assert resp.status_code == 201, resp.text
    assert resp.json()["role"] == role and "password" not in resp.text
    return gateway.login(email, "front-desk-1")


@pytest.fixture
def staff(admin, gateway) -> Api:
    return new_user(admin, gateway, "staff")


def test_only_an_admin_creates_staff_and_staff_cannot_edit_schedules(
    admin, gateway, patient, staff
):
    body = {
        "name": "X",
        "email": "x@example.com",
        "phone": "+8801700000002",
        "password": "long-enough",
    }
    assert_error_shape(patient.post("/api/auth/users", dict(body, role="staff")), 403, "forbidden")
    assert_error_shape(
        gateway.post("/api/auth/users", dict(body, role="staff")), 401, "unauthorized"
    )
    assert_error_shape(staff.post("/api/auth/users", dict(body, role="staff")), 403, "forbidden")
    for role in ("patient", "root", None):
        assert_error_shape(
            admin.post("/api/auth/users", dict(body, role=role)), 400, "validation_error"
        )
    hid = admin.post("/api/dynamic-slots/hospitals", hospital_doc()).json()["hospital_id"]
    assert_error_shape(
        staff.put(f"/api/dynamic-slots/hospitals/{hid}", hospital_doc(hid)), 403, "forbidden"
    )
    assert_error_shape(staff.get(f"/api/dynamic-slots/hospitals/{hid}/history"), 403, "forbidden")


def test_staff_book_for_anyone_and_see_every_appointment(admin, staff, patient):
    hid, today = open_tonight(admin)
    mine = patient.post("/api/appointments", booking(hid, today, "22:00")).json()
    made = staff.post("/api/appointments", booking(hid, today, "22:00"))
    assert made.status_code == 201, made.text
    seen = staff.get("/api/appointments", params={"hospital_id": hid}).json()
    assert seen["total"] == 2
    assert staff.get(f"/api/appointments/{mine['appointment_id']}").status_code == 200


def test_a_visit_moves_step_by_step_and_two_desks_never_both_win(admin, staff, patient):
    hid, today = open_tonight(admin)
    appt = patient.post("/api/appointments", booking(hid, today, "22:00")).json()
    path = f"/api/appointments/{appt['appointment_id']}"
    assert_error_shape(patient.post(f"{path}/check-in"), 403, "forbidden")
    other_desk = new_user(admin, Api(staff.base), "staff")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda desk: desk.post(f"{path}/check-in"), [staff, other_desk]))
    assert sorted(r.status_code for r in answers) == [200, 409]
    won = next(r for r in answers if r.status_code == 200).json()
    assert won["status"] == "checked_in" and won["checked_in_at"].endswith("Z")
    assert_error_shape(next(r for r in answers if r.status_code == 409), 409, "invalid_transition")
    assert_error_shape(patient.delete(path), 409, "invalid_transition")  # only confirmed
    assert_error_shape(staff.post(f"{path}/complete"), 409, "invalid_transition")
    started = staff.post(f"{path}/start")
    assert started.status_code == 200 and started.json()["status"] == "in_consultation"
    done = admin.post(f"{path}/complete").json()
    assert done["status"] == "completed" and done["completed_at"] >= done["started_at"]
    assert_error_shape(staff.post(f"{path}/no-show"), 409, "invalid_transition")
    assert_error_shape(staff.post(f"{path}/dance"), 404)
    # the owner still sees it, with every stamp
    seen = patient.get(path).json()
    assert {"checked_in_at", "started_at", "completed_at"} <= set(seen)


def test_steps_only_on_the_appointments_date(admin, staff):
    hid, today = open_tonight(admin)
    later = (datetime.fromisoformat(today) + timedelta(days=2)).date().isoformat()
    appt = staff.post("/api/appointments", booking(hid, later, "22:00")).json()
    assert_error_shape(
        staff.post(f"/api/appointments/{appt['appointment_id']}/check-in"), 422, "not_visit_day"
    )


def test_the_public_queue_and_a_patients_position(admin, gateway, staff, patient):
    hid, today = open_tonight(admin)
    first = staff.post("/api/appointments", booking(hid, today, "22:00", name="First One")).json()
    second = staff.post("/api/appointments", booking(hid, today, "22:00")).json()
    mine = patient.post("/api/appointments", booking(hid, today, "22:00")).json()
    assert staff.post(f"/api/appointments/{first['appointment_id']}/start").status_code == 200
    assert staff.post(f"/api/appointments/{second['appointment_id']}/check-in").status_code == 200
    queue = gateway.get(f"/api/queue/{hid}/{today}")
    assert queue.status_code == 200, queue.text
    body = queue.json()
    assert body["practitioner_id"] is None and body["now_serving"] == {"slot": "22:00", "serial": 1}
    assert body["slots"] == [
        {
            "slot": "22:00",
            "booked": 3,
            "checked_in": 1,
            "in_consultation": 1,
            "completed": 0,
            "no_show": 0,
            "now_serving": 1,
        }
    ]
    assert "First One" not in queue.text and "+880" not in queue.text
    position = patient.get(f"/api/appointments/{mine['appointment_id']}/queue").json()
    assert (position["serial"], position["ahead"]) == (3, 1)
    assert position["now_serving"] == {"slot": "22:00", "serial": 1}
    assert position["estimated_call_at"].endswith("Z")
    assert_error_shape(gateway.get(f"/api/queue/{hid}/2026-02-30"), 400, "invalid_date")
    assert_error_shape(
        gateway.get(f"/api/queue/{hid}/{today}?practitioner_id=nobody"),
        404,
        "practitioner_not_found",
    )
    assert_error_shape(
        gateway.get(f"/api/queue/{hid}/{today}?practitioner_id=No%0A"), 400, "validation_error"
    )
    assert_error_shape(gateway.get(f"/api/queue/NOPE/{today}"), 404, "hospital_not_found")
    assert_error_shape(
        gateway.get(f"/api/appointments/{mine['appointment_id']}/queue"), 401, "unauthorized"
    )


def test_twin_account_creations_make_one_account(admin):
    body = {
        "name": "Twin",
        "email": f"twin-{uuid.uuid4().hex[:8]}@example.com",
        "phone": "+8801700000003",
        "password": "front-desk-1",
        "role": "staff",
    }
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: admin.post("/api/auth/users", body), range(2)))
    assert sorted(r.status_code for r in answers) == [201, 409]
    assert_error_shape(next(r for r in answers if r.status_code == 409), 409, "email_taken")
    # not JSON text, a name with a control character, an email in another case (taken)
    bad = [
        dict(body, name="a\u0000b"),
        dict(body, phone="+８８０１７００００００"),
        {**body, "role": 1},
    ]
    for each in bad:
        assert_error_shape(admin.post("/api/auth/users", each), 400, "validation_error")
    taken = dict(body, email=body["email"].upper())
    assert_error_shape(admin.post("/api/auth/users", taken), 409, "email_taken")


def test_visit_steps_refuse_almost_right_ids(admin, staff):
    hid, today = open_tonight(admin)
    appt = staff.post("/api/appointments", booking(hid, today, "22:00")).json()
    oid = appt["appointment_id"]
    for bad in (oid.upper(), oid[:-1], oid + "0", f"{oid}%0A", "x" * 24):
        assert_error_shape(
            staff.post(f"/api/appointments/{bad}/start"), 404, "appointment_not_found"
        )
        assert_error_shape(
            staff.get(f"/api/appointments/{bad}/queue"), 404, "appointment_not_found"
        )
    assert_error_shape(staff.post(f"/api/appointments/{oid}/Start"), 404)
    assert staff.get(f"/api/appointments/{oid}").json()["status"] == "confirmed"
