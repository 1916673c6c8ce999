"""Issue 26: the gateway's limit on a URI's length (8,000 characters, then its own 414 in the
error shape, on any path) at its exact edge: the check is a regexp now (a CEL expression's
size() before, which cost ten times the CPU on every request)."""

from __future__ import annotations

import requests

from tests.helpers import assert_error_shape
from tests.upstream import Upstream


def test_a_uri_of_8000_characters_passes_and_one_more_is_414(make_gateway):
    with Upstream() as up:
        gateway = make_gateway(schedule=[up], booking=[up])
        start = "/api/dynamic-slots/calendar/gomoti?x="
        longest = start + "a" * (8000 - len(start))
        assert requests.get(gateway.url + longest, timeout=10).status_code == 200
        assert [r["raw_path"] for r in up.received] == [longest]
        for path in (longest + "a", "/healthz?x=" + "a" * 7990, "/api/nowhere/" + "é" * 1400):
            assert len(requests.Request("GET", gateway.url + path).prepare().path_url) > 8000
            resp = requests.get(gateway.url + path, timeout=10)
            assert_error_shape(resp, 414, "uri_too_long")
        assert len(up.received) == 1
