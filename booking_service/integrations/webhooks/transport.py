"""Where a webhook may send, and how it gets there: URL rules, the address policy, the HTTP
client of the deliveries.

A receiver's URL is checked when the webhook is made (`check_url`: http or https, a host, no
userinfo, no fragment, at most 2000 ASCII characters). In production (APP_ENV=production,
unless WEBHOOK_ALLOW_PRIVATE=1) its host must also resolve only to public addresses
(`check_destination`): no loopback, private, link-local, site-local, multicast, reserved or
unspecified address, and none that is not globally routable; an IPv6 address that carries an
IPv4 address (6to4, Teredo, NAT64, IPv4-compatible, IPv4-mapped) is judged by that address
too (`is_public`). Because DNS can answer differently later (DNS rebinding), the deliveries'
HTTP client checks again each time it opens a connection, and connects to the very address it
checked (`GuardedAdapter`): the TLS name and `Host` stay the URL's. Redirects are never
followed, proxies and .netrc of the environment never used.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

MAX_URL_LENGTH = 2000
SCHEMES = ("http", "https")
# Printable ASCII without space: an IDN must come as punycode (one name, one spelling).
_URL_CHARACTERS = re.compile("[\x21-\x7e]+")
_LABEL = re.compile("(?!-)[a-z0-9_-]{1,63}(?<!-)")

# getaddrinfo cannot be given a time limit: it runs here, and the caller waits at most its
# timeout (a resolver that hangs keeps one of these threads, not the delivery worker).
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class UrlRefused(ValueError):
    """A receiver URL that breaks a rule; the message says which."""


class DestinationRefused(OSError):
    """A host that resolves to an address deliveries may not reach."""


def check_url(url: object) -> str:
    """The URL when it is a well-formed http(s) receiver URL; UrlRefused saying why."""
    if not isinstance(url, str):
        raise UrlRefused("must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"must be at most {MAX_URL_LENGTH} characters")
    if not _URL_CHARACTERS.fullmatch(url):
        raise UrlRefused("must be printable ASCII without spaces (an IDN host as punycode)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL ({exc})") from exc
    if parts.scheme not in SCHEMES:
        raise UrlRefused("must be an http or https URL")
    if "@" in parts.netloc:
        raise UrlRefused("must not carry a user name or password")
    if parts.fragment or url.endswith("#"):
        raise UrlRefused("must not have a fragment")
    host = parts.hostname
    if not host:
        raise UrlRefused("must name a host")
    if port == 0:
        raise UrlRefused("must not use port 0")
    if not _valid_host(host, bracketed=parts.netloc.startswith("[")):
        raise UrlRefused(f"has an invalid host {host!r}")
    return url


def _valid_host(host: str, bracketed: bool) -> bool:
    """An IP literal (IPv6 only in brackets) or a DNS name of valid labels."""
    if bracketed:
        try:
            return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
        except ValueError:
            return False
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def host_and_port(url: str) -> tuple[str, int]:
    """The host and port a (checked) URL connects to."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


# Prefixes of IPv6 addresses that carry an IPv4 address where ipaddress has no property to
# read it: IPv4-compatible (RFC 4291, deprecated: ::a.b.c.d), NAT64's well-known prefix and
# its local-use prefix (RFC 6052, RFC 8215). Mapped (::ffff:0:0/96), 6to4 (2002::/16) and
# Teredo (2001::/32) are read with ipaddress's own properties.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, IPv4-compatible, 6to4,
    Teredo (its server and its client, un-XOR-ed), NAT64. In the local-use NAT64 prefix the
    operator picks where the IPv4 address sits: both the /48 and the /96 places are read."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        found.append(low)
    if ip in _NAT64_LOCAL:
        packed = ip.packed  # RFC 6052 for a /48 prefix: bits 48-63 and 72-87 (64-71 is u)
        found.extend((ipaddress.IPv4Address(packed[6:8] + packed[9:11]), low))
    return found


def _globally_reachable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable and none of loopback, private, link-local, site-local, multicast,
    reserved, unspecified (ipaddress's own properties)."""
    refused = (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )
    return not refused and ip.is_global


def is_public(address: str) -> bool:
    """Whether deliveries may reach this IP address: globally routable, and none of loopback,
    private, link-local, site-local, multicast, reserved, unspecified. An IPv6 address that
    carries an IPv4 address (`embedded_ipv4`: 6to4, Teredo, NAT64, IPv4-compatible) is judged
    as itself and as each address it carries, all of which must pass; an IPv4-mapped address
    is the IPv4 address it maps (a socket's way of writing it) and is judged as that."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return _globally_reachable(ip)
    if ip.ipv4_mapped is not None:
        return _globally_reachable(ip.ipv4_mapped)
    return _globally_reachable(ip) and all(_globally_reachable(v4) for v4 in embedded_ipv4(ip))


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """Every address `host` resolves to (OSError when it does not, in `timeout` seconds)."""
    future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except FutureTimeout as exc:
        raise socket.gaierror(f"resolving {host!r} took over {timeout:g} s") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def public_addresses(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of `host`, when every one of them is public; DestinationRefused when any
    is not (one bad answer is enough to refuse: the connection could go to it)."""
    addresses = resolve(host, port, timeout)
    if not addresses:
        raise socket.gaierror(f"{host!r} has no address")
    refused = [a for a in addresses if not is_public(a)]
    if refused:
        raise DestinationRefused(f"{host!r} resolves to a non-public address ({refused[0]})")
    return addresses


def check_destination(url: str, timeout: float) -> None:
    """UrlRefused unless the URL's host resolves, only to public addresses."""
    host, port = host_and_port(url)
    try:
        public_addresses(host, port, timeout)
    except DestinationRefused as exc:
        raise UrlRefused(f"must not point at a non-public address: {exc}") from exc
    except OSError as exc:
        raise UrlRefused(f"has a host that does not resolve ({host!r})") from exc


class _GuardedConnectionMixin:
    """Opens its socket only to an address checked by `public_addresses`, at connect time."""

    def _new_conn(self) -> socket.socket:
        host = self._dns_host  # type: ignore[attr-defined]
        timeout = self.timeout  # type: ignore[attr-defined]
        limit = timeout if isinstance(timeout, int | float) else 5.0
        try:
            addresses = public_addresses(host, self.port, limit)  # type: ignore[attr-defined]
        except OSError as exc:
            raise NewConnectionError(self, f"refused: {exc}") from exc  # type: ignore[arg-type]
        last: OSError | None = None
        for address in addresses:
            try:
                return connection.create_connection(
                    (address, self.port),  # type: ignore[attr-defined]
                    timeout,
                    source_address=self.source_address,  # type: ignore[attr-defined]
                    socket_options=self.socket_options,  # type: ignore[attr-defined]
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connecting to {host} timed out") from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(self, f"could not connect: {last}")  # type: ignore[arg-type]


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    """An HTTP connection to a checked public address."""


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    """An HTTPS connection to a checked public address (certificate checked for the URL's
    host name)."""


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose every new connection passes the address policy."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


def new_session(guarded: bool) -> requests.Session:
    """The deliveries' HTTP session: no proxy or .netrc from the environment; every connection
    checked against the address policy when `guarded`."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(pool_maxsize=4) if guarded else HTTPAdapter(pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed attempt (the refusal, when the address policy refused)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DestinationRefused):
            return f"refused: {seen}"[:300]
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return f"connection error: {_innermost(exc)}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _innermost(exc: BaseException) -> str:
    """The message of the deepest cause (requests wraps urllib3 wraps the socket error)."""
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            return str(exc) or type(exc).__name__
        exc = nxt


class Sender(Protocol):
    """Sends one attempt: (status code, None) when an answer came, else (None, why)."""

    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int | None, str | None]: ...


class HttpSender:
    """Attempts over HTTP: never a redirect followed, never a proxy, a timeout on each step;
    with `guarded`, every connection goes only to a public address checked when it opens."""

    def __init__(self, guarded: bool):
        self.guarded = guarded
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """This thread's session (attempts run in a pool's threads: requests does not promise
        that one session is safe to share between them)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session(self.guarded)
        return session

    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int | None, str | None]:
        """POST `body`; the answer's status code, or why there was none."""
        try:
            resp = self.session.post(
                url,
                data=body,
                headers=headers,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,  # the answer's body is not wanted: it is never read
            )
        except (requests.RequestException, ValueError, OSError) as exc:
            return None, describe_failure(exc)
        resp.close()
        return resp.status_code, None
