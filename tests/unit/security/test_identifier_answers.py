"""Attack: identifier aliases, seen from the booking service's side. Its schedule client
refuses an answer about another hospital than the one it asked about (the gateway-level
cases are in tests/e2e/security/test_identifier_aliases.py)."""

from __future__ import annotations

import pytest


def test_a_caller_refuses_an_answer_about_another_hospital():
    """The booking service's schedule client, against a schedule service that answers for
    another hospital than the one asked about (a real HTTP server, not a mock)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    from booking_service.adapters.schedule_client import ScheduleSource
    from schedule_service.seed import GOMOTI
    from shared.configurations import ConfigurationCache
    from shared.errors import HospitalNotFound, ServiceUnavailable
    from shared.versions import Published

    seen: list[str] = []

    class Impostor(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.path)
            doc = {"status": "ok"} if self.path.endswith("/healthz") else dict(GOMOTI, version=1)
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        source = ScheduleSource(
            requests.Session(), f"http://127.0.0.1:{server.server_port}", (1.0, 5.0)
        )
        cache = ConfigurationCache(source.load)
        unknown = Published.unknown()
        assert cache.current("gomoti", unknown).schedule.hospital_id == "gomoti"
        with pytest.raises(HospitalNotFound):
            cache.current("banani", unknown)  # answered with Gomoti: refused
        with pytest.raises(HospitalNotFound):
            cache.current("gomoti/../gomoti", unknown)  # never sent at all
        with pytest.raises(ServiceUnavailable):
            cache.current("healthz", unknown)  # a document that is not a hospital: no 500
        assert seen == [
            "/api/dynamic-slots/hospitals/gomoti",
            "/api/dynamic-slots/hospitals/banani",
            "/api/dynamic-slots/hospitals/healthz",
        ]
        assert set(cache._entries) == {"gomoti"}
    finally:
        server.shutdown()
        server.server_close()
