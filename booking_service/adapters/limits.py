"""Rate limits kept in Redis (fixed windows): failed logins per account and per address,
bookings per patient. Over a limit: 429 rate_limited with Retry-After."""

from __future__ import annotations

import hashlib
from importlib import resources

import redis

from shared import keys
from shared.config import Config
from shared.errors import RateLimited


def subject(text: str) -> str:
    """A rate-limit subject: an email or address, hashed (no email or address is stored in
    Redis in the clear)."""
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()[:32]


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


class RedisCounters:
    """Fixed-window counters in Redis: a hit counts and starts the window in one script."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._hit = client.register_script(_source("count_hit.lua"))
        self._take_back = client.register_script(_source("take_back.lua"))

    def hit(self, key: str, window: int) -> int:
        """Count one hit; the count in the window, this one included."""
        return int(self._hit(keys=[key], args=[window]))

    def seconds_left(self, key: str) -> int | None:
        """Seconds until the window of `key` ends, None when it has none."""
        ttl = int(self.client.ttl(key))
        return ttl if ttl > 0 else None

    def take_back(self, key: str) -> None:
        """Undo one hit (nothing once its window has ended)."""
        self._take_back(keys=[key])


class Limiter:
    """Limits over counters; a Redis outage lets requests through (the gate still holds)."""

    def __init__(self, counters: RedisCounters, cfg: Config):
        self.counters = counters
        self.cfg = cfg

    @staticmethod
    def _refuse(wait: int, message: str) -> RateLimited:
        exc = RateLimited(message, retry_after=wait)
        exc.headers["Retry-After"] = str(wait)
        return exc

    def _count(self, key: str, limit: int, window: int, message: str) -> None:
        """Count one attempt and refuse it past `limit` in the window (counted first, so
        concurrent attempts can never all pass a check made before any was counted)."""
        try:
            count = self.counters.hit(key, window)
        except redis.RedisError:
            return
        if count > limit:
            raise self._refuse(self._wait(key, window), message)

    def _wait(self, key: str, window: int) -> int:
        try:
            return self.counters.seconds_left(key) or window
        except redis.RedisError:
            return window

    def _login_keys(self, email: str, address: str) -> list[tuple[str, int]]:
        return [
            (keys.rate_key("login-account", subject(email)), self.cfg.login_fail_limit),
            (keys.rate_key("login-address", subject(address)), self.cfg.login_fail_ip_limit),
        ]

    def begin_login(self, email: str, address: str) -> None:
        """Count a login attempt as failed before its password is checked; refuse it when the
        account or the address has too many failures. A success takes its count back
        (`login_succeeded`), so only failures stay counted, and 30 concurrent wrong guesses
        get the limit's number of checks, not 30."""
        window = self.cfg.login_fail_window_seconds
        counted = []
        try:
            for key, limit in self._login_keys(email, address):
                self._count(key, limit, window, "Too many failed logins; try again later")
                counted.append(key)
        except RateLimited:
            for key in counted:  # a refused attempt is not checked, so it is no failure
                self._undo(key)
            raise

    def login_succeeded(self, email: str, address: str) -> None:
        """Take back the count `begin_login` made for an attempt that succeeded."""
        for key, _ in self._login_keys(email, address):
            self._undo(key)

    def _undo(self, key: str) -> None:
        try:
            self.counters.take_back(key)
        except redis.RedisError:
            pass

    def check_registration(self, address: str) -> None:
        """Count an account registration from a client address; refuse past the limit."""
        self._count(
            keys.rate_key("register-address", subject(address)),
            self.cfg.register_limit,
            self.cfg.register_window_seconds,
            "Too many registrations from this address; try again later",
        )

    def check_hold_change(self, user_id: str) -> None:
        """Count a patient's hold or waitlist entry made or given back; refuse past the limit
        (a place kept and given back without end blocks others as surely as one kept)."""
        self._count(
            keys.rate_key("hold-changes", user_id),
            self.cfg.hold_changes_limit,
            self.cfg.hold_changes_window_seconds,
            "Too many holds and waitlist entries made or given back; try again later",
        )

    def check_booking(self, user_id: str) -> None:
        """Count a patient's booking attempt; refuse past the limit."""
        self._count(
            keys.rate_key("booking", user_id),
            self.cfg.booking_limit,
            self.cfg.booking_window_seconds,
            "Too many bookings; try again later",
        )
