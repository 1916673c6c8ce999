"""Production guards of the configuration, and the gateway's CORS (the gateway in-process)."""

from __future__ import annotations

import pytest
import requests

from shared.config import DEFAULT_ADMIN_PASSWORD, DEFAULT_JWT_SECRET, Config
from tests.helpers import serve_in_thread

GOOD_SECRET = "s" * 40


@pytest.mark.parametrize(
    ("secret", "password", "why"),
    [
        (DEFAULT_JWT_SECRET, "a-real-password", "JWT_SECRET"),
        ("too-short", "a-real-password", "JWT_SECRET"),
        (GOOD_SECRET, DEFAULT_ADMIN_PASSWORD, "ADMIN_PASSWORD"),
    ],
)
def test_production_refuses_development_secrets(secret, password, why):
    cfg = Config(app_env="production", jwt_secret=secret, admin_password=password)
    with pytest.raises(RuntimeError, match=why):
        cfg.check_production_secrets()


def test_production_refuses_a_shifted_clock(monkeypatch):
    monkeypatch.setenv("CLOCK_OFFSET_SECONDS", "3600")
    cfg = Config(app_env="production", jwt_secret=GOOD_SECRET, admin_password="a-real-password")
    with pytest.raises(RuntimeError, match="CLOCK_OFFSET_SECONDS"):
        cfg.check_production_secrets()


def test_production_starts_with_real_secrets_and_development_with_defaults(monkeypatch):
    monkeypatch.delenv("CLOCK_OFFSET_SECONDS", raising=False)
    Config(
        app_env="production", jwt_secret=GOOD_SECRET, admin_password="a-real-password"
    ).check_production_secrets()
    Config().check_production_secrets()


def test_services_refuse_to_start_in_production_with_defaults():
    import gateway

    with pytest.raises(RuntimeError):
        gateway.create_app(Config(app_env="production"))


def test_secrets_can_come_from_files(tmp_path, monkeypatch):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(GOOD_SECRET + "\n")
    monkeypatch.setenv("JWT_SECRET_FILE", str(secret_file))
    assert Config.from_env().jwt_secret == GOOD_SECRET


@pytest.fixture(scope="module")
def cors_gateway():
    """The gateway app, served in this process (its services are never reached here)."""
    import gateway

    with serve_in_thread(gateway.create_app(Config(cors_origins=["https://app.example"]))) as url:
        yield url


def test_cors_preflight_for_a_configured_origin(cors_gateway):
    resp = requests.options(
        cors_gateway + "/api/appointments",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "Idempotency-Key" in resp.headers["Access-Control-Allow-Headers"]


def test_cors_is_not_granted_to_other_origins(cors_gateway):
    resp = requests.get(
        cors_gateway + "/healthz", headers={"Origin": "https://evil.example"}, timeout=10
    )
    assert "Access-Control-Allow-Origin" not in resp.headers
    ok = requests.get(
        cors_gateway + "/healthz", headers={"Origin": "https://app.example"}, timeout=10
    )
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert ok.json() == {"status": "ok"}
