"""Configuration from the environment: one class, typed helpers, every variable in the README.

Each setting is a dataclass field that names its environment variable once
(`setting("MONGO_URL", default)`); `from_env` reads every such field with the reader of its
type (str, int, float, bool). tests/unit/test_settings_table.py checks that README.md's
tables list exactly the variables the code reads.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import clock

DEFAULT_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"
DEFAULT_ADMIN_EMAIL = "portal@drhelal.com"
DEFAULT_ADMIN_PASSWORD = "123456"

# What a boolean setting accepts as true (exactly, case-sensitive); anything else is false.
TRUE_WORDS = ("1", "true", "yes")


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """Read a string, or the contents of the file named by NAME_FILE (for secrets)."""
    env = _environ(environ)
    path = env.get(f"{name}_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    return env.get(name, default)


def _env_number(
    name: str, default: Any, environ: Mapping[str, str] | None, parse: type, kind: str
) -> Any:
    """Read a number; unset or empty: `default`; a malformed value is a startup error, not a
    silent default."""
    raw = _environ(environ).get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from exc


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """Read an integer."""
    return _env_number(name, default, environ, int, "an integer")


def env_float(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """Read a float."""
    return _env_number(name, default, environ, float, "a number")


def parse_bool(raw: str) -> bool:
    """The one reading of a boolean setting: `1`, `true` or `yes` is true, anything else
    (`0`, `false`, empty, `TRUE`) false."""
    return raw in TRUE_WORDS


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Read a boolean (a string, so NAME_FILE works too); unset: `default`."""
    return parse_bool(env_str(name, "1" if default else "0", environ))


# The reader of each field type.
READERS: dict[type, Callable[[str, Any, Mapping[str, str] | None], Any]] = {
    str: env_str,
    int: env_int,
    float: env_float,
    bool: env_bool,
}


def setting(env: str, default: Any, *, at_least: float | None = None) -> Any:
    """A field read from the environment variable `env` (unset or empty number: `default`);
    `at_least` raises a smaller number to that bound."""
    metadata: dict[str, Any] = {"env": env}
    if at_least is not None:
        metadata["at_least"] = at_least
    return field(default=default, metadata=metadata)


def env_names(cls: type) -> list[str]:
    """The environment variables a settings class reads, in field order."""
    return [f.metadata["env"] for f in fields(cls) if "env" in f.metadata]


def read_settings(cls: type, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The values of `cls`'s `setting` fields from the environment, by field name; each is
    read with the reader of its type."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        if "env" not in f.metadata:
            continue
        reader = READERS.get(hints[f.name])
        if reader is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no reader for {hints[f.name]!r}")
        value = reader(f.metadata["env"], f.default, environ)
        if "at_least" in f.metadata:
            value = max(f.metadata["at_least"], value)
        values[f.name] = value
    return values


@dataclass
class Config:
    """Settings shared by the three processes; each reads what it needs."""

    app_env: str = setting("APP_ENV", "development")
    mongo_url: str = setting("MONGO_URL", "mongodb://127.0.0.1:27017/?directConnection=true")
    mongo_db: str = setting("MONGO_DB", "slotbook")
    redis_url: str = setting("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_cluster: bool = setting("REDIS_CLUSTER", False)
    schedule_service_url: str = setting("SCHEDULE_SERVICE_URL", "http://127.0.0.1:8001")
    booking_service_url: str = setting("BOOKING_SERVICE_URL", "http://127.0.0.1:8002")
    jwt_secret: str = setting("JWT_SECRET", DEFAULT_JWT_SECRET)
    jwt_ttl_seconds: int = setting("JWT_TTL_SECONDS", 3600)
    admin_email: str = setting("ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    admin_password: str = setting("ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    upstream_connect_timeout: float = setting("UPSTREAM_CONNECT_TIMEOUT", 1.0)
    upstream_read_timeout: float = setting("UPSTREAM_READ_TIMEOUT", 5.0)
    redis_timeout: float = setting("REDIS_TIMEOUT", 1.0)
    mongo_timeout_ms: int = setting("MONGO_TIMEOUT_MS", 3000)
    pending_timeout_seconds: float = setting("PENDING_TIMEOUT_SECONDS", 30.0)
    reconcile_interval_seconds: float = setting("RECONCILE_INTERVAL_SECONDS", 2.0)
    reconciler_enabled: bool = setting("RECONCILER_ENABLED", True)
    max_body_bytes: int = setting("MAX_BODY_BYTES", 64 * 1024)
    login_fail_limit: int = setting("LOGIN_FAIL_LIMIT", 10)
    login_fail_window_seconds: int = setting("LOGIN_FAIL_WINDOW_SECONDS", 900)
    login_fail_ip_limit: int = setting("LOGIN_FAIL_IP_LIMIT", 50)
    booking_limit: int = setting("BOOKING_LIMIT", 10)
    register_limit: int = setting("REGISTER_LIMIT", 20)
    register_window_seconds: int = setting("REGISTER_WINDOW_SECONDS", 3600)
    booking_window_seconds: int = setting("BOOKING_WINDOW_SECONDS", 3600)
    bcrypt_rounds: int = setting("BCRYPT_ROUNDS", 12)
    hold_limit: int = setting("HOLD_LIMIT", 2)
    desk_hold_limit: int = setting("DESK_HOLD_LIMIT", 50)
    waitlist_limit: int = setting("WAITLIST_LIMIT", 5)
    record_retention_days: float = setting("RECORD_RETENTION_DAYS", 30.0)
    hold_changes_limit: int = setting("HOLD_CHANGES_LIMIT", 30)
    hold_changes_window_seconds: int = setting("HOLD_CHANGES_WINDOW_SECONDS", 3600)
    # Webhooks (booking_service/webhooks*.py): attempts before a delivery is dead, the base and
    # cap of the exponential backoff, the time limit of one attempt, how often each process
    # looks for work, how long a claimed attempt is its process's alone, and whether private
    # addresses may receive deliveries in production.
    webhook_max_attempts: int = setting("WEBHOOK_MAX_ATTEMPTS", 8)
    webhook_backoff_seconds: float = setting("WEBHOOK_BACKOFF_SECONDS", 2.0)
    webhook_backoff_max_seconds: float = setting("WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0)
    webhook_timeout_seconds: float = setting("WEBHOOK_TIMEOUT_SECONDS", 5.0)
    webhook_poll_seconds: float = setting("WEBHOOK_POLL_SECONDS", 1.0)
    webhook_lease_seconds: float = setting("WEBHOOK_LEASE_SECONDS", 30.0)
    webhook_allow_private: bool = setting("WEBHOOK_ALLOW_PRIVATE", False)
    # Attempts under way at once per process (at most half of them for one webhook).
    webhook_concurrency: int = setting("WEBHOOK_CONCURRENCY", 4)
    # The key every webhook's signing secret is derived from (with the webhook's own salt);
    # empty: JWT_SECRET's. MongoDB keeps the salts only.
    webhook_secrets_key: str = setting("WEBHOOK_SECRETS_KEY", "")
    # Calendar feeds (booking_service/calendars*.py): the public origin their URLs start with
    # (empty: URLs relative to the gateway).
    feeds_base_url: str = setting("FEEDS_BASE_URL", "")
    # Expensive answers (calendar feeds, FHIR searches) under way at once per process; one
    # more is refused at once (shared/concurrency.py).
    expensive_concurrency: int = setting("EXPENSIVE_CONCURRENCY", 1, at_least=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the settings from environment variables (`environ`, default os.environ),
        defaults for local development."""
        return cls(**read_settings(cls, environ))

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
