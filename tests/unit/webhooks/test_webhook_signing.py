"""Webhook secrets (derived, never stored) and Standard Webhooks signatures."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from bson import ObjectId
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from booking_service.integrations.webhooks.signing import secret_of, signed_headers
from shared.config import Config
from tests.unit.webhooks.webhook_support import (
    event,
    make_service,
    subscribe,
)

# --- Signatures ----------------------------------------------------------------------------


def random_secret() -> str:
    """A Standard Webhooks secret of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_a_secret_is_derived_from_the_key_and_the_webhooks_salt_and_not_stored():
    svc = make_service(webhook_secrets_key="k" * 32)
    made = subscribe(svc, ["appointment.created"])
    secret = made["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert Webhook(secret)  # a secret the library takes
    doc = svc.hooks.docs[made["webhook_id"]]
    assert "secret" not in doc and len(doc["secret_salt"]) >= 20
    assert secret.removeprefix("whsec_") not in repr(doc)
    assert secret_of(svc.config, doc) == secret  # the worker signs with the same
    other = subscribe(svc, ["appointment.created"])["secret"]
    assert other != secret
    # Another key, salt or id: another secret.
    assert secret_of(Config(webhook_secrets_key="j" * 32), doc) != secret
    assert secret_of(svc.config, {**doc, "secret_salt": doc["secret_salt"] + "x"}) != secret
    assert secret_of(svc.config, {**doc, "_id": ObjectId()}) != secret
    # Without WEBHOOK_SECRETS_KEY, JWT_SECRET's key.
    assert secret_of(Config(jwt_secret="k" * 32), doc) == secret
    # A webhook made when secrets were stored keeps its own; a deleted one has none.
    stored = random_secret()
    assert secret_of(svc.config, {"_id": ObjectId(), "secret": stored}) == stored
    assert secret_of(svc.config, {"_id": ObjectId(), "active": False}) is None


def test_production_refuses_a_short_webhook_secrets_key():
    cfg = Config(
        app_env="production", jwt_secret="s" * 40, admin_password="x" * 12,
        webhook_secrets_key="short",
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="WEBHOOK_SECRETS_KEY"):
        cfg.check_production_secrets()
    replace(cfg, webhook_secrets_key="w" * 32).check_production_secrets()
    replace(cfg, webhook_secrets_key="").check_production_secrets()


def test_a_signed_delivery_verifies_with_the_library_and_only_as_sent():
    secret, body = random_secret(), orjson.dumps(event("appointment.created", 1)).decode()
    now = datetime.now(UTC).timestamp()
    headers = signed_headers(secret, "evt_1", body, now)
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(int(now))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == orjson.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("created", "cancelled"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(random_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "evt_2"})
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, signed_headers(secret, "evt_1", body, now - 600))
