"""FHIR searches as FHIR clients make them (over fakes, Flask's test client): Location,
Practitioner and Schedule listed without parameters and paged by `_count` with `next` links,
`_id` lists everywhere `_id` is accepted (Bundle.total the number of matches, `next` paging
through them), `_summary=count` on every search type, and hostile `_id` lists (always a 400
OperationOutcome, never a 5xx). Every answer is parsed back with fhir.resources.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_service.integrations.fhir import directory
from booking_service.integrations.fhir import ids as fhir_ids
from shared.errors import ServiceUnavailable
from tests.helpers import hospital_doc
from tests.unit.fhir.fhir_support import (
    bearer,
    book_body,
    check_outcome,
    fhir_json,
    make_app,
    post,
    tomorrow,
)

# A second hospital (two doctors, one inactive) and one whose id is too long once written as
# a FHIR id (32 `_`, each written `..`): it is served by no FHIR read, so no listing has it.
SECOND = hospital_doc(
    "h2",
    version=1,
    hospital_name="H Two",
    practitioners={"zed": {"name": "Dr. Zed"}, "amy": {"name": "Dr. Amy", "active": False}},
)
UNWRITABLE = hospital_doc("a_" * 32, version=1)

# Ordered by our ids (hospital, then doctor): `h2` before `h_1`.
LOCATIONS = ["h2", "h..1"]
PRACTITIONERS = ["h2.amy", "h2.zed", "h..1.dr..a", "h..1.eve", "h..1.off"]
SCHEDULES = ["h2", "h2.amy", "h2.zed", "h..1", "h..1.dr..a", "h..1.eve", "h..1.off"]


@pytest.fixture
def listed_app():
    app, ctx, schedules = make_app()
    schedules.publish(SECOND)
    schedules.publish(UNWRITABLE)
    return app


@pytest.fixture
def client(listed_app):
    return listed_app.test_client()


def local(url: str) -> str:
    """A next link as the test client asks for it (path and query)."""
    return urlsplit(url)._replace(scheme="", netloc="").geturl()


def next_link(bundle: dict) -> str | None:
    found = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    return found[0] if found else None


def everything(client, url: str, headers=None) -> tuple[list[str], list[dict]]:
    """The ids of every match of a search, following its next links; and every page (each
    one a valid searchset Bundle whose total is the same)."""
    ids, pages = [], []
    while url:
        page = fhir_json(client.get(url, headers=headers or {}))
        assert page["resourceType"] == "Bundle" and page["type"] == "searchset"
        ids += [e["resource"]["id"] for e in page.get("entry", [])]
        pages.append(page)
        url = local(next_link(page)) if next_link(page) else None
        assert len(pages) < 50
    assert len({p["total"] for p in pages}) == 1
    return ids, pages


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("Location", LOCATIONS), ("Practitioner", PRACTITIONERS), ("Schedule", SCHEDULES)],
)
def test_a_search_without_parameters_lists_every_resource_paged(client, kind, expected):
    ids, pages = everything(client, f"/fhir/R4/{kind}")
    assert ids == expected and len(pages) == 1 and pages[0]["total"] == len(expected)
    for count in (1, 2, 3):
        paged, pages = everything(client, f"/fhir/R4/{kind}?_count={count}")
        assert paged == expected, count
        assert len(pages) == -(-len(expected) // count)  # ceil
        assert pages[0]["total"] == len(expected)
        if count < len(expected):
            nxt = next_link(pages[0])
            assert dict(parse_qsl(urlsplit(nxt).query)) == {"_count": str(count), "_page": "2"}
    # Each listed resource is the one its read answers.
    for page_entry in pages[0]["entry"]:
        read = fhir_json(client.get(f"/fhir/R4/{kind}/{page_entry['resource']['id']}"))
        assert page_entry["resource"] == read
        assert page_entry["fullUrl"] == f"http://localhost/fhir/R4/{kind}/{read['id']}"
    beyond = fhir_json(client.get(f"/fhir/R4/{kind}?_count=2&_page=9"))
    assert beyond["total"] == len(expected) and "entry" not in beyond and not next_link(beyond)


def test_the_listing_of_schedules_filters_active(client):
    inactive, _ = everything(client, "/fhir/R4/Schedule?active=false&_count=1")
    assert inactive == ["h2.amy", "h..1.off"]
    active, _ = everything(client, "/fhir/R4/Schedule?active=true")
    assert active == [s for s in SCHEDULES if s not in inactive]


def test_id_lists_on_locations_and_practitioners(client):
    found, pages = everything(client, "/fhir/R4/Location?_id=h2,Location/h..1,nowhere,h2")
    assert found == ["h2", "h..1"] and pages[0]["total"] == 2
    found, pages = everything(client, "/fhir/R4/Location?_id=h2,h..1&_count=1")
    assert found == ["h2", "h..1"] and len(pages) == 2 and pages[0]["total"] == 2
    found, pages = everything(
        client, "/fhir/R4/Practitioner?_id=h2.zed,Practitioner/h..1.off,h2.nobody&_count=1"
    )
    assert found == ["h2.zed", "h..1.off"] and len(pages) == 2 and pages[1]["total"] == 2


def test_schedule_searches_by_id_or_actor_page_with_count(client):
    # Without _count, every match is one page (as it always was).
    found, pages = everything(client, "/fhir/R4/Schedule?actor=Location/h2,Location/h..1")
    assert found == SCHEDULES and len(pages) == 1 and pages[0]["total"] == 7
    found, pages = everything(client, "/fhir/R4/Schedule?actor=Location/h2,Location/h..1&_count=3")
    assert found == SCHEDULES and len(pages) == 3 and pages[2]["total"] == 7
    found, pages = everything(client, "/fhir/R4/Schedule?_id=h2.zed,h..1,h2.zed,h..9&_count=1")
    assert found == ["h2.zed", "h..1"] and len(pages) == 2 and pages[0]["total"] == 2


def test_appointment_id_lists_count_every_match_and_page_through_them(listed_app, client):
    day = tomorrow(2)
    made = [
        fhir_json(post(client, book_body(day, hhmm, phone=phone), bearer(listed_app)), 201)["id"]
        for hhmm, phone in (("17:00", "+8801700000011"), ("18:00", "+8801700000012"))
    ]
    desk = bearer(listed_app, "staff", "desk")
    a, b = made
    found, pages = everything(client, f"/fhir/R4/Appointment?_id={a},{b}&_count=1", desk)
    assert found == [a, b] and len(pages) == 2 and pages[0]["total"] == 2
    # A repeated id is one match; an id of nothing matches nothing.
    found, pages = everything(client, f"/fhir/R4/Appointment?_id={b},{a},{b},{'0' * 24}", desk)
    assert found == [a, b] and pages[0]["total"] == 2
    # A patient's list is still its own.
    other = bearer(listed_app, user="u9")
    assert fhir_json(client.get(f"/fhir/R4/Appointment?_id={a},{b}", headers=other))["total"] == 0


def test_summary_count_answers_the_total_alone_for_every_search(listed_app, client):
    day = tomorrow(2)
    made = fhir_json(post(client, book_body(day, phone="+8801700000021"), bearer(listed_app)), 201)
    desk = bearer(listed_app, "staff", "desk")
    for query, total in (
        ("Location", 2),
        ("Location?_id=h2,nowhere", 1),
        ("Practitioner", 5),
        ("Practitioner?_count=1&_page=3", 5),
        ("Schedule", 7),
        ("Schedule?active=false", 2),
        ("Schedule?actor=Location/h2", 3),
        (f"Slot?schedule=Schedule/h..1&start={day}", 2),
        (f"Slot?schedule=Schedule/h..1.eve&start={day}&status=free", 2),
        ("Slot?schedule=Schedule/h..1&_count=1", 62),  # the whole window, whatever _count
        ("Slot?schedule=Schedule/nowhere", 0),
        ("Appointment", 1),
        (f"Appointment?_id={made['id']},{'0' * 24}", 1),
        (f"Appointment?date=gt{day}", 0),
    ):
        sep = "&" if "?" in query else "?"
        resp = client.get(f"/fhir/R4/{query}{sep}_summary=count", headers=desk)
        bundle = fhir_json(resp)
        assert bundle["type"] == "searchset" and bundle["total"] == total, (query, bundle)
        assert "entry" not in bundle and not next_link(bundle), query
        # The same total as the search itself.
        full = fhir_json(client.get(f"/fhir/R4/{query}", headers=desk))
        if next_link(full) is None and "_cursor" not in query and "_count" not in query:
            assert full.get("total", total) == total, query
    assert (
        "no-store"
        in client.get("/fhir/R4/Appointment?_summary=count", headers=desk).headers["Cache-Control"]
    )


@pytest.mark.parametrize("kind", ["Location", "Practitioner", "Schedule", "Appointment"])
@pytest.mark.parametrize(
    "value",
    [
        "",  # empty
        ",",
        "h2,",
        ",h2",
        "h2,,h..1",
        ",".join(["h2"] * 11),  # one over the cap
        ",".join(["h2"] * 10_000),
        ",".join(["h..1"] * 10_000) + "x",
        "H2",  # almost right: an alias of nothing
        "h_2",  # our id as it is (`_` is no FHIR id character)
        "h2.",
        ".h2",
        "h2/x",
        "Slot/h2",
        "Location/",
        "65A1B2C3D4E5F60718293A4B",
        "%FF%FE",  # not UTF-8
        "%ED%A0%80",  # a lone surrogate, encoded
        "h2%00",
        "%E2%80%AEh2",
        "a" * 65,
    ],
)
def test_hostile_id_lists_are_400_operation_outcomes(listed_app, client, kind, value):
    resp = client.get(f"/fhir/R4/{kind}?_id={value}", headers=bearer(listed_app, "admin"))
    check_outcome(resp, 400, "validation_error")


@pytest.mark.parametrize(
    "value",
    [
        "65a1b2c3d4e5f60718293a4",  # 23 hex digits
        "65a1b2c3d4e5f60718293a4bc",
        "65a1b2c3d4e5f60718293a4g",
        "Appointment/65a1b2c3d4e5f60718293a4b",
        "65a1b2c3d4e5f60718293a4b,65a1b2c3d4e5f60718293a4",
        "\u0665" * 24,  # Arabic-Indic digits
    ],
)
def test_almost_right_appointment_ids_are_400(listed_app, client, value):
    resp = client.get(
        "/fhir/R4/Appointment?_id=" + quote(value, safe=",/"), headers=bearer(listed_app)
    )
    check_outcome(resp, 400, "validation_error")


def test_a_list_over_the_cap_says_so(client):
    doc = check_outcome(client.get("/fhir/R4/Location?_id=" + ",".join(["h2"] * 10_000)), 400)
    assert "1 to 10 values" in doc["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "query",
    [
        "Location?_summary=true",
        "Location?_summary=count&_summary=count",
        "Practitioner?_summary=",
        "Schedule?_summary=data",
        "Location?_count=0",
        "Location?_count=201",
        "Practitioner?_page=0",
        "Schedule?_page=100001",
        "Location?name=H",
        "Practitioner?active=true",
        "Location?_id:exact=h2",
    ],
)
def test_listing_parameters_that_are_not_valid_are_400(client, query):
    check_outcome(client.get(f"/fhir/R4/{query}"), 400, "validation_error")


def test_listings_read_the_list_of_hospitals_only_when_they_list(listed_app, client):
    hospitals = listed_app.extensions["fhir.directory"]
    before = hospitals.reads
    fhir_json(client.get("/fhir/R4/Location?_id=h2"))
    fhir_json(client.get("/fhir/R4/Schedule?actor=Location/h2"))
    assert hospitals.reads == before
    fhir_json(client.get("/fhir/R4/Location"))
    assert hospitals.reads == before + 1


def test_without_a_list_of_hospitals_a_listing_is_503_and_the_rest_answers(listed_app, client):
    listed_app.extensions["fhir.directory"] = None
    check_outcome(client.get("/fhir/R4/Location"), 503)
    assert fhir_json(client.get("/fhir/R4/Location?_id=h2"))["total"] == 1


def test_the_list_keeps_canonical_ids_only():
    docs = [
        {"hospital_id": "b", "practitioners": {"x": {"name": "X"}, "Bad": {}, "y": "no"}},
        {"hospital_id": "a", "practitioners": None},
        {"hospital_id": "A"},
        {"hospital_id": 7},
        "nothing",
    ]
    assert directory.listed(docs) == (
        directory.Listed("a", ()),
        directory.Listed("b", (("x", True),)),
    )


# 100 examples (hypothesis's default): the four kinds x lists of up to 12 items that are
# ids, near-ids and any text.
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["Location", "Practitioner", "Schedule", "Appointment"]),
    st.lists(
        st.one_of(
            st.sampled_from(["h2", "h..1", "h2.zed", "h..1.dr..a", "Location/h2", "0" * 24]),
            st.text(max_size=12),
        ),
        max_size=12,
    ),
    st.sampled_from(["", "&_count=1", "&_summary=count", "&_page=2&_count=1"]),
)
def test_no_id_list_is_a_server_error(listed_app, client, kind, items, tail):
    query = "_id=" + quote(",".join(items), safe=",/") + tail
    resp = client.get(f"/fhir/R4/{kind}?{query}", headers=bearer(listed_app, "admin"))
    assert resp.status_code in (200, 400), resp.get_data(as_text=True)
    doc = json.loads(resp.get_data())
    assert doc["resourceType"] == ("Bundle" if resp.status_code == 200 else "OperationOutcome")
    fhir_json(resp, resp.status_code)


def test_ids_the_listings_answer_are_ids_their_reads_decode():
    for fhir_id in LOCATIONS:
        assert fhir_ids.read_location(fhir_id) is not None
    for fhir_id in PRACTITIONERS:
        assert fhir_ids.read_practitioner(fhir_id) is not None
    assert fhir_ids.location_id(UNWRITABLE["hospital_id"]) is None


class _Answer:
    def __init__(self, status: int, body=None, etag: str | None = None):
        self.status_code, self.body = status, body
        self.headers = {"ETag": etag} if etag else {}

    def json(self):
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class _Session:
    """requests.Session's get, answering from a script; records the headers sent."""

    def __init__(self, *answers):
        self.answers, self.sent = list(answers), []

    def get(self, url, headers=None, timeout=None):
        self.sent.append((url, dict(headers or {})))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_hospital_list_is_kept_with_its_etag_and_refused_when_unreadable():
    body = {"hospitals": [{"hospital_id": "b"}, {"hospital_id": "a", "practitioners": {}}]}
    session = _Session(
        _Answer(200, body, '"hospitals-1"'),
        _Answer(304),
        _Answer(500),
        _Answer(200, ValueError("not JSON")),
        _Answer(200, {"hospitals": "x"}),
        requests.ConnectionError("refused"),
    )
    hospitals = directory.HospitalList(session, "http://schedule:8001/", (1, 1))
    expected = (directory.Listed("a"), directory.Listed("b"))
    assert hospitals.hospitals() == expected
    assert hospitals.hospitals() == expected  # 304: the list kept
    assert session.sent == [
        ("http://schedule:8001/api/dynamic-slots/hospitals", {}),
        ("http://schedule:8001/api/dynamic-slots/hospitals", {"If-None-Match": '"hospitals-1"'}),
    ]
    for _ in range(4):
        with pytest.raises(ServiceUnavailable):
            hospitals.hospitals()
