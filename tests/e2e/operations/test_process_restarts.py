"""`make run` keeps serving when one of its processes dies (devstack/supervisor.py).

Each test runs `python -m devstack.run` (what `make run` runs) as an operator would, in a
temporary directory on free ports, with its own embedded valkey and nx-27017 (MONGO_URL and
REDIS_URL are not passed on: a database is killed here), and kills its processes with SIGKILL:
a service's whole process group (gunicorn's master and workers, as `kill -9` of them all) or
its master alone, the gateway, a database. After each run, no process of it may be left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.servers import free_port, port_in_use
from tests.helpers import TEST_ENV, next_weekday, wait_until

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_SECONDS = 120
BACK_TIMEOUT_SECONDS = 30  # a restart takes about a second; generous for a loaded machine


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _processes() -> dict[int, list[str]]:
    """Every process's stat fields (see _stat), by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            found[int(entry)] = fields
    return found


def _listening_pids(port: int) -> set[int]:
    """Pids of the live processes holding a listening TCP socket on `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for pid, fields in _processes().items():
        if fields[0] == "Z":
            continue
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    pids.add(pid)
                    break
            except OSError:
                continue
    return pids


class MakeRun:
    """`python -m devstack.run` in `directory`, its output in a file; `ports` from its banner."""

    def __init__(self, directory: Path, **env: str) -> None:
        self.directory = directory
        self.output_path = directory / "make-run.out"
        outside = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "REDIS_URL")}
        self.env = {
            **outside,
            **TEST_ENV,
            "DATA_DIR": str(directory / "var"),
            "GATEWAY_PORT": str(free_port()),
            "SCHEDULE_PORT": str(free_port()),
            "BOOKING_PORT": str(free_port()),
            "LIVE_PORT": str(free_port()),
            "WEB_CONCURRENCY": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, list[int]] = {}
        self.seen: set[tuple[int, str]] = set()  # (pid, start time) of its processes

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway'][0]}"

    def start(self) -> MakeRun:
        with open(self.output_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devstack.run"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._started, timeout=START_TIMEOUT_SECONDS, step=0.2)
        for line in self.output.split("slotbook is running", 1)[1].splitlines():
            words = line.split()
            if words and words[0] in ("gateway", "schedule", "booking", "live", "mongo", "redis"):
                self.ports[words[0]] = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
        self.note_processes()
        return self

    def _started(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"make run exited with {self.proc.returncode}:\n{self.output}")
        return "Ctrl-C to stop." in self.output

    def note_processes(self) -> None:
        """Remember every process of the stack now running (for leftovers())."""
        assert self.proc is not None
        processes = _processes()
        parents = {self.proc.pid}
        while True:
            found = {
                (pid, fields[19])
                for pid, fields in processes.items()
                if int(fields[1]) in parents and (pid, fields[19]) not in self.seen
            }
            if not found:
                return
            self.seen |= found
            parents |= {pid for pid, _ in found}

    def leftovers(self) -> list[int]:
        """Processes of the stack (ever seen) still running (not zombies)."""
        left = []
        for pid, started in self.seen:
            fields = _stat(pid)
            if fields is not None and fields[19] == started and fields[0] != "Z":
                left.append(pid)
        return left

    def master(self, port: int) -> int | None:
        """The pid of the stack's child that listens on `port` (a gunicorn master, Caddy, a
        database), or None."""
        assert self.proc is not None
        processes = _processes()
        children = [
            p
            for p in _listening_pids(port)
            if p in processes and int(processes[p][1]) == self.proc.pid
        ]
        return children[0] if children else None

    def children_with(self, text: str) -> set[int]:
        """Pids of the stack's children whose command line has `text`."""
        assert self.proc is not None
        found = set()
        for pid, fields in _processes().items():
            if int(fields[1]) != self.proc.pid or fields[0] == "Z":
                continue
            try:
                if text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.add(pid)
            except OSError:
                continue
        return found

    def lines(self, text: str) -> list[str]:
        return [line for line in self.output.splitlines() if text in line]

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def assert_nothing_left(self) -> None:
        assert self.leftovers() == [], self.output
        ports = [port for name, ports in self.ports.items() for port in ports]
        wait_until(lambda: not any(port_in_use(p) for p in ports), timeout=10)

    def cleanup(self) -> None:
        """Teardown: stop it if it runs; kill anything of it left (a failed test's)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.leftovers():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator:
    """Start `python -m devstack.run` with extra environment: make_run(**env)."""
    runs: list[MakeRun] = []

    def start(**env: str) -> MakeRun:
        run = MakeRun(tmp_path / f"run-{len(runs)}", **env)
        run.directory.mkdir()
        runs.append(run)
        return run.start()

    yield start
    for run in runs:
        run.cleanup()


class Load:
    """`threads` clients, each asking the routes in turn through the gateway until stop()."""

    def __init__(self, base: str, routes: dict[str, str], threads: int = 3) -> None:
        self.base, self.routes = base, routes
        self.records: list[tuple[float, str, int]] = []  # (sent at, route name, status; 0: none)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(threads)
        ]

    def _client(self, offset: int) -> None:
        session = requests.Session()
        names = list(self.routes)
        turn = offset
        while not self._stop.is_set():
            name = names[turn % len(names)]
            turn += 1
            sent = time.monotonic()
            try:
                status = session.get(self.base + self.routes[name], timeout=10).status_code
            except requests.RequestException:
                status = 0
            self.records.append((sent, name, status))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        wait_until(lambda: len(self.records) >= 30, timeout=60, step=0.05)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def failures(self, since: float, until: float, names: tuple[str, ...] = ()) -> Counter:
        """Statuses other than 200 of requests sent in [since, until] (to `names` only)."""
        return Counter(
            (name, status)
            for sent, name, status in list(self.records)
            if since <= sent <= until and status != 200 and (not names or name in names)
        )


def _readyz(run: MakeRun) -> tuple[int, dict]:
    try:
        resp = requests.get(run.url + "/readyz", timeout=10)
        return resp.status_code, resp.json()
    except (requests.RequestException, ValueError):
        return 0, {}


def _answers(run: MakeRun, path: str) -> bool:
    try:
        return requests.get(run.url + path, timeout=10).status_code == 200
    except requests.RequestException:
        return False


def test_killed_processes_come_back_under_load_and_a_stop_ends_everything(make_run) -> None:
    run = make_run(SCHEDULE_REPLICAS="2", BOOKING_REPLICAS="2")
    day = next_weekday(3)
    routes = {
        "schedule": f"/api/dynamic-slots/available/gomoti/{day}",
        "booking": f"/api/availability/gomoti/{day}",
        "live": "/display/gomoti",
    }
    for path in routes.values():
        assert _answers(run, path), path
    status, ready = _readyz(run)
    assert (status, ready["status"]) == (200, "ok"), ready
    assert set(ready["processes"]) == {"schedule", "booking"}, ready

    def down_in_readyz(service: str, port: int) -> bool:
        status, ready = _readyz(run)
        if service == "live":  # its only process: the service is down
            return status == 503 and ready["checks"]["live"].startswith("down")
        state = ready.get("processes", {}).get(service, {}).get(f"127.0.0.1:{port}", "")
        return status == 200 and ready["status"] == "degraded" and state.startswith("down")

    outages: dict[str, tuple[float, float]] = {}
    with Load(run.url, routes) as load:
        for name, service, port, whole_group in (
            ("booking-2", "booking", run.ports["booking"][1], True),
            # the master alone: its orphaned workers must not keep the port
            ("schedule-2", "schedule", run.ports["schedule"][1], False),
            ("live", "live", run.ports["live"][0], True),
        ):
            master = run.master(port)
            assert master is not None, name
            killed_at = time.monotonic()
            if whole_group:
                os.killpg(master, signal.SIGKILL)
            else:
                os.kill(master, signal.SIGKILL)
            # /readyz shows it down (make run waits 0.5 s before it starts it again)
            wait_until(lambda s=service, p=port: down_in_readyz(s, p), timeout=10, step=0.05)
            # back on the same port, a new process, and /readyz ok again
            wait_until(
                lambda p=port, m=master: (
                    run.master(p) not in (None, m) and _readyz(run)[1].get("status") == "ok"
                ),
                timeout=BACK_TIMEOUT_SECONDS,
            )
            wait_until(lambda s=service: _answers(run, routes[s]), timeout=10)
            outages[name] = (killed_at, time.monotonic())
            run.note_processes()
            assert run.lines(f"devstack: {name} (port {port}) died: killed by SIGKILL"), run.output
            wait_until(lambda n=name, p=port: run.lines(f"{n} is back on port {p} (pid"), 10)

        # The gateway itself: the stack keeps its listening socket, so new connections wait
        # in its queue while Caddy starts again.
        gateway = run.master(run.ports["gateway"][0])
        assert gateway is not None
        killed_at = time.monotonic()
        os.killpg(gateway, signal.SIGKILL)
        wait_until(
            lambda: (
                run.master(run.ports["gateway"][0]) not in (None, gateway)
                and _readyz(run)[1].get("status") == "ok"
            ),
            timeout=BACK_TIMEOUT_SECONDS,
        )
        outages["gateway"] = (killed_at, time.monotonic())
        run.note_processes()
        wait_until(lambda: run.lines("devstack: gateway is back on port"), timeout=10)
        ended = time.monotonic()
        wait_until(lambda: len([r for r in load.records if r[0] > ended]) >= 30, timeout=30)

    total = len(load.records)
    failed = load.failures(0, float("inf"))
    report = f"{total} requests; failed: {failed}; outages: " + ", ".join(
        f"{name} {end - start:.1f} s" for name, (start, end) in outages.items()
    )
    print(report)
    # A request may fail only while the service it went to (or the gateway) was down.
    down = {"booking-2": "booking", "schedule-2": "schedule", "live": "live", "gateway": "*"}
    for sent, route, status in load.records:
        if status != 200:
            assert any(
                start - 1 <= sent <= end and down[name] in ("*", route)
                for name, (start, end) in outages.items()
            ), report
    # A replica, or the gateway: only what was in flight on the killed process (and the few
    # requests the gateway sends to a dead replica before its health checks take it out).
    for name, routes_to_it in (
        ("booking-2", ("booking",)),
        ("schedule-2", ("schedule",)),
        ("gateway", ()),  # every route
    ):
        start, end = outages[name]
        assert sum(load.failures(start, end, routes_to_it).values()) <= 10, report
    # The live service has one process: requests to it fail until it is back (and the
    # gateway's breaker lets it in again). Everything else: most requests succeeded.
    start, end = outages["live"]
    without_live = sum(failed.values()) - sum(load.failures(start, end, ("live",)).values())
    assert without_live <= total // 20, report
    assert all(_answers(run, path) for path in routes.values()), "every route answers again"

    # A stop (SIGTERM, as Ctrl-C) while a process is being started again stops everything.
    port = run.ports["booking"][0]
    master = run.master(port)
    assert master is not None
    os.killpg(master, signal.SIGKILL)

    # as soon as the new master is spawned (it is not ready yet, most likely)
    wait_until(
        lambda: run.children_with(f"-b 127.0.0.1:{port} ") - {master},
        timeout=BACK_TIMEOUT_SECONDS,
        step=0.02,
    )
    run.note_processes()
    assert run.proc is not None
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(timeout=60) == 0, run.output
    assert "devstack: SIGTERM received, stopping ..." in run.output
    assert run.output.rstrip().endswith("devstack: stopped"), run.output
    run.assert_nothing_left()


def test_a_process_that_keeps_dying_stops_everything(make_run) -> None:
    run = make_run()
    port = run.ports["live"][0]
    for death in range(1, 6):
        master = run.master(port)
        assert master is not None, run.output
        os.killpg(master, signal.SIGKILL)
        if death < 5:
            wait_until(
                lambda d=death: len(run.lines("devstack: live is back on port")) == d,
                timeout=BACK_TIMEOUT_SECONDS,
            )
            run.note_processes()
    assert run.wait_exit(timeout=60) == 1, run.output
    log = Path(run.env["DATA_DIR"]).resolve() / "logs" / "live.log"
    assert (
        f"devstack: live (port {port}) died: killed by SIGKILL (exit status -9): it died 5 "
        f"times within 60 s, so it is not started again; see its log {log}; stopping everything"
    ) in run.output
    assert [
        line.split("starting it again in ")[1][:5] for line in run.lines("starting it again")
    ] == [
        "0.5 s",
        "1.0 s",
        "2.0 s",
        "4.0 s",
    ]
    assert run.output.rstrip().endswith("devstack: stopped")
    run.assert_nothing_left()


@pytest.mark.parametrize(
    ("database", "name", "log"),
    [
        ("redis", "valkey (redis)", "redis/valkey.log"),
        ("mongo", "nx-27017 (mongo)", "mongo/nx.log"),
    ],
)
def test_a_dead_database_stops_everything(make_run, database, name, log) -> None:
    run = make_run()
    server = run.master(run.ports[database][0])
    assert server is not None, run.output
    os.kill(server, signal.SIGKILL)
    assert run.wait_exit(timeout=60) == 1, run.output
    path = Path(run.env["DATA_DIR"]).resolve() / log
    assert (
        f"devstack: {name} exited unexpectedly (killed by SIGKILL (exit status -9)); no service "
        f"runs without its store; see its log {path}; stopping everything"
    ) in run.output
    assert "starting it again" not in run.output  # nothing was restarted
    assert run.output.rstrip().endswith("devstack: stopped")
    run.assert_nothing_left()
