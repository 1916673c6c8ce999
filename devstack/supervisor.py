"""`make run`'s supervision of the processes it started.

A service process that dies (schedule, booking or live, any replica, or the gateway) is started
again on the same port after a short wait that doubles with each death (RESTART_FIRST_DELAY_SECONDS
up to RESTART_MAX_DELAY_SECONDS); meanwhile the gateway sends requests to the other processes of
that service (its active and passive health checks). A process that dies CRASH_LOOP_DEATHS times
within CRASH_LOOP_WINDOW_SECONDS is not started again: `check()` raises StackFailed, and `make
run` stops everything. A database (the embedded valkey or nx-27017) that dies raises StackFailed at
once: no service runs without its store.

`check()` never blocks for long: a process is spawned, and each later call asks whether it is
ready yet, so one slow start does not delay noticing another death (or a Ctrl-C).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from devstack.servers import ManagedProcess

#: The wait before the first restart of a process; it doubles with each further death within
#: CRASH_LOOP_WINDOW_SECONDS, up to RESTART_MAX_DELAY_SECONDS.
RESTART_FIRST_DELAY_SECONDS = 0.5
RESTART_MAX_DELAY_SECONDS = 4.0
#: A process that dies this many times within CRASH_LOOP_WINDOW_SECONDS stops the stack.
CRASH_LOOP_DEATHS = 5
CRASH_LOOP_WINDOW_SECONDS = 60.0
#: How often `make run` calls check().
POLL_SECONDS = 0.2


class StackFailed(RuntimeError):
    """A database died, or a process kept dying: everything must stop (the message says why)."""


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class _Watch:
    """What the supervisor knows of one service process."""

    process: ManagedProcess
    deaths: deque[float] = field(default_factory=deque)
    last_death: float = 0.0
    restart_at: float | None = None  # dead, waiting to be started again at this time
    starting_since: float | None = None  # spawned again, not ready yet


class Supervisor:
    """Restarts dead `services` with backoff; raises StackFailed when one of `databases` dies
    or a service keeps dying. Call check() every POLL_SECONDS."""

    def __init__(
        self,
        services: Mapping[str, ManagedProcess],
        databases: Mapping[str, ManagedProcess] | None = None,
        log: Callable[[str], None] = _print,
        first_delay: float = RESTART_FIRST_DELAY_SECONDS,
        max_delay: float = RESTART_MAX_DELAY_SECONDS,
        crash_loop_deaths: int = CRASH_LOOP_DEATHS,
        crash_loop_window: float = CRASH_LOOP_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watches = {name: _Watch(process) for name, process in services.items()}
        self.databases = dict(databases or {})
        self.log = log
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.crash_loop_deaths = crash_loop_deaths
        self.crash_loop_window = crash_loop_window
        self.clock = clock

    def restarting(self) -> list[str]:
        """Names of the processes that are dead or starting again."""
        return [
            name
            for name, watch in self.watches.items()
            if watch.restart_at is not None or watch.starting_since is not None
        ]

    def check(self) -> None:
        """One pass: notice deaths, start processes whose wait is over, see which are back."""
        for name, server in self.databases.items():
            if server.proc is not None and not server.running:
                raise StackFailed(
                    f"{name} exited unexpectedly ({server.exit_description}); no service runs "
                    f"without its store; see its log {server.log_path}"
                )
        for name, watch in self.watches.items():
            self._check(name, watch)

    def _check(self, name: str, watch: _Watch) -> None:
        process, now = watch.process, self.clock()
        if watch.restart_at is not None:
            if now >= watch.restart_at:
                watch.restart_at = None
                watch.starting_since = now
                try:
                    process.spawn()
                except OSError as err:  # e.g. the log directory is gone
                    watch.starting_since = None
                    self._died(name, watch, f"could not be started again: {err}")
            return
        if watch.starting_since is not None:
            if not process.running:
                watch.starting_since = None
                self._died(name, watch, f"exited during start-up ({process.exit_description})")
            elif process.ready():
                watch.starting_since = None
                self.log(
                    f"devstack: {name} is back on port {process.port} (pid {process.pid}), "
                    f"{now - watch.last_death:.1f} s after it died"
                )
            elif now - watch.starting_since > process.start_timeout:
                watch.starting_since = None
                process.kill()
                self._died(name, watch, f"was not ready after {process.start_timeout:.0f} s")
            return
        if process.proc is not None and not process.running:
            self._died(name, watch, f"died: {process.exit_description}")

    def _died(self, name: str, watch: _Watch, how: str) -> None:
        """Count a death; schedule the restart, or raise StackFailed when it keeps dying."""
        process, now = watch.process, self.clock()
        # The whole process group: workers whose master was killed alone would otherwise keep
        # the port (and serve on) until they notice, and the new master could not bind it.
        process.kill()
        watch.last_death = now
        watch.deaths.append(now)
        while watch.deaths and watch.deaths[0] < now - self.crash_loop_window:
            watch.deaths.popleft()
        deaths = len(watch.deaths)
        if deaths >= self.crash_loop_deaths:
            raise StackFailed(
                f"{name} (port {process.port}) {how}: it died {deaths} times within "
                f"{self.crash_loop_window:.0f} s, so it is not started again; see its log "
                f"{process.log_path}"
            )
        delay = min(self.first_delay * 2 ** (deaths - 1), self.max_delay)
        watch.restart_at = now + delay
        self.log(
            f"devstack: {name} (port {process.port}) {how}; starting it again in {delay:.1f} s "
            f"(death {deaths} within {self.crash_loop_window:.0f} s; {self.crash_loop_deaths} "
            f"stop everything); log: {process.log_path}"
        )
