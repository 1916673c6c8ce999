"""Rate limits kept in Redis: bookings per patient (admins exempt), failed logins."""

from __future__ import annotations

import uuid

import pytest

import booking_service
from shared.auth import issue_token
from shared.config import Config
from tests.helpers import booking


@pytest.fixture
def client(mongo_url, redis_url, mongo_db_name):
    cfg = Config(
        mongo_url=mongo_url,
        mongo_db=mongo_db_name,
        redis_url=redis_url,
        schedule_service_url="http://127.0.0.1:9",  # nothing listens: 503 after limits
        booking_limit=2,
        booking_window_seconds=60,
        login_fail_limit=3,
        bcrypt_rounds=4,
    )
    app = booking_service.create_app(cfg, start_reconciler=False)
    return app.test_client(), cfg


def _token(cfg, role):
    user = f"{role}-{uuid.uuid4().hex[:8]}"
    return {"Authorization": "Bearer " + issue_token(cfg.jwt_secret, 60, user, user, role)}


def test_a_patient_is_limited_and_an_admin_is_not(client):
    http, cfg = client
    patient, admin = _token(cfg, "patient"), _token(cfg, "admin")
    body = booking("gomoti", "2030-01-01", "17:00")
    seen = [http.post("/api/appointments", json=body, headers=patient) for _ in range(3)]
    assert [r.status_code for r in seen[:2]] == [503, 503]  # allowed through to the schedule
    limited = seen[2]
    assert limited.status_code == 429 and limited.json["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert [
        http.post("/api/appointments", json=body, headers=admin).status_code for _ in range(4)
    ] == [503] * 4


def test_failed_logins_per_account_are_limited(client):
    http, _ = client
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    answers = [
        http.post("/api/auth/login", json={"email": email, "password": "wrong-pass"})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    other = http.post("/api/auth/login", json={"email": "x" + email, "password": "wrong-pass"})
    assert other.status_code == 401  # another account is not affected


def test_a_count_is_taken_back_only_while_its_window_lasts(redis_url):
    import redis

    from booking_service.adapters.limits import RedisCounters

    client = redis.Redis.from_url(redis_url)
    counters = RedisCounters(client)
    key = f"rl:unit:{uuid.uuid4().hex}"
    assert counters.hit(key, 60) == 1
    counters.take_back(key)
    assert int(client.get(key)) == 0 and 0 < client.ttl(key) <= 60
    client.delete(key)  # the window ended
    counters.take_back(key)
    assert client.get(key) is None  # no negative count without a window
    client.close()
