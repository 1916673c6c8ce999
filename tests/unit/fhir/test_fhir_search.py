"""FHIR search parameters (booking_service/integrations/fhir/params.py): dates, bounds,
counts, names, the CapabilityStatement; the instants a Slot search's bounds stand for.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from booking_service.integrations.fhir import params as fhir_params
from booking_service.integrations.fhir import service as fhir_service
from shared.errors import ValidationError
from shared.slots import compile_schedule
from tests.unit.fhir.fhir_support import HOSPITAL, check_resource, dump, make_app


class Args(dict):
    """A MultiDict's `getlist`, for pure tests."""

    def getlist(self, name):
        value = self.get(name, [])
        return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28", fhir_params.DateParam("eq", day=date(2026, 11, 28))),
        ("ge2026-11-28", fhir_params.DateParam("ge", day=date(2026, 11, 28))),
        (
            "lt2026-11-28T17:00:00Z",
            fhir_params.DateParam("lt", moment=datetime(2026, 11, 28, 17, tzinfo=UTC)),
        ),
        (
            "gt2026-11-28T17:00+06:00",
            fhir_params.DateParam("gt", moment=datetime(2026, 11, 28, 11, tzinfo=UTC)),
        ),
        (
            "le2026-11-28T17:00:00 06:00",  # an unescaped + arrives as a space
            fhir_params.DateParam("le", moment=datetime(2026, 11, 28, 11, tzinfo=UTC)),
        ),
        (
            "ge2026-11-28T17:00:00.123456789-03:30",
            fhir_params.DateParam(
                "ge", moment=datetime(2026, 11, 28, 20, 30, 0, 123456, tzinfo=UTC)
            ),
        ),
    ],
)
def test_date_values(text, expected):
    assert fhir_params.date_value("start", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ge",
        "2026-11-31",
        "ge1899-12-31",
        "ge9999-01-01",
        "sa2026-11-28",
        "ne2026-11-28",
        "GE2026-11-28",
        "ge2026-11-28T17:00",
        "ge2026-11-28T24:00Z",
        "ge2026-11-28T17:00:60Z",
        "ge2026-11-28T17:00+15:00",
        "ge٢٠٢٦-11-28",
        "ge2026-11-28T17:00Z ",
        "ge2026-11",
        "ge2026-11-28T17Z",
        "ge+2026-11-28",
    ],
)
def test_date_values_that_are_not_dates_are_400(text):
    with pytest.raises(ValidationError) as caught:
        fhir_params.date_value("start", text)
    assert caught.value.errors == {"start": caught.value.errors["start"]}


@pytest.mark.parametrize(
    "values",
    [
        ["ge2026-11-28", "gt2026-11-29"],
        ["lt2026-11-28", "le2026-11-29"],
        ["2026-11-28", "lt2026-11-29"],
        ["ge2026-11-28T10:00Z"] * 3,
        ["eq2026-11-28T17:00Z"],
    ],
)
def test_bounds_are_one_lower_and_one_upper(values):
    with pytest.raises(ValidationError):
        fhir_params.date_range(Args(start=values), "start")


@pytest.mark.parametrize(
    "value", ["0", "-1", "501", "99999999999", "١٠", "1_0", " 5", "5.0", "0x10", ""]
)
def test_count_is_ascii_digits_in_range(value):
    with pytest.raises(ValidationError):
        fhir_params.count(Args(_count=value), fhir_params.SLOT_COUNT)
    assert fhir_params.count(Args(_count="500"), fhir_params.SLOT_COUNT) == 500
    assert fhir_params.count(Args(), fhir_params.SLOT_COUNT) == 100


def test_unknown_parameters_and_modifiers_are_400():
    for name in ("foo", "start:missing", "schedule:Schedule", "_sort", "", "stärt"):
        with pytest.raises(ValidationError):
            fhir_params.check_names(Args({name: "x"}), "Slot")
    fhir_params.check_names(Args(schedule="x", start="y", _count="1", _format="json"), "Slot")
    with pytest.raises(ValidationError):
        fhir_params.single(Args(schedule=["a", "b"]), "schedule")


def test_the_capability_statement_lists_what_the_router_serves():
    doc = dump(fhir_params.capability_statement("http://x/fhir/R4"))
    check_resource(doc)
    assert doc["fhirVersion"] == "4.0.1" and doc["kind"] == "instance"
    listed = {(r["type"], i["code"]) for r in doc["rest"][0]["resource"] for i in r["interaction"]}
    app = make_app()[0]
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/fhir/R4/") or rule.rule == "/fhir/R4/metadata":
            continue
        kind = rule.rule.split("/")[3]
        if "<" in rule.rule:
            served.add((kind, "read"))
        else:
            if "GET" in rule.methods:
                served.add((kind, "search-type"))
            if "POST" in rule.methods:
                served.add((kind, "create"))
    assert listed == served
    params = {
        r["type"]: {p["name"] for p in r.get("searchParam", [])} for r in doc["rest"][0]["resource"]
    }
    assert params["Slot"] == {"schedule", "start", "status", "_count", "_cursor", "_summary"}
    paged = {"_id", "_count", "_page", "_summary"}
    assert params["Location"] == params["Practitioner"] == paged
    assert params["Schedule"] == paged | {"actor", "active"}
    assert {"_id", "_summary"} <= params["Appointment"]


def test_instant_bounds_read_days_in_the_hospitals_zone():
    planned = compile_schedule(HOSPITAL)
    day = date(2026, 11, 28)
    midnight = datetime(2026, 11, 27, 18, tzinfo=UTC)  # 00:00 in Dhaka
    lower, upper = fhir_service.instant_bounds(
        fhir_params.date_range(Args(start=[f"gt{day}", f"le{day + timedelta(days=1)}"]), "start"),
        planned,
    )
    assert lower == (midnight + timedelta(days=1), True)
    assert upper == (midnight + timedelta(days=2), False)
    lower, upper = fhir_service.instant_bounds(
        fhir_params.date_range(Args(start=str(day)), "start"), planned
    )
    assert (lower, upper) == ((midnight, True), (midnight + timedelta(days=1), False))
