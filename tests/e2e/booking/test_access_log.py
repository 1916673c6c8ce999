"""The booking service's logs: one JSON access line per request, and no secrets in any log.

The booking service runs in this process (app.test_client()) against the session's databases
and the running schedule service, so every log record it emits is captured here.
"""

from __future__ import annotations

import json
import logging
import random

import pytest

from shared.config import Config
from tests.helpers import booking, next_weekday


class Lines(logging.Handler):
    """Keeps every formatted record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def booking_app(stack, mongo_db_name):
    """A booking-service app in this process, on the running system's databases."""
    from booking_service import create_app

    cfg = Config(
        mongo_url=stack.mongo_url,
        mongo_db=mongo_db_name,
        redis_url=stack.redis_url,
        schedule_service_url=stack.schedule_url,
        booking_service_url=stack.booking_url,
        bcrypt_rounds=4,
        reconciler_enabled=False,
    )
    return create_app(cfg, start_reconciler=False)


@pytest.fixture
def logs(caplog):
    """Every log line of the test: the access logger (which does not propagate) and the rest.

    The rest at INFO, stricter than what a service emits (Python's default WARNING; only the
    access logger is configured). Not DEBUG: pymongo's command log prints whole documents
    there, a driver debugging aid that no service turns on.
    """
    access = logging.getLogger("slotbook.access")
    handler = Lines()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    caplog.set_level(logging.INFO)
    try:
        yield handler, caplog
    finally:
        access.removeHandler(handler)
        access.setLevel(level)


def _digits(n: int) -> str:
    return "".join(random.choice("0123456789") for _ in range(n))


def test_access_lines_are_complete_and_no_log_holds_a_secret(booking_app, hospital, logs, capfd):
    handler, caplog = logs
    client = booking_app.test_client()
    email = f"log-{_digits(10)}@example.com"
    password = f"pw-{_digits(12)}-secret"
    wrong_password = f"wrong-{_digits(12)}"
    account_phone = f"+88017{_digits(8)}"
    patient_phone = f"+88018{_digits(8)}"

    registered = client.post(
        "/api/auth/register",
        json={"name": "Log Test", "email": email, "phone": account_phone, "password": password},
    )
    assert registered.status_code == 201, registered.text
    user_id = registered.json["user_id"]
    refused = client.post("/api/auth/login", json={"email": email, "password": wrong_password})
    assert refused.status_code == 401
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    token = login.json["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    body = booking(hospital["hospital_id"], next_weekday(4), "11:00", patient_phone)
    booked = client.post("/api/appointments", json=body, headers=auth)
    assert booked.status_code == 201, booked.text
    duplicate = client.post("/api/appointments", json=body, headers=auth)
    assert duplicate.status_code == 409  # its message names the phone: the log must not
    listed = client.get("/api/appointments", headers=auth)
    assert listed.status_code == 200

    access = [
        json.loads(line.split(" ", 2)[2])
        for line in handler.lines
        if line.startswith("slotbook.access ")
    ]
    assert len(access) == 6, handler.lines
    line = next(a for a in access if a["method"] == "POST" and a["status"] == 201 and a["user_id"])
    assert line["request_id"] == booked.headers["X-Request-ID"]
    assert line["route"] == "/api/appointments"
    assert line["status"] == 201
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert line["user_id"] == user_id
    assert all(a["user_id"] == user_id for a in access if a["route"] == "/api/appointments")
    assert {a["route"] for a in access} == {
        "/api/auth/register",
        "/api/auth/login",
        "/api/appointments",
    }

    out, err = capfd.readouterr()
    everything = "\n".join([*handler.lines, caplog.text, out, err])
    secrets = {
        "password": password,
        "wrong password": wrong_password,
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "account phone": account_phone,
        "account phone digits": account_phone.lstrip("+"),
        "account phone local": account_phone[4:],
        "patient phone": patient_phone,
        "patient phone digits": patient_phone.lstrip("+"),
        "patient phone local": patient_phone[4:],
    }
    leaked = [name for name, secret in secrets.items() if secret in everything]
    assert not leaked, f"{leaked} in the logs:\n{everything}"
