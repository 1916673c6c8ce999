"""A plain client of a text/event-stream for the tests: one HTTP/1.1 GET on a socket of its
own, the chunked body decoded as the bytes come, every wait bounded by a deadline (a test
never hangs on a stream, and a wait that ends with nothing leaves the stream readable)."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict


@dataclass(frozen=True)
class Event:
    """One server-sent event: its id, its name and its data (JSON, parsed)."""

    id: str | None
    name: str
    data: object


@dataclass(frozen=True)
class Comment:
    """A comment line (`: keep-alive`)."""

    text: str


def id_key(event_id: str) -> tuple[int, int]:
    """An event id (a Redis stream entry id) as a comparable pair."""
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


class EventStream:
    """One GET of a stream; `status` and `headers` at once, then the events as they come."""

    def __init__(
        self,
        base_url: str,
        path: str,
        headers: dict | list[tuple[str, str]] | None = None,
        timeout: float = 15.0,
        source: str | None = None,
    ):
        """`headers`: a dict, or (name, value) pairs (a name may come more than once);
        `source`: the local address to connect from (any of 127.0.0.0/8 is this machine: a
        client address of a test's own)."""
        url = urlsplit(base_url)
        self.sock = socket.create_connection(
            (url.hostname, url.port),
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.hostname}:{url.port}"]
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if not any(name.lower() == "accept" for name, _ in pairs):
            pairs.insert(0, ("Accept", "text/event-stream"))
        lines += [f"{k}: {v}" for k, v in pairs]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self._raw = b""  # received, not decoded yet
        self._body = b""  # decoded, not read yet
        self._chunk_left: int | None = None  # None: a chunk's size line comes next
        self._ended = False  # the body's last chunk came, or the connection closed
        self.retry: int | None = None  # the reconnection delay the stream gave, in ms
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._raw:
            self._receive(deadline)
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = CaseInsensitiveDict(
            line.split(":", 1) for line in header_lines if ":" in line
        )
        for name, value in self.headers.items():
            self.headers[name] = value.strip()
        self.chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _receive(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing more on the stream in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("nothing more on the stream in time") from None
        if not data:
            self._ended = True
            raise EOFError("the connection closed")
        self._raw += data

    def _decode(self) -> None:
        """Move what was received into the body (chunked transfer coding undone)."""
        if not self.chunked:
            self._body, self._raw = self._body + self._raw, b""
            return
        while self._raw and not self._ended:
            if self._chunk_left is None:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    return
                size = int(self._raw[:end].split(b";")[0], 16)
                self._raw = self._raw[end + 2 :]
                if size == 0:
                    self._ended = True
                    return
                self._chunk_left = size
            elif self._chunk_left > 0:
                taken = self._raw[: self._chunk_left]
                self._body += taken
                self._raw = self._raw[len(taken) :]
                self._chunk_left -= len(taken)
            else:  # the CRLF after a chunk's data
                if len(self._raw) < 2:
                    return
                self._raw, self._chunk_left = self._raw[2:], None

    def _line(self, deadline: float) -> str:
        self._decode()
        while b"\n" not in self._body:
            if self._ended:
                raise EOFError("the stream ended")
            self._receive(deadline)
            self._decode()
        line, self._body = self._body.split(b"\n", 1)
        return line.decode("utf-8").rstrip("\r")

    def json(self, timeout: float = 10.0) -> dict:
        """The body of an answer that is not a stream (an error document)."""
        deadline = time.monotonic() + timeout
        length = int(self.headers.get("Content-Length", "-1"))
        self._decode()
        try:
            while len(self._body) < length or (length < 0 and not self._ended):
                self._receive(deadline)
                self._decode()
        except EOFError:
            pass
        return json.loads(self._body)

    def next_item(self, timeout: float = 10.0) -> Event | Comment:
        """The next event or comment; TimeoutError when none came within `timeout`,
        EOFError when the stream ended. As a browser does, a block without `data:` is no event
        (its `retry:` is kept in `self.retry`)."""
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            line = self._line(deadline)
            if line == "":
                if "retry" in fields:
                    self.retry = int(fields["retry"])
                if data:
                    payload = json.loads("\n".join(data))
                    return Event(fields.get("id"), fields.get("event", "message"), payload)
                fields = {}  # a block without data is no event (the `retry:` a stream starts with)
                continue
            if line.startswith(":"):
                if not (fields or data):
                    return Comment(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value

    def next_event(self, timeout: float = 10.0) -> Event:
        """The next event (comments skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.next_item(max(0.001, deadline - time.monotonic()))
            if isinstance(item, Event):
                return item

    def no_event_for(self, seconds: float) -> list[Comment]:
        """Read for `seconds`: only comments may come. Returns them."""
        deadline = time.monotonic() + seconds
        comments = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.next_item(left)
            except TimeoutError:
                break
            assert isinstance(item, Comment), f"unexpected event {item}"
            comments.append(item)
        return comments

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()
