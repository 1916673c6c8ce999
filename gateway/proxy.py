"""Forwarding one request to a service: pooled, bounded in time, failures in the error shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from shared import metrics
from shared.errors import BadGateway, GatewayTimeout, ServiceUnavailable

# RFC 9110 section 7.6.1, plus what requests or werkzeug recompute themselves.
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
        "content-encoding",
    }
)


def strip_hop_by_hop(headers) -> dict[str, str]:
    """End-to-end headers only (also those named by Connection)."""
    named = set()
    for key, value in headers.items():
        if key.lower() == "connection":
            named.update(v.strip().lower() for v in value.split(","))
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP | named}


@dataclass
class Breaker:
    """A circuit breaker: after `threshold` failures in a row, fail fast for `cooldown` s."""

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
    """Pooled connections to every service; a breaker per service."""

    def __init__(
        self,
        urls: dict[str, str],
        timeout: tuple[float, float],
        breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
    ):
        self.urls = urls
        self.timeout = timeout
        # urllib3 (the transport under requests) directly: measured, a proxied call costs
        # 322 us of CPU through urllib3 and 903 us through requests.Session.
        self.pool = urllib3.PoolManager(num_pools=8, maxsize=64, block=False)
        self.pool_timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self.breakers = {
            name: Breaker(breaker_threshold, breaker_cooldown, on_change=_publisher(name))
            for name in urls
        }
        for name in urls:
            metrics.set_breaker_open(name, False)

    def get(self, url: str, timeout: float) -> urllib3.BaseHTTPResponse:
        """A plain GET on the same pool (health probes, OpenAPI documents); raises on failure."""
        resp = self.pool.request("GET", url, timeout=timeout, retries=False, redirect=False)
        if resp.status != 200:
            raise HTTPError(f"{url} answered {resp.status}")
        return resp

    def forward(
        self, service: str, method: str, path_qs: str, headers: dict, body: bytes | None
    ) -> Upstream:
        """Send one request on; a connect error on a GET/HEAD is retried once."""
        breaker = self.breakers[service]
        if not breaker.allow():
            metrics.count_upstream(service, "circuit_open")
            raise ServiceUnavailable(f"The {service} service is unavailable (circuit open)")
        url = self.urls[service] + path_qs
        attempts = 2 if method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            try:
                resp = self.pool.urlopen(
                    method,
                    url,
                    body=body,
                    headers=headers,
                    timeout=self.pool_timeout,
                    retries=False,
                    redirect=False,
                    preload_content=True,
                )
            except NewConnectionError as exc:  # refused: nothing reached the service
                metrics.count_upstream(service, "connect_error")
                failure, cause = ServiceUnavailable(f"The {service} service is unavailable"), exc
            except ConnectTimeoutError as exc:
                metrics.count_upstream(service, "connect_timeout")
                failure = GatewayTimeout(f"The {service} service did not answer in time")
                cause = exc
            except ReadTimeoutError as exc:
                metrics.count_upstream(service, "read_timeout")
                breaker.record(False)
                raise GatewayTimeout(f"The {service} service did not answer in time") from exc
            except ProtocolError as exc:  # the connection broke (e.g. a process restarting)
                metrics.count_upstream(service, "connect_error")
                failure, cause = ServiceUnavailable(f"The {service} service is unavailable"), exc
            except HTTPError as exc:
                metrics.count_upstream(service, "error")
                breaker.record(False)
                raise BadGateway(f"The {service} service answered badly") from exc
            else:
                metrics.count_upstream(service, resp.status)
                breaker.record(resp.status < 500 or resp.status == 503)
                return Upstream(resp.status, resp.data, resp.headers)
            if attempt + 1 == attempts:
                breaker.record(False)
                raise failure from cause
        raise AssertionError("unreachable")


def _publisher(upstream: str) -> Callable[[bool], None]:
    def publish(is_open: bool) -> None:
        metrics.set_breaker_open(upstream, is_open)

    return publish
