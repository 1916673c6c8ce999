"""`GET /desk/{hospital_id}[?practitioner_id=]` (API.md v1.2, "The front desk") through the
gateway, without a browser: the page and its own script and style files, its headers
(`Cache-Control: no-store`, a Content-Security-Policy of the page's own origin only), 404 for a
hospital or doctor that does not exist, and hostile ids that are never answered with a 5xx.
The waiting-room page gets the same policy. (tests/e2e/browser/test_desk.py runs the page.)"""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.helpers import assert_error_shape

STATIC = Path(__file__).resolve().parents[3] / "live_service" / "static"
# What each page may load: its own files, under its own path.
PAGES = {
    "/desk/gomoti": ("desk.html", ["/desk/static/desk.css", "/desk/static/desk.js"]),
    "/display/gomoti": (
        "display.html",
        ["/display/static/display.css", "/display/static/display.js"],
    ),
}
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def raw_get(gateway, target: str) -> tuple[int, str, bytes]:
    """GET a request target exactly as written (no client-side quoting or normalising): the
    status, the Content-Type and the body."""
    address = urlsplit(gateway.base)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=15)
    try:
        conn.putrequest("GET", target, skip_host=False, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", sorted(PAGES))
def test_a_page_allows_only_its_own_origin(gateway, path):
    name, assets = PAGES[path]
    resp = gateway.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.content == (STATIC / name).read_bytes()
    assert resp.headers["X-Request-ID"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    csp = policy(resp.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"]
    for directive in ("script-src", "style-src", "connect-src"):
        assert csp[directive] == ["'self'"], (directive, csp)
    assert csp["img-src"] == ["'self'", "data:"]  # data: for the empty favicon
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]  # the forms are sent by the script, never posted
    assert csp["base-uri"] == ["'none'"]

    # No inline script or style, and nothing from another origin: every script and
    # stylesheet is one of the page's own files, and each is served.
    html = resp.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" for _, body in scripts), scripts
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    loaded = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert sorted(u for u in loaded if u != "data:,") == assets, loaded
    for asset in assets:
        got = gateway.get(asset)
        assert got.status_code == 200, (asset, got.text)
        assert got.headers["Content-Type"] == CONTENT_TYPES[Path(asset).suffix]
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.content == (STATIC / Path(asset).name).read_bytes()
        assert not re.search(rb"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", got.content), asset
        # A browser asks again each time, and an unchanged file is a 304.
        again = gateway.get(asset, headers={"If-None-Match": got.headers["ETag"]})
        assert again.status_code == 304, asset


def test_the_desk_is_never_kept_by_a_cache(gateway):
    for path in ("/desk/gomoti", "/desk/dhanmondi?practitioner_id=helal"):
        resp = gateway.get(path)
        assert resp.status_code == 200, (path, resp.text)
        assert resp.headers["Cache-Control"] == "no-store"
    head = gateway.send("HEAD", "/desk/gomoti")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Cache-Control"] == "no-store"


def test_an_unknown_hospital_or_doctor_is_404(gateway):
    assert_error_shape(gateway.get("/desk/no-such-hospital"), 404, "hospital_not_found")
    assert_error_shape(gateway.get("/desk/" + "a" * 64), 404, "hospital_not_found")
    unknown = gateway.get("/desk/dhanmondi?practitioner_id=nobody")
    assert_error_shape(unknown, 404, "practitioner_not_found")
    # Gomoti has no doctors at all.
    assert_error_shape(
        gateway.get("/desk/gomoti?practitioner_id=helal"), 404, "practitioner_not_found"
    )
    assert gateway.get("/desk/dhanmondi?practitioner_id=rina").status_code == 200


# Hospital ids that are almost "gomoti", far too long, or not UTF-8 / not percent-encoding.
HOSTILE_HOSPITALS = [
    "GOMOTI",
    "Gomoti",
    "gomot",
    "gomoti-",
    "gomoti_",
    "-gomoti",
    "gomoti%20",
    "%20gomoti",
    "gomoti%00",
    "gomoti%0a",
    "gomoti%0d%0aX-Injected:%201",
    "gomoti%09",
    "gomoti%2F",
    "gomoti%2f..",
    "gomoti%3Fx=1",
    "gomoti%23frag",
    "gomoti%CC%87",  # a combining dot above
    "%D0%B3omoti",  # a Cyrillic "g"
    "%E2%80%AEitomog",  # a right-to-left override
    "%EF%BC%A7omoti",  # a fullwidth "G"
    "%C0%AF",  # an overlong "/"
    "%ED%A0%80",  # a lone surrogate
    "%FF%FE",
    "%C3%28",
    "%zz",
    "%",
    "%%",
    "%g0moti",
    "..",
    "%2E%2E",
    "a" * 65,
    "a" * 5000,
    quote("গোমতী"),
    "gomoti;x=1",
    "gomoti%3Bx",
]


@pytest.mark.parametrize("hospital", HOSTILE_HOSPITALS)
def test_a_hostile_hospital_id_is_refused_never_a_5xx(gateway, hospital):
    status, content_type, body = raw_get(gateway, f"/desk/{hospital}")
    assert 400 <= status < 500, (hospital, status, body[:200])
    if content_type.startswith("application/json"):
        assert b'"code":' in body, body[:200]


@pytest.mark.parametrize("target", ["..%2F..%2Fhealthz", "..%2F..%2Fopenapi.json"])
def test_encoded_dot_segments_never_reach_the_desk(gateway, target):
    # The gateway decodes and cleans a path before it routes it: /desk/..%2F..%2Fhealthz is its
    # own /healthz (as /display/... and /api/live/... are). Never the desk page, never a 5xx.
    status, content_type, body = raw_get(gateway, f"/desk/{target}")
    assert status < 500, (target, status, body[:200])
    assert not content_type.startswith("text/html"), (target, status)


def test_an_over_long_address_is_414(gateway):
    status, _, _ = raw_get(gateway, "/desk/" + "a" * 9000)
    assert status == 414


# practitioner_id values that are not a doctor's id (400) or name no doctor (404).
HOSTILE_DOCTORS = [
    "HELAL",
    "Helal",
    "helal%20",
    "helal%00",
    "helal%0d%0aX-Injected:%201",
    "hel%20al",
    "helal%2F",
    "helal'--",
    "helal%22%3E%3Cscript%3E",
    "%D0%BDelal",
    "%E0%A6%B9",
    "%FF",
    "%C3%28",
    "%zz",
    "%",
    "",
    "x" * 65,
    "x" * 5000,
    "helal&practitioner_id=rina",
    "helal&practitioner_id=helal",
    "-helal",
]


@pytest.mark.parametrize("doctor", HOSTILE_DOCTORS)
def test_a_hostile_doctor_id_is_refused_never_a_5xx(gateway, doctor):
    status, content_type, body = raw_get(gateway, f"/desk/dhanmondi?practitioner_id={doctor}")
    assert 400 <= status < 500, (doctor, status, body[:200])
    if content_type.startswith("application/json"):
        assert b'"code":' in body, body[:200]


def test_a_doctor_id_that_is_no_id_is_400_as_on_the_stream(gateway):
    for doctor in ("HELAL", "x" * 65, "", "helal&practitioner_id=rina"):
        resp = requests.get(f"{gateway.base}/desk/dhanmondi?practitioner_id={doctor}", timeout=15)
        assert_error_shape(resp, 400, "validation_error")


def test_only_the_pages_own_files_are_served(gateway):
    for path in (
        "/desk/static/desk.html",
        "/desk/static/display.js",
        "/display/static/desk.js",
        "/desk/static/DESK.JS",
        "/desk/static/..%2Fviews.py",
        "/desk/static/%2E%2E%2F__init__.py",
        "/desk/static/",
        "/desk/gomoti/desk.js",
    ):
        status, _, body = raw_get(gateway, path)
        assert status == 404, (path, status, body[:200])


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_the_desk_page_is_only_read(gateway, method):
    resp = requests.request(method, f"{gateway.base}/desk/gomoti", data=b"x", timeout=15)
    assert_error_shape(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]
