"""The gateway (a real Caddy) against upstreams that are slow, gone, broken, failing or
several: error answers, retries, passive and active health checks, load balancing."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from devstack.servers import free_port
from tests.helpers import assert_error_shape, wait_until
from tests.upstream import Upstream


def _raw_server(handle) -> socket.socket:
    """A loopback server that gives each connection to `handle(conn)` (closed by the caller)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    return sock


def _silent_server() -> socket.socket:
    """A loopback server that accepts and never answers."""
    held: list[socket.socket] = []
    return _raw_server(held.append)


def test_a_slow_service_is_a_504_within_the_read_timeout(make_gateway):
    with Upstream() as slow:
        gateway = make_gateway(schedule=[slow], UPSTREAM_READ_TIMEOUT="0.3")
        resp = requests.post(
            gateway.url + "/api/dynamic-slots/hospitals?delay=3", json={}, timeout=10
        )
        assert_error_shape(resp, 504, "gateway_timeout")
        # A GET too (and it is not retried: one timeout is one answer).
        resp = requests.get(gateway.url + "/api/dynamic-slots/hospitals?delay=3", timeout=10)
        assert_error_shape(resp, 504, "gateway_timeout")
        assert len(slow.received) == 2


def test_a_service_that_accepts_and_never_answers_is_unavailable(make_gateway):
    """Its health checks fail too, so the gateway stops sending it anything: 503 or 504."""
    sock = _silent_server()
    try:
        gateway = make_gateway(
            schedule=[f"127.0.0.1:{sock.getsockname()[1]}"],
            UPSTREAM_READ_TIMEOUT="0.3",
            UPSTREAM_HEALTH_TIMEOUT="0.3",
        )
        resp = requests.get(gateway.url + "/api/dynamic-slots/hospitals", timeout=10)
        assert resp.status_code in (503, 504)
        assert_error_shape(resp, resp.status_code)
    finally:
        sock.close()


def test_a_service_that_is_down_is_a_503(make_gateway):
    dead = f"127.0.0.1:{free_port()}"
    gateway = make_gateway(booking=[dead])
    answers = [
        requests.get(gateway.url + "/api/availability/gomoti/2026-11-28", timeout=10)
        for _ in range(3)
    ]
    for answer in answers:
        assert_error_shape(answer, 503, "service_unavailable")
    # a POST too: nothing reached the service
    resp = requests.post(gateway.url + "/api/appointments", json={"a": 1}, timeout=10)
    assert_error_shape(resp, 503, "service_unavailable")


def test_a_service_answering_something_that_is_not_http_is_a_502(make_gateway):
    def not_http(conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536)
            if b" /healthz " in request:  # healthy to the health checks
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            else:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2 nothing like HTTP\r\n\r\n")

    sock = _raw_server(not_http)
    try:
        gateway = make_gateway(schedule=[f"127.0.0.1:{sock.getsockname()[1]}"])
        resp = requests.get(gateway.url + "/api/dynamic-slots/hospitals", timeout=10)
        assert_error_shape(resp, 502, "bad_gateway")
    finally:
        sock.close()


def test_a_refused_connection_is_retried_once_on_another_process(make_gateway):
    dead = f"127.0.0.1:{free_port()}"
    with Upstream() as alive:
        # Round robin, so the dead process gets its turn; health checks far apart.
        gateway = make_gateway(
            booking=[dead, alive],
            GATEWAY_LB_POLICY="round_robin",
            UPSTREAM_HEALTH_INTERVAL="3600",
            BREAKER_THRESHOLD="1000",
        )
        answers = [
            requests.post(gateway.url + "/api/appointments", json={"n": n}, timeout=10)
            for n in range(6)
        ]
        assert [a.status_code for a in answers] == [201] * 6
        assert sorted(r["body"] for r in alive.received) == sorted(
            f'{{"n": {n}}}' for n in range(6)
        )


def test_an_error_after_the_request_was_sent_is_not_retried(make_gateway):
    with Upstream() as first, Upstream() as second:
        gateway = make_gateway(
            booking=[first, second], GATEWAY_LB_POLICY="round_robin", UPSTREAM_READ_TIMEOUT="0.5"
        )
        resp = requests.post(
            gateway.url + "/api/appointments?delay=1.5", json={"once": True}, timeout=10
        )
        assert_error_shape(resp, 504, "gateway_timeout")
        wait_until(lambda: len(first.received) + len(second.received) >= 1, timeout=5)
    assert len(first.received) + len(second.received) == 1


def test_no_client_can_open_the_breaker_with_answers_that_fail(make_gateway):
    """500s, 4xx, slow or aborted bodies caused by clients never take a service out."""
    with Upstream() as up:
        gateway = make_gateway(
            schedule=[up], booking=[up], BREAKER_THRESHOLD="2", BREAKER_COOLDOWN_SECONDS="60",
            MAX_BODY_BYTES="1024", UPSTREAM_HEALTH_INTERVAL="3600",
        )  # fmt: skip
        for status in (500, 400, 404, 429, 502):
            for _ in range(5):
                resp = requests.get(f"{gateway.url}/api/auth/x?status={status}", timeout=10)
                assert resp.status_code == status
        # bodies that fail on the client's side: over the limit, and cut off mid-way
        for _ in range(5):
            requests.post(gateway.url + "/api/auth/x", data=b"x" * 5000, timeout=10)
            requests.post(gateway.url + "/api/auth/x", data=iter([b"x"] * 2000), timeout=10)
            host, port = gateway.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    b"POST /api/auth/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
                )
        # everyone else is still served
        for _ in range(5):
            assert requests.get(gateway.url + "/api/auth/ok", timeout=10).status_code == 200


def test_a_service_answering_503_is_skipped_for_the_cooldown(make_gateway):
    with Upstream() as sick, Upstream() as healthy:
        gateway = make_gateway(
            booking=[sick, healthy], GATEWAY_LB_POLICY="round_robin", BREAKER_THRESHOLD="1",
            BREAKER_COOLDOWN_SECONDS="60", UPSTREAM_HEALTH_INTERVAL="3600",
        )  # fmt: skip
        sick.set_answer(503)  # the service itself says it is overloaded
        for _ in range(4):
            requests.get(gateway.url + "/api/auth/x", timeout=10)
        before = len(sick.received)
        for _ in range(10):
            assert requests.get(gateway.url + "/api/auth/ok", timeout=10).status_code == 200
        assert len(sick.received) == before  # taken out: every request went to the other one
        assert before >= 1


def test_active_health_checks_take_a_process_out_and_back(make_gateway):
    with Upstream() as first, Upstream() as second:
        gateway = make_gateway(
            booking=[first, second], GATEWAY_LB_POLICY="round_robin",
            UPSTREAM_HEALTH_INTERVAL="0.2", UPSTREAM_HEALTH_URI="/readyz",
        )  # fmt: skip
        first.set_health(503)

        def only_second() -> bool:
            before = len(first.received)
            for _ in range(4):
                requests.get(gateway.url + "/api/auth/x", timeout=10)
            return len(first.received) == before

        wait_until(only_second, timeout=10)
        first.set_health(200)

        def both() -> bool:
            before = len(first.received)
            for _ in range(4):
                requests.get(gateway.url + "/api/auth/x", timeout=10)
            return len(first.received) > before

        wait_until(both, timeout=10)


def test_load_is_spread_over_every_process(make_gateway):
    with Upstream() as first, Upstream() as second, Upstream() as third:
        gateway = make_gateway(booking=[first, second, third])
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: requests.get(gateway.url + f"/api/appointments/{n}", timeout=10),
                    range(60),
                )
            )
        assert {a.status_code for a in answers} == {200}
        served = Counter(a.json()["port"] for a in answers)
        assert set(served) == {first.port, second.port, third.port}, served


def test_readyz_names_the_service_that_is_down(make_gateway):
    with Upstream() as up:
        gateway = make_gateway(schedule=[f"127.0.0.1:{free_port()}"], booking=[up])
        body = assert_error_shape(
            requests.get(gateway.url + "/readyz", timeout=10), 503, "not_ready"
        )
        assert body["checks"]["schedule"].startswith("down"), body
        assert body["checks"]["booking"] == "ok", body
        assert "schedule" in body["message"] and "booking" not in body["message"], body
        gateway_ok = make_gateway(schedule=[up], booking=[up])
        resp = requests.get(gateway_ok.url + "/readyz", timeout=10)
        assert resp.status_code == 200
        assert resp.json() == {"status": "ok", "checks": {"schedule": "ok", "booking": "ok"}}
        # the probe routes are the template's own
        assert_error_shape(requests.get(gateway_ok.url + "/readyz/booking", timeout=10), 404)
