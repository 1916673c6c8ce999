"""Doctors, sessions and appointment types through the gateway (API.md v1.1, issue 13):
every read per doctor, the admin PUT/DELETE of one doctor, booking with a doctor and a type,
units that never overbook under concurrency, and Gomoti's v1 answers unchanged."""

from __future__ import annotations

import copy
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from pymongo import MongoClient

from schedule_service.seed import GOMOTI
from tests.helpers import assert_error_shape, booking, hospital_doc, next_weekday, slot_places

TYPES = {
    "new": {"name": "New patient", "units": 2, "minutes": 12},
    "followup": {"name": "Follow-up", "units": 1, "minutes": 5},
}


def clinic_doc(**changes) -> dict:
    """Every day 09:00-12:00 (three hourly slots of 5); two doctors in the same hours, one
    inactive, one with evening sessions of her own."""
    doc = hospital_doc(
        appointment_types=copy.deepcopy(TYPES),
        practitioners={
            "helal": {
                "name": "Dr. Helal Uddin",
                "specialty": "Medicine",
                "max_appointments_per_slot": 10,
            },
            "rina": {"name": "Dr. Rina Akter", "max_appointments_per_slot": 3},
            "off": {"name": "Dr. Off", "active": False},
            "sessions": {
                "name": "Dr. Sessions",
                "schedule": {
                    str(d): {
                        "sessions": [
                            {"start": "17:00", "end": "18:00", "slot_minutes": 20, "capacity": 2}
                        ]
                    }
                    for d in range(7)
                },
            },
        },
    )
    doc.update(changes)
    return doc


@pytest.fixture
def mongo_db(stack, mongo_url, mongo_db_name):
    """The system's MongoDB database (its source of truth)."""
    with MongoClient(mongo_url, tz_aware=True) as client:
        yield client[mongo_db_name]


def make_clinic(admin, **changes) -> str:
    resp = admin.post("/api/dynamic-slots/hospitals", clinic_doc(**changes))
    assert resp.status_code == 201, resp.text
    return resp.json()["hospital_id"]


def book(client, hid, day, slot, phone=None, **extra):
    return client.post("/api/appointments", dict(booking(hid, day, slot, phone), **extra))


def test_the_seeded_clinic_lists_its_three_doctors(gateway):
    resp = gateway.get("/api/dynamic-slots/hospitals/dhanmondi/practitioners")
    assert resp.status_code == 200, resp.text
    doctors = resp.json()["practitioners"]
    assert [d["practitioner_id"] for d in doctors] == ["helal", "karim", "rina"]
    assert doctors[0] == {
        "practitioner_id": "helal",
        "name": "Dr. Helal Uddin",
        "specialty": "Medicine",
        "active": True,
    }
    karim = gateway.get(
        f"/api/dynamic-slots/available/dhanmondi/{next_weekday(0)}?practitioner_id=karim"
    ).json()
    assert [s["start"] for s in karim["slots"]][:3] == ["10:00", "10:20", "10:40"]
    assert karim["practitioner_id"] == "karim"
    assert_error_shape(
        gateway.get("/api/dynamic-slots/hospitals/nowhere/practitioners"), 404, "hospital_not_found"
    )


def test_every_read_answers_per_doctor(gateway, admin):
    hid, day = make_clinic(admin), next_weekday(6)
    assert (
        book(admin, hid, day, "10:00", practitioner_id="helal", appointment_type="new").status_code
        == 201
    )
    q = "?practitioner_id=helal"
    available = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}{q}").json()
    assert available["practitioner_id"] == "helal" and available["hospital_id"] == hid
    assert [(s["start"], s["capacity"], s["booked"]) for s in available["slots"]] == [
        ("09:00", 10, 0),
        ("10:00", 10, 2),
        ("11:00", 10, 0),
    ]
    calendar = gateway.get(f"/api/dynamic-slots/calendar/{hid}{q}&start={day}&days=2").json()
    assert calendar["practitioner_id"] == "helal"
    assert calendar["days"][0]["slots"][1]["booked"] == 2
    counts = gateway.get(f"/api/availability/{hid}/{day}{q}").json()
    assert counts["practitioner_id"] == "helal"
    assert counts["slots"]["10:00"] == slot_places(10, 2, available=8)
    bulk = gateway.post(
        "/api/availability/bulk",
        {"hospital_id": hid, "practitioner_id": "helal", "dates": [str(day)]},
    ).json()
    assert bulk["practitioner_id"] == "helal"
    assert bulk["dates"][str(day)]["slots"]["10:00"]["booked"] == 2
    # the hospital's own slots and the other doctor's saw none of it
    own = gateway.get(f"/api/availability/{hid}/{day}").json()
    assert "practitioner_id" not in own and own["slots"]["10:00"]["booked"] == 0
    rina = gateway.get(f"/api/availability/{hid}/{day}?practitioner_id=rina").json()
    assert rina["slots"]["10:00"] == slot_places(3, 0, available=3)
    # a doctor's sessions
    sessions = gateway.get(
        f"/api/dynamic-slots/available/{hid}/{day}?practitioner_id=sessions"
    ).json()
    assert [(s["start"], s["end"], s["capacity"]) for s in sessions["slots"]] == [
        ("17:00", "17:20", 2),
        ("17:20", "17:40", 2),
        ("17:40", "18:00", 2),
    ]


def test_unknown_and_malformed_doctors_and_types_on_reads(gateway, admin):
    hid, day = make_clinic(admin), next_weekday(6)
    paths = (
        f"/api/dynamic-slots/available/{hid}/{day}",
        f"/api/dynamic-slots/calendar/{hid}",
        f"/api/availability/{hid}/{day}",
    )
    for path in paths:
        assert_error_shape(
            gateway.get(f"{path}?practitioner_id=nobody"), 404, "practitioner_not_found"
        )
        for bad in ("Helal", "helal%0A", "helal%2F", "-x", "h" * 65):
            assert_error_shape(
                gateway.get(f"{path}?practitioner_id={bad}"), 400, "validation_error"
            )
        assert_error_shape(
            gateway.get(f"{path}?appointment_type=surgery"), 422, "appointment_type_not_found"
        )
    bulk = {"hospital_id": hid, "dates": [str(day)]}
    assert_error_shape(
        gateway.post("/api/availability/bulk", dict(bulk, practitioner_id="nobody")),
        404,
        "practitioner_not_found",
    )
    assert_error_shape(
        gateway.post("/api/availability/bulk", dict(bulk, practitioner_id=["helal"])),
        400,
        "validation_error",
    )


def test_the_fit_of_an_appointment_type(gateway, admin):
    hid, day = make_clinic(admin), next_weekday(6)
    for _ in range(2):
        assert book(admin, hid, day, "09:00", practitioner_id="rina").status_code == 201
    counts = gateway.get(
        f"/api/availability/{hid}/{day}?practitioner_id=rina&appointment_type=new"
    ).json()
    assert counts["slots"]["09:00"] == slot_places(3, 2, available=1, fits=False)
    assert counts["slots"]["10:00"]["fits"] is True
    follow = gateway.get(
        f"/api/dynamic-slots/available/{hid}/{day}?practitioner_id=rina&appointment_type=followup"
    ).json()
    assert [s["fits"] for s in follow["slots"]] == [True, True, True]
    plain = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}?practitioner_id=rina").json()
    assert all("fits" not in s for s in plain["slots"])


def test_booking_with_a_doctor_and_a_type(gateway, admin, patient):
    hid, day = make_clinic(admin), next_weekday(6)
    resp = book(
        patient, hid, day, "09:00", "+8801712340001", practitioner_id="rina", appointment_type="new"
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["practitioner"] == {"practitioner_id": "rina", "name": "Dr. Rina Akter"}
    assert (made["appointment_type"], made["units"], made["serial"]) == ("new", 2, 1)
    # one active appointment per phone, hospital, doctor and date
    again = book(patient, hid, day, "10:00", "+8801712340001", practitioner_id="rina")
    assert_error_shape(again, 409, "duplicate_booking")
    assert (
        book(patient, hid, day, "10:00", "+8801712340001", practitioner_id="helal").status_code
        == 201
    )
    assert book(patient, hid, day, "10:00", "+8801712340001").status_code == 201
    # the new patient's two units and one more fill rina's 09:00 (3 units)
    assert book(admin, hid, day, "09:00", practitioner_id="rina").status_code == 201
    assert_error_shape(book(admin, hid, day, "09:00", practitioner_id="rina"), 409, "slot_full")
    assert_error_shape(
        book(admin, hid, day, "09:00", practitioner_id="off"), 422, "practitioner_inactive"
    )
    assert_error_shape(
        book(admin, hid, day, "09:00", practitioner_id="nobody"), 404, "practitioner_not_found"
    )
    assert_error_shape(
        book(admin, hid, day, "09:00", appointment_type="surgery"),
        422,
        "appointment_type_not_found",
    )
    assert_error_shape(
        book(admin, hid, day, "17:00", practitioner_id="rina"), 422, "slot_not_found"
    )
    assert book(admin, hid, day, "17:20", practitioner_id="sessions").status_code == 201
    # the admin's list (the day sheet) per doctor
    sheet = admin.get(
        "/api/appointments",
        params={"hospital_id": hid, "date": str(day), "practitioner_id": "rina"},
    ).json()
    assert sheet["total"] == 2
    assert {a["practitioner"]["practitioner_id"] for a in sheet["appointments"]} == {"rina"}
    assert_error_shape(
        admin.get("/api/appointments", params={"practitioner_id": "Rina"}), 400, "validation_error"
    )
    # cancelling frees every unit at once
    assert (
        patient.delete(f"/api/appointments/{made['appointment_id']}").json()["status"]
        == "cancelled"
    )
    rina = gateway.get(f"/api/availability/{hid}/{day}?practitioner_id=rina").json()
    assert rina["slots"]["09:00"] == slot_places(3, 1, available=2)


def test_40_concurrent_mixed_unit_bookings_never_exceed_a_doctors_capacity(
    gateway, admin, mongo_db
):
    hid, day = make_clinic(admin), next_weekday(6)
    kinds = ["new" if i % 3 == 0 else "followup" for i in range(40)]

    def attempt(i: int):
        return book(
            admin,
            hid,
            day,
            "11:00",
            f"+88017{i:08d}",
            practitioner_id="helal",
            appointment_type=kinds[i],
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(attempt, range(40)))
    statuses = sorted({r.status_code for r in answers})
    assert set(statuses) <= {201, 409}, [r.text for r in answers if r.status_code not in (201, 409)]
    made = [r.json() for r in answers if r.status_code == 201]
    units = sum(a["units"] for a in made)
    assert units <= 10 and units >= 9  # full, up to one unit a new patient could not take
    assert len({a["serial"] for a in made}) == len(made)
    stored = list(
        mongo_db.appointments.find(
            {
                "hospital_id": hid,
                "date": str(day),
                "practitioner_id": "helal",
                "status": "confirmed",
            }
        )
    )
    assert sum(d["units"] for d in stored) == units and len(stored) == len(made)
    counts = gateway.get(f"/api/availability/{hid}/{day}?practitioner_id=helal").json()
    assert counts["slots"]["11:00"]["booked"] == units
    # rina's hours are the same; she shares none of it
    assert (
        gateway.get(f"/api/availability/{hid}/{day}?practitioner_id=rina").json()["slots"]["11:00"][
            "booked"
        ]
        == 0
    )


def test_admin_puts_and_deletes_one_doctor(gateway, admin, patient):
    hid, day = make_clinic(admin), next_weekday(6)
    path = f"/api/dynamic-slots/hospitals/{hid}/practitioners"
    etag = gateway.get(f"/api/dynamic-slots/hospitals/{hid}").headers["ETag"]
    doctor = {"name": "Dr. New", "specialty": "ENT", "max_appointments_per_slot": 2}
    assert_error_shape(patient.put(f"{path}/newdoc", doctor), 403, "forbidden")
    assert_error_shape(gateway.put(f"{path}/newdoc", doctor), 401, "unauthorized")
    resp = admin.put(f"{path}/newdoc", doctor, headers={"If-Match": etag})
    assert resp.status_code == 200, resp.text
    assert (
        resp.json()["version"] == 2 and resp.json()["practitioners"]["newdoc"]["name"] == "Dr. New"
    )
    assert_error_shape(
        admin.put(f"{path}/newdoc", doctor, headers={"If-Match": etag}), 412, "precondition_failed"
    )
    listed = gateway.get(path).json()["practitioners"]
    assert "newdoc" in [d["practitioner_id"] for d in listed]
    assert (
        gateway.get(f"/api/availability/{hid}/{day}?practitioner_id=newdoc").json()["slots"][
            "09:00"
        ]["capacity"]
        == 2
    )
    # validated like a hospital edit, every problem under its path
    bad = {
        "name": "",
        "schedule": {
            "9": {"slots": []},
            "6": {"sessions": [{"start": "10:00", "end": "09:00", "slot_minutes": 2}]},
        },
    }
    errors = assert_error_shape(admin.put(f"{path}/newdoc", bad), 422, "invalid_schedule")["errors"]
    assert {"name", "schedule.9"} <= set(errors)
    assert any(k.startswith("schedule.6.sessions.0") for k in errors)
    assert_error_shape(admin.put(f"{path}/newdoc", dict(doctor, extra=1)), 400, "validation_error")
    for bad_id in ("NewDoc", "new%20doc", "-x"):
        assert_error_shape(admin.put(f"{path}/{bad_id}", doctor), 404, "practitioner_not_found")
    # a doctor holding an active appointment is not removed unless forced
    made = book(admin, hid, day, "09:00", practitioner_id="newdoc").json()
    conflict = assert_error_shape(admin.delete(f"{path}/newdoc"), 409, "schedule_conflict")
    assert [a["appointment_id"] for a in conflict["appointments"]] == [made["appointment_id"]]
    # nor are the slots taken away from under it
    evening = dict(doctor, schedule={"6": {"slots": [{"start": "18:00", "end": "19:00"}]}})
    assert_error_shape(admin.put(f"{path}/newdoc", evening), 409, "schedule_conflict")
    forced = admin.delete(f"{path}/newdoc?force=true")
    assert forced.status_code == 200, forced.text
    assert [a["appointment_id"] for a in forced.json()["stranded_appointments"]] == [
        made["appointment_id"]
    ]
    assert "newdoc" not in forced.json()["practitioners"]
    assert_error_shape(admin.delete(f"{path}/newdoc"), 404, "practitioner_not_found")
    assert_error_shape(
        gateway.get(f"/api/availability/{hid}/{day}?practitioner_id=newdoc"),
        404,
        "practitioner_not_found",
    )
    history = admin.get(f"/api/dynamic-slots/hospitals/{hid}/history").json()["changes"]
    assert [c["action"] for c in history[:2]] == ["practitioner_delete", "practitioner_put"]
    assert history[0]["forced"] is True and history[0]["changed_by"] == "portal@drhelal.com"


def test_the_hospital_put_carries_doctors_and_removes_what_it_leaves_out(admin, gateway):
    hid = make_clinic(admin, default_appointment_type="followup")
    body = hospital_doc(hid)
    resp = admin.put(f"/api/dynamic-slots/hospitals/{hid}", body)
    assert resp.status_code == 200, resp.text
    stored = gateway.get(f"/api/dynamic-slots/hospitals/{hid}").json()
    assert not {"practitioners", "appointment_types", "default_appointment_type"} & set(stored)
    assert gateway.get(f"/api/dynamic-slots/hospitals/{hid}/practitioners").json() == {
        "practitioners": []
    }
    resp = admin.put(
        f"/api/dynamic-slots/hospitals/{hid}",
        clinic_doc(hospital_id=hid, default_appointment_type="nope"),
    )
    assert_error_shape(resp, 422, "invalid_schedule")


def _v1_day(day, weekday, slots) -> dict:
    return {
        "date": str(day),
        "weekday": weekday,
        "status": "open",
        "slots": [
            {
                "start": s,
                "end": e,
                "display": d,
                "capacity": 15,
                "booked": 0,
                "held": 0,  # v1.1: read answers add `held` per slot (API.md, "Holds")
                "available": 15,
                "bookable": True,
            }
            for s, e, d in slots
        ],
        "total_capacity": 15 * len(slots),
        "total_booked": 0,
        "total_held": 0,
        "total_available": 15 * len(slots),
        "counts": "live",
    }


def test_gomotis_v1_answers_are_unchanged_byte_for_byte(admin, gateway):
    """Gomoti's document under a fresh id (nothing booked): each v1 answer is exactly the
    bytes the v1 contract gives, in its field order, with only the response fields v1.1
    adds to every read answer (`held`, `offered`, `total_held`)."""
    hid = f"g-{uuid.uuid4().hex[:8]}"
    doc = dict(copy.deepcopy(GOMOTI), hospital_id=hid)
    assert admin.post("/api/dynamic-slots/hospitals", doc).status_code == 201
    day = next_weekday(6)
    slots = [
        (f"{h}:00", f"{h + 1}:00", f"{h - 12:02d}:00 PM - {h - 11:02d}:00 PM")
        for h in range(17, 22)
    ]
    v1_day = _v1_day(day, 6, slots)
    available = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}")
    assert available.content == orjson.dumps({"hospital_id": hid, **v1_day})
    calendar = gateway.get(f"/api/dynamic-slots/calendar/{hid}?start={day}&days=1")
    assert calendar.content == orjson.dumps(
        {"hospital_id": hid, "start": str(day), "days": [v1_day]}
    )
    counts = {
        "slots": {
            s: {"capacity": 15, "booked": 0, "held": 0, "offered": 0, "available": 15}
            for s, _, _ in slots
        },
        "total_booked": 0,
        "status": "open",
        "counts": "live",
    }
    availability = gateway.get(f"/api/availability/{hid}/{day}")
    assert availability.content == orjson.dumps({"hospital_id": hid, "date": str(day), **counts})
    bulk = gateway.post("/api/availability/bulk", {"hospital_id": hid, "dates": [str(day)]})
    assert bulk.content == orjson.dumps({"hospital_id": hid, "dates": {str(day): counts}})
    hospital = gateway.get(f"/api/dynamic-slots/hospitals/{hid}").json()
    assert set(hospital) == set(GOMOTI) | {"version", "updated_at"}
    made = admin.post("/api/appointments", booking(hid, day, "17:00")).json()
    assert set(made) == {
        "appointment_id",
        "status",
        "hospital_id",
        "date",
        "slot",
        "serial",
        "patient",
        "reason",
        "booked_by",
        "created_at",
    }
    # and the real Gomoti still answers with the v1 fields only
    real = gateway.get(f"/api/dynamic-slots/available/gomoti/{day}").json()
    assert list(real) == list({"hospital_id": hid, **v1_day})


def test_concurrent_edits_of_two_doctors_keep_both(admin, gateway):
    """Each doctor's PUT is an edit of the hospital, made one at a time under its edit lock:
    two admins adding two doctors at once (no If-Match) lose neither."""
    hid = make_clinic(admin)
    path = f"/api/dynamic-slots/hospitals/{hid}/practitioners"

    def put(pid: str):
        return admin.put(f"{path}/{pid}", {"name": f"Dr. {pid}"})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(put, ["twin-a", "twin-b"]))
    # one may be told to retry while the other edits (409 edit_conflict); none is lost silently
    for resp in answers:
        assert resp.status_code in (200, 409), resp.text
        if resp.status_code == 409:
            assert_error_shape(resp, 409, "edit_conflict")
    made = [
        pid for pid, r in zip(["twin-a", "twin-b"], answers, strict=True) if r.status_code == 200
    ]
    listed = {d["practitioner_id"] for d in gateway.get(path).json()["practitioners"]}
    assert set(made) <= listed and made
    versions = sorted(r.json()["version"] for r in answers if r.status_code == 200)
    assert versions == list(range(2, 2 + len(made)))
