"""Accounts and appointments through the gateway (issue: booking that never overbooks)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import assert_error_shape, booking, next_weekday, slot_places


def test_register_login_and_token_errors(gateway):
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    body = {"name": "Karim", "email": email, "phone": "+8801711111111", "password": "longenough"}
    created = gateway.post("/api/auth/register", body)
    assert created.status_code == 201 and created.json()["role"] == "patient"
    assert "password" not in created.text and "password_hash" not in created.text
    assert_error_shape(gateway.post("/api/auth/register", body), 409, "email_taken")
    short = dict(body, email="x" + email, password="short")
    assert_error_shape(gateway.post("/api/auth/register", short), 400, "validation_error")
    login = gateway.post("/api/auth/login", {"email": email.upper(), "password": "longenough"})
    assert login.status_code == 200
    answer = login.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] > 0
    assert answer["user"]["email"] == email and answer["user"]["role"] == "patient"
    assert_error_shape(
        gateway.post("/api/auth/login", {"email": email, "password": "wrong-pass"}),
        401,
        "invalid_credentials",
    )
    assert_error_shape(
        gateway.post("/api/auth/login", {"email": "nobody@x.org", "password": "whatever1"}),
        401,
        "invalid_credentials",
    )


def test_booking_needs_a_valid_token(gateway, hospital):
    day = next_weekday(6)
    req = booking(hospital["hospital_id"], day, "09:00")
    assert_error_shape(gateway.post("/api/appointments", req), 401, "unauthorized")
    assert_error_shape(
        gateway.post("/api/appointments", req, headers={"Authorization": "Bearer not.a.token"}),
        401,
        "unauthorized",
    )


def test_book_and_see_counts_then_cancel_frees_the_place(gateway, patient, hospital):
    hid, day = hospital["hospital_id"], next_weekday(6)
    resp = patient.post("/api/appointments", booking(hid, day, "10:00", "+8801712345678"))
    assert resp.status_code == 201, resp.text
    appt = resp.json()
    assert appt["status"] == "confirmed" and appt["serial"] == 1
    assert appt["slot"] == {"start": "10:00", "end": "11:00", "display": "10:00 AM - 11:00 AM"}
    assert appt["patient"]["phone"] == "+8801712345678" and appt["created_at"].endswith("Z")
    avail = gateway.get(f"/api/availability/{hid}/{day}").json()
    assert avail["slots"]["10:00"] == slot_places(5, 1, available=4)
    slots = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()["slots"]
    assert [s["booked"] for s in slots] == [0, 1, 0]
    one = patient.get(f"/api/appointments/{appt['appointment_id']}")
    assert one.status_code == 200 and one.json()["appointment_id"] == appt["appointment_id"]
    mine = patient.get("/api/appointments").json()
    assert [a["appointment_id"] for a in mine["appointments"]] == [appt["appointment_id"]]

    cancelled = patient.delete(f"/api/appointments/{appt['appointment_id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = patient.delete(f"/api/appointments/{appt['appointment_id']}")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    avail = gateway.get(f"/api/availability/{hid}/{day}").json()
    assert avail["slots"]["10:00"]["booked"] == 0
    # the same phone may book again once its appointment is cancelled
    rebook = patient.post("/api/appointments", booking(hid, day, "10:00", "+8801712345678"))
    assert rebook.status_code == 201 and rebook.json()["serial"] == 1


def test_someone_elses_appointment_is_404_and_admin_sees_all(gateway, admin, hospital):
    alice, bob = gateway.new_patient(), gateway.new_patient()
    hid, day = hospital["hospital_id"], next_weekday(3)
    appt = alice.post("/api/appointments", booking(hid, day, "09:00")).json()
    assert_error_shape(bob.get(f"/api/appointments/{appt['appointment_id']}"), 404)
    assert_error_shape(bob.delete(f"/api/appointments/{appt['appointment_id']}"), 404)
    assert bob.get("/api/appointments").json()["appointments"] == []
    assert_error_shape(bob.get("/api/appointments/not-an-id"), 404)
    seen = admin.get(f"/api/appointments/{appt['appointment_id']}")
    assert seen.status_code == 200
    listed = admin.get(f"/api/appointments?hospital_id={hid}&date={day}").json()
    assert [a["appointment_id"] for a in listed["appointments"]] == [appt["appointment_id"]]


def test_duplicate_phone_same_hospital_and_date_is_refused(patient, hospital):
    hid, day = hospital["hospital_id"], next_weekday(1)
    first = patient.post("/api/appointments", booking(hid, day, "09:00", "+8801799999999"))
    assert first.status_code == 201
    for slot in ("09:00", "11:00"):
        assert_error_shape(
            patient.post("/api/appointments", booking(hid, day, slot, "8801799999999")),
            409,
            "duplicate_booking",
        )
    other_day = patient.post(
        "/api/appointments", booking(hid, next_weekday(2), "09:00", "+8801799999999")
    )
    assert other_day.status_code == 201


def test_validation_against_the_schedule(admin, patient):
    from tests.helpers import hospital_doc

    doc = hospital_doc(
        schedule={"6": {"slots": [{"start": "09:00", "end": "10:00"}]}}, advance_booking_days=10
    )
    hid = admin.post("/api/dynamic-slots/hospitals", doc).json()["hospital_id"]
    saturday = next_weekday(6)
    assert_error_shape(
        patient.post("/api/appointments", booking(hid, next_weekday(5), "09:00")),
        422,
        "hospital_closed",
    )
    assert_error_shape(
        patient.post("/api/appointments", booking(hid, saturday, "10:00")), 422, "slot_not_found"
    )
    assert_error_shape(
        patient.post("/api/appointments", booking(hid, "2020-01-04", "09:00")),
        422,
        "outside_booking_window",
    )
    assert_error_shape(
        patient.post("/api/appointments", booking(hid, next_weekday(6, after=20), "09:00")),
        422,
        "outside_booking_window",
    )
    assert_error_shape(
        patient.post("/api/appointments", booking("nowhere", saturday, "09:00")),
        404,
        "hospital_not_found",
    )
    bad_phone = booking(hid, saturday, "09:00", "12ab")
    body = assert_error_shape(patient.post("/api/appointments", bad_phone), 400, "validation_error")
    assert "patient" in body["errors"]
    long_name = booking(hid, saturday, "09:00", name="x" * 101)
    assert_error_shape(patient.post("/api/appointments", long_name), 400, "validation_error")
    assert_error_shape(
        patient.post("/api/appointments", booking(hid, "2026-02-30", "09:00")), 400, "invalid_date"
    )


def test_a_slot_never_takes_more_than_its_capacity_and_serials_are_unique(admin, hospital):
    hid, day = hospital["hospital_id"], next_weekday(4)
    reqs = [booking(hid, day, "11:00") for _ in range(12)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda r: admin.post("/api/appointments", r), reqs))
    made = [a.json() for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert len(made) == 5
    assert all(a.status_code == 409 and a.json()["error"] == "slot_full" for a in refused)
    assert sorted(a["serial"] for a in made) == [1, 2, 3, 4, 5]
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "11:00")), 409, "slot_full"
    )


def test_idempotency_key_replays_and_refuses_reuse(patient, hospital):
    hid, day = hospital["hospital_id"], next_weekday(0)
    req = booking(hid, day, "09:00")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = patient.post("/api/appointments", req, headers=key)
    assert first.status_code == 201
    second = patient.post("/api/appointments", req, headers=key)
    assert second.status_code == 201 and second.json() == first.json()
    listed = patient.get("/api/appointments").json()
    assert listed["total"] == 1
    other = dict(req, slot="10:00")
    assert_error_shape(
        patient.post("/api/appointments", other, headers=key), 422, "idempotency_key_reused"
    )


def test_admin_list_filters_and_pagination(admin, hospital):
    hid, day = hospital["hospital_id"], next_weekday(2)
    ids = [
        admin.post("/api/appointments", booking(hid, day, slot)).json()["appointment_id"]
        for slot in ("11:00", "09:00", "09:00", "10:00")
    ]
    page1 = admin.get(f"/api/appointments?hospital_id={hid}&date={day}&per_page=3").json()
    page2 = admin.get(f"/api/appointments?hospital_id={hid}&date={day}&per_page=3&page=2").json()
    assert page1["total"] == 4 and len(page1["appointments"]) == 3
    order = [
        (a["slot"]["start"], a["serial"]) for a in page1["appointments"] + page2["appointments"]
    ]
    assert order == [("09:00", 1), ("09:00", 2), ("10:00", 1), ("11:00", 1)]
    admin.delete(f"/api/appointments/{ids[0]}")
    cancelled = admin.get(f"/api/appointments?hospital_id={hid}&status=cancelled").json()
    assert [a["appointment_id"] for a in cancelled["appointments"]] == [ids[0]]
    confirmed = admin.get(f"/api/appointments?hospital_id={hid}&status=confirmed").json()
    assert confirmed["total"] == 3


def test_patient_cannot_use_admin_schedule_endpoints(patient, gateway, hospital):
    from tests.helpers import hospital_doc

    assert_error_shape(
        patient.post("/api/dynamic-slots/hospitals", hospital_doc()), 403, "forbidden"
    )
    assert_error_shape(
        gateway.post("/api/dynamic-slots/hospitals", hospital_doc()), 401, "unauthorized"
    )
