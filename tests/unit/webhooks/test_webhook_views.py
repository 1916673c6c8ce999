"""The webhooks' HTTP layer over fakes (Flask's test client, no server): the app built from
fake_services, as booking_service/bootstrap.py builds it from MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks.webhooks import Webhook

import booking_service
from booking_service.integrations.webhooks import service as webhooks_service
from booking_service.integrations.webhooks.delivery import deliver_due
from booking_service.integrations.webhooks.relay import (
    relay,
)
from booking_service.integrations.webhooks.routes import EXTENSION, WORKER_EXTENSION
from shared.auth import issue_token
from shared.config import Config
from tests.unit.fakes import fake_context, fake_services
from tests.unit.webhooks.webhook_support import (
    ms,
)

# --- Views (the service over fakes in place of MongoDB) -----------------------------------


HOSPITAL = {
    "hospital_id": "h1",
    "hospital_name": "Gomoti Hospital",
    "timezone": "Asia/Dhaka",
    "schedule": {str(d): {"slots": [{"start": "17:00", "end": "18:00"}]} for d in range(7)},
    "max_appointments_per_slot": 3,
    "advance_booking_days": 10,
    "date_overrides": {},
    "version": 1,
}


@pytest.fixture
def services():
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False)
    ctx, schedules = fake_context(cfg)
    schedules.publish(HOSPITAL)
    return fake_services(ctx)


@pytest.fixture
def app(services):
    cfg = services.context.config
    made = booking_service.create_app(cfg, services=services, start_reconciler=False)
    assert made.extensions[EXTENSION] is services.webhooks
    assert WORKER_EXTENSION not in made.extensions  # no worker where no reconciler runs
    return made


def bearer(app, role: str) -> dict:
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, "u1", "u1@x.io", role)}


def test_the_views_admin_only_secret_once(app):
    client, admin = app.test_client(), bearer(app, "admin")
    body = {"url": "http://127.0.0.1:9/x", "events": ["appointment.created"]}
    assert client.post("/api/webhooks", json=body).status_code == 401
    for role in ("patient", "staff"):
        resp = client.post("/api/webhooks", json=body, headers=bearer(app, role))
        assert resp.status_code == 403 and resp.get_json()["error"] == "forbidden"
    made = client.post("/api/webhooks", json=body, headers=admin)
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    hook = made.get_json()
    assert set(hook) == {"webhook_id", "url", "events", "active", "created_at", "secret"}
    listed = client.get("/api/webhooks", headers=admin).get_json()["webhooks"]
    assert listed == [{k: v for k, v in hook.items() if k != "secret"}]
    path = f"/api/webhooks/{hook['webhook_id']}"
    assert client.get(path + "/deliveries", headers=admin).get_json()["total"] == 0
    assert client.delete(path, headers=admin).status_code == 204
    assert client.delete(path, headers=admin).status_code == 204
    assert client.get("/api/webhooks", headers=admin).get_json()["webhooks"] == []
    assert client.delete(f"/api/webhooks/{'f' * 24}", headers=admin).status_code == 404
    assert client.get("/api/webhooks/F" + "f" * 23, headers=admin).get_json()["error"] == (
        "webhook_not_found"
    )


def test_a_booking_over_http_is_relayed_and_delivered_signed(app, services):
    client, admin = app.test_client(), bearer(app, "admin")
    body = {"url": "http://127.0.0.1:9/x", "events": ["appointment.created"]}
    hook = client.post("/api/webhooks", json=body, headers=admin).get_json()
    day = (datetime.now(ZoneInfo("Asia/Dhaka")).date() + timedelta(days=2)).isoformat()
    patient = {"name": "Rahim", "phone": "+8801711111111"}
    booked = client.post(
        "/api/appointments",
        json={"hospital_id": "h1", "date": day, "slot": "17:00", "patient": patient},
        headers=bearer(app, "patient"),
    )
    assert booked.status_code == 201, booked.get_json()
    webhooks = services.webhooks
    assert relay(webhooks, ms(datetime.now(UTC))) == 1
    assert webhooks.sources.pending("appointment", 10) == []  # the outbox emptied
    assert deliver_due(webhooks, "me") == 1
    ((url, sent, headers),) = webhooks.sender.sent
    payload = Webhook(hook["secret"]).verify(sent.decode(), headers)
    assert url == body["url"] and payload["type"] == "appointment.created"
    assert payload["data"]["appointment_id"] == booked.get_json()["appointment_id"]
    log = client.get(f"/api/webhooks/{hook['webhook_id']}/deliveries", headers=admin).get_json()
    assert [d["state"] for d in log["deliveries"]] == ["delivered"]


def test_the_number_of_webhooks_is_bounded(app, monkeypatch):
    monkeypatch.setattr(webhooks_service, "MAX_ACTIVE_WEBHOOKS", 2)
    client, admin = app.test_client(), bearer(app, "admin")
    body = {"url": "http://127.0.0.1:9/x", "events": ["waitlist.offered"]}
    assert [client.post("/api/webhooks", json=body, headers=admin).status_code for _ in "abc"] == [
        201,
        201,
        409,
    ]


def test_duplicate_events_are_refused(app):
    body = {"url": "http://127.0.0.1:9/x", "events": ["waitlist.offered", "waitlist.offered"]}
    resp = app.test_client().post("/api/webhooks", json=body, headers=bearer(app, "admin"))
    assert resp.status_code == 400 and "events" in resp.get_json()["errors"]
