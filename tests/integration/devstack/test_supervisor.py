"""devstack's supervisor (devstack/supervisor.py) over real child processes: a tiny gunicorn app
and a stand-in database. The delays are shortened here;
tests/e2e/operations/test_process_restarts.py runs `make run` itself, with the real ones."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from devstack import servers
from devstack.servers import ManagedProcess, ServiceProcess, describe_exit, port_in_use
from devstack.supervisor import StackFailed, Supervisor
from tests.helpers import wait_until

TINY_APP = (
    "import os\n"
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [str(os.getppid()).encode()]\n"
)


class Sleeper(ManagedProcess):
    """A stand-in for a database: a process that only sleeps (ready as soon as it runs)."""

    name = "sleeper"

    def __init__(self, log_dir: Path) -> None:
        super().__init__(None, log_dir / "sleeper.log")

    def command(self) -> list[str]:
        return ["sleep", "120"]

    def ready(self) -> bool:
        return self.running


@pytest.fixture
def tiny(tmp_path: Path):
    """A gunicorn app with two workers (stopped at teardown); its module is tinyapp.py."""
    (tmp_path / "tinyapp.py").write_text(TINY_APP)
    service = ServiceProcess(
        "tiny", "tinyapp:app", tmp_path / "logs", env={"PYTHONPATH": str(tmp_path)}, workers=2
    )
    try:
        yield service.start()
    finally:
        service.stop()


def _group(pgid: int) -> set[int]:
    """Pids of the live (not zombie) processes of a process group."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.add(int(entry))
    return pids


def _supervise_until(supervisor: Supervisor, done, timeout: float = 30.0) -> None:
    """Call check() (as `make run` does) until done() holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "supervisor did not get there in time"
        supervisor.check()
        time.sleep(0.05)


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "killed by SIGKILL (exit status -9)"
    assert describe_exit(-15) == "killed by SIGTERM (exit status -15)"
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(None) == "still running"


def test_a_killed_master_is_restarted_on_its_port_and_its_workers_do_not_linger(tiny) -> None:
    logged: list[str] = []
    supervisor = Supervisor({"tiny": tiny}, log=logged.append, first_delay=0.1)
    master = tiny.pid
    wait_until(lambda: len(_group(master) - {master}) == 2, timeout=20)  # both workers forked
    # kill -9 of the master alone: its workers are orphaned, still holding the port. (Stopped
    # first, so that they cannot notice and exit by themselves: only the supervisor ends them.)
    for worker in _group(master) - {master}:
        os.kill(worker, signal.SIGSTOP)
    os.kill(master, signal.SIGKILL)
    _supervise_until(supervisor, lambda: not _group(master))
    _supervise_until(supervisor, lambda: tiny.pid != master and not supervisor.restarting())
    answer = requests.get(tiny.url + "/", timeout=5)
    assert answer.status_code == 200 and int(answer.text) == tiny.pid  # the new master's worker
    assert logged[0].startswith("devstack: tiny (port ")
    assert "died: killed by SIGKILL (exit status -9)" in logged[0]
    assert "starting it again in 0.1 s" in logged[0] and str(tiny.log_path) in logged[0]
    assert logged[1].startswith(f"devstack: tiny is back on port {tiny.port} (pid {tiny.pid})")


def test_a_process_that_keeps_dying_stops_everything(tiny) -> None:
    logged: list[str] = []
    supervisor = Supervisor(
        {"tiny": tiny}, log=logged.append, first_delay=0.05, max_delay=0.2, crash_loop_deaths=3
    )
    for death in range(1, 3):
        os.killpg(tiny.pid, signal.SIGKILL)
        before = tiny.pid
        _supervise_until(supervisor, lambda b=before: tiny.pid != b and not supervisor.restarting())
        assert f"(death {death} within 60 s; 3 stop everything)" in logged[-2]
    os.killpg(tiny.pid, signal.SIGKILL)
    with pytest.raises(StackFailed) as failed:
        _supervise_until(supervisor, lambda: False)
    message = str(failed.value)
    assert message.startswith(f"tiny (port {tiny.port}) died: killed by SIGKILL")
    assert "it died 3 times within 60 s, so it is not started again" in message
    assert message.endswith(f"see its log {tiny.log_path}")
    assert not tiny.running
    wait_until(lambda: not port_in_use(tiny.port), timeout=5, step=0.02)  # workers die too


def test_a_process_that_cannot_start_again_counts_as_dying(tiny, tmp_path: Path) -> None:
    logged: list[str] = []
    supervisor = Supervisor(
        {"tiny": tiny}, log=logged.append, first_delay=0.05, max_delay=0.1, crash_loop_deaths=3
    )
    (tmp_path / "tinyapp.py").unlink()  # gunicorn can no longer load the app
    os.killpg(tiny.pid, signal.SIGKILL)
    with pytest.raises(StackFailed) as failed:
        _supervise_until(supervisor, lambda: False)
    assert "exited during start-up (exit status" in logged[-1]
    assert "exited during start-up" in str(failed.value)
    assert "died 3 times" in str(failed.value)


def test_backoff_doubles_up_to_its_limit(tiny) -> None:
    now = [1000.0]
    logged: list[str] = []
    supervisor = Supervisor(
        {"tiny": tiny}, log=logged.append, first_delay=0.5, max_delay=2.0, clock=lambda: now[0]
    )
    delays = []
    for _ in range(4):
        os.killpg(tiny.pid, signal.SIGKILL)
        tiny.proc.wait()
        supervisor.check()  # notices the death
        delays.append(logged[-1].split("starting it again in ")[1].split(" s")[0])
        now[0] += 10.0  # past the wait: the next check starts it again
        supervisor.check()
        _supervise_until(supervisor, lambda: not supervisor.restarting())
    assert delays == ["0.5", "1.0", "2.0", "2.0"]
    now[0] += 61.0  # a minute later the count starts over
    os.killpg(tiny.pid, signal.SIGKILL)
    tiny.proc.wait()
    supervisor.check()
    assert "starting it again in 0.5 s (death 1 within 60 s" in logged[-1]


def test_a_dead_database_stops_everything(tiny, tmp_path: Path) -> None:
    database = Sleeper(tmp_path / "db").start()
    try:
        supervisor = Supervisor({"tiny": tiny}, {"valkey (redis)": database}, log=print)
        supervisor.check()
        os.killpg(database.pid, signal.SIGKILL)
        database.proc.wait()
        with pytest.raises(StackFailed) as failed:
            supervisor.check()
        assert str(failed.value) == (
            "valkey (redis) exited unexpectedly (killed by SIGKILL (exit status -9)); no service "
            f"runs without its store; see its log {database.log_path}"
        )
    finally:
        database.stop()


class _Stop(Exception):
    pass


def test_a_stop_signal_is_held_while_a_child_is_spawned() -> None:
    seen: list[int] = []

    def handler(signum, frame):
        seen.append(signum)
        if servers.hold_signal(signum):
            return
        raise _Stop

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(_Stop):
            with servers._spawning_child():
                signal.raise_signal(signal.SIGUSR1)
                assert seen == [signal.SIGUSR1]  # held: the block goes on
        assert seen == [signal.SIGUSR1, signal.SIGUSR1]  # raised again after it
    finally:
        signal.signal(signal.SIGUSR1, previous)
