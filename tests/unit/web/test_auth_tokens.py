"""Bearer tokens: shared/auth.py's verification and its cache of verified tokens (time limits
checked on every use)."""

from __future__ import annotations

import time
from datetime import datetime

import jwt
import pytest

from shared import auth
from shared.auth import ISSUER, issue_token, verify_token
from shared.errors import Unauthorized

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4


# --- verified tokens ------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """shared.auth's and PyJWT's clock, settable."""
    now = {"t": time.time()}

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(now["t"], tz)

    monkeypatch.setattr(auth.time, "time", lambda: now["t"])
    monkeypatch.setattr(jwt.api_jwt, "datetime", FakeDatetime)
    return now


def test_a_cached_token_still_expires(clock):
    token = issue_token(SECRET, 60, "u1", "a@example.com", "patient")
    assert verify_token(SECRET, token).user_id == "u1"
    assert (SECRET, token) in auth._verified
    clock["t"] += 30
    assert verify_token(SECRET, token).user_id == "u1"
    clock["t"] += 31
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(SECRET, token)


def test_a_cached_token_is_valid_only_with_its_secret():
    token = issue_token(SECRET, 60, "u1", "a@example.com", "admin")
    assert verify_token(SECRET, token).is_admin
    with pytest.raises(Unauthorized):
        verify_token("another-secret-" + "0123456789abcdef" * 4, token)


def test_a_token_not_yet_valid_is_refused_until_it_is(clock):
    issued = int(clock["t"]) + 120
    claims = {"sub": "u1", "role": "admin", "iat": issued, "nbf": issued, "exp": issued + 60}
    token = jwt.encode({**claims, "iss": ISSUER}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token)
    clock["t"] = issued
    assert verify_token(SECRET, token).user_id == "u1"
    clock["t"] = issued - 1  # the clock went back: not valid yet again
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token)


def test_the_token_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(auth, "_MAX_VERIFIED", 3)
    for n in range(10):
        verify_token(SECRET, issue_token(SECRET, 60, f"u{n}", "e", "patient"))
    assert len(auth._verified) <= 3
