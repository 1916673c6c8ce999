"""What the webhooks' unit tests share: one clock, the webhooks over fakes
(tests/unit/fakes.py), subscriptions, events and queued deliveries."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import orjson

from booking_service.adapters import outbox
from booking_service.integrations.webhooks import service as webhooks_service
from booking_service.integrations.webhooks.relay import new_delivery, relay
from booking_service.integrations.webhooks.service import Webhooks
from shared.config import Config
from tests.unit.builders import ADMIN, NOW
from tests.unit.fakes import FakeSender, fake_webhooks

T0 = NOW


class Clock:
    """The deliveries' clock (tests/unit/webhooks/conftest.py puts it in), moved by hand."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def make_service(sender=None, **settings) -> Webhooks:
    """The webhooks over fakes: 4 attempts, a backoff of 2 s unless `max_attempts`,
    `backoff` or other settings say otherwise."""
    cfg = Config(
        webhook_max_attempts=settings.pop("max_attempts", 4),
        webhook_backoff_seconds=settings.pop("backoff", 2.0),
        webhook_poll_seconds=1.0,
        **settings,
    )
    return fake_webhooks(cfg, sender)


def subscribe(svc: Webhooks, events, at: datetime = T0 - timedelta(hours=1), url="http://r/"):
    return webhooks_service.create(svc, ADMIN, {"url": url, "events": list(events)}, at)


def event(kind: str, version: int | None, at: datetime = T0, subject: str = "a1") -> dict:
    data = {"appointment_id": subject} if version is None else {"version": version}
    return outbox.event(kind, data, at)


def relay_all(svc: Webhooks, now: datetime = T0) -> int:
    return relay(svc, ms(now))


def the_delivery(svc: Webhooks) -> dict:
    (doc,) = svc.deliveries.docs.values()
    return doc


def attempts(doc: dict) -> list[dict]:
    return [orjson.loads(a) for a in doc["attempts"]]


class GatedSender(FakeSender):
    """Answers 200 at once, except to `slow_url`: that waits for `gate` (a hanging receiver)."""

    def __init__(self, slow_url: str):
        super().__init__()
        self.slow_url = slow_url
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.hanging = 0

    def post(self, url, body, headers, timeout):
        if url == self.slow_url:
            with self.lock:
                self.hanging += 1
            self.gate.wait(10)
        with self.lock:
            self.sent.append((url, body, headers))
        return 200, None


def queue(svc: Webhooks, hook: dict, subjects: list[str], at: datetime = T0) -> None:
    """One delivery to `hook` per subject (each its own appointment), due at `at`."""
    doc = svc.hooks.docs[hook["webhook_id"]]
    for subject in subjects:
        made = event("appointment.created", 1, subject=subject)
        text = orjson.dumps(made).decode()
        svc.deliveries.insert(new_delivery(doc, made, text, f"appointment:{subject}", 1, ms(at)))


def states(svc: Webhooks, hook: dict) -> list[str]:
    return sorted(
        d["state"] for d in svc.deliveries.docs.values() if d["webhook_id"] == hook["webhook_id"]
    )


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
