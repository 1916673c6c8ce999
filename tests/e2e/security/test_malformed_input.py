"""Attack: send what no parser expects, and try to make a service answer 5xx.

Before: deep JSON nesting, a lone surrogate (`"\\ud800"`), a date at the calendar's end and
ids that resolved to documents that are not hospitals made the services answer 500 (and a
dozen such requests opened the gateway's circuit for everyone). Now every request, however
malformed, gets a 4xx in the contract's error shape: pinned first by crafted requests, then
by property-based tests that put hostile values in every field and parameter of every
endpoint (hypothesis, derandomized so CI sees the same cases every run).
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import Api, booking, hospital_doc, next_weekday

pytestmark = pytest.mark.e2e

SNAKE = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def assert_client_error(resp: requests.Response, what: object = "") -> None:
    """A 4xx (never a 5xx) in the contract's JSON error shape."""
    assert 400 <= resp.status_code < 500, (what, resp.status_code, resp.text[:300])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), (what, resp.text)
    body = resp.json()
    assert body["code"] == resp.status_code, (what, body)
    assert isinstance(body["status"], str) and isinstance(body["message"], str), body
    assert body["error"] and set(body["error"]) <= SNAKE, body


def raw(api: Api, method: str, path: str, data: bytes, **headers) -> requests.Response:
    """Send `data` as it is, as a JSON body."""
    sent = {"Content-Type": "application/json", **headers}
    return api.session.request(
        method, api.base + path, data=data, headers=api._headers(sent), timeout=30
    )


@pytest.fixture(scope="module")
def target(admin) -> str:
    resp = admin.post("/api/dynamic-slots/hospitals", hospital_doc())
    assert resp.status_code == 201, resp.text
    return resp.json()["hospital_id"]


@pytest.fixture(scope="module")
def appointment(admin, target) -> str:
    """An appointment a reschedule's body can be sent for (by the admin)."""
    resp = admin.post("/api/appointments", booking(target, next_weekday(3), "10:00"))
    assert resp.status_code == 201, resp.text
    return resp.json()["appointment_id"]


def write_endpoints(hid: str, appointment_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/appointments"),
        ("POST", "/api/holds"),
        ("POST", "/api/waitlist"),
        ("POST", f"/api/appointments/{appointment_id}/reschedule"),
        ("POST", "/api/availability/bulk"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/dynamic-slots/hospitals"),
        ("PUT", f"/api/dynamic-slots/hospitals/{hid}"),
    ]


CRAFTED_BODIES = {
    "deep nesting": b"[" * 30000 + b"]" * 30000,
    "deep object": b'{"a":' * 20000 + b"1" + b"}" * 20000,
    "nesting inside a field": b'{"hospital_id": "gomoti", "dates": '
    + b"[" * 5000
    + b"]" * 5000
    + b"}",
    "lone surrogate": b'{"hospital_id": "gomoti", "name": "\\ud800", "email": "\\udfff@x.io"}',
    "surrogate key": b'{"\\ud800": 1}',
    "encoded surrogate": b'{"name": "\xed\xa0\x80"}',
    "invalid utf-8": b'{"name": "\xff\xfe"}',
    "utf-16": '{"hospital_id": "gomoti"}'.encode("utf-16"),
    "huge integer": b'{"max_appointments_per_slot": 1' + b"0" * 6000 + b"}",
    "huge exponent": b'{"max_appointments_per_slot": 1e999, "advance_booking_days": -1e999}',
    "nan": b'{"max_appointments_per_slot": NaN}',
    "null": b"null",
    "a string": b'"gomoti"',
    "a list": b"[]",
    "empty": b"",
    "truncated": b'{"hospital_id": "gom',
    "nul bytes": b'{"hospital_id": "gomoti\\u0000", "name": "a\\u0000b"}',
}


@pytest.mark.parametrize("case", sorted(CRAFTED_BODIES))
def test_crafted_bodies_are_client_errors(gateway, admin, patient, target, appointment, case):
    for method, path in write_endpoints(target, appointment):
        api = patient if path in ("/api/appointments", "/api/holds", "/api/waitlist") else admin
        resp = raw(api, method, path, CRAFTED_BODIES[case])
        assert_client_error(resp, (case, method, path))


@pytest.mark.parametrize(
    "path",
    [
        "/api/dynamic-slots/available/gomoti/9999-12-31",
        "/api/dynamic-slots/available/gomoti/0001-01-01",
        "/api/dynamic-slots/available/gomoti/10000-01-01",
        "/api/dynamic-slots/calendar/gomoti?start=9999-12-25&days=92",
        "/api/dynamic-slots/calendar/gomoti?start=9998-12-31&days=92",
        "/api/dynamic-slots/calendar/gomoti?start=0001-01-01&days=92",
        "/api/dynamic-slots/calendar/gomoti?days=99999999999999999999999",
        "/api/dynamic-slots/calendar/gomoti?days=%FF&start=%ED%A0%80",
        "/api/availability/gomoti/9999-12-31",
        "/api/availability/gomoti/0001-01-01",
        "/api/availability/%ED%A0%80/2026-12-01",
        "/api/dynamic-slots/available/%FF%FE/2026-12-01",
        "/api/appointments?date_from=0001-01-01&date_to=9999-12-31",
        "/api/appointments?page=99999999999999999999&per_page=-1",
        "/api/appointments/%ED%A0%80",
    ],
)
def test_dates_and_numbers_at_the_limits_are_not_server_errors(admin, path):
    resp = admin.get(path)
    if resp.status_code == 200:  # far dates may be answered (past / beyond the window)
        assert resp.json()
        return
    assert_client_error(resp, path)


def test_dates_at_the_limits_in_bodies(admin, patient):
    bulk = admin.post(
        "/api/availability/bulk", {"hospital_id": "gomoti", "dates": ["9999-12-31", "0001-01-01"]}
    )
    assert_client_error(bulk)
    for day in ("9999-12-31", "0001-01-01", "9998-12-31"):
        assert_client_error(patient.post("/api/appointments", booking("gomoti", day, "17:00")))


@pytest.mark.parametrize("via", ["gateway", "booking service"])
def test_hostile_headers_are_client_errors(stack, patient, target, via):
    base = stack.gateway_url if via == "gateway" else stack.booking_url
    body = booking(target, next_weekday(2), "09:00")
    keys = ["x" * 300, "a b"]
    if via == "booking service":
        # Bytes an HTTP parser may refuse or alter before the service sees them; the
        # gateway's own answers to such requests are the gateway issue's (issue 11).
        keys += ["caf\u00e9"]
    for key in keys:
        resp = patient.session.post(
            base + "/api/appointments",
            json=body,
            headers=patient._headers({"Idempotency-Key": key.encode("latin-1")}),
            timeout=30,
        )
        assert_client_error(resp, key)
    for token in ("\xff\xfe", "a" * 5000, "e30.e30.e30", "Bearer"):
        resp = patient.session.get(
            base + "/api/appointments",
            headers={"Authorization": b"Bearer " + token.encode("latin-1")},
            timeout=30,
        )
        assert_client_error(resp, token)


# -- property-based: hostile values in every field and parameter of every endpoint --------

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff\ud800",
    "\u202e",
    "\r\n",
    "../" * 20,
    "%00",
    "%2F",
    "a" * 1_000,
    "١٢",
    "９",
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "24:00",
    "$ne",
    "{$gt: ''}",
    "gomoti",
    "GOMOTI",
    "gomoti/",
]
text = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(st.characters(codec=None), max_size=80),
    st.text(st.characters(categories=["Cs", "Cc", "Zl", "Nd", "No"]), min_size=1, max_size=20),
)
leaf = st.one_of(
    text,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**60),
    st.floats(),
)
value = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
# Nested lists as deep as the test's own json module can write (the crafted bodies above go
# far deeper).
deep = st.integers(min_value=20, max_value=500).map(lambda n: json.loads("[" * n + "]" * n))


def encode(body: object) -> bytes:
    """JSON with lone surrogates written as escapes (as a hostile client sends them)."""
    return json.dumps(body, ensure_ascii=True, allow_nan=True).encode()


def path_part(value: str) -> str:
    """A path segment as a client may send it, whatever the value holds."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def templates(hid: str, day: str) -> dict[str, dict]:
    patient_body = booking(hid, day, "09:00")
    return {
        "appointments": patient_body,
        "appointments_hold": dict(patient_body, hold_id="6565656565656565656565ab"),
        "holds": {
            "hospital_id": hid,
            "date": day,
            "slot": "09:00",
            "practitioner_id": "doc",
            "appointment_type": "new",
        },
        "waitlist": dict(patient_body, slot="09:00", appointment_type="new"),
        "reschedule": {"date": day, "slot": "11:00", "appointment_type": "new"},
        "bulk": {"hospital_id": hid, "dates": [day, day], "practitioner_id": "doc"},
        "appointments_doctor": dict(patient_body, practitioner_id="doc", appointment_type="new"),
        "register": {
            "name": "Fuzz",
            "email": f"f-{uuid.uuid4().hex[:8]}@example.com",
            "phone": "+8801700000000",
            "password": "long-enough",
        },
        "login": {"email": "nobody@example.com", "password": "long-enough"},
        "users": {
            "name": "Desk",
            "email": f"d-{uuid.uuid4().hex[:8]}@example.com",
            "phone": "+8801700000000",
            "password": "long-enough",
            "role": "staff",
        },
        "hospital": hospital_doc(),
        "replace": dict(
            hospital_doc(
                hid,
                practitioners={"doc": DOCTOR},
                appointment_types={"new": {"name": "New", "units": 2, "minutes": 10}},
                default_appointment_type="new",
            ),
            force=False,
        ),
        "practitioner": dict(DOCTOR, force=False),
    }


DOCTOR = {
    "name": "Dr. Fuzz",
    "specialty": "Medicine",
    "active": True,
    "schedule": {
        "2": {
            "sessions": [{"start": "09:00", "end": "10:00", "slot_minutes": 20, "capacity": 2}],
            "slots": [{"start": "11:00", "end": "12:00"}],
        }
    },
    "date_overrides": {"2030-01-01": {"closed": True, "reason": "Holiday"}},
    "max_appointments_per_slot": 3,
}


BODY_ENDPOINTS = {
    "appointments": ("POST", "/api/appointments"),
    "appointments_hold": ("POST", "/api/appointments"),
    "holds": ("POST", "/api/holds"),
    "waitlist": ("POST", "/api/waitlist"),
    "reschedule": ("POST", "/api/appointments/{aid}/reschedule"),
    "appointments_doctor": ("POST", "/api/appointments"),
    "bulk": ("POST", "/api/availability/bulk"),
    "register": ("POST", "/api/auth/register"),
    "login": ("POST", "/api/auth/login"),
    "users": ("POST", "/api/auth/users"),
    "hospital": ("POST", "/api/dynamic-slots/hospitals"),
    "replace": ("PUT", "/api/dynamic-slots/hospitals/{hid}"),
    "practitioner": ("PUT", "/api/dynamic-slots/hospitals/{hid}/practitioners/doc"),
}


def paths_of(doc: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a document where a value can be put (fields, items, the root)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, item in doc.items():
            out.extend(paths_of(item, (*prefix, key)))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            out.extend(paths_of(item, (*prefix, i)))
    return out


def put(doc: object, where: tuple, new: object) -> object:
    if not where:
        return new
    copy = json.loads(json.dumps(doc))
    node = copy
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = new
    return copy


FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("endpoint", sorted(BODY_ENDPOINTS))
def test_hostile_values_in_every_body_field(
    admin, patient, target, appointment, clear_login_counters, endpoint
):
    method, path = BODY_ENDPOINTS[endpoint]
    template = templates(target, str(next_weekday(2)))[endpoint]
    where_to = paths_of(template)
    api = patient if endpoint.startswith(("appointments", "holds", "waitlist")) else admin

    @FUZZ
    @given(
        where=st.sampled_from(where_to),
        new=st.one_of(value, deep, st.just("a" * 70_000)),
        extra=st.booleans(),
    )
    def check(where, new, extra):
        body = put(template, where, new)
        if extra and isinstance(body, dict):
            body = dict(body, unexpected=new)
        resp = raw(api, method, path.format(hid=target, aid=appointment), encode(body))
        if resp.status_code < 400:
            return  # the hostile value happened to be acceptable
        assert_client_error(resp, (endpoint, where, repr(new)[:200]))

    check()


GET_PATHS = [
    "/api/dynamic-slots/available/{a}/{b}",
    "/api/dynamic-slots/calendar/{a}?days={b}&start={c}",
    "/api/dynamic-slots/hospitals/{a}",
    "/api/dynamic-slots/hospitals/{a}/history",
    "/api/dynamic-slots/hospitals/{a}/practitioners",
    "/api/dynamic-slots/hospitals/{a}/practitioners/{b}?force={c}",
    "/api/dynamic-slots/available/{a}/{b}?practitioner_id={c}&appointment_type={b}",
    "/api/dynamic-slots/calendar/{a}?practitioner_id={b}&appointment_type={c}",
    "/api/availability/{a}/{b}?practitioner_id={c}&appointment_type={c}",
    "/api/appointments?practitioner_id={a}&hospital_id={b}",
    "/api/queue/{a}/{b}?practitioner_id={c}",
    "/api/appointments/{a}/queue",
    "/api/availability/{a}/{b}",
    "/api/appointments?hospital_id={a}&date={b}&status={c}&page={b}",
    "/api/appointments?date_from={a}&date_to={b}&per_page={c}",
    "/api/appointments/{a}",
    "/api/holds/{a}",
    "/api/waitlist/{a}",
    "/api/waitlist?hospital_id={a}&date={b}&status={c}&page={b}",
]


@pytest.mark.parametrize("template", GET_PATHS)
def test_hostile_values_in_every_path_and_query_parameter(admin, template):
    """(A URL longer than an HTTP parser's line limit is the gateway issue's, issue 11: the
    values here stay under it; the bodies above take 70,000 characters.)"""

    @FUZZ
    @given(a=text, b=text, c=text, method=st.sampled_from(["GET", "DELETE"]))
    def check(a, b, c, method):
        if method == "DELETE" and not template.startswith(
            (
                "/api/appointments/",
                "/api/dynamic-slots/hospitals/{a}/practitioners/",
                "/api/holds/",
                "/api/waitlist/{a}",
            )
        ):
            method = "GET"
        url = template.format(a=path_part(a), b=path_part(b), c=path_part(c))
        resp = admin.session.request(
            method, admin.base + url, headers=admin._headers(None), timeout=30
        )
        if resp.status_code < 400:
            return
        assert_client_error(resp, (method, url[:200]))

    check()


def test_oversized_requests_are_answered_in_the_error_shape(gateway):
    """A URI, a header count or a header size over what a service's HTTP server takes is
    never answered with that server's HTML page."""
    long_uri = gateway.get("/api/dynamic-slots/calendar/gomoti?x=" + "a" * 9000)
    assert_client_error(long_uri)
    assert long_uri.json()["error"] == "uri_too_long"
    many = {f"X-Hostile-{i}": "x" for i in range(150)}
    big = {"X-Hostile": "x" * 20_000}
    for headers in (many, big):
        resp = gateway.get("/api/dynamic-slots/calendar/gomoti?days=1", headers=headers)
        assert resp.status_code == 200, (resp.status_code, resp.text[:200])
