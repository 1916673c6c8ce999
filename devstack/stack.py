"""The whole system (databases, seed, three services) composed for `make run` and e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.servers import (
    MongoServer,
    RedisServer,
    ServiceProcess,
    StartStop,
    free_port,
    port_in_use,
)

# Start order matters: the gateway proxies to both services, booking calls schedule.
SERVICE_APPS = {
    "schedule": "schedule_service:create_app()",
    "booking": "booking_service:create_app()",
    "gateway": "gateway:create_app()",
}
# gunicorn worker class per service (default gthread): the gateway is an aiohttp app.
WORKER_CLASSES = {"gateway": "aiohttp.GunicornWebWorker"}
SEED_TIMEOUT_SECONDS = 120


class PortBusyError(RuntimeError):
    """A requested port is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(f"port {port} for {what} is already in use")
        self.port = port
        self.what = what


class Stack(StartStop):
    """Embedded databases (unless URLs are given), seed data and the three gunicorn services."""

    def __init__(
        self,
        data_dir: Path,
        mongo_url: str | None = None,
        redis_url: str | None = None,
        gateway_port: int | None = None,
        schedule_port: int | None = None,
        booking_port: int | None = None,
        workers: int = 2,
        threads: int = 4,
        extra_env: dict[str, str] | None = None,
        access_log: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.mongo_url = mongo_url
        self.redis_url = redis_url
        self.ports = {
            "schedule": schedule_port if schedule_port is not None else free_port(),
            "booking": booking_port if booking_port is not None else free_port(),
            "gateway": gateway_port if gateway_port is not None else free_port(),
        }
        self.workers = workers
        self.threads = threads
        self.extra_env = dict(extra_env or {})
        self.access_log = access_log
        self.log_dir = self.data_dir / "logs"
        self.redis: RedisServer | None = None
        self.mongo: MongoServer | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.env: dict[str, str] = {}

    @property
    def schedule_url(self) -> str:
        """Base URL of the schedule service."""
        return f"http://127.0.0.1:{self.ports['schedule']}"

    @property
    def booking_url(self) -> str:
        """Base URL of the booking service."""
        return f"http://127.0.0.1:{self.ports['booking']}"

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway (the public entry point)."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def check_ports(self) -> None:
        """Raise PortBusyError for the first service port that is already taken."""
        for name, port in self.ports.items():
            if port_in_use(port):
                raise PortBusyError(port, name)

    def start(self) -> Stack:
        """Start databases, run the seed, then start schedule, booking and gateway."""
        self.check_ports()
        try:
            self._start_databases()
            self.env = {
                "MONGO_URL": self.mongo_url or "",
                "REDIS_URL": self.redis_url or "",
                "SCHEDULE_SERVICE_URL": self.schedule_url,
                "BOOKING_SERVICE_URL": self.booking_url,
                **self.extra_env,
            }
            self._seed()
            for name, app_spec in SERVICE_APPS.items():
                service = ServiceProcess(
                    name,
                    app_spec,
                    self.log_dir,
                    port=self.ports[name],
                    env=self.env,
                    workers=self.workers,
                    threads=self.threads,
                    access_log=self.access_log,
                    metrics_dir=self.data_dir / "metrics" / name,
                    worker_class=WORKER_CLASSES.get(name, "gthread"),
                )
                # Registered before start() so a failed start is still cleaned up by stop().
                self.services[name] = service
                service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def extra_service(
        self,
        name: str,
        service: str,
        env: dict[str, str] | None = None,
        workers: int = 1,
        threads: int = 2,
    ) -> ServiceProcess:
        """Start one more process of `service` ("schedule", "booking" or "gateway") on a free
        port, with the stack's environment plus `env`; the caller stops it."""
        return ServiceProcess(
            name,
            SERVICE_APPS[service],
            self.log_dir,
            env={**self.env, **(env or {})},
            workers=workers,
            threads=threads,
            worker_class=WORKER_CLASSES.get(service, "gthread"),
        ).start()

    def _start_databases(self) -> None:
        """Start embedded Mongo/Redis for whichever URL was not given."""
        if self.mongo_url is None:
            self.mongo = MongoServer(self.data_dir / "mongo" / "data")
            self.mongo.start()
            self.mongo_url = self.mongo.url
        if self.redis_url is None:
            # appendonly: bookings' holds and counters in Redis survive a restart of `make run`.
            self.redis = RedisServer(self.data_dir / "redis", appendonly=True)
            self.redis.start()
            self.redis_url = self.redis.url

    def _seed(self) -> None:
        """Run `python -m devstack.seed` with the stack's environment; fail on non-zero exit."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "seed.log"
        with open(log_path, "ab") as log:
            result = subprocess.run(
                [sys.executable, "-m", "devstack.seed"],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=SEED_TIMEOUT_SECONDS,
                start_new_session=True,
            )
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"seed failed with code {result.returncode}; {log_path}:\n{tail}")

    def dead_processes(self) -> list[str]:
        """Names of started child processes that are no longer running."""
        procs: dict[str, RedisServer | MongoServer | ServiceProcess | None] = {
            "mongo": self.mongo,
            "redis": self.redis,
            **self.services,
        }
        return [n for n, p in procs.items() if p is not None and p.proc and not p.running]

    def stop(self) -> None:
        """Stop everything this stack started, in reverse order; safe to call twice."""
        for service in reversed(list(self.services.values())):
            service.stop()
        # Databases last, so services can finish in-flight requests during graceful shutdown.
        for server in (self.redis, self.mongo):
            if server is not None:
                server.stop()
