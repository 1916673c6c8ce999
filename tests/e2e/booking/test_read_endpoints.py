"""The read endpoints of the contract, through the gateway (issue: foundation)."""

from __future__ import annotations

from tests.helpers import assert_error_shape, next_weekday


def test_next_saturday_has_five_slots_of_fifteen_from_17_to_22(gateway):
    saturday = next_weekday(6)
    resp = gateway.get(f"/api/dynamic-slots/available/gomoti/{saturday}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "open" and body["weekday"] == 6
    assert [s["start"] for s in body["slots"]] == ["17:00", "18:00", "19:00", "20:00", "21:00"]
    assert body["slots"][-1]["end"] == "22:00"
    assert body["slots"][0]["display"] == "05:00 PM - 06:00 PM"
    assert all(s["capacity"] == 15 and s["bookable"] for s in body["slots"])
    assert body["total_capacity"] == 75
    assert body["counts"] == "live"


def test_next_thursday_has_six_slots_from_16(gateway):
    thursday = next_weekday(4)
    body = gateway.get(f"/api/dynamic-slots/available/gomoti/{thursday}").json()
    assert [s["start"] for s in body["slots"]][:2] == ["16:00", "17:00"]
    assert len(body["slots"]) == 6


def test_next_friday_is_closed(gateway):
    friday = next_weekday(5)
    body = gateway.get(f"/api/dynamic-slots/available/gomoti/{friday}").json()
    assert body["status"] == "closed" and body["reason"] == "not_scheduled"
    assert body["slots"] == [] and body["total_capacity"] == 0


def test_malformed_and_impossible_dates_are_invalid_date(gateway):
    for bad in ("2026-02-30", "28-11-2026", "tomorrow"):
        assert_error_shape(
            gateway.get(f"/api/dynamic-slots/available/gomoti/{bad}"), 400, "invalid_date"
        )
        assert_error_shape(gateway.get(f"/api/availability/gomoti/{bad}"), 400, "invalid_date")


def test_unknown_hospital_is_404(gateway):
    saturday = next_weekday(6)
    assert_error_shape(
        gateway.get(f"/api/dynamic-slots/available/nowhere/{saturday}"), 404, "hospital_not_found"
    )
    assert_error_shape(
        gateway.get("/api/dynamic-slots/hospitals/nowhere"), 404, "hospital_not_found"
    )
    assert_error_shape(
        gateway.get(f"/api/availability/nowhere/{saturday}"), 404, "hospital_not_found"
    )


def test_past_and_beyond_window_dates(gateway):
    body = gateway.get("/api/dynamic-slots/available/gomoti/2020-01-04").json()
    assert body["status"] == "past" and body["slots"] == []
    far = next_weekday(6, after=70)
    body = gateway.get(f"/api/dynamic-slots/available/gomoti/{far}").json()
    assert body["status"] == "beyond_booking_window" and body["slots"] == []


def test_hospitals_list_supports_etag_and_304(gateway):
    resp = gateway.get("/api/dynamic-slots/hospitals")
    assert resp.status_code == 200
    ids = [h["hospital_id"] for h in resp.json()["hospitals"]]
    assert "gomoti" in ids
    gomoti = next(h for h in resp.json()["hospitals"] if h["hospital_id"] == "gomoti")
    assert gomoti["timezone"] == "Asia/Dhaka" and gomoti["max_appointments_per_slot"] == 15
    assert sorted(gomoti["schedule"]) == ["1", "3", "4", "6"]
    etag = resp.headers["ETag"]
    again = gateway.get("/api/dynamic-slots/hospitals", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    one = gateway.get("/api/dynamic-slots/hospitals/gomoti")
    assert one.status_code == 200 and one.headers["ETag"]
    assert (
        gateway.get(
            "/api/dynamic-slots/hospitals/gomoti", headers={"If-None-Match": one.headers["ETag"]}
        ).status_code
        == 304
    )


def test_calendar_defaults_and_bounds(gateway):
    body = gateway.get("/api/dynamic-slots/calendar/gomoti").json()
    assert len(body["days"]) == 7 and body["days"][0]["date"] == body["start"]
    for day in body["days"]:
        assert {
            "date",
            "weekday",
            "status",
            "slots",
            "total_capacity",
            "total_booked",
            "total_available",
        } <= set(day)
    start = next_weekday(5)
    body = gateway.get(f"/api/dynamic-slots/calendar/gomoti?days=2&start={start}").json()
    assert [d["status"] for d in body["days"]] == ["closed", "open"]  # Friday, Saturday
    for bad in ("0", "93", "x", "-1"):
        assert_error_shape(
            gateway.get(f"/api/dynamic-slots/calendar/gomoti?days={bad}"), 400, "invalid_days"
        )
    assert_error_shape(
        gateway.get("/api/dynamic-slots/calendar/gomoti?start=2026-02-31"), 400, "invalid_date"
    )
    assert len(gateway.get("/api/dynamic-slots/calendar/gomoti?days=92").json()["days"]) == 92


def test_availability_and_bulk(gateway):
    saturday, friday = next_weekday(6), next_weekday(5)
    body = gateway.get(f"/api/availability/gomoti/{saturday}").json()
    assert sorted(body["slots"]) == ["17:00", "18:00", "19:00", "20:00", "21:00"]
    assert body["slots"]["17:00"]["capacity"] == 15
    assert gateway.get(f"/api/availability/gomoti/{friday}").json()["slots"] == {}
    resp = gateway.post(
        "/api/availability/bulk",
        {"hospital_id": "gomoti", "dates": [str(saturday), str(friday), str(saturday)]},
    )
    assert resp.status_code == 200
    assert sorted(resp.json()["dates"]) == sorted([str(saturday), str(friday)])
    assert_error_shape(
        gateway.post(
            "/api/availability/bulk",
            {"hospital_id": "gomoti", "dates": [str(saturday), "2026-02-30"]},
        ),
        400,
        "invalid_date",
    )
    assert_error_shape(
        gateway.post(
            "/api/availability/bulk", {"hospital_id": "gomoti", "dates": [str(saturday)] * 93}
        ),
        400,
        "validation_error",
    )
    assert_error_shape(
        gateway.post("/api/availability/bulk", {"hospital_id": "gomoti", "dates": []}),
        400,
        "validation_error",
    )
    for dates in ([str(saturday), 5], str(saturday), [None]):
        resp = gateway.post("/api/availability/bulk", {"hospital_id": "gomoti", "dates": dates})
        assert_error_shape(resp, 400, "validation_error")


def test_errors_of_every_layer_have_the_one_shape(gateway):
    assert_error_shape(gateway.get("/api/nothing-here"), 404)
    assert_error_shape(gateway.get("/not-api"), 404)
    assert_error_shape(gateway.delete("/api/dynamic-slots/hospitals"), 405, "method_not_allowed")
    resp = gateway.session.post(
        gateway.base + "/api/auth/login",
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error_shape(resp, 400)
    body = assert_error_shape(
        gateway.post("/api/auth/login", {"email": "a@b.c", "password": "x", "extra": 1}),
        400,
        "validation_error",
    )
    assert "extra" in body["errors"]
    assert "Traceback" not in resp.text


def test_request_id_is_passed_on_and_set(gateway):
    resp = gateway.get("/api/dynamic-slots/hospitals/gomoti", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    fresh = gateway.get("/api/dynamic-slots/hospitals/gomoti")
    assert len(fresh.headers["X-Request-ID"]) >= 16


def test_openapi_merged_and_docs(gateway):
    doc = gateway.get("/openapi.json").json()
    assert "/api/dynamic-slots/available/{hospital_id}/{day}" in doc["paths"]
    assert "/api/appointments" in doc["paths"]
    assert gateway.get("/docs").headers["Content-Type"].startswith("text/html")


def test_health_and_readiness(gateway, stack):
    assert gateway.get("/healthz").json() == {"status": "ok"}
    ready = gateway.get("/readyz")
    assert ready.status_code == 200, ready.text
    for url in (stack.schedule_url, stack.booking_url):
        import requests

        assert requests.get(url + "/readyz", timeout=5).json()["checks"] == {
            "mongodb": "ok",
            "redis": "ok",
        }
