"""Forwarding one request to a service: pooled, bounded in time, failures in the error shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

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


class Proxy:
    """One pooled session for all services; a breaker per service."""

    def __init__(
        self,
        urls: dict[str, str],
        timeout: tuple[float, float],
        breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
    ):
        self.urls = urls
        self.timeout = timeout
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=len(urls), pool_maxsize=64, max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.breakers = {
            name: Breaker(breaker_threshold, breaker_cooldown, on_change=_publisher(name))
            for name in urls
        }
        for name in urls:
            metrics.set_breaker_open(name, False)

    def forward(
        self, service: str, method: str, path_qs: str, headers: dict, body: bytes | None
    ) -> requests.Response:
        """Send one request on; a connect error on a GET/HEAD is retried once."""
        breaker = self.breakers[service]
        if not breaker.allow():
            metrics.count_upstream(service, "circuit_open")
            raise ServiceUnavailable(f"The {service} service is unavailable (circuit open)")
        url = self.urls[service] + path_qs
        attempts = 2 if method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=False,
                )
            except requests.ConnectTimeout as exc:
                metrics.count_upstream(service, "connect_timeout")
                failure = GatewayTimeout(f"The {service} service did not answer in time")
                cause = exc
            except requests.ConnectionError as exc:
                metrics.count_upstream(service, "connect_error")
                failure = ServiceUnavailable(f"The {service} service is unavailable")
                cause = exc
            except requests.ReadTimeout as exc:
                metrics.count_upstream(service, "read_timeout")
                breaker.record(False)
                raise GatewayTimeout(f"The {service} service did not answer in time") from exc
            except requests.RequestException as exc:
                metrics.count_upstream(service, "error")
                breaker.record(False)
                raise BadGateway(f"The {service} service answered badly") from exc
            else:
                metrics.count_upstream(service, resp.status_code)
                breaker.record(resp.status_code < 500 or resp.status_code == 503)
                return resp
            if attempt + 1 == attempts:
                breaker.record(False)
                raise failure from cause
        raise AssertionError("unreachable")


def _publisher(upstream: str) -> Callable[[bool], None]:
    def publish(is_open: bool) -> None:
        metrics.set_breaker_open(upstream, is_open)

    return publish
