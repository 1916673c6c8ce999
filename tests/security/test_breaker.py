"""Attack: make the gateway refuse everyone by sending requests that fail.

Before: a dozen anonymous requests that made a service answer 500 opened the gateway's
circuit breaker, and every other patient got 503 for seconds. Now only what says a service
is unavailable counts (a refused or timed-out connection, a 503 from the service itself);
no answer to one client's request can make the gateway refuse the others.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.helpers import assert_error_shape

pytestmark = pytest.mark.e2e


class Stub(BaseHTTPRequestHandler):
    """An upstream: 500 on .../boom, 503 on .../down, 200 otherwise."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        status = 500 if self.path.endswith("/boom") else 503 if self.path.endswith("/down") else 200
        body = json.dumps({"path": self.path, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway_before_stub(stack):
    """A gateway process (the real one, with a low breaker threshold) whose services are
    the stub."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub = f"http://127.0.0.1:{server.server_port}"
    gateway = stack.extra_service(
        "gateway-breaker",
        "gateway",
        env={
            "SCHEDULE_SERVICE_URL": stub,
            "BOOKING_SERVICE_URL": stub,
            "BREAKER_THRESHOLD": "3",
            "BREAKER_COOLDOWN_SECONDS": "30",
        },
        workers=1,
    )
    try:
        yield gateway.url
    finally:
        gateway.stop()
        server.shutdown()
        server.server_close()


def test_answers_of_500_never_open_the_circuit(gateway_before_stub):
    base = gateway_before_stub
    with requests.Session() as http:
        failing = [http.get(f"{base}/api/dynamic-slots/boom", timeout=10) for _ in range(40)]
        assert {r.status_code for r in failing} == {500}
        served = [http.get(f"{base}/api/dynamic-slots/hospitals", timeout=10) for _ in range(10)]
        assert [r.status_code for r in served] == [200] * 10


def test_a_service_that_says_it_is_unavailable_does_open_it(gateway_before_stub):
    """The control: the breaker works, for what it is meant to count."""
    base = gateway_before_stub
    with requests.Session() as http:
        for _ in range(5):
            http.get(f"{base}/api/dynamic-slots/down", timeout=10)
        refused = http.get(f"{base}/api/dynamic-slots/hospitals", timeout=10)
        assert_error_shape(refused, 503, "service_unavailable")


HOSTILE = [
    ("POST", "/api/appointments", b"[" * 20000 + b"]" * 20000),
    ("POST", "/api/availability/bulk", b'{"hospital_id": "gomoti", "dates": ["\\ud800"]}'),
    ("POST", "/api/auth/register", b'{"name": "\\udfff", "email": "a@b.co", "phone": "1",'),
    ("GET", "/api/dynamic-slots/calendar/gomoti?start=9999-12-31&days=92", b""),
    ("GET", "/api/dynamic-slots/calendar/gomoti?days=%C2%B2", b""),
    ("GET", "/api/availability/..%2F..%2Fhealthz/2026-12-01", b""),
    ("POST", "/api/availability/bulk", b'{"hospital_id": "x", "dates": ["9999-12-31"]}'),
]


def test_a_flood_of_hostile_requests_leaves_everyone_else_served(stack):
    """Through the real system: 300 hostile requests from 8 threads while a patient reads;
    every hostile one is a 4xx, every patient read is answered."""
    base = stack.gateway_url
    stop = threading.Event()
    normal: Counter[int] = Counter()

    def hostile(i: int) -> int:
        method, path, body = HOSTILE[i % len(HOSTILE)]
        resp = requests.request(
            method,
            base + path,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        return resp.status_code

    def patient() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                resp = http.get(f"{base}/api/dynamic-slots/calendar/gomoti?days=7", timeout=30)
                normal[resp.status_code] += 1

    reader = threading.Thread(target=patient)
    reader.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(hostile, range(300)))
    finally:
        stop.set()
        reader.join(timeout=60)
    assert all(400 <= status < 500 for status in statuses), statuses
    assert set(normal) == {200} and normal[200] > 0, normal
