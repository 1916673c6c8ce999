"""A run where one gunicorn worker took every connection (bench/cpu.py busiest_share) is measured
again, for a read row only (bench/load.py measure)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench import load
from bench.cpu import CpuMeter
from bench.load import MAX_REMEASURED, ONE_WORKER_SHARE, Settings, Spec
from bench.report import one_worker_lines, one_worker_note

# A parent that forks two children: the first spins, the second sleeps.
ONE_BUSY_CHILD = """
import os, time
pids = []
for busy in (True, False):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if not busy:
                time.sleep(0.05)
        os._exit(0)
    pids.append(pid)
print("ready", flush=True)
for pid in pids:
    os.waitpid(pid, 0)
"""


def test_busiest_share_sees_one_child_doing_all_the_work():
    parent = subprocess.Popen(
        [sys.executable, "-c", ONE_BUSY_CHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        meter = CpuMeter([parent.pid])
        meter.start()
        time.sleep(0.5)
        meter.stop()
        assert len([pid for pid in meter.used if pid != parent.pid]) == 2
        assert meter.busiest_share() > ONE_WORKER_SHARE
    finally:
        parent.kill()
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.wait()


@pytest.mark.parametrize(
    ("used", "share"),
    [
        ({1: 0.1, 2: 0.45, 3: 0.45}, 0.5),  # the master (a root) does not count
        ({1: 0.0, 2: 0.9, 3: 0.1}, 0.9),
        ({1: 0.2, 2: 1.0}, None),  # one worker: nothing to compare
        ({1: 0.2, 2: 0.0, 3: 0.0}, None),  # nothing used
    ],
)
def test_busiest_share_is_the_top_workers_part_of_the_workers_cpu(used, share):
    meter = CpuMeter([1])
    meter.used = used
    assert meter.busiest_share() == (pytest.approx(share) if share is not None else None)


class FakeMeter:
    """Stands for CpuMeter: each stop() takes the next share from `shares`."""

    shares: list[float] = []

    def __init__(self, roots):
        self.share = None

    def start(self):
        pass

    def stop(self):
        self.share = FakeMeter.shares.pop(0)
        return 1.0

    def busiest_share(self):
        return self.share


@pytest.fixture()
def fake_runs(monkeypatch, tmp_path):
    runs = []

    def run_wrk(base, spec, seconds, settings, salt, workdir):
        runs.append(spec.row)
        n = len(runs)
        return {
            "requests": 1000 * n,
            "seconds": 1.0,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "statuses": {"200": 1000 * n},
            "socket_errors": 0,
            "non_2xx": 0,
        }

    monkeypatch.setattr(load, "run_wrk", run_wrk)
    monkeypatch.setattr(load, "CpuMeter", FakeMeter)
    settings = Settings(engine="wrk", warmup=0)

    def measure(shares, slots=None):
        FakeMeter.shares = list(shares)
        spec = Spec("available", "GET", "/x", slots=slots)
        return load.measure(
            "http://127.0.0.1:1",
            "direct",
            spec,
            settings,
            1,
            tmp_path,
            False,
            1.0,
            {"service": [1]},
        )

    return measure, runs


def test_a_read_run_on_one_worker_is_measured_again_and_the_balanced_run_kept(fake_runs):
    measure, runs = fake_runs
    r = measure([1.0, 0.97, 0.55])
    assert len(runs) == 3
    assert r.remeasured == 2
    assert r.busiest_share == pytest.approx(0.55)
    assert r.requests == 3000  # the third run's figures
    assert one_worker_note(r) == "  (2 run(s) on one worker before)"


def test_remeasuring_stops_after_max_tries(fake_runs):
    measure, runs = fake_runs
    r = measure([1.0] * (MAX_REMEASURED + 2))
    assert len(runs) == MAX_REMEASURED + 1
    assert r.remeasured == MAX_REMEASURED
    assert "one worker: 100%" in one_worker_note(r)
    assert one_worker_lines([r]) == [
        f"{MAX_REMEASURED} run(s) measured again because one gunicorn worker took every "
        f"connection; 1 run(s) kept so (booking rows, or after {MAX_REMEASURED} tries)"
    ]


def test_a_booking_run_is_never_repeated(fake_runs):
    measure, runs = fake_runs
    r = measure([1.0, 0.5], slots=[("2027-01-04", "09:00")])
    assert len(runs) == 1
    assert r.remeasured == 0
    assert one_worker_note(r) == "  (one worker: 100%)"


def test_a_balanced_run_says_nothing(fake_runs):
    measure, runs = fake_runs
    r = measure([0.5])
    assert len(runs) == 1
    assert one_worker_note(r) == ""
    assert one_worker_lines([r]) == []
