"""Configuration from the environment: one class, typed helpers, every variable in the README."""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import clock

DEFAULT_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"
DEFAULT_ADMIN_EMAIL = "portal@drhelal.com"
DEFAULT_ADMIN_PASSWORD = "123456"


def env_str(name: str, default: str) -> str:
    """Read a string, or the contents of the file named by NAME_FILE (for secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    """Read an integer; a malformed value is a startup error, not a silent default."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    """Read a float; a malformed value is a startup error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass
class Config:
    """Settings shared by the three processes; each reads what it needs."""

    app_env: str = "development"
    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_db: str = "slotbook"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    schedule_service_url: str = "http://127.0.0.1:8001"
    booking_service_url: str = "http://127.0.0.1:8002"
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_ttl_seconds: int = 3600
    admin_email: str = DEFAULT_ADMIN_EMAIL
    admin_password: str = DEFAULT_ADMIN_PASSWORD
    upstream_connect_timeout: float = 1.0
    upstream_read_timeout: float = 5.0
    redis_timeout: float = 1.0
    mongo_timeout_ms: int = 3000
    pending_timeout_seconds: float = 30.0
    reconcile_interval_seconds: float = 2.0
    reconciler_enabled: bool = True
    max_body_bytes: int = 64 * 1024
    login_fail_limit: int = 10
    login_fail_window_seconds: int = 900
    login_fail_ip_limit: int = 50
    booking_limit: int = 10
    register_limit: int = 20
    register_window_seconds: int = 3600
    booking_window_seconds: int = 3600
    bcrypt_rounds: int = 12
    hold_limit: int = 2
    desk_hold_limit: int = 50
    waitlist_limit: int = 5
    # Webhooks (booking_service/webhooks*.py): attempts before a delivery is dead, the base and
    # cap of the exponential backoff, the time limit of one attempt, how often each process
    # looks for work, how long a claimed attempt is its process's alone, and whether private
    # addresses may receive deliveries in production.
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 2.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_timeout_seconds: float = 5.0
    webhook_poll_seconds: float = 1.0
    webhook_lease_seconds: float = 30.0
    webhook_allow_private: bool = False
    # Attempts under way at once per process (at most half of them for one webhook).
    webhook_concurrency: int = 4
    # The key every webhook's signing secret is derived from (with the webhook's own salt);
    # empty: JWT_SECRET's. MongoDB keeps the salts only.
    webhook_secrets_key: str = ""
    # Calendar feeds (booking_service/calendars*.py): the public origin their URLs start with
    # (empty: URLs relative to the gateway).
    feeds_base_url: str = ""

    @classmethod
    def from_env(cls) -> Config:
        """Build the settings from environment variables, defaults for local development."""
        return cls(
            app_env=env_str("APP_ENV", "development"),
            mongo_url=env_str("MONGO_URL", cls.mongo_url),
            mongo_db=env_str("MONGO_DB", cls.mongo_db),
            redis_url=env_str("REDIS_URL", cls.redis_url),
            redis_cluster=env_str("REDIS_CLUSTER", "0") in ("1", "true", "yes"),
            schedule_service_url=env_str("SCHEDULE_SERVICE_URL", cls.schedule_service_url),
            booking_service_url=env_str("BOOKING_SERVICE_URL", cls.booking_service_url),
            jwt_secret=env_str("JWT_SECRET", DEFAULT_JWT_SECRET),
            jwt_ttl_seconds=env_int("JWT_TTL_SECONDS", cls.jwt_ttl_seconds),
            admin_email=env_str("ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL),
            admin_password=env_str("ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD),
            upstream_connect_timeout=env_float(
                "UPSTREAM_CONNECT_TIMEOUT", cls.upstream_connect_timeout
            ),
            upstream_read_timeout=env_float("UPSTREAM_READ_TIMEOUT", cls.upstream_read_timeout),
            redis_timeout=env_float("REDIS_TIMEOUT", cls.redis_timeout),
            mongo_timeout_ms=env_int("MONGO_TIMEOUT_MS", cls.mongo_timeout_ms),
            pending_timeout_seconds=env_float(
                "PENDING_TIMEOUT_SECONDS", cls.pending_timeout_seconds
            ),
            reconcile_interval_seconds=env_float(
                "RECONCILE_INTERVAL_SECONDS", cls.reconcile_interval_seconds
            ),
            reconciler_enabled=env_str("RECONCILER_ENABLED", "1") in ("1", "true", "yes"),
            max_body_bytes=env_int("MAX_BODY_BYTES", cls.max_body_bytes),
            login_fail_limit=env_int("LOGIN_FAIL_LIMIT", cls.login_fail_limit),
            login_fail_window_seconds=env_int(
                "LOGIN_FAIL_WINDOW_SECONDS", cls.login_fail_window_seconds
            ),
            login_fail_ip_limit=env_int("LOGIN_FAIL_IP_LIMIT", cls.login_fail_ip_limit),
            booking_limit=env_int("BOOKING_LIMIT", cls.booking_limit),
            register_limit=env_int("REGISTER_LIMIT", cls.register_limit),
            register_window_seconds=env_int("REGISTER_WINDOW_SECONDS", cls.register_window_seconds),
            booking_window_seconds=env_int("BOOKING_WINDOW_SECONDS", cls.booking_window_seconds),
            bcrypt_rounds=env_int("BCRYPT_ROUNDS", cls.bcrypt_rounds),
            hold_limit=env_int("HOLD_LIMIT", cls.hold_limit),
            desk_hold_limit=env_int("DESK_HOLD_LIMIT", cls.desk_hold_limit),
            waitlist_limit=env_int("WAITLIST_LIMIT", cls.waitlist_limit),
            webhook_max_attempts=env_int("WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts),
            webhook_backoff_seconds=env_float(
                "WEBHOOK_BACKOFF_SECONDS", cls.webhook_backoff_seconds
            ),
            webhook_backoff_max_seconds=env_float(
                "WEBHOOK_BACKOFF_MAX_SECONDS", cls.webhook_backoff_max_seconds
            ),
            webhook_timeout_seconds=env_float(
                "WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds
            ),
            webhook_poll_seconds=env_float("WEBHOOK_POLL_SECONDS", cls.webhook_poll_seconds),
            webhook_lease_seconds=env_float("WEBHOOK_LEASE_SECONDS", cls.webhook_lease_seconds),
            webhook_allow_private=env_str("WEBHOOK_ALLOW_PRIVATE", "0") in ("1", "true", "yes"),
            webhook_secrets_key=env_str("WEBHOOK_SECRETS_KEY", ""),
            webhook_concurrency=env_int("WEBHOOK_CONCURRENCY", cls.webhook_concurrency),
            feeds_base_url=env_str("FEEDS_BASE_URL", cls.feeds_base_url),
        )

    @property
    def production(self) -> bool:
        """True when APP_ENV says production."""
        return self.app_env == "production"

    def check_production_secrets(self) -> None:
        """Refuse to start in production with a development secret or password."""
        if not self.production:
            return
        if self.jwt_secret == DEFAULT_JWT_SECRET or len(self.jwt_secret) < 32:
            raise RuntimeError(
                "APP_ENV=production needs JWT_SECRET (32+ characters), not the default"
            )
        if self.webhook_secrets_key and len(self.webhook_secrets_key) < 32:
            raise RuntimeError("APP_ENV=production needs WEBHOOK_SECRETS_KEY of 32+ characters")
        if clock.offset_seconds():
            raise RuntimeError("APP_ENV=production refuses CLOCK_OFFSET_SECONDS (tests only)")
        if self.admin_password == DEFAULT_ADMIN_PASSWORD:
            raise RuntimeError("APP_ENV=production refuses the default ADMIN_PASSWORD")
