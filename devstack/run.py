"""`make run`: start the whole stack in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devstack.servers import hold_signal
from devstack.stack import PortBusyError, Stack
from devstack.supervisor import POLL_SECONDS, StackFailed
from live_service.clients import streams_cap

PORT_VARIABLES = {
    "gateway": "GATEWAY_PORT",
    "schedule": "SCHEDULE_PORT",
    "booking": "BOOKING_PORT",
    "live": "LIVE_PORT",
}


class _StopRequested(Exception):
    """Raised from the signal handler to unwind into the shutdown path."""


def _int_env(name: str, default: int) -> int:
    """Read an integer environment variable, exiting with a clear message if it is malformed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"devstack: {name}={raw!r} is not an integer")


#: The open-files limit `make run` asks for (soft and hard) when it may raise its hard limit
#: (root with CAP_SYS_RESOURCE): 10,000 streams are 20,000 files in the gateway.
WANTED_OPEN_FILES = 65536


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise this process's open-files limit (RLIMIT_NOFILE), so that every child inherits it:
    the live service holds one file per open stream, the gateway two. To `wanted` when the
    hard limit may be raised, else the soft limit to the hard one. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):  # not allowed: the hard limit is as high as it goes
            pass
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an unlimited hard limit the kernel refuses
            return soft
    return hard


def share_streams(open_files: int, live_processes: int, environ=os.environ) -> int | None:
    """With several live processes behind the one gateway, each takes its share of the streams
    the gateway's open files leave room for (LIVE_MAX_CONNECTIONS, unless it is set): every
    process inherits the same limit, and one alone works its cap out from it itself. Returns
    the share set, or None."""
    if live_processes <= 1 or environ.get("LIVE_MAX_CONNECTIONS", "").strip():
        return None
    share = max(1, streams_cap(0, open_files) // live_processes)
    environ["LIVE_MAX_CONNECTIONS"] = str(share)
    return share


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGINT/SIGTERM into an exception so the main loop stops the stack (held for the
    instant a child is being spawned, so that stop() knows every child)."""
    if hold_signal(signum):
        return
    raise _StopRequested(signal.Signals(signum).name)


def _banner(stack: Stack) -> str:
    """The one block printed once everything is up."""
    mongo = f"embedded nx-27017 at {stack.mongo.url}" if stack.mongo else stack.mongo_url
    redis = f"embedded valkey at {stack.redis.url}" if stack.redis else stack.redis_url
    return "\n".join(
        [
            "",
            "slotbook is running",
            f"  gateway   {stack.gateway_url}  (Caddy)",
            f"  metrics   {stack.gateway.metrics_url}/metrics  (gateway, internal)",
            f"  admin     {stack.gateway.admin_address}  (Caddy's admin API, reloads)",
            f"  schedule  {'  '.join(stack.replica_urls('schedule'))}",
            f"  booking   {'  '.join(stack.replica_urls('booking'))}",
            f"  live      {'  '.join(stack.replica_urls('live'))}  (event streams)",
            f"  mongo     {mongo}",
            f"  redis     {redis}",
            f"  data      {stack.data_dir}",
            f"  logs      {stack.log_dir}",
            "Ctrl-C to stop.",
            "",
        ]
    )


def main() -> int:
    """Start the stack from environment settings, supervise it, and stop it on a signal."""
    stack = Stack(
        Path(os.environ.get("DATA_DIR") or "./var"),
        mongo_url=os.environ.get("MONGO_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        gateway_port=_int_env("GATEWAY_PORT", 8000),
        schedule_port=_int_env("SCHEDULE_PORT", 8001),
        booking_port=_int_env("BOOKING_PORT", 8002),
        live_port=_int_env("LIVE_PORT", 8003),
        workers=_int_env("WEB_CONCURRENCY", 2),
        threads=_int_env("GUNICORN_THREADS", 4),
        live_workers=_int_env("LIVE_WORKERS", 1),
        replicas={
            "schedule": _int_env("SCHEDULE_REPLICAS", 1),
            "booking": _int_env("BOOKING_REPLICAS", 1),
            "live": _int_env("LIVE_REPLICAS", 1),
        },
        # The services log one JSON line per request themselves; gunicorn's own access
        # log would only repeat it in another format.
        access_log=False,
    )
    # Install handlers before starting anything, so a signal mid-start still cleans up.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        open_files = raise_open_files_limit()
        live_processes = stack.replicas.get("live", 0) * stack.live_workers
        share = share_streams(open_files, live_processes)
        shared = f", {share} streams per live process" if share else ""
        print(
            f"devstack: starting (data in {stack.data_dir}; open files {open_files}{shared}) ...",
            flush=True,
        )
        stack.start()
        print(_banner(stack), flush=True)
        # A service process or the gateway that dies is started again (with backoff); a
        # database that dies, or a process that keeps dying, raises StackFailed.
        supervisor = stack.supervisor()
        while True:
            supervisor.check()
            time.sleep(POLL_SECONDS)
    except _StopRequested as stop:
        print(f"\ndevstack: {stop} received, stopping ...", flush=True)
        return 0
    except StackFailed as failed:
        print(f"devstack: {failed}; stopping everything", file=sys.stderr, flush=True)
        return 1
    except PortBusyError as err:
        var = PORT_VARIABLES[err.what]
        print(f"devstack: {err}; set {var} to a free port", file=sys.stderr, flush=True)
        return 2
    except RuntimeError as err:
        print(f"devstack: failed to start: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the shutdown and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("devstack: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
