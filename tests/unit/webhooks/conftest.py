"""Fixtures of the webhooks' unit tests (their helpers: webhook_support.py)."""

from __future__ import annotations

import pytest

from booking_service.integrations.webhooks import delivery as webhooks_delivery
from tests.unit.webhooks.webhook_support import Clock


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The deliveries' clock, at T0 until a test moves it."""
    made = Clock()
    monkeypatch.setattr(webhooks_delivery, "utcnow", made)
    return made
