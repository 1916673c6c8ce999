"""Integration tests of the devstack process wrappers against the real server binaries."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from pymongo import MongoClient

from devstack.servers import MongoServer, RedisServer, ServiceProcess, free_port, port_in_use

RESERVED = {6379, 27017}


def _mongo(url: str) -> MongoClient:
    """A client that fails fast instead of waiting the default 30 s."""
    return MongoClient(url, serverSelectionTimeoutMS=3000)


def test_free_port_never_reserved_and_bindable() -> None:
    ports = {free_port() for _ in range(50)}
    assert not ports & RESERVED
    assert not any(port_in_use(p) for p in list(ports)[:5])


def test_port_in_use_detects_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use(sock.getsockname()[1])


def test_embedded_session_servers_avoid_default_ports(
    mongo_url: str, redis_server: RedisServer | None
) -> None:
    # External URLs come from the developer; only our embedded servers must avoid the defaults.
    if redis_server is not None:
        assert redis_server.port not in RESERVED
    if not os.environ.get("MONGO_URL"):
        assert ":27017" not in mongo_url


def test_session_redis_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.close()


def test_redis_kill_and_restart_keeps_aof_data(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory(appendonly=True, extra_args=["--appendfsync", "always"])
    port = server.port
    assert port not in RESERVED
    client = redis.Redis.from_url(server.url)
    client.set("greeting", "hello")
    client.close()

    server.kill()  # crash: only the fsynced AOF can bring the key back
    assert server.proc is not None and server.proc.poll() is not None
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=0.5).ping()

    server.restart()
    assert server.port == port
    client = redis.Redis.from_url(server.url)
    assert client.get("greeting") == b"hello"
    client.close()


def test_redis_graceful_stop_and_restart_keeps_data(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory(appendonly=True)
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    client.close()
    server.stop()
    assert server.proc is not None and server.proc.poll() is not None
    server.start()
    client = redis.Redis.from_url(server.url)
    assert client.get("k") == b"v"
    client.close()


def test_redis_start_failure_reports_log(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, extra_args=["--no-such-option", "1"])
    with pytest.raises(RuntimeError, match="exited with code"):
        server.start()
    assert not server.running


def test_mongo_stop_restart_keeps_data(mongo_factory: Callable[..., MongoServer]) -> None:
    server = mongo_factory()
    port = server.port
    assert port not in RESERVED
    client = _mongo(server.url)
    client.devstack_test.items.insert_one({"_id": "a", "n": 1})
    client.close()

    server.stop()
    assert server.proc is not None and server.proc.poll() is not None
    assert not server.pid_path.exists()

    server.restart()
    assert server.port == port
    client = _mongo(server.url)
    assert client.devstack_test.items.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    client.close()


def test_mongo_kill_then_restart(mongo_factory: Callable[..., MongoServer]) -> None:
    server = mongo_factory()
    client = _mongo(server.url)
    client.devstack_test.items.insert_one({"_id": "b"})
    client.close()
    server.kill()
    assert not server.running
    server.start()
    client = _mongo(server.url)
    assert client.devstack_test.items.find_one({"_id": "b"}) == {"_id": "b"}
    client.close()


def test_session_mongo_db_name_is_private(mongo_url: str, mongo_db_name: str) -> None:
    assert mongo_db_name.startswith("test_")
    client = _mongo(mongo_url)
    client[mongo_db_name].probe.insert_one({"x": 1})
    assert client[mongo_db_name].probe.count_documents({}) == 1
    client.close()


def test_service_process_serves_and_stops(tmp_path: Path) -> None:
    app = tmp_path / "tinyapp.py"
    app.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ.get('PATH_INFO', '').encode()]\n"
    )
    service = ServiceProcess(
        "tiny", "tinyapp:app", tmp_path / "logs", env={"PYTHONPATH": str(tmp_path)}, workers=1
    )
    with service:
        assert service.running
        import requests

        assert requests.get(service.url + "/healthz", timeout=5).text == "/healthz"
    assert service.proc is not None and service.proc.poll() is not None
    assert not port_in_use(service.port)
