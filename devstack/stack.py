"""The whole system (databases, seed, the services, the gateway) composed for `make run` and
e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.gateway import CaddyProcess
from devstack.servers import (
    MongoServer,
    RedisServer,
    ServiceProcess,
    StartStop,
    free_port,
    port_in_use,
)
from devstack.supervisor import Supervisor

# Start order matters: booking calls schedule, live calls booking; the gateway (Caddy) comes
# last.
SERVICE_APPS = {
    "schedule": "schedule_service:create_app()",
    "booking": "booking_service:create_app()",
    "live": "live_service:create_app()",
}
# gunicorn's worker class per service: the live service is an asyncio (aiohttp) app that holds
# thousands of idle streams (aiohttp's worker, keeping gunicorn's --backlog); the others are
# WSGI apps on threads.
WORKER_CLASSES = {"live": "live_service.worker.LiveWorker"}
SEED_TIMEOUT_SECONDS = 120


class PortBusyError(RuntimeError):
    """A requested port is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(f"port {port} for {what} is already in use")
        self.port = port
        self.what = what


class Stack(StartStop):
    """Embedded databases (unless URLs are given), seed data, the gunicorn services (each as
    `replicas[name]` processes: schedule and booking with `workers` x `threads`, live with
    `live_workers` asyncio workers) and the gateway (Caddy) in front of them."""

    def __init__(
        self,
        data_dir: Path,
        mongo_url: str | None = None,
        redis_url: str | None = None,
        gateway_port: int | None = None,
        schedule_port: int | None = None,
        booking_port: int | None = None,
        live_port: int | None = None,
        workers: int = 2,
        threads: int = 4,
        extra_env: dict[str, str] | None = None,
        access_log: bool = False,
        replicas: dict[str, int] | None = None,
        gateway_env: dict[str, str] | None = None,
        live_workers: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.mongo_url = mongo_url
        self.redis_url = redis_url
        self.ports = {
            "schedule": schedule_port if schedule_port is not None else free_port(),
            "booking": booking_port if booking_port is not None else free_port(),
            "live": live_port if live_port is not None else free_port(),
            "gateway": gateway_port if gateway_port is not None else free_port(),
        }
        self.apps = dict(SERVICE_APPS)
        self.replicas = {name: max(1, (replicas or {}).get(name, 1)) for name in self.apps}
        # Replica 1 of a service is on its own port; the others on free ports.
        self.replica_ports = {
            name: [self.ports[name]] + [free_port() for _ in range(self.replicas[name] - 1)]
            for name in self.apps
        }
        self.workers = workers
        self.threads = threads
        self.live_workers = live_workers
        self.extra_env = dict(extra_env or {})
        self.gateway_env = dict(gateway_env or {})
        self.access_log = access_log
        self.log_dir = self.data_dir / "logs"
        self.site_dir = self.data_dir / "gateway-site"
        self.redis: RedisServer | None = None
        self.mongo: MongoServer | None = None
        self.services: dict[str, ServiceProcess | CaddyProcess] = {}
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
    def live_url(self) -> str:
        """Base URL of the live service."""
        return f"http://127.0.0.1:{self.ports['live']}"

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway (the public entry point)."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def gateway(self) -> CaddyProcess:
        """The gateway process (Caddy)."""
        gateway = self.services["gateway"]
        assert isinstance(gateway, CaddyProcess)
        return gateway

    def replica_urls(self, name: str) -> list[str]:
        """Base URLs of every process of a service."""
        return [f"http://127.0.0.1:{port}" for port in self.replica_ports[name]]

    def check_ports(self) -> None:
        """Raise PortBusyError for the first service port that is already taken."""
        for name, port in self.ports.items():
            if port_in_use(port):
                raise PortBusyError(port, name)

    def start(self) -> Stack:
        """Start databases, run the seed, then the services' processes and the gateway."""
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
            for name, app_spec in self.apps.items():
                for index, port in enumerate(self.replica_ports[name], start=1):
                    process_name = name if index == 1 else f"{name}-{index}"
                    service = ServiceProcess(
                        process_name,
                        app_spec,
                        self.log_dir,
                        port=port,
                        env=self.env,
                        workers=self.live_workers if name == "live" else self.workers,
                        threads=self.threads,
                        access_log=self.access_log,
                        metrics_dir=self.data_dir / "metrics" / process_name,
                        worker_class=WORKER_CLASSES.get(name, "gthread"),
                    )
                    # Registered before start() so a failed start is still cleaned up by stop().
                    self.services[process_name] = service
                    service.start()
            build_site(self.site_dir, self.log_dir)
            self.services["gateway"] = gateway = self.new_gateway("gateway", self.ports["gateway"])
            gateway.start()
        except BaseException:
            self.stop()
            raise
        return self

    def gateway_environment(self, upstreams: dict[str, list[str]] | None = None) -> dict:
        """The Caddyfile's variables for a gateway in front of `upstreams` (base URLs per
        service; default, and for a service it leaves out: every replica of this stack)."""
        urls = {name: self.replica_urls(name) for name in self.apps} | (upstreams or {})
        settings = {**os.environ, **self.env}
        passed = {k: v for k, v in settings.items() if k in GATEWAY_VARIABLES}
        if settings.get("ACCESS_LOG_LEVEL"):  # the services' setting, in Caddy's words
            level = settings["ACCESS_LOG_LEVEL"].upper()
            passed.setdefault("GATEWAY_ACCESS_LOG_LEVEL", {"WARNING": "WARN"}.get(level, level))
        return {
            **passed,
            "SCHEDULE_UPSTREAMS": upstream_line(urls["schedule"]),
            "BOOKING_UPSTREAMS": upstream_line(urls["booking"]),
            **({"LIVE_UPSTREAMS": upstream_line(urls["live"])} if "live" in urls else {}),
            **self.gateway_env,
        }

    def new_gateway(
        self,
        name: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        upstreams: dict[str, list[str]] | None = None,
        **kwargs,
    ) -> CaddyProcess:
        """A gateway (not started) with this stack's settings plus `env`."""
        return CaddyProcess(
            name,
            self.data_dir / name,
            self.site_dir,
            port=port,
            env={**self.gateway_environment(upstreams), **(env or {})},
            **kwargs,
        )

    def extra_service(
        self,
        name: str,
        service: str,
        env: dict[str, str] | None = None,
        workers: int = 1,
        threads: int = 2,
    ) -> ServiceProcess:
        """Start one more process of `service` ("schedule", "booking" or "live") on a free
        port, with the stack's environment plus `env`; the caller stops it. (Not behind the
        gateway.)"""
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

    def supervisor(self, **options) -> Supervisor:
        """A supervisor of this started stack (devstack/supervisor.py): it restarts the
        services' processes and the gateway when they die, and fails when an embedded database
        dies. `options`: Supervisor's (log, delays, crash-loop limits)."""
        databases = {"valkey (redis)": self.redis, "nx-27017 (mongo)": self.mongo}
        return Supervisor(
            self.services,
            {name: server for name, server in databases.items() if server is not None},
            **options,
        )

    def stop(self) -> None:
        """Stop everything this stack started, in reverse order; safe to call twice."""
        for service in reversed(list(self.services.values())):
            service.stop()
        # Databases last, so services can finish in-flight requests during graceful shutdown.
        for server in (self.redis, self.mongo):
            if server is not None:
                server.stop()


#: The gateway's variables (README, "Gateway") that `make run` passes on from its environment.
GATEWAY_VARIABLES = frozenset(
    {
        "GATEWAY_HTTP_PORT",
        "GATEWAY_HTTPS_PORT",
        "GATEWAY_GRACE_PERIOD",
        "GATEWAY_GLOBAL_OPTIONS",
        "GATEWAY_READ_HEADER_TIMEOUT",
        "GATEWAY_READ_BODY_TIMEOUT",
        "GATEWAY_IDLE_TIMEOUT",
        "GATEWAY_LOG_LEVEL",
        "GATEWAY_ACCESS_LOG_LEVEL",
        "GATEWAY_LB_POLICY",
        "TRUSTED_PROXIES",
        "CORS_ORIGINS",
        "MAX_BODY_BYTES",
        "UPSTREAM_CONNECT_TIMEOUT",
        "UPSTREAM_READ_TIMEOUT",
        "UPSTREAM_HEALTH_URI",
        "UPSTREAM_HEALTH_INTERVAL",
        "UPSTREAM_HEALTH_TIMEOUT",
        "BREAKER_THRESHOLD",
        "BREAKER_COOLDOWN_SECONDS",
    }
)


def upstream_line(urls: list[str]) -> str:
    """The Caddyfile's upstream line for these base URLs: `to host:port ...`."""
    return "to " + " ".join(url.removeprefix("http://").rstrip("/") for url in urls)


def build_site(out: Path, log_dir: Path) -> None:
    """Build the gateway's static site (merged OpenAPI document, Swagger UI) from the code."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "gateway-site.log"
    with open(log_path, "ab") as log:
        result = subprocess.run(
            [sys.executable, "-m", "gateway.site", str(out)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=SEED_TIMEOUT_SECONDS,
        )
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"gateway site build failed; {log_path}:\n{tail}")
