"""Fixtures of the unit tests: nothing runs but this process.

The shared data (NOW and its week, PATIENT, OTHER, THIRD, STAFF, ADMIN, the hospital
configurations) is in tests/unit/builders.py; the fakes of the adapters in tests/unit/fakes.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from shared.config import Config
from tests.unit.fakes import fake_context


@pytest.fixture
def published() -> Callable[..., tuple]:
    """published(doc, config=None, ready=()) -> (ctx, schedules): the core's Context over fakes
    with the hospital `doc` published and the gate's records of `ready` ((hospital, doctor,
    day) triples) already built, as if a first booking had built them."""

    def make(doc: dict, config: Config | None = None, ready: Iterable[tuple] = ()):
        ctx, schedules = fake_context(config)
        schedules.publish(doc)
        ctx.capacity.ready.update(ready)
        return ctx, schedules

    return make


@pytest.fixture
def client(app):
    """Flask's test client of the module's `app` fixture."""
    return app.test_client()
