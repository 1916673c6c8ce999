"""A small HTTP upstream on loopback for gateway tests: it records every request it receives
and answers as the path asks (echo, a status, a delay, a stream)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> tuple[bytes, bool]:
        """The request body and whether it arrived whole."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                if not line:
                    return data, False
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data, True
                chunk = self.rfile.read(size + 2)
                if len(chunk) < size + 2:
                    return data + chunk[:size], False
                data += chunk[:size]
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        return data, len(data) == length

    def _handle(self) -> None:
        body, whole = self._body()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        record = {
            "method": self.command,
            "raw_path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode(errors="replace"),
            "whole": whole,
            "port": self.server.server_address[1],
        }
        with self.server.lock:
            self.server.received.append(record)
        if not whole:
            self.close_connection = True
            return
        if "delay" in query:
            time.sleep(float(query["delay"]))
        if url.path.endswith("/stream"):
            self._stream(int(query.get("events", "3")), float(query.get("every", "0.5")))
            return
        status = int(query.get("status", "201" if self.command == "POST" else "200"))
        if self.server.answer_status:
            status = self.server.answer_status
        if url.path in ("/healthz", "/readyz"):
            status = self.server.health_status
        payload = json.dumps(record).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", '"v7"')
        self.send_header("Set-Cookie", "a=1; Path=/")
        self.send_header("Set-Cookie", "b=2; Path=/")
        self.send_header("X-Request-ID", "from-upstream")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _stream(self, events: int, every: float) -> None:
        """text/event-stream: one event every `every` seconds, chunked."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index in range(events):
            data = f'id: {index}\ndata: {{"n": {index}, "t": {time.time()}}}\n\n'.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if index + 1 < events:
                time.sleep(every)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A service's backlog (gunicorn's is 2048), not socketserver's 5: on a loaded machine a
    # burst of new connections (a gateway reload opens its pool again) would otherwise
    # overflow the accept queue, and the dropped connects time out at the gateway (504).
    request_queue_size = 128
    received: list[dict]
    lock: threading.Lock
    health_status: int
    answer_status: int | None


class Upstream:
    """`with Upstream() as up:` serves on 127.0.0.1:<free port> until the block ends.

    Paths: any path echoes the request as JSON (201 for POST, else 200); `?status=N` answers N,
    `?delay=S` waits first, `.../stream?events=N&every=S` is a text/event-stream; /healthz and
    /readyz answer `health_status`. `received` lists every request (with `whole`: whether its
    body arrived complete).
    """

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.received = []
        self.server.lock = threading.Lock()
        self.server.health_status = 200
        self.server.answer_status = None
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        """Its port."""
        return self.server.server_address[1]

    @property
    def address(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"

    @property
    def received(self) -> list[dict]:
        """Every request received so far (health probes excluded)."""
        with self.server.lock:
            return [r for r in self.server.received if r["raw_path"] not in ("/healthz", "/readyz")]

    def set_health(self, status: int) -> None:
        """What /healthz and /readyz answer from now on."""
        self.server.health_status = status

    def set_answer(self, status: int | None) -> None:
        """What every other path answers from now on (None: as the path asks)."""
        self.server.answer_status = status

    def start(self) -> Self:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
