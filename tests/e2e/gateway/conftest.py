"""A real Caddy (gateway/Caddyfile) on free loopback ports, in front of test upstreams."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.gateway import CaddyProcess
from devstack.stack import build_site, upstream_line
from tests.helpers import Started
from tests.upstream import Upstream


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's static site (merged OpenAPI document, Swagger UI), built once."""
    out = tmp_path_factory.mktemp("gateway-site")
    build_site(out, out.parent / "site-logs")
    return out


@pytest.fixture
def make_gateway(tmp_path: Path, site_dir: Path, started: Started) -> Callable[..., CaddyProcess]:
    """Start gateways: make_gateway(schedule=[Upstream|"host:port"], booking=[...], **env)."""

    def make(schedule=(), booking=(), scheme="http", host="127.0.0.1", **env: str) -> CaddyProcess:
        def line(upstreams) -> str:
            addresses = [u.address if isinstance(u, Upstream) else u for u in upstreams]
            return upstream_line(addresses or ["127.0.0.1:9"])

        name = f"gateway-{len(started)}"
        gateway_env = {
            "SCHEDULE_UPSTREAMS": line(schedule),
            "BOOKING_UPSTREAMS": line(booking),
            "GATEWAY_LOG_LEVEL": "INFO",
            **env,
        }
        process = CaddyProcess(
            name, tmp_path / name, site_dir, env=gateway_env, scheme=scheme, host=host
        )
        return started.start(process)

    return make


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """One recording upstream."""
    with Upstream() as up:
        yield up
