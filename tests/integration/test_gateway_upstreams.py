"""The gateway against upstreams that are slow or gone: 504 / 503 in the error shape, fast."""

from __future__ import annotations

import socket
import threading
import time

import requests

import gateway
from devstack.servers import free_port
from shared.config import Config
from tests.helpers import assert_error_shape, serve_in_thread


def _slow_server(delay: float) -> tuple[str, socket.socket]:
    """A loopback server that accepts, waits `delay` seconds, then closes without answering."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Timer(delay, conn.close).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", sock


def test_a_slow_service_is_a_504_within_the_read_timeout():
    url, sock = _slow_server(delay=5)
    app = gateway.create_app(Config(schedule_service_url=url, upstream_read_timeout=0.3))
    try:
        with serve_in_thread(app) as base:
            started = time.monotonic()
            resp = requests.post(base + "/api/dynamic-slots/hospitals", json={}, timeout=10)
            took = time.monotonic() - started
            assert_error_shape(resp, 504, "gateway_timeout")
            assert took < 3  # bounded by the read timeout, not the service's 5 s
    finally:
        sock.close()


def test_a_service_that_is_down_is_a_503_and_the_breaker_then_fails_fast():
    dead = f"http://127.0.0.1:{free_port()}"
    with serve_in_thread(gateway.create_app(Config(booking_service_url=dead))) as base:
        answers = [
            requests.get(base + "/api/availability/gomoti/2026-11-28", timeout=10) for _ in range(6)
        ]
    assert {a.status_code for a in answers} == {503}
    assert all(a.json()["error"] == "service_unavailable" for a in answers)
    assert "circuit open" in answers[-1].json()["message"]


def test_a_service_answering_something_that_is_not_http_is_a_502():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2 nothing like HTTP\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with serve_in_thread(gateway.create_app(Config(schedule_service_url=url))) as base:
            resp = requests.get(base + "/api/dynamic-slots/hospitals", timeout=10)
        assert_error_shape(resp, 502, "bad_gateway")
    finally:
        sock.close()
