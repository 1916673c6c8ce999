"""Attack: enumerate accounts, guess passwords in parallel, register without end; the booking
service runs in this process over the session's real Redis and Mongo.

Before: a login for an unknown email checked a cheaper dummy hash (~7 ms against ~250 ms),
so accounts could be enumerated by timing; the failed-login limit was checked before the
slow hash and counted after it, so 30 concurrent wrong guesses had 13 evaluated against a
limit of 10; and registration had no limit (each new account a new booking limit). The
idempotent retry past the booking limit: tests/e2e/security/test_booking_limit_replay.py.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import bcrypt
import pytest
import requests
from werkzeug.serving import make_server

import booking_service
from booking_service.adapters.repository import UserRepository
from booking_service.core import accounts
from shared.clients import make_mongo
from shared.config import Config
from shared.errors import InvalidCredentials


def _config(mongo_url, redis_url, mongo_db_name, **overrides) -> Config:
    return Config(
        mongo_url=mongo_url,
        mongo_db=mongo_db_name,
        redis_url=redis_url,
        schedule_service_url="http://127.0.0.1:9",
        **overrides,
    )


@pytest.fixture
def serve_booking(mongo_url, redis_url, mongo_db_name):
    """Serve a booking-service app with these settings on a free port (threaded, so
    requests really run at once); yields a function returning its base URL."""
    servers = []

    def serve(**overrides) -> str:
        # The session's other tests register from 127.0.0.1 too.
        overrides.setdefault("register_limit", 100_000)
        cfg = _config(mongo_url, redis_url, mongo_db_name, **overrides)
        app = booking_service.create_app(cfg, start_reconciler=False)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_unknown_email_costs_a_login_as_much_as_a_known_one(
    mongo_url, redis_url, mongo_db_name, monkeypatch
):
    """Both check a hash of the configured cost (bcrypt's cost is in the hash: `$2b$10$`)."""
    cfg = _config(mongo_url, redis_url, mongo_db_name, bcrypt_rounds=10)
    client = make_mongo(cfg)
    users = UserRepository(client[cfg.mongo_db])
    email = f"known-{uuid.uuid4().hex[:8]}@example.com"
    accounts.register(
        users,
        cfg,
        {"name": "K", "email": email, "phone": "+8801700000001", "password": "right-password"},
        datetime.now(UTC),
    )
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(accounts.bcrypt, "checkpw", spy)
    for who in (email, f"nobody-{uuid.uuid4().hex[:8]}@example.com"):
        with pytest.raises(InvalidCredentials):
            accounts.login(users, cfg, who, "wrong-password")
    client.close()
    assert [h[:7] for h in checked] == [b"$2b$10$", b"$2b$10$"]


def test_concurrent_wrong_guesses_never_pass_the_limit(serve_booking):
    base = serve_booking(login_fail_limit=10, login_fail_ip_limit=100_000, bcrypt_rounds=8)
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    made = requests.post(
        f"{base}/api/auth/register",
        json={"name": "T", "email": email, "phone": "+8801700000002", "password": "right-one"},
        timeout=30,
    )
    assert made.status_code == 201, made.text

    def guess(i: int) -> int:
        return requests.post(
            f"{base}/api/auth/login", json={"email": email, "password": f"wrong-{i}"}, timeout=60
        ).status_code

    with ThreadPoolExecutor(30) as pool:
        answers = Counter(pool.map(guess, range(30)))
    assert answers[401] <= 10 and answers[429] >= 20, answers
    assert set(answers) <= {401, 429}, answers


def test_a_successful_login_is_not_counted_as_a_failure(serve_booking):
    base = serve_booking(login_fail_limit=3, login_fail_ip_limit=100_000, bcrypt_rounds=4)
    email = f"ok-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(
        f"{base}/api/auth/register",
        json={"name": "O", "email": email, "phone": "+8801700000003", "password": "right-one"},
        timeout=30,
    )
    for _ in range(6):
        ok = requests.post(
            f"{base}/api/auth/login", json={"email": email, "password": "right-one"}, timeout=30
        )
        assert ok.status_code == 200, ok.text


@pytest.fixture
def fresh_registration_count(redis_url):
    """The session's other tests register from 127.0.0.1 too: start this address's count at 0
    (and leave it at 0)."""
    import redis

    from booking_service.adapters.limits import subject
    from shared import keys

    key = keys.rate_key("register-address", subject("127.0.0.1"))
    client = redis.Redis.from_url(redis_url)
    client.delete(key)
    yield
    client.delete(key)
    client.close()


def test_registrations_per_address_are_limited(serve_booking, fresh_registration_count):
    base = serve_booking(register_limit=3, register_window_seconds=60, bcrypt_rounds=4)
    answers = [
        requests.post(
            f"{base}/api/auth/register",
            json={
                "name": "Family",
                "email": f"r-{uuid.uuid4().hex[:8]}@example.com",
                "phone": "+8801700000004",
                "password": "long-enough",
            },
            timeout=30,
        )
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
