"""Webhooks over fakes: backoff, URL and address rules (production refusals with the
resolver replaced), signatures, the relay's dedupe, the delivery rules, the views."""

from __future__ import annotations

import base64
import copy
import ipaddress
import os
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from bson import ObjectId
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import booking_service
from booking_service.adapters import outbox
from booking_service.integrations.webhooks import service as webhooks_service
from booking_service.integrations.webhooks import transport as webhooks_transport
from booking_service.integrations.webhooks.routes import EXTENSION
from booking_service.integrations.webhooks.service import (
    HttpSender,
    Webhooks,
    backoff_seconds,
    deliver_due,
    event_ms,
    relay_document,
    secret_of,
    signed_headers,
)
from booking_service.integrations.webhooks.store import DEAD, DELIVERED, PENDING
from booking_service.integrations.webhooks.transport import (
    UrlRefused,
    check_destination,
    check_url,
    is_public,
)
from shared.auth import Principal, issue_token
from shared.config import Config
from shared.errors import ValidationError
from tests.unit.fakes import fake_context

T0 = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
ADMIN = Principal("admin-1", "a@x.io", "admin")


# --- Fakes of webhooks_store.py (same contracts, in memory) -------------------------------


class FakeHooks:
    def __init__(self):
        self.docs: dict[str, dict] = {}

    def insert(self, doc):
        self.docs[str(doc["_id"])] = copy.deepcopy(doc)

    def get(self, webhook_id):
        return copy.deepcopy(self.docs.get(webhook_id))

    def active(self):
        found = [d for d in self.docs.values() if d["active"]]
        return copy.deepcopy(sorted(found, key=lambda d: d["created_ms"]))

    def count_active(self):
        return len(self.active())

    def deactivate(self, webhook_id, now_ms):
        doc = self.docs.get(webhook_id)
        if doc is None:
            return False
        doc.update(active=False, deleted_ms=now_ms)
        doc.pop("secret", None)
        doc.pop("secret_salt", None)
        return True


class FakeDeliveries:
    def __init__(self):
        self.docs: dict[str, dict] = {}

    def insert(self, doc):
        if doc["_id"] in self.docs:
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        return True

    def due(self, now_ms, limit, exclude=None):
        found = [
            d
            for d in self.docs.values()
            if d["state"] == PENDING
            and d["next_attempt_ms"] <= now_ms
            and d["lease_until_ms"] <= now_ms
            and d["webhook_id"] not in (exclude or ())
        ]
        found.sort(key=lambda d: (d["next_attempt_ms"], d["seq"]))
        return copy.deepcopy(found[:limit])

    def earlier_pending(self, webhook_id, subject, seq):
        found = [
            d
            for d in self.docs.values()
            if (d["webhook_id"], d["subject"], d["state"]) == (webhook_id, subject, PENDING)
            and d["seq"] < seq
        ]
        return copy.deepcopy(min(found, key=lambda d: d["seq"])) if found else None

    def defer(self, delivery_id, until_ms, now_ms):
        doc = self.docs[delivery_id]
        if doc["state"] == PENDING and doc["lease_until_ms"] <= now_ms:
            doc["next_attempt_ms"] = until_ms

    def claim(self, doc, now_ms, lease_ms, owner):
        mine = self.docs[doc["_id"]]
        if (
            mine["state"] != PENDING
            or mine["attempt_count"] != doc["attempt_count"]
            or mine["lease_until_ms"] > now_ms
        ):
            return None
        mine.update(lease_until_ms=now_ms + lease_ms, lease_owner=owner, lease_at_ms=now_ms)
        return copy.deepcopy(mine)

    def _finish(self, mine, attempt_text, changes):
        mine["attempts"].append(attempt_text)
        mine["attempt_count"] += 1
        mine.update(changes, lease_until_ms=0)
        mine.pop("lease_owner", None)

    def record(self, doc, owner, attempt_text, changes):
        mine = self.docs[doc["_id"]]
        if (
            mine["state"] != PENDING
            or mine["attempt_count"] != doc["attempt_count"]
            or mine.get("lease_owner") != owner
        ):
            return False
        self._finish(mine, attempt_text, changes)
        return True

    def expire_lease(self, doc, attempt_text, changes, now_ms):
        mine = self.docs[doc["_id"]]
        if (
            mine["state"] != PENDING
            or mine["attempt_count"] != doc["attempt_count"]
            or mine.get("lease_owner") != doc["lease_owner"]
            or mine["lease_until_ms"] > now_ms
        ):
            return None
        self._finish(mine, attempt_text, changes)
        return copy.deepcopy(mine)

    def end_unsent(self, delivery_id, reason, now_ms):
        doc = self.docs[delivery_id]
        if doc["state"] == PENDING and doc["lease_until_ms"] <= now_ms:
            doc.update(state=DEAD, dead_reason=reason, ended_ms=now_ms)

    def end_for_webhook(self, webhook_id, reason, now_ms):
        for doc in self.docs.values():
            if doc["webhook_id"] == webhook_id:
                self.end_unsent(doc["_id"], reason, now_ms)

    def page(self, webhook_id, state, page, per_page):
        found = [
            d
            for d in self.docs.values()
            if d["webhook_id"] == webhook_id and state in (None, d["state"])
        ]
        found.sort(key=lambda d: (d["created_ms"], d["seq"], d["_id"]), reverse=True)
        return copy.deepcopy(found[(page - 1) * per_page : page * per_page]), len(found)


class FakeSources:
    """Outboxes of documents; `clear` keeps the real adapter's rule: relayed events go, one
    pushed since the read stays."""

    KINDS = ("appointment", "waitlist")

    def __init__(self):
        self.docs: dict[str, dict] = {}

    def push(self, kind, event):
        doc = self.docs.setdefault(kind, {"_id": ObjectId(), "outbox": [], "version": 0})
        doc["outbox"].append(orjson.dumps(event).decode())
        doc["version"] += 1
        doc["outbox_pending"] = 1

    def pending(self, kind, limit):
        doc = self.docs.get(kind)
        return [copy.deepcopy(doc)] if doc and doc.get("outbox_pending") else []

    def clear(self, kind, doc, relayed):
        mine = self.docs[kind]
        mine["outbox"] = [t for t in mine["outbox"] if t not in relayed]
        if not mine["outbox"]:
            mine.pop("outbox_pending", None)


class FakeSender:
    """Answers attempts from a script of statuses (None: no answer) and records them."""

    def __init__(self, *statuses):
        self.statuses = list(statuses)
        self.sent: list[tuple[str, bytes, dict]] = []

    def post(self, url, body, headers, timeout):
        self.sent.append((url, body, headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return (None, "connection error: refused") if status is None else (status, None)


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def make_service(sender=None, **settings) -> Webhooks:
    cfg = Config(
        webhook_max_attempts=settings.pop("max_attempts", 4),
        webhook_backoff_seconds=settings.pop("backoff", 2.0),
        webhook_poll_seconds=1.0,
        **settings,
    )
    return Webhooks(cfg, FakeHooks(), FakeDeliveries(), FakeSources(), sender or FakeSender())


@pytest.fixture
def clock(monkeypatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(webhooks_service, "utcnow", made)
    return made


def subscribe(svc: Webhooks, events, at: datetime = T0 - timedelta(hours=1), url="http://r/"):
    return webhooks_service.create(svc, ADMIN, {"url": url, "events": list(events)}, at)


def event(kind: str, version: int | None, at: datetime = T0, subject: str = "a1") -> dict:
    data = {"appointment_id": subject} if version is None else {"version": version}
    return outbox.event(kind, data, at)


def relay_all(svc: Webhooks, now: datetime = T0) -> int:
    return webhooks_service.relay(svc, ms(now))


# --- Backoff -------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_with_jitter_between_half_and_all_of_it():
    assert [backoff_seconds(n, 2, 3600, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert [backoff_seconds(n, 2, 3600, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    for n in range(1, 12):
        wait = backoff_seconds(n, 2, 3600)
        assert 2 ** (n - 1) <= wait <= 2**n


def test_backoff_is_capped_and_never_overflows():
    assert backoff_seconds(30, 2, 3600, rand=lambda: 1.0) == 3600
    assert backoff_seconds(10_000, 2, 3600, rand=lambda: 0.0) == 1800
    assert backoff_seconds(0, 2, 3600, rand=lambda: 1.0) == 2  # as the first


# --- URL rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "https://hooks.example.com/slotbook?x=1",
        "https://HOOKS.Example.com./a",
        "http://[2001:db8::1]:8443/",
        "http://xn--hks-qla.example.com/",
        "http://my_host.internal/",
    ],
)
def test_well_formed_receiver_urls_are_accepted(url):
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "javascript:alert(1)",
        "//hooks.example.com/",
        "hooks.example.com/x",
        "http://",
        "http:///path",
        "http://user@hooks.example.com/",
        "http://user:pw@hooks.example.com/",
        "http://:pw@hooks.example.com/",
        "http://hooks.example.com/#frag",
        "http://hooks.example.com/#",
        "http://hooks.example.com:0/",
        "http://hooks.example.com:99999/",
        "http://hooks.example.com:x/",
        "http://[::1/",
        "http://[not-v6]/",
        "http://1.2.3.4]/",
        "http://hööks.example.com/",
        "http://hooks example.com/",
        "http://hooks.example.com/\x00",
        "http://hooks.example.com/\n",
        " http://hooks.example.com/",
        "http://-bad.example.com/",
        "http://bad-.example.com/",
        "http://a..b/",
        "http://" + "a" * 64 + ".com/",
        "http://hooks.example.com/" + "a" * 2000,
        "",
        7,
        None,
    ],
)
def test_malformed_or_dangerous_receiver_urls_are_refused(url):
    with pytest.raises(UrlRefused):
        check_url(url)


def test_a_url_of_exactly_2000_characters_is_accepted():
    url = "http://hooks.example.com/"
    url += "a" * (2000 - len(url))
    assert check_url(url) == url


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT: not global
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2001:db8::1",  # documentation
        "not-an-address",
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert is_public(address)


def resolving_to(monkeypatch, table: dict[str, list[str]]) -> list[str]:
    """Replace DNS: `table` maps a host to its addresses; returns the hosts looked up."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, kind=0, *args):
        try:
            ipaddress.ip_address(host)
            return real(host, port, family, kind, *args)  # an IP literal needs no DNS
        except ValueError:
            pass
        asked.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(webhooks_transport.socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["224.0.0.251"],
        ["0.0.0.0"],
        ["240.0.0.1"],
        ["93.184.216.34", "192.168.0.10"],  # one bad answer is enough
    ],
)
def test_production_refuses_hosts_that_resolve_to_non_public_addresses(monkeypatch, addresses):
    resolving_to(monkeypatch, {"hooks.example.com": addresses})
    with pytest.raises(UrlRefused, match="non-public"):
        check_destination("https://hooks.example.com/x", timeout=1)
    svc = make_service(app_env="production")
    with pytest.raises(ValidationError) as refused:
        subscribe(svc, ["appointment.created"], url="https://hooks.example.com/x")
    assert "url" in refused.value.errors
    assert svc.hooks.docs == {}


def test_production_accepts_public_hosts_and_refuses_unresolvable_ones(monkeypatch):
    resolving_to(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    svc = make_service(app_env="production")
    made = subscribe(svc, ["appointment.created"], url="https://hooks.example.com/x")
    assert made["secret"].startswith("whsec_")
    with pytest.raises(ValidationError, match="not allowed"):
        subscribe(svc, ["appointment.created"], url="https://nowhere.example.com/x")
    with pytest.raises(ValidationError):  # an IP literal is judged as itself
        subscribe(svc, ["appointment.created"], url="http://127.0.0.1:8080/")


def test_development_and_allow_private_accept_loopback_receivers(monkeypatch):
    asked = resolving_to(monkeypatch, {"hooks.local": ["127.0.0.1"]})
    subscribe(make_service(), ["appointment.created"], url="http://127.0.0.1:9/")
    subscribe(
        make_service(app_env="production", webhook_allow_private=True),
        ["appointment.created"],
        url="http://hooks.local/",
    )
    assert asked == []  # nothing is resolved unless the policy applies


# --- Delivery-time checks (DNS rebinding) -------------------------------------------------


class _Server:
    """A loopback HTTP server that records the Host header of each request."""

    def __init__(self):
        self.hosts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                server.hosts.append(self.headers["Host"])
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def loopback_server():
    server = _Server()
    yield server
    server.close()


def test_the_guarded_sender_checks_the_address_when_it_connects(monkeypatch, loopback_server):
    # The host resolved to a public address when the webhook was made; now it rebinds to
    # 127.0.0.1: the connection is refused before a byte is sent.
    resolving_to(monkeypatch, {"hooks.example.com": ["127.0.0.1"]})
    url = f"http://hooks.example.com:{loopback_server.port}/x"
    status, error = HttpSender(guarded=True).post(url, b"{}", {}, timeout=2)
    assert status is None and error.startswith("refused:") and "127.0.0.1" in error
    assert loopback_server.hosts == []


def test_the_guarded_sender_connects_to_the_address_it_checked(monkeypatch, loopback_server):
    resolving_to(monkeypatch, {"hooks.example.com": ["127.0.0.1"]})
    monkeypatch.setattr(webhooks_transport, "is_public", lambda address: True)
    url = f"http://hooks.example.com:{loopback_server.port}/x"
    got = HttpSender(guarded=True).post(url, b"{}", {}, timeout=2)
    assert got == (204, None), got
    assert loopback_server.hosts == [f"hooks.example.com:{loopback_server.port}"]


def test_the_plain_sender_reaches_loopback_and_follows_no_redirect(loopback_server):
    url = f"http://127.0.0.1:{loopback_server.port}/x"
    assert HttpSender(guarded=False).post(url, b"{}", {}, timeout=2) == (204, None)
    status, error = HttpSender(guarded=False).post("http://127.0.0.1:9/", b"{}", {}, 1)
    assert status is None and error.startswith("connection error")


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


# --- Relay ---------------------------------------------------------------------------------


def test_the_relay_queues_each_event_once_per_subscribed_webhook(clock):
    svc = make_service()
    every = subscribe(svc, outbox.EVENT_TYPES)
    cancels = subscribe(svc, ["appointment.cancelled"])
    svc.sources.push("appointment", event("appointment.created", 1))
    svc.sources.push("appointment", event("appointment.cancelled", 2))
    (doc,) = svc.sources.pending("appointment", 10)
    hooks = svc.hooks.active()
    # Two processes relay the same outbox: the second queues nothing.
    assert relay_document(svc.deliveries, svc.sources, hooks, "appointment", doc, ms(T0)) == 3
    assert relay_document(svc.deliveries, svc.sources, hooks, "appointment", doc, ms(T0)) == 0
    assert relay_all(svc) == 0
    queued = sorted(
        (d["webhook_id"], d["event_type"], d["seq"]) for d in svc.deliveries.docs.values()
    )
    assert queued == sorted(
        [
            (every["webhook_id"], "appointment.created", 1),
            (every["webhook_id"], "appointment.cancelled", 2),
            (cancels["webhook_id"], "appointment.cancelled", 2),
        ]
    )
    assert svc.sources.pending("appointment", 10) == []
    for delivery in svc.deliveries.docs.values():
        assert delivery["_id"] == f"{delivery['event_id']}:{delivery['webhook_id']}"
        assert orjson.loads(delivery["payload"])["id"] == delivery["event_id"]


def test_a_webhook_made_after_an_event_does_not_get_it(clock):
    svc = make_service()
    at = T0 + timedelta(milliseconds=400)
    svc.sources.push("appointment", event("appointment.created", 1, at=at))
    subscribe(svc, ["appointment.created"], at=at + timedelta(milliseconds=1))
    subscribe(svc, ["appointment.created"], at=at + timedelta(seconds=1))
    same_ms = subscribe(svc, ["appointment.created"], at=at)
    assert relay_all(svc, T0 + timedelta(seconds=5)) == 1
    (delivery,) = svc.deliveries.docs.values()
    assert delivery["webhook_id"] == same_ms["webhook_id"]  # events carry milliseconds


def test_an_event_of_whole_seconds_from_before_the_change_is_still_read():
    # Outboxes written before events carried milliseconds
    stamped = {"type": "appointment.created", "timestamp": "2026-11-28T10:00:05Z"}
    assert event_ms(stamped, 0) == 1_795_860_005_000
    assert event_ms({**stamped, "timestamp": "2026-11-28T10:00:05.250Z"}, 0) == 1_795_860_005_250
    for bad in (None, 5, "yesterday", "2026-11-28T10:00:05"):
        assert event_ms({**stamped, "timestamp": bad}, 42) == 42
    assert event_ms({"type": "appointment.created"}, 42) == 42


def test_a_deleted_webhook_gets_nothing_more(clock):
    svc = make_service()
    hook = subscribe(svc, ["appointment.created", "appointment.cancelled"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    webhooks_service.delete(svc, hook["webhook_id"], T0)
    webhooks_service.delete(svc, hook["webhook_id"], T0)  # idempotent
    svc.sources.push("appointment", event("appointment.cancelled", 2))
    assert relay_all(svc) == 0
    assert deliver_due(svc, "me") == 0
    assert svc.sender.sent == []
    (dead,) = svc.deliveries.docs.values()
    assert (dead["state"], dead["dead_reason"]) == (DEAD, "webhook deleted")


def test_a_broken_outbox_entry_is_dropped_not_retried_forever(clock):
    svc = make_service()
    subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    svc.sources.docs["appointment"]["outbox"].insert(0, "not json")
    assert relay_all(svc) == 1
    assert svc.sources.pending("appointment", 10) == []


# --- Deliveries ----------------------------------------------------------------------------


def the_delivery(svc: Webhooks) -> dict:
    (doc,) = svc.deliveries.docs.values()
    return doc


def attempts(doc: dict) -> list[dict]:
    return [orjson.loads(a) for a in doc["attempts"]]


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(clock, monkeypatch):
    monkeypatch.setattr(webhooks_service.random, "random", lambda: 1.0)
    svc = make_service(FakeSender(500, None, 200), backoff=2.0)
    hook = subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    assert deliver_due(svc, "me") == 1
    doc = the_delivery(svc)
    assert (doc["state"], doc["next_attempt_ms"]) == (PENDING, ms(T0) + 2000)
    clock.advance(1.9)
    assert deliver_due(svc, "me") == 0  # not before its time
    clock.advance(0.1)
    assert deliver_due(svc, "me") == 1
    assert the_delivery(svc)["next_attempt_ms"] == ms(clock.now) + 4000
    clock.advance(4)
    assert deliver_due(svc, "me") == 1
    doc = the_delivery(svc)
    assert doc["state"] == DELIVERED and doc["attempt_count"] == 3
    assert [(a["status_code"], a["error"]) for a in attempts(doc)] == [
        (500, "HTTP 500"),
        (None, "connection error: refused"),
        (200, None),
    ]
    # Every attempt: the same webhook-id, a valid signature, the event's exact text.
    secret = secret_of(svc.config, svc.hooks.docs[hook["webhook_id"]])
    for url, body, headers in svc.sender.sent:
        assert url == "http://r/" and headers["webhook-id"] == doc["event_id"]
        assert body.decode() == doc["payload"]
        assert (
            Webhook(secret).sign(
                headers["webhook-id"],
                datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC),
                body.decode(),
            )
            == headers["webhook-signature"]
        )
    log = webhooks_service.delivery_log(svc, hook["webhook_id"], {"page": 1, "per_page": 50})
    assert log["total"] == 1 and log["deliveries"][0]["state"] == "delivered"
    assert [a["attempt"] for a in log["deliveries"][0]["attempts"]] == [1, 2, 3]


def test_a_delivery_is_dead_after_the_last_attempt_and_stays_in_the_log(clock):
    svc = make_service(FakeSender(*[503] * 10), max_attempts=3, backoff=1.0)
    hook = subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    for _ in range(10):
        deliver_due(svc, "me")
        clock.advance(60)
    doc = the_delivery(svc)
    assert (doc["state"], doc["attempt_count"], doc["dead_reason"]) == (DEAD, 3, "max attempts")
    assert len(svc.sender.sent) == 3
    log = webhooks_service.delivery_log(
        svc, hook["webhook_id"], {"page": 1, "per_page": 50, "state": "dead"}
    )
    assert log["total"] == 1 and log["deliveries"][0]["next_attempt_at"] is None


def test_a_subjects_deliveries_go_in_order_one_at_a_time(clock):
    svc = make_service(FakeSender(500, 200, 200, 200), backoff=2.0)
    subscribe(svc, ["appointment.created", "appointment.rescheduled", "appointment.cancelled"])
    svc.sources.push("appointment", event("appointment.created", 1))
    svc.sources.push("appointment", event("appointment.rescheduled", 2))
    svc.sources.push("appointment", event("appointment.cancelled", 3))
    relay_all(svc)
    deliver_due(svc, "me")  # the first fails: the others wait behind it
    assert len(svc.sender.sent) == 1
    clock.advance(10)
    deliver_due(svc, "me")
    sent = [orjson.loads(body)["type"] for _, body, _ in svc.sender.sent]
    assert sent == [
        "appointment.created",
        "appointment.created",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    assert {d["state"] for d in svc.deliveries.docs.values()} == {DELIVERED}


def test_a_lease_held_by_another_process_is_left_alone_until_it_runs_out(clock):
    svc = make_service(webhook_lease_seconds=30)
    hook = subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    relay_all(svc)
    doc = the_delivery(svc)
    assert svc.deliveries.claim(doc, ms(clock.now), 30_000, "other:123:x") is not None
    assert deliver_due(svc, "me") == 0  # the other process is attempting it
    clock.advance(29)
    assert deliver_due(svc, "me") == 0
    clock.advance(1)  # the other process died: its lease ran out
    assert deliver_due(svc, "me") == 1
    doc = the_delivery(svc)
    assert doc["state"] == DELIVERED and doc["attempt_count"] == 2
    lost, done = attempts(doc)
    assert lost["status_code"] is None and "lease expired" in lost["error"]
    assert lost["duration_ms"] == 30_000 and done["status_code"] == 200
    # An outcome from the process whose lease ran out is not recorded over the new one's.
    assert not svc.deliveries.record(doc, "other:123:x", "{}", {"state": DEAD})
    assert webhooks_service.find(svc, hook["webhook_id"])["active"]


def test_the_lease_is_always_longer_than_an_attempt():
    cfg = Config(webhook_lease_seconds=1, webhook_timeout_seconds=5)
    assert webhooks_service.lease_ms(cfg) == 11_000
    assert webhooks_service.lease_ms(Config()) == 30_000


# --- Views (the service over fakes in place of MongoDB) -----------------------------------


@pytest.fixture
def app():
    cfg = Config(bcrypt_rounds=4, reconciler_enabled=False)
    ctx, _ = fake_context(cfg)
    made = booking_service.create_app(cfg, context=ctx, start_reconciler=False)
    assert EXTENSION not in made.extensions  # fakes: no database, no worker
    return made


def bearer(app, role: str) -> dict:
    secret = app.config["SLOTBOOK"].jwt_secret
    return {"Authorization": "Bearer " + issue_token(secret, 60, "u1", "u1@x.io", role)}


def test_without_a_database_the_routes_answer_503(app):
    resp = app.test_client().get("/api/webhooks", headers=bearer(app, "admin"))
    assert resp.status_code == 503 and resp.get_json()["error"] == "service_unavailable"


def test_the_views_admin_only_secret_once(app):
    app.extensions[EXTENSION] = make_service()
    client, admin = app.test_client(), bearer(app, "admin")
    body = {"url": "http://127.0.0.1:9/x", "events": ["appointment.created"]}
    assert client.post("/api/webhooks", json=body).status_code == 401
    for role in ("patient", "staff"):
        resp = client.post("/api/webhooks", json=body, headers=bearer(app, role))
        assert resp.status_code == 403 and resp.get_json()["error"] == "forbidden"
    made = client.post("/api/webhooks", json=body, headers=admin)
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    hook = made.get_json()
    assert set(hook) == {"webhook_id", "url", "events", "active", "created_at", "secret"}
    listed = client.get("/api/webhooks", headers=admin).get_json()["webhooks"]
    assert listed == [{k: v for k, v in hook.items() if k != "secret"}]
    path = f"/api/webhooks/{hook['webhook_id']}"
    assert client.get(path + "/deliveries", headers=admin).get_json()["total"] == 0
    assert client.delete(path, headers=admin).status_code == 204
    assert client.delete(path, headers=admin).status_code == 204
    assert client.get("/api/webhooks", headers=admin).get_json()["webhooks"] == []
    assert client.delete(f"/api/webhooks/{'f' * 24}", headers=admin).status_code == 404
    assert client.get("/api/webhooks/F" + "f" * 23, headers=admin).get_json()["error"] == (
        "webhook_not_found"
    )


def test_the_number_of_webhooks_is_bounded(app, monkeypatch):
    monkeypatch.setattr(webhooks_service, "MAX_ACTIVE_WEBHOOKS", 2)
    app.extensions[EXTENSION] = make_service()
    client, admin = app.test_client(), bearer(app, "admin")
    body = {"url": "http://127.0.0.1:9/x", "events": ["waitlist.offered"]}
    assert [client.post("/api/webhooks", json=body, headers=admin).status_code for _ in "abc"] == [
        201,
        201,
        409,
    ]


def test_duplicate_events_are_refused(app):
    app.extensions[EXTENSION] = make_service()
    body = {"url": "http://127.0.0.1:9/x", "events": ["waitlist.offered", "waitlist.offered"]}
    resp = app.test_client().post("/api/webhooks", json=body, headers=bearer(app, "admin"))
    assert resp.status_code == 400 and "events" in resp.get_json()["errors"]


def test_a_relay_that_fails_leaves_the_events_in_their_outbox(clock):
    class Failing(FakeDeliveries):
        def insert(self, doc):
            raise RuntimeError("database down")

    svc = make_service()
    svc.deliveries = Failing()
    subscribe(svc, ["appointment.created"])
    svc.sources.push("appointment", event("appointment.created", 1))
    with pytest.raises(RuntimeError):
        relay_all(svc)
    assert svc.sources.pending("appointment", 10)  # the event stays in its outbox


# --- Attempts at once ----------------------------------------------------------------------


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


def queue(svc: Webhooks, hook: dict, subjects: list[str]) -> None:
    """One due delivery to `hook` per subject (each its own appointment)."""
    doc = svc.hooks.docs[hook["webhook_id"]]
    for subject in subjects:
        made = event("appointment.created", 1, subject=subject)
        text = orjson.dumps(made).decode()
        svc.deliveries.insert(
            webhooks_service.new_delivery(doc, made, text, f"appointment:{subject}", 1, ms(T0))
        )


def states(svc: Webhooks, hook: dict) -> list[str]:
    return sorted(
        d["state"] for d in svc.deliveries.docs.values() if d["webhook_id"] == hook["webhook_id"]
    )


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_hanging_receiver_holds_up_no_other_webhook(clock):
    sender = GatedSender("http://slow/")
    svc = make_service(sender)
    slow = subscribe(svc, ["appointment.created"], url="http://slow/")
    fast = subscribe(svc, ["appointment.created"], url="http://fast/")
    queue(svc, slow, ["s1", "s2", "s3"])
    queue(svc, fast, ["f1", "f2", "f3"])
    pool = webhooks_service.Concurrent(4)

    def fast_delivered() -> bool:  # (a pass may stop while the pool is full: pass again)
        deliver_due(svc, "me", attempts=pool)
        return states(svc, fast) == [DELIVERED] * 3

    try:
        # The slow webhook gets at most half the pool; the fast one's attempts are all made.
        wait_for(fast_delivered)
        wait_for(lambda: sender.hanging == 2)
        assert pool.busy() == {slow["webhook_id"]}
        assert deliver_due(svc, "me", attempts=pool) == 0  # its third waits for a turn
        assert states(svc, slow) == [PENDING] * 3
    finally:
        sender.gate.set()
        pool.shutdown()
    assert states(svc, slow) == [DELIVERED, DELIVERED, PENDING]
    assert deliver_due(svc, "me") == 1
    assert states(svc, slow) == [DELIVERED] * 3


def test_a_full_pool_starts_no_more_attempts(clock):
    sender = GatedSender("http://slow/")
    svc = make_service(sender)
    hooks = [subscribe(svc, ["appointment.created"], url="http://slow/") for _ in range(3)]
    for n, hook in enumerate(hooks):
        queue(svc, hook, [f"a{n}", f"b{n}"])
    pool = webhooks_service.Concurrent(2)  # one attempt per webhook at a time
    try:
        assert deliver_due(svc, "me", attempts=pool) == 2
        wait_for(lambda: sender.hanging == 2)
        assert pool.full() and deliver_due(svc, "me", attempts=pool) == 0
    finally:
        sender.gate.set()
        pool.shutdown()
    assert deliver_due(svc, "me") == 4
    assert all(d["state"] == DELIVERED for d in svc.deliveries.docs.values())


def test_an_attempt_that_crashes_frees_its_place_in_the_pool():
    pool = webhooks_service.Concurrent(2)

    def boom() -> None:
        raise RuntimeError("a bug")

    try:
        pool.submit("w1", boom)
        wait_for(lambda: not pool.running)
        assert pool.busy() == set() and not pool.full()
    finally:
        pool.shutdown()


def test_each_thread_has_its_own_session():
    sender = webhooks_service.HttpSender(guarded=False)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(sender.session)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 3
    assert sender.session is sender.session


def test_a_busy_webhooks_backlog_does_not_hide_the_others_deliveries(clock, monkeypatch):
    monkeypatch.setattr(webhooks_service, "DUE_BATCH", 5)
    sender = GatedSender("http://slow/")
    svc = make_service(sender)
    slow = subscribe(svc, ["appointment.created"], url="http://slow/")
    fast = subscribe(svc, ["appointment.created"], url="http://fast/")
    queue(svc, slow, [f"s{n}" for n in range(12)])  # due first: more than a batch
    clock.advance(1)
    doc = svc.hooks.docs[fast["webhook_id"]]
    made = event("appointment.created", 1, subject="f1")
    svc.deliveries.insert(
        webhooks_service.new_delivery(
            doc, made, orjson.dumps(made).decode(), "appointment:f1", 1, ms(clock.now)
        )
    )
    pool = webhooks_service.Concurrent(4)
    try:
        assert deliver_due(svc, "me", attempts=pool) == 3
        wait_for(lambda: states(svc, fast) == [DELIVERED])
    finally:
        sender.gate.set()
        pool.shutdown()
