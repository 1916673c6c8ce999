"""Webhook secrets and signatures (Standard Webhooks): a webhook's secret is derived, never
stored; every attempt is signed with it."""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from shared.config import Config

SECRET_PREFIX = "whsec_"
SALT_BYTES = 16
USER_AGENT = "slotbook-webhooks/1"


def new_salt() -> str:
    """A new webhook's random `secret_salt` (its secret is derived from it: `secret_of`)."""
    return secrets.token_urlsafe(SALT_BYTES)


def secret_of(cfg: Config, hook: dict) -> str | None:
    """A webhook's signing secret (Standard Webhooks' `whsec_` and 32 bytes): HMAC-SHA256 of
    its id and its random `secret_salt` under WEBHOOK_SECRETS_KEY (JWT_SECRET's when unset).
    MongoDB keeps the salt only, so a copy of the database signs nothing. A webhook made
    before secrets were derived keeps its stored `secret`; a deleted one has neither (None)."""
    if hook.get("secret"):
        return hook["secret"]
    salt = hook.get("secret_salt")
    if not salt:
        return None
    key = (cfg.webhook_secrets_key or cfg.jwt_secret).encode()
    message = f"webhook-secret:{hook['_id']}:{salt}".encode()
    return SECRET_PREFIX + base64.b64encode(hmac.digest(key, message, "sha256")).decode()


def signed_headers(secret: str, msg_id: str, body: str, at: float) -> dict[str, str]:
    """The headers of one attempt: Standard Webhooks' `webhook-id` (the event id: the same on
    every retry), `webhook-timestamp` (the attempt's, in seconds) and `webhook-signature`."""
    stamp = datetime.fromtimestamp(int(at), tz=UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
    }
