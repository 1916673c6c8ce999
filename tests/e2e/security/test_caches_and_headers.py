"""Attack: grow a process's memory one request at a time; read tokens out of a cache.

Before: the booking service cached a compiled configuration per raw client id, so every
alias that resolved to a hospital (`gomoti?x1`, `gomoti?x2`, ...) added ~9 KB to each
process without bound; and answers carrying tokens or personal data had no
`Cache-Control: no-store`. Now per-process caches are keyed only by validated ids that
exist, and those answers say no-store.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

import booking_service
import schedule_service
from shared.config import Config
from tests.helpers import booking, create_hospital, hospital_doc, next_weekday

pytestmark = pytest.mark.e2e


def _config(stack, mongo_url, redis_url, mongo_db_name) -> Config:
    return Config(
        mongo_url=mongo_url,
        mongo_db=mongo_db_name,
        redis_url=redis_url,
        schedule_service_url=stack.schedule_url,
        booking_service_url=stack.booking_url,
    )


def test_client_ids_never_grow_the_booking_services_cache(
    stack, mongo_url, redis_url, mongo_db_name
):
    app = booking_service.create_app(
        _config(stack, mongo_url, redis_url, mongo_db_name), start_reconciler=False
    )
    http = app.test_client()
    day = str(next_weekday(6))
    assert http.get(f"/api/availability/gomoti/{day}").status_code == 200
    for i in range(300):
        for hid in (f"gomoti?x{i}", f"gomoti/{i}", f"nope-{i}", f"GOMOTI{i}"):
            resp = http.get(f"/api/availability/{quote(hid, safe='')}/{day}")
            assert resp.status_code == 404, (hid, resp.status_code)
        bulk = http.post(
            "/api/availability/bulk", json={"hospital_id": f"gomoti#{i}", "dates": [day]}
        )
        assert bulk.status_code == 400
    assert set(app.extensions["booking.ctx"].configurations._entries) == {"gomoti"}


def test_client_ids_never_grow_the_schedule_services_cache(
    stack, mongo_url, redis_url, mongo_db_name
):
    app = schedule_service.create_app(_config(stack, mongo_url, redis_url, mongo_db_name))
    http = app.test_client()
    day = str(next_weekday(6))
    assert http.get(f"/api/dynamic-slots/available/gomoti/{day}").status_code == 200
    for i in range(300):
        for hid in (f"nope-{i}", f"gomoti%3F{i}", f"Gomoti{i}"):
            assert http.get(f"/api/dynamic-slots/available/{hid}/{day}").status_code == 404
            assert http.get(f"/api/dynamic-slots/calendar/{hid}").status_code == 404
    assert set(app.extensions["schedule.ctx"].configurations._entries) == {"gomoti"}


def test_answers_with_tokens_or_personal_data_are_no_store(gateway, admin):
    hid = create_hospital(admin, 5)
    day = next_weekday(2)
    patient = gateway.new_patient()
    registered = gateway.post(
        "/api/auth/register",
        {
            "name": "Nadia Islam",
            "email": f"n-{hid}@example.com",
            "phone": "+8801711111111",
            "password": "long-enough",
        },
    )
    logged_in = gateway.post(
        "/api/auth/login", {"email": f"n-{hid}@example.com", "password": "long-enough"}
    )
    failed_login = gateway.post(
        "/api/auth/login", {"email": f"n-{hid}@example.com", "password": "wrong-one"}
    )
    made = patient.post("/api/appointments", booking(hid, day, "09:00", "+8801722222222"))
    aid = made.json()["appointment_id"]
    removed = hospital_doc(hid, max_appointments_per_slot=5)
    removed["schedule"] = {
        str(d): {"slots": [{"start": "10:00", "end": "11:00"}]} for d in range(7)
    }
    answers = {
        "register": registered,
        "login": logged_in,
        "failed login": failed_login,
        "book": made,
        "list": patient.get("/api/appointments"),
        "one": patient.get(f"/api/appointments/{aid}"),
        "admin list": admin.get("/api/appointments", params={"hospital_id": hid}),
        "history": admin.get(f"/api/dynamic-slots/hospitals/{hid}/history"),
        "conflict": admin.put(f"/api/dynamic-slots/hospitals/{hid}", removed),
        "forced": admin.put(f"/api/dynamic-slots/hospitals/{hid}", dict(removed, force=True)),
        "cancel": patient.delete(f"/api/appointments/{aid}"),
    }
    assert answers["conflict"].status_code == 409
    assert answers["forced"].json()["stranded_appointments"]
    for name, resp in answers.items():
        assert resp.headers.get("Cache-Control") == "no-store", (name, resp.headers)
