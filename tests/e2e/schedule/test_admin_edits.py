"""Admins edit schedules: validation, If-Match, conflicts, capacity, visible at once."""

from __future__ import annotations

from tests.helpers import assert_error_shape, booking, hospital_doc, next_weekday

BASE = "/api/dynamic-slots/hospitals"


def test_create_read_replace_bumps_version_and_etag(admin, gateway):
    doc = hospital_doc(timezone="Europe/London")
    created = admin.post(BASE, doc)
    assert created.status_code == 201 and created.json()["version"] == 1
    hid = doc["hospital_id"]
    assert_error_shape(admin.post(BASE, doc), 409)
    got = gateway.get(f"{BASE}/{hid}")
    etag = got.headers["ETag"]
    changed = dict(doc, hospital_name="Renamed")
    resp = admin.put(f"{BASE}/{hid}", changed, headers={"If-Match": etag})
    assert resp.status_code == 200 and resp.json()["version"] == 2
    assert resp.headers["ETag"] != etag
    assert_error_shape(
        admin.put(f"{BASE}/{hid}", changed, headers={"If-Match": etag}), 412, "precondition_failed"
    )
    assert gateway.get(f"{BASE}/{hid}").json()["hospital_name"] == "Renamed"
    history = admin.get(f"{BASE}/{hid}/history").json()["changes"]
    assert [h["version"] for h in history] == [2, 1]
    assert history[0]["changed_by"] == "portal@drhelal.com"
    assert {"field": "hospital_name", "from": "Test Hospital", "to": "Renamed"} in history[0][
        "changes"
    ]
    assert_error_shape(gateway.get(f"{BASE}/{hid}/history"), 401, "unauthorized")


def test_invalid_schedule_reports_every_problem_at_once(admin):
    doc = hospital_doc(timezone="Mars/Base", advance_booking_days=400)
    doc["schedule"] = {
        "7": {"slots": []},
        "1": {"slots": [{"start": "10:00", "end": "09:00"}, {"start": "9:00", "end": "10:00"}]},
        "2": {
            "slots": [
                {"start": "09:00", "end": "10:30"},
                {"start": "10:00", "end": "11:00", "capacity": 0},
            ]
        },
    }
    doc["date_overrides"] = {"2026-02-30": {"closed": True}}
    body = assert_error_shape(admin.post(BASE, doc), 422, "invalid_schedule")
    fields = set(body["errors"])
    assert {
        "timezone",
        "advance_booking_days",
        "schedule.7",
        "schedule.1.slots.0.end",
        "schedule.1.slots.1.start",
        "schedule.2.slots",
        "schedule.2.slots.1.capacity",
        "date_overrides.2026-02-30",
    } <= fields, fields


def test_overrides_close_a_day_with_a_reason_and_open_a_closed_weekday(admin, gateway, hospital):
    hid = hospital["hospital_id"]
    closed_day, extra_day = next_weekday(2), next_weekday(5)
    doc = {k: v for k, v in hospital.items() if k not in ("version", "updated_at")}
    doc["schedule"] = {k: v for k, v in doc["schedule"].items() if k != "5"}
    doc["date_overrides"] = {
        str(closed_day): {"closed": True, "reason": "Victory Day"},
        str(extra_day): {"slots": [{"start": "18:00", "end": "19:00", "capacity": 2}]},
    }
    assert admin.put(f"{BASE}/{hid}", doc).status_code == 200
    closed = gateway.get(f"/api/dynamic-slots/available/{hid}/{closed_day}").json()
    assert closed["status"] == "closed" and closed["reason"] == "Victory Day"
    opened = gateway.get(f"/api/dynamic-slots/available/{hid}/{extra_day}").json()
    assert opened["status"] == "open" and [s["start"] for s in opened["slots"]] == ["18:00"]
    assert opened["slots"][0]["capacity"] == 2
    # overrides do not leak into the neighbouring days
    from datetime import timedelta

    def slots_on(day):
        body = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()
        return body["status"], [s["start"] for s in body["slots"]]

    regular = ["09:00", "10:00", "11:00"]
    assert slots_on(closed_day - timedelta(days=1)) == ("open", regular)
    assert slots_on(closed_day + timedelta(days=1)) == ("open", regular)
    assert slots_on(extra_day + timedelta(days=1)) == ("open", regular)
    assert slots_on(extra_day + timedelta(days=7)) == ("closed", [])  # Fridays: not scheduled


def test_removing_a_booked_slot_is_a_conflict_unless_forced(admin, gateway, hospital):
    hid, day = hospital["hospital_id"], next_weekday(6)
    appt = admin.post("/api/appointments", booking(hid, day, "11:00")).json()
    doc = {k: v for k, v in hospital.items() if k not in ("version", "updated_at")}
    doc["date_overrides"] = {str(day): {"closed": True, "reason": "Doctor away"}}
    body = assert_error_shape(admin.put(f"{BASE}/{hid}", doc), 409, "schedule_conflict")
    assert [a["appointment_id"] for a in body["appointments"]] == [appt["appointment_id"]]
    assert gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()["status"] == "open"
    forced = admin.put(f"{BASE}/{hid}", dict(doc, force=True))
    assert forced.status_code == 200
    assert [a["appointment_id"] for a in forced.json()["stranded_appointments"]] == [
        appt["appointment_id"]
    ]
    assert admin.get(f"/api/appointments/{appt['appointment_id']}").json()["status"] == "confirmed"
    assert gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()["status"] == "closed"


def test_capacity_changes_keep_booked_patients_and_take_effect_at_once(admin, gateway, hospital):
    hid, day = hospital["hospital_id"], next_weekday(4)
    for _ in range(4):
        assert admin.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201
    doc = {k: v for k, v in hospital.items() if k not in ("version", "updated_at")}
    doc["max_appointments_per_slot"] = 2
    assert admin.put(f"{BASE}/{hid}", doc).status_code == 200
    slot = gateway.get(f"/api/dynamic-slots/available/{hid}/{day}").json()["slots"][0]
    assert (slot["capacity"], slot["booked"], slot["available"]) == (2, 4, 0)
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "09:00")), 409, "slot_full"
    )
    doc["max_appointments_per_slot"] = 6
    assert admin.put(f"{BASE}/{hid}", doc).status_code == 200
    # the very next booking, whichever booking process takes it, sees the new capacity
    made = [
        admin.post("/api/appointments", booking(hid, day, "09:00")).status_code for _ in range(3)
    ]
    assert made == [201, 201, 409]
    assert (
        len(admin.get(f"/api/appointments?hospital_id={hid}&date={day}").json()["appointments"])
        == 6
    )


def test_an_edit_through_one_process_is_seen_by_others_on_the_next_request(stack, admin):
    """Separate single-worker processes, each with a warm cache of the old configuration."""
    from tests.helpers import Api

    editor = stack.extra_service("schedule-editor", "schedule")
    reader = stack.extra_service("schedule-reader", "schedule")
    booker = stack.extra_service("booking-other", "booking", env={"RECONCILER_ENABLED": "0"})
    try:
        doc = hospital_doc(max_appointments_per_slot=1)
        hid, day = doc["hospital_id"], next_weekday(6)
        assert admin.post(BASE, doc).status_code == 201
        as_reader = Api(reader.url)
        as_booker = Api(booker.url, admin.token)
        # warm every cache with version 1: capacity 1, and the place taken
        assert (
            as_reader.get(f"/api/dynamic-slots/available/{hid}/{day}").json()["slots"][0][
                "capacity"
            ]
            == 1
        )
        assert as_booker.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201
        assert_error_shape(
            as_booker.post("/api/appointments", booking(hid, day, "09:00")), 409, "slot_full"
        )
        edited = Api(editor.url, admin.token).put(
            f"{BASE}/{hid}", dict(doc, max_appointments_per_slot=2)
        )
        assert edited.status_code == 200 and edited.json()["version"] == 2
        # the very next requests, to processes that did not make the edit
        assert as_booker.post("/api/appointments", booking(hid, day, "09:00")).status_code == 201
        slot = as_reader.get(f"/api/dynamic-slots/available/{hid}/{day}").json()["slots"][0]
        assert (slot["capacity"], slot["booked"], slot["available"]) == (2, 2, 0)
    finally:
        for proc in (editor, reader, booker):
            proc.stop()
