"""Forwarding one request to a service: pooled, bounded in time, failures in the error shape.

The gateway only waits on its services, so it runs on asyncio (aiohttp) rather than on threads:
measured under the same load, a forwarded request cost the gateway process about 1,000 us of CPU
through Flask + urllib3 on gthread workers, 530 us through a bare WSGI callable with
http.client, and 260 us through aiohttp's server and client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import (
    ClientConnectionError,
    ClientConnectorError,
    ClientError,
    ClientSession,
    ClientTimeout,
    ConnectionTimeoutError,
    DummyCookieJar,
    ServerTimeoutError,
    TCPConnector,
)
from multidict import CIMultiDict
from yarl import URL

from shared import metrics
from shared.errors import BadGateway, GatewayTimeout, ServiceUnavailable

# RFC 9110 section 7.6.1, plus what the HTTP client or server recompute themselves.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "host",
        "content-length",
        # The server decompresses request bodies, so their encoding no longer applies.
        "content-encoding",
    }
)
# Responses are passed on as they came (the client does not decompress them).
RESPONSE_HOP_BY_HOP = HOP_BY_HOP - {"content-encoding"}

# Below gunicorn's 2 s keep-alive on the services, so the gateway closes an idle connection
# before the service does and never sends a request on a connection being closed.
UPSTREAM_KEEPALIVE_SECONDS = 1.5


def strip_hop_by_hop(
    headers: Mapping[str, str], drop: frozenset[str] = HOP_BY_HOP
) -> CIMultiDict[str]:
    """End-to-end headers only (also those named by Connection); repeated headers kept."""
    named: set[str] = set()
    connection = headers.get("Connection") or headers.get("connection")
    if connection:
        named.update(v.strip().lower() for v in connection.split(","))
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        lower = key.lower()
        if lower not in drop and lower not in named:
            out.add(key, value)
    return out


@dataclass
class Breaker:
    """A circuit breaker: after `threshold` failures in a row, fail fast for `cooldown` s.

    A failure is what says the service is unavailable: a refused or broken connection, a
    timeout, a 503 from the service. Nothing a client sends can cause one (API.md, "Input
    that is never trusted").
    """

    threshold: int = 5
    cooldown: float = 5.0
    failures: int = 0
    opened_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Called with True when the circuit opens and False when it closes (under the lock).
    on_change: Callable[[bool], None] | None = field(default=None, repr=False, compare=False)

    def allow(self) -> bool:
        """False while open; one trial request is let through after the cooldown."""
        with self.lock:
            if self.failures < self.threshold:
                return True
            if time.monotonic() - self.opened_at >= self.cooldown:
                self.opened_at = time.monotonic()  # half-open: one trial per cooldown
                return True
            return False

    def record(self, ok: bool) -> None:
        """Count a success (closes) or a failure (opens at the threshold)."""
        with self.lock:
            was_open = self.failures >= self.threshold
            if ok:
                self.failures = 0
            else:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.opened_at = time.monotonic()
            is_open = self.failures >= self.threshold
            if is_open != was_open and self.on_change is not None:
                self.on_change(is_open)

    @property
    def state(self) -> str:
        """closed or open."""
        return "open" if self.failures >= self.threshold else "closed"


@dataclass(frozen=True)
class Upstream:
    """A service's answer."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]


class Proxy:
    """Pooled keep-alive connections to every service; a breaker per service.

    `start()` and `close()` run on the worker's event loop (the app's startup and cleanup).
    """

    def __init__(
        self,
        urls: dict[str, str],
        timeout: tuple[float, float],
        breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
    ):
        self.urls = urls
        self.timeout = timeout
        self.breakers = {
            name: Breaker(breaker_threshold, breaker_cooldown, on_change=_publisher(name))
            for name in urls
        }
        self._session: ClientSession | None = None
        for name in urls:
            metrics.set_breaker_open(name, False)

    async def start(self) -> None:
        """Open the connection pool."""
        self._session = ClientSession(
            connector=TCPConnector(limit=256, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS),
            timeout=ClientTimeout(total=None, connect=self.timeout[0], sock_read=self.timeout[1]),
            # A proxy keeps no cookies: one client's Set-Cookie must never reach another.
            cookie_jar=DummyCookieJar(),
            auto_decompress=False,
            # Send the client's headers, not the HTTP client's defaults.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> ClientSession:
        if self._session is None:
            raise RuntimeError("Proxy.start() was not awaited")
        return self._session

    async def get_json(self, url: str, timeout: float) -> object:
        """A plain GET on the same pool (OpenAPI documents); raises on any failure."""
        async with self.session.get(
            url, timeout=ClientTimeout(total=timeout), allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise ClientError(f"{url} answered {resp.status}")
            return await resp.json(content_type=None)

    async def probe(self, url: str, timeout: float) -> None:
        """A health probe: raises unless `url` answers 200 within `timeout` seconds."""
        async with self.session.get(
            url, timeout=ClientTimeout(total=timeout), allow_redirects=False
        ) as resp:
            await resp.read()
            if resp.status != 200:
                raise ClientError(f"{url} answered {resp.status}")

    async def forward(
        self,
        service: str,
        method: str,
        path_qs: str,
        headers: Iterable | Mapping[str, str],
        body: bytes | None,
    ) -> Upstream:
        """Send one request on; a connect error on a GET/HEAD is retried once."""
        breaker = self.breakers[service]
        if not breaker.allow():
            metrics.count_upstream(service, "circuit_open")
            raise ServiceUnavailable(f"The {service} service is unavailable (circuit open)")
        # encoded=True: the path goes on byte for byte, as the client sent it.
        url = URL(self.urls[service] + path_qs, encoded=True)
        attempts = 2 if method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            try:
                async with self.session.request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    content = await resp.read()
            except ConnectionTimeoutError as exc:
                metrics.count_upstream(service, "connect_timeout")
                failure = GatewayTimeout(f"The {service} service did not answer in time")
                cause: Exception = exc
            except ServerTimeoutError as exc:  # connected, then no answer within the read timeout
                metrics.count_upstream(service, "read_timeout")
                breaker.record(False)
                raise GatewayTimeout(f"The {service} service did not answer in time") from exc
            except ClientConnectorError as exc:  # refused: nothing reached the service
                metrics.count_upstream(service, "connect_error")
                failure, cause = ServiceUnavailable(f"The {service} service is unavailable"), exc
            except ClientConnectionError as exc:  # the connection broke (a process restarting)
                metrics.count_upstream(service, "connect_error")
                failure, cause = ServiceUnavailable(f"The {service} service is unavailable"), exc
            except ClientError as exc:
                # A malformed answer: the service is there (what one request made it send
                # must not open the circuit for everyone).
                metrics.count_upstream(service, "error")
                raise BadGateway(f"The {service} service answered badly") from exc
            else:
                metrics.count_upstream(service, resp.status)
                # Only a 503 says the service itself is unavailable; a 500 or 4xx is about
                # one request, and no client may open the circuit for the others.
                breaker.record(resp.status != 503)
                return Upstream(resp.status, content, resp.headers)
            if attempt + 1 == attempts:
                breaker.record(False)
                raise failure from cause
        raise AssertionError("unreachable")


def _publisher(upstream: str) -> Callable[[bool], None]:
    def publish(is_open: bool) -> None:
        metrics.set_breaker_open(upstream, is_open)

    return publish
