"""The gateway's floor: the same caddy binary as the gateway with a bare `reverse_proxy` to one
upstream (a tiny Caddyfile in the bench's workdir), on a free port. Its CPU per request for
the `available` row is what any Caddy in front of the schedule service costs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from devstack.servers import ManagedProcess

CADDYFILE = """\
{{
	admin off
	auto_https off
}}

:{port} {{
	bind 127.0.0.1
	reverse_proxy {upstream}
}}
"""


def caddyfile(port: int, upstream: str) -> str:
    """A Caddyfile that only forwards 127.0.0.1:`port` to `upstream` (host:port)."""
    return CADDYFILE.format(port=port, upstream=upstream)


class MinimalCaddy(ManagedProcess):
    """caddy run with caddyfile(port, upstream), as a child process of its own session."""

    name = "minimal-caddy"
    start_timeout = 15.0

    def __init__(
        self,
        workdir: Path,
        upstream_url: str,
        port: int | None = None,
        label: str = "minimal-caddy",
    ) -> None:
        self.name = label
        self.dir = Path(workdir).resolve() / label
        super().__init__(port, self.dir / "caddy.log")
        self.upstream = upstream_url.removeprefix("http://").rstrip("/")
        self.config_path = self.dir / "Caddyfile"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(caddyfile(self.port, self.upstream))

    def command(self) -> list[str]:
        from gateway import caddy_binary

        return [caddy_binary(), "run", "--config", str(self.config_path), "--adapter", "caddyfile"]

    def environment(self) -> Mapping[str, str]:
        # Caddy's own state stays in the workdir, not in ~/.local or ~/.config.
        return {
            **os.environ,
            "XDG_DATA_HOME": str(self.dir / "xdg-data"),
            "XDG_CONFIG_HOME": str(self.dir / "xdg-config"),
        }

    def ready(self) -> bool:
        import requests

        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False
