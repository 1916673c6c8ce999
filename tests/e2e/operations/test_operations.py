"""Operations over real HTTP: /metrics, body limits, readiness and a service that is down."""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.servers import free_port
from tests.helpers import Api, assert_error_shape, booking, next_weekday, wait_until


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
    for name, base in (("schedule", stack.schedule_url), ("booking", stack.booking_url)):
        requests.get(base + "/healthz", timeout=5)
        text = scrape(base)
        for metric in ("http_requests_total", "http_request_duration_seconds_bucket"):
            assert metric in text, (name, metric)
        assert value(text, "http_requests_total", service=name, route="/healthz") >= 1, name
        assert value(text, "http_request_duration_seconds_count", service=name) >= 1, name
    # The gateway's (Caddy's) metrics are on its internal address, never on the public port.
    assert_error_shape(gateway.get("/metrics"), 404, "not_found")
    text = scrape(stack.gateway.metrics_url)
    assert value(text, "caddy_http_request_duration_seconds_count", code="200") >= 1
    assert value(text, "caddy_http_request_duration_seconds_count", code="404") >= 1
    upstream = stack.schedule_url.removeprefix("http://")

    def healthy() -> bool:  # (a missed check on a loaded machine reads 0 until the next update)
        gauge = scrape(stack.gateway.metrics_url)
        return value(gauge, "caddy_reverse_proxy_upstreams_healthy", upstream=upstream) == 1

    wait_until(healthy, timeout=40, step=1)
    # Raw paths never become label values.
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
    dead = f"http://127.0.0.1:{free_port()}"
    process = stack.new_gateway(
        "gateway-half",
        upstreams={"schedule": [dead], "booking": stack.replica_urls("booking")},
        env={"BREAKER_THRESHOLD": "3", "BREAKER_COOLDOWN_SECONDS": "60"},
    ).start()
    try:
        yield process
    finally:
        process.stop()


def test_readyz_of_the_gateway_names_the_service_that_is_down(half_gateway, stack):
    body = assert_error_shape(Api(half_gateway.url).get("/readyz"), 503, "not_ready")
    assert body["checks"]["schedule"].startswith("down"), body
    assert body["checks"]["booking"] == "ok", body
    assert "schedule" in body["message"] and "booking" not in body["message"], body
    ready = Api(stack.gateway_url).get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"schedule": "ok", "booking": "ok", "live": "ok"}


def test_a_dead_service_fails_fast_and_the_other_is_unaffected(half_gateway):
    api = Api(half_gateway.url)
    for _ in range(5):
        started = time.monotonic()
        assert_error_shape(api.get("/api/dynamic-slots/hospitals"), 503, "service_unavailable")
        assert time.monotonic() - started < 5.0  # bounded by the connect timeout, no hang
    day = next_weekday(3)
    assert api.get(f"/api/availability/gomoti/{day}").status_code == 200
    # The health checks know which one is down (Caddy updates this gauge every 10 s).
    booking = half_gateway.env["BOOKING_UPSTREAMS"].split()[1]
    dead = half_gateway.env["SCHEDULE_UPSTREAMS"].split()[1]

    def health(upstream: str) -> float:
        text = scrape(half_gateway.metrics_url)
        return value(text, "caddy_reverse_proxy_upstreams_healthy", upstream=upstream)

    # Both at one update of the gauge: on a loaded machine one of the booking service's
    # /healthz checks (1 s timeout) can miss, and the gauge then says 0 until its next
    # update; the dead one never answers, so it can never read 1.
    wait_until(lambda: (health(dead), health(booking)) == (0, 1), timeout=40, step=1)
