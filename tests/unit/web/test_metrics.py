"""shared/metrics.py and its hooks in shared/web.py (in one process)."""

from __future__ import annotations

import io

import pytest
import redis
from prometheus_client import REGISTRY
from pymongo.errors import DuplicateKeyError, ServerSelectionTimeoutError

from shared import metrics
from shared.config import Config
from shared.errors import DuplicateBooking, ServiceUnavailable
from shared.web import create_base_app, service_name


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def client():
    app, _ = create_base_app("probe_service", "Probe", Config(max_body_bytes=1024))

    @app.get("/items/<item_id>")
    def item(item_id):
        return {"id": item_id}

    @app.get("/redis-down")
    def redis_down():
        try:
            raise redis.ConnectionError("refused")
        except redis.RedisError as exc:
            raise ServiceUnavailable("the capacity store is down") from exc

    @app.get("/mongo-raw")
    def mongo_raw():
        raise ServerSelectionTimeoutError("no primary")

    @app.get("/duplicate")
    def duplicate():
        try:
            raise DuplicateKeyError("E11000")
        except DuplicateKeyError as exc:
            raise DuplicateBooking("already booked") from exc

    @app.post("/echo")
    def echo():
        return {"length": len(__import__("flask").request.get_data())}

    return app.test_client()


def test_service_label_comes_from_the_package():
    assert service_name("booking_service") == "booking"
    assert service_name("schedule_service") == "schedule"
    assert service_name("gateway") == "gateway"


def test_requests_are_counted_per_url_rule_not_per_path(client):
    labels = {"service": "probe", "method": "GET", "route": "/items/<item_id>", "status": "200"}
    before = sample("http_requests_total", **labels)
    timed = sample("http_request_duration_seconds_count", service="probe", route=labels["route"])
    for item_id in ("a", "b", "c"):
        assert client.get(f"/items/{item_id}").status_code == 200
    assert sample("http_requests_total", **labels) == before + 3
    assert (
        sample("http_request_duration_seconds_count", service="probe", route=labels["route"])
        == timed + 3
    )
    unmatched = {"service": "probe", "method": "GET", "route": "<unmatched>", "status": "404"}
    before = sample("http_requests_total", **unmatched)
    client.get("/no/such/path")
    assert sample("http_requests_total", **unmatched) == before + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert "/no/such/path" not in text and 'route="/items/<item_id>"' in text


def test_unknown_methods_share_one_label(client):
    labels = {"service": "probe", "method": "OTHER", "route": "<unmatched>", "status": "405"}
    before = sample("http_requests_total", **labels)
    client.open("/items/x", method="BREW")
    client.open("/items/x", method="WHEN")
    assert sample("http_requests_total", **labels) == before + 2


def test_metrics_endpoint_is_prometheus_text(client):
    client.get("/items/x")
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = resp.get_data(as_text=True)
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text


def test_database_failures_are_counted_and_domain_refusals_are_not(client):
    def errors(dependency):
        return sample("dependency_errors_total", service="probe", dependency=dependency)

    redis_before, mongo_before = errors("redis"), errors("mongodb")
    resp = client.get("/redis-down")
    assert resp.status_code == 503 and resp.json["error"] == "service_unavailable"
    assert errors("redis") == redis_before + 1
    resp = client.get("/mongo-raw")  # no layer handled it: the shared handlers answer 5xx
    assert resp.status_code >= 500, resp.json
    assert errors("mongodb") == mongo_before + 1
    # A unique index doing its job (409) is not a database failure.
    assert client.get("/duplicate").status_code == 409
    assert errors("mongodb") == mongo_before + 1


def test_dependency_of_walks_the_cause_chain():
    try:
        try:
            raise redis.TimeoutError("slow")
        except redis.RedisError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert metrics.dependency_of(outer) == "redis"
    assert metrics.dependency_of(ValueError("alone")) is None
    assert metrics.dependency_of(None) is None


@pytest.mark.parametrize("size", [1023, 1024])
def test_a_streamed_body_up_to_the_limit_is_read_whole(client, size):
    resp = client.post("/echo", input_stream=io.BytesIO(b"x" * size))
    assert resp.status_code == 200 and resp.json == {"length": size}


@pytest.mark.parametrize("size", [1025, 10_000])
def test_a_streamed_body_over_the_limit_is_413_not_truncated(client, size):
    resp = client.post("/echo", input_stream=io.BytesIO(b"x" * size))
    assert resp.status_code == 413 and resp.json["error"] == "payload_too_large"
    sized = client.post("/echo", data=b"x" * size)  # with Content-Length: refused up front
    assert sized.status_code == 413 and sized.json["error"] == "payload_too_large"


def test_counters_reuse_their_label_children():
    before = sample("bookings_total", outcome="slot_full")
    metrics.count_booking("slot_full")
    assert sample("bookings_total", outcome="slot_full") == before + 1
