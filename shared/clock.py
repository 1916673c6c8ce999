"""The system's one clock.

`CLOCK_OFFSET_SECONDS` shifts it, so end-to-end tests can run the whole system "on"
another day (the days the clocks change, say); production refuses any offset.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


def offset_seconds() -> float:
    """The shift the environment configures (what the production check refuses)."""
    return float(os.environ.get("CLOCK_OFFSET_SECONDS") or 0)


# Read once per process: the clock must not jump while a process runs.
_OFFSET = timedelta(seconds=offset_seconds())


def utcnow() -> datetime:
    """The current instant, aware, in UTC (shifted by CLOCK_OFFSET_SECONDS)."""
    return datetime.now(UTC) + _OFFSET
