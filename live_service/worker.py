"""The live service's gunicorn worker: aiohttp's, with gunicorn's `--backlog` kept.

gunicorn opens the listening socket with `--backlog` (2048 by default), but aiohttp's worker
serves it through asyncio's `create_server(sock=...)`, which listens on it again with aiohttp's
own default backlog, 128: a burst of stream opens (a waiting room reconnecting after a gateway
reload) then overflows the accept queue, and the gateway's connects time out. This worker
gives asyncio the socket behind a wrapper whose `listen()` keeps gunicorn's backlog (the
kernel caps it at net.core.somaxconn).

    gunicorn 'live_service:create_app()' --worker-class live_service.worker.LiveWorker \\
        --backlog 4096
"""

from __future__ import annotations

import socket

from aiohttp.worker import GunicornWebWorker


class _Listening:
    """A listening socket whose backlog can only grow past `backlog`; everything else is the
    socket's."""

    def __init__(self, sock: socket.socket, backlog: int):
        self._sock = sock
        self._backlog = backlog

    def listen(self, backlog: int = 0) -> None:
        self._sock.listen(max(backlog, self._backlog))

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class LiveWorker(GunicornWebWorker):
    """aiohttp's gunicorn worker, listening with gunicorn's `--backlog`."""

    def init_process(self) -> None:
        self.sockets = [_Listening(sock, self.cfg.backlog) for sock in self.sockets]
        super().init_process()
