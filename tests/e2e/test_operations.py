"""Operations over real HTTP: /metrics, body limits, readiness and the circuit breaker."""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.servers import free_port
from tests.helpers import Api, assert_error_shape, booking, next_weekday

BREAKER_THRESHOLD = 3


def scrape(base: str) -> str:
    """The /metrics text of a process (checked to be Prometheus text)."""
    resp = requests.get(base + "/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    return resp.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_metrics_on_the_gateway_and_both_services(stack, gateway):
    # One request of each kind first, so every process has samples to show.
    assert gateway.get("/api/dynamic-slots/hospitals").status_code == 200
    assert gateway.get("/api/no-such-thing").status_code == 404
    for name, base in (
        ("gateway", stack.gateway_url),
        ("schedule", stack.schedule_url),
        ("booking", stack.booking_url),
    ):
        requests.get(base + "/healthz", timeout=5)
        text = scrape(base)
        for metric in ("http_requests_total", "http_request_duration_seconds_bucket"):
            assert metric in text, (name, metric)
        assert value(text, "http_requests_total", service=name, route="/healthz") >= 1, name
        assert value(text, "http_request_duration_seconds_count", service=name) >= 1, name
    text = scrape(stack.gateway_url)
    assert value(text, "upstream_requests_total", upstream="schedule", status="200") >= 1
    assert "circuit_breaker_open" in text
    assert value(text, "circuit_breaker_open", upstream="schedule") == 0
    # The route label is the URL rule: unknown paths share one label, raw paths never appear.
    assert value(text, "http_requests_total", route="/api/<path:_rest>", status="404") >= 1
    assert "/api/no-such-thing" not in text
    requests.get(stack.schedule_url + "/nowhere/at/all", timeout=5)
    text = scrape(stack.schedule_url)
    assert value(text, "http_requests_total", route="<unmatched>", status="404") >= 1
    assert "/nowhere/at/all" not in text


def test_booking_outcomes_are_counted(stack, admin, hospital):
    def bookings(text: str, outcome: str) -> float:
        return value(text, "bookings_total", outcome=outcome)

    hid, day = hospital["hospital_id"], next_weekday(2)
    before = scrape(stack.booking_url)
    phone = "+8801719876543"
    created = admin.post("/api/appointments", booking(hid, day, "09:00", phone))
    assert created.status_code == 201, created.text
    after = scrape(stack.booking_url)
    assert bookings(after, "confirmed") == bookings(before, "confirmed") + 1
    assert_error_shape(
        admin.post("/api/appointments", booking(hid, day, "10:00", phone)), 409, "duplicate_booking"
    )
    again = scrape(stack.booking_url)
    assert bookings(again, "duplicate_booking") == bookings(after, "duplicate_booking") + 1
    assert bookings(again, "confirmed") == bookings(after, "confirmed")
    # Per URL rule: an appointment id never becomes a label value.
    appointment_id = created.json()["appointment_id"]
    assert admin.get(f"/api/appointments/{appointment_id}").status_code == 200
    text = scrape(stack.booking_url)
    rule = "/api/appointments/<appointment_id:appointment_id>"
    assert value(text, "http_requests_total", service="booking", route=rule, status="200") >= 1
    assert value(text, "http_requests_total", route="/api/appointments", status="201") >= 1
    assert appointment_id not in text


def test_a_body_over_the_limit_is_413_through_the_gateway(gateway):
    big = {"name": "x" * (64 * 1024), "email": "big@example.com", "phone": "+8801700000000"}
    assert_error_shape(gateway.post("/api/auth/register", big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(80):
            yield b"x" * 1024

    resp = requests.post(
        gateway.base + "/api/auth/register",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_error_shape(resp, 413, "payload_too_large")
    # Just under the limit is forwarded (and refused by the service for its content only).
    small = {"name": "x" * 1000, "email": "not-an-email", "phone": "1", "password": "p"}
    assert_error_shape(gateway.post("/api/auth/register", small), 400, "validation_error")


@pytest.fixture(scope="module")
def half_gateway(stack):
    """A gateway whose schedule service is down (a closed port); booking is the real one."""
    env = {
        "SCHEDULE_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "BOOKING_SERVICE_URL": stack.booking_url,
        "BREAKER_THRESHOLD": str(BREAKER_THRESHOLD),
        "BREAKER_COOLDOWN_SECONDS": "60",
    }
    # One worker: the breaker is per process, so one process makes it deterministic.
    process = stack.extra_service("gateway-half", "gateway", env=env, workers=1)
    try:
        yield Api(process.url)
    finally:
        process.stop()


def test_readyz_of_the_gateway_names_the_service_that_is_down(half_gateway):
    body = assert_error_shape(half_gateway.get("/readyz"), 503, "not_ready")
    assert body["checks"]["schedule"].startswith("down"), body
    assert body["checks"]["booking"] == "ok", body
    assert "schedule" in body["message"] and "booking" not in body["message"], body


def test_a_dead_service_fails_fast_then_opens_its_circuit(half_gateway):
    for _ in range(BREAKER_THRESHOLD):
        started = time.monotonic()
        body = assert_error_shape(
            half_gateway.get("/api/dynamic-slots/hospitals"), 503, "service_unavailable"
        )
        assert time.monotonic() - started < 2.0
        assert "circuit open" not in body["message"], body
    started = time.monotonic()
    body = assert_error_shape(
        half_gateway.get("/api/dynamic-slots/hospitals"), 503, "service_unavailable"
    )
    assert time.monotonic() - started < 0.5
    assert "circuit open" in body["message"], body
    # The other service is unaffected.
    day = next_weekday(3)
    assert half_gateway.get(f"/api/availability/gomoti/{day}").status_code == 200
    text = scrape(half_gateway.base)
    assert value(text, "circuit_breaker_open", upstream="schedule") == 1
    assert value(text, "circuit_breaker_open", upstream="booking") == 0
    # A GET that fails to connect is tried twice; the open circuit sends nothing.
    attempts = value(text, "upstream_requests_total", upstream="schedule", status="connect_error")
    assert attempts == 2 * BREAKER_THRESHOLD
    assert value(text, "upstream_requests_total", upstream="schedule", status="circuit_open") == 1
    assert value(text, "upstream_requests_total", upstream="booking", status="200") >= 1
