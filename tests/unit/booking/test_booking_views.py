"""The booking service's HTTP layer over fakes: Flask's test client, no server."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pytest

import booking_service
from shared.config import Config
from tests.unit import builders
from tests.unit.fakes import fake_context, fake_services


def next_saturday() -> str:
    day = datetime.now(ZoneInfo("Asia/Dhaka")).date() + timedelta(days=1)
    while day.weekday() != 5:
        day += timedelta(days=1)
    return day.isoformat()


# Saturdays 17:00-18:00, one place (the fields a hospital document must have, version 3).
SATURDAYS = {"6": {"slots": [{"start": "17:00", "end": "18:00"}]}}
HOSPITAL = dict(
    hospital_id="h1",
    hospital_name="H1",
    timezone="Asia/Dhaka",
    schedule=SATURDAYS,
    max_appointments_per_slot=1,
    advance_booking_days=30,
    date_overrides={},
    version=3,
)


@pytest.fixture
def app():
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False)
    ctx, schedules = fake_context(cfg)
    schedules.publish(HOSPITAL)
    return booking_service.create_app(cfg, services=fake_services(ctx), start_reconciler=False)


bearer = partial(builders.bearer, user="u1")


def body(phone="+8801711111111", day=None) -> dict:
    return {
        "hospital_id": "h1",
        "date": day or next_saturday(),
        "slot": "17:00",
        "patient": {"name": "Rahim", "phone": phone},
    }


def test_book_then_see_counts_then_full(app, client):
    day = next_saturday()
    made = client.post("/api/appointments", json=body(day=day), headers=bearer(app))
    assert made.status_code == 201, made.json
    assert made.json["serial"] == 1 and made.headers["Cache-Control"] == "no-store"
    counts = client.get(f"/api/availability/h1/{day}").json
    assert counts == {
        "hospital_id": "h1",
        "date": day,
        "slots": {"17:00": {"capacity": 1, "booked": 1, "held": 0, "offered": 0, "available": 0}},
        "total_booked": 1,
        "status": "open",
        "counts": "live",
    }
    full = client.post("/api/appointments", json=body("+8801722222222", day), headers=bearer(app))
    assert (full.status_code, full.json["error"]) == (409, "slot_full")
    bulk = client.post("/api/availability/bulk", json={"hospital_id": "h1", "dates": [day, day]})
    assert list(bulk.json["dates"]) == [day]


def test_ids_that_break_the_rule_are_not_found_or_invalid(app, client):
    day = next_saturday()
    assert client.get(f"/api/availability/H1/{day}").json["error"] == "hospital_not_found"
    assert client.get(f"/api/availability/nope/{day}").json["error"] == "hospital_not_found"
    wrong = client.post(
        "/api/appointments", json=dict(body(), hospital_id="h1/"), headers=bearer(app)
    )
    assert (wrong.status_code, wrong.json["error"]) == (400, "validation_error")
    missing = client.get("/api/appointments/" + "A" * 24, headers=bearer(app))
    assert (missing.status_code, missing.json["error"]) == (404, "appointment_not_found")


def test_register_login_and_the_list(app, client):
    account = {"name": "N", "email": "n@x.io", "phone": "+8801700000000", "password": "long-one"}
    made = client.post("/api/auth/register", json=account)
    assert made.status_code == 201 and made.json["role"] == "patient"
    token = client.post("/api/auth/login", json={"email": "n@x.io", "password": "long-one"})
    assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store"
    headers = {"Authorization": "Bearer " + token.json["access_token"]}
    assert client.post("/api/appointments", json=body(), headers=headers).status_code == 201
    listed = client.get("/api/appointments", headers=headers).json
    assert listed["total"] == 1 and listed["appointments"][0]["patient"]["name"] == "Rahim"
    wrong = client.post("/api/auth/login", json={"email": "n@x.io", "password": "wrong-one"})
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_credentials")


def test_an_idempotent_retry_replays(app, client):
    headers = {**bearer(app), "Idempotency-Key": "k-1"}
    first = client.post("/api/appointments", json=body(), headers=headers)
    again = client.post("/api/appointments", json=body(), headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json


def test_cold_answers_are_written_as_the_hot_ones(app, client):
    """@blp.response answers (flask-smorest's jsonify) and json_answer: the same compact
    UTF-8 JSON, keys in the document's order, no trailing newline."""
    import orjson

    account = {
        "name": "Nadia",
        "email": "c@x.io",
        "phone": "+8801700000009",
        "password": "long-one",
    }
    made = client.post("/api/auth/register", json=account)
    assert made.status_code == 201
    assert made.data == orjson.dumps(made.json) and not made.data.endswith(b"\n")
    assert list(made.json) == ["user_id", "email", "role", "name", "phone"]
