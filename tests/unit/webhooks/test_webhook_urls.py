"""Where a webhook may send: URL rules, the address policy (production refusals with the
resolver replaced), and the delivery-time checks of the HTTP client (DNS rebinding)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from booking_service.integrations.webhooks import transport as webhooks_transport
from booking_service.integrations.webhooks.transport import (
    HttpSender,
    UrlRefused,
    check_destination,
    check_url,
    is_public,
)
from shared.errors import ValidationError
from tests.unit.webhooks.webhook_support import (
    make_service,
    subscribe,
)

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
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

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
