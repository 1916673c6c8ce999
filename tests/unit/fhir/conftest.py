"""Fixtures of the FHIR unit tests: an app over fakes, its test client."""

from __future__ import annotations

import pytest

from tests.unit.fhir.fhir_support import make_app


@pytest.fixture
def app():
    return make_app()[0]


@pytest.fixture
def client(app):
    return app.test_client()
