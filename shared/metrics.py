"""Prometheus metrics of every process: the definitions, cheap recorders, the /metrics body.

gunicorn runs several worker processes per service, and a scrape reaches only one of them. When
`PROMETHEUS_MULTIPROC_DIR` is set, prometheus-client's multiprocess mode keeps every worker's
values in memory-mapped files in that directory and a scrape sums them; the directory must be
one per service and empty when the service starts (devstack empties it; the Docker image points
it at a tmpfs path, fresh in every container). Without it (tests, one process) the values live
in the default in-process registry.

Recording is on the hottest paths, so label children are looked up once and cached: a request
costs one counter increment and one histogram observation.
"""

from __future__ import annotations

import os
import sys

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

#: True when prometheus-client chose its multiprocess value class (decided at its import).
MULTIPROCESS: bool = bool(getattr(values.ValueClass, "_multiprocess", False))
if MULTIPROCESS:
    # gunicorn workers may start before anyone created the directory (e.g. a fresh tmpfs).
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# `*_created` series double the output and mean nothing in multiprocess mode.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by URL rule (not raw path) and status",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the first before_request hook to the last after_request hook",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BOOKINGS = Counter(
    "bookings",
    'Booking attempts (POST /api/appointments) by outcome: "confirmed" or the error reason',
    ["outcome"],
)
DEPENDENCY_ERRORS = Counter(
    "dependency_errors",
    "Requests that failed because Redis or MongoDB failed",
    ["service", "dependency"],
)


_request_children: dict[tuple, tuple] = {}
_booking_children: dict[str, object] = {}


def observe_request(service: str, method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration (route: the URL rule, or UNMATCHED)."""
    if method not in _METHODS:  # any token is a method: keep the label set bounded
        method = "OTHER"
    key = (service, method, route, status)
    children = _request_children.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(service, method, route, str(status)),
            HTTP_DURATION.labels(service, route),
        )
        _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def count_booking(outcome: str) -> None:
    """Count one booking attempt: "confirmed" or the error reason."""
    child = _booking_children.get(outcome)
    if child is None:
        child = _booking_children[outcome] = BOOKINGS.labels(outcome)
    child.inc()


def dependency_of(exc: BaseException | None) -> str | None:
    """ "redis" or "mongodb" when that client's error is (or caused) exc; else None."""
    kinds = []
    redis_errors = sys.modules.get("redis.exceptions")  # not imported: cannot be the cause
    if redis_errors is not None:
        kinds.append((redis_errors.RedisError, "redis"))
    mongo_errors = sys.modules.get("pymongo.errors")
    if mongo_errors is not None:
        kinds.append((mongo_errors.PyMongoError, "mongodb"))
    for _ in range(8):  # a bounded walk down the chain of causes
        if exc is None:
            break
        for cls, name in kinds:
            if isinstance(exc, cls):
                return name
        exc = exc.__cause__ or exc.__context__
    return None


def count_dependency_error(service: str, dependency: str) -> None:
    """Count one request that failed because a database failed."""
    DEPENDENCY_ERRORS.labels(service, dependency).inc()


def render() -> bytes:
    """The exposition of this service: every worker's values in multiprocess mode."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
