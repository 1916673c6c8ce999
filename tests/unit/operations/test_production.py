"""Production guards of the configuration (the gateway's CORS: tests/e2e/gateway)."""

from __future__ import annotations

import pytest

from shared.config import DEFAULT_ADMIN_PASSWORD, DEFAULT_JWT_SECRET, Config

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
    import booking_service
    import schedule_service

    with pytest.raises(RuntimeError):
        schedule_service.create_app(Config(app_env="production"))
    with pytest.raises(RuntimeError):
        booking_service.create_app(Config(app_env="production"), start_reconciler=False)


def test_secrets_can_come_from_files(tmp_path, monkeypatch):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(GOOD_SECRET + "\n")
    monkeypatch.setenv("JWT_SECRET_FILE", str(secret_file))
    assert Config.from_env().jwt_secret == GOOD_SECRET
