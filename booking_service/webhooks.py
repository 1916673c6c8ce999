"""(Being built: issue 16.)"""

from __future__ import annotations


def init_app(app, api, ctx, cfg, run_workers: bool) -> None:
    """Register this integration's routes (and start its background work when
    `run_workers`)."""
