"""Accounts: registration and login, passwords hashed with bcrypt."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import bcrypt
from bson import ObjectId

from booking_service.adapters.repository import UserRepository
from shared.auth import issue_token
from shared.config import Config
from shared.errors import EmailTaken, InvalidCredentials, ValidationError

# bcrypt reads at most 72 bytes of a password (and bcrypt 5 refuses more).
MAX_PASSWORD_BYTES = 72


@lru_cache(maxsize=4)
def dummy_hash(rounds: int) -> bytes:
    """A hash at the configured cost, checked when the email is unknown: a login then takes
    as long as one for an account that exists, so answers cannot tell which emails do."""
    return bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(rounds))


def hash_password(password: str, rounds: int) -> str:
    """A bcrypt hash of a password."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValidationError(
            "The password is too long",
            errors={"password": [f"at most {MAX_PASSWORD_BYTES} bytes (UTF-8)"]},
        )
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def public_user(doc: dict) -> dict:
    """A user as the API shows it."""
    return {
        "user_id": str(doc["_id"]),
        "email": doc["email"],
        "role": doc["role"],
        "name": doc.get("name"),
        "phone": doc.get("phone"),
    }


def register(
    users: UserRepository, cfg: Config, body: dict, now: datetime, role: str = "patient"
) -> dict:
    """Create an account (a patient's; staff and admins are created by an admin);
    409 email_taken."""
    doc = {
        "_id": ObjectId(),
        "email": body["email"].strip().lower(),
        "name": body["name"].strip(),
        "phone": body["phone"],
        "role": role,
        "password_hash": hash_password(body["password"], cfg.bcrypt_rounds),
        "created_at": now,
    }
    if not users.insert(doc):
        raise EmailTaken("An account with this email exists")
    return public_user(doc)


def login(users: UserRepository, cfg: Config, email: str, password: str) -> dict:
    """Check a password and issue a token; 401 invalid_credentials."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidCredentials("Wrong email or password")  # no stored password is that long
    doc = users.by_email(email)
    stored = doc["password_hash"].encode() if doc else dummy_hash(cfg.bcrypt_rounds)
    if not bcrypt.checkpw(password.encode(), stored) or doc is None:
        raise InvalidCredentials("Wrong email or password")
    token = issue_token(
        cfg.jwt_secret, cfg.jwt_ttl_seconds, str(doc["_id"]), doc["email"], doc["role"]
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": cfg.jwt_ttl_seconds,
        "user": public_user(doc),
    }


def ensure_admin(users: UserRepository, cfg: Config, now: datetime) -> bool:
    """Seed the admin account unless it exists; True when created."""
    if users.by_email(cfg.admin_email) is not None:
        return False
    return users.insert(
        {
            "_id": ObjectId(),
            "email": cfg.admin_email.lower(),
            "name": "Administrator",
            "phone": None,
            "role": "admin",
            "password_hash": hash_password(cfg.admin_password, cfg.bcrypt_rounds),
            "created_at": now,
        }
    )
