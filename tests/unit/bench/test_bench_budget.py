"""The bench's perf budget (bench/budget.py): which rows are flagged, recording, reading."""

from __future__ import annotations

import json

import pytest

from bench import budget
from bench.budget import Flag, compare, figures
from bench.rounds import Summary


def summary(row: str, target: str, ratio: float | None, **cpu_us: float) -> Summary:
    return Summary(
        row=row,
        target=target,
        rounds=3,
        rps=100.0,
        ratio=ratio,
        p50_ms=1.0,
        p99_ms=2.0,
        requests=300,
        statuses={"200": 300},
        socket_errors=0,
        non_2xx=0,
        cpu_us=dict(cpu_us),
    )


RECORDED = {
    "available [gateway]": {"gateway_us": 200.0, "service_us": 500.0, "ratio": 0.40},
    "available [direct]": {"service_us": 480.0, "ratio": 0.70},
}


def test_figures_are_the_cpu_per_request_and_the_ratio_of_each_row():
    now = figures(
        [
            summary("available", "gateway", 0.41234, gateway=201.26, service=499.94),
            summary("available", "direct", 0.7, service=480.0),
            summary("trivial /ping", "direct", None, service=240.0),
            summary("nothing read", "direct", None),
        ]
    )
    assert now == {
        "available [gateway]": {"gateway_us": 201.3, "service_us": 499.9, "ratio": 0.4123},
        "available [direct]": {"service_us": 480.0, "ratio": 0.7},
        "trivial /ping [direct]": {"service_us": 240.0},
    }


def test_rows_within_ten_percent_are_not_flagged():
    now = {
        "available [gateway]": {"gateway_us": 219.0, "service_us": 549.0, "ratio": 0.361},
        "available [direct]": {"service_us": 528.0, "ratio": 0.631},
    }
    assert compare(RECORDED, now) == []


def test_higher_cpu_and_lower_ratio_beyond_ten_percent_are_flagged():
    now = {
        "available [gateway]": {"gateway_us": 221.0, "service_us": 500.0, "ratio": 0.359},
        "available [direct]": {"service_us": 600.0, "ratio": 0.70},
    }
    flags = compare(RECORDED, now)
    assert flags == [
        Flag("available [gateway]", "gateway_us", 200.0, 221.0),
        Flag("available [gateway]", "ratio", 0.40, 0.359),
        Flag("available [direct]", "service_us", 480.0, 600.0),
    ]
    assert flags[0].change == pytest.approx(0.105)
    assert flags[2].describe() == (
        "available [direct]: service CPU us/req recorded 480, now 600 (+25%)"
    )


def test_better_figures_are_never_flagged():
    now = {"available [gateway]": {"gateway_us": 100.0, "service_us": 250.0, "ratio": 0.9}}
    assert compare(RECORDED, now) == []


def test_rows_and_figures_missing_on_either_side_are_not_compared():
    now = {
        "calendar?days=60 [gateway]": {"gateway_us": 9999.0, "ratio": 0.01},
        "available [direct]": {"gateway_us": 9999.0, "ratio": 0.70},
    }
    assert compare(RECORDED, now) == []


def test_ratios_can_be_left_out_of_the_comparison():
    now = {"available [gateway]": {"gateway_us": 200.0, "service_us": 500.0, "ratio": 0.1}}
    assert compare(RECORDED, now, ratios=False) == []
    assert [f.metric for f in compare(RECORDED, now)] == ["ratio"]


def test_the_tolerance_is_a_parameter():
    now = {"available [gateway]": {"gateway_us": 230.0}}
    assert compare(RECORDED, now, tolerance=0.20) == []
    assert len(compare(RECORDED, now, tolerance=0.10)) == 1


def test_a_recorded_budget_reads_back(tmp_path):
    path = tmp_path / "budget.json"
    meta = {"recorded": "2026-12-06T00:00:00Z", "commit": "abc1234", "engine": "wrk"}
    written = budget.record(RECORDED, meta, path)
    assert budget.load(path) == written
    assert json.loads(path.read_text())["rows"] == RECORDED
    assert written["tolerance"] == budget.TOLERANCE


def test_no_budget_reads_as_none(tmp_path):
    assert budget.load(tmp_path / "absent.json") is None
    (tmp_path / "broken.json").write_text("{")
    assert budget.load(tmp_path / "broken.json") is None


def test_the_report_names_each_flagged_row_with_recorded_and_now():
    recorded = {"engine": "wrk", "recorded": "then", "commit": "abc", "rows": RECORDED}
    now = {"available [gateway]": {"gateway_us": 300.0, "service_us": 500.0, "ratio": 0.4}}
    lines = budget.report(recorded, now, "wrk")
    assert "1 rows more than 10% worse" in lines[0]
    assert lines[1] == (
        "  BUDGET available [gateway]: gateway CPU us/req recorded 200, now 300 (+50%)"
    )
    assert "within 10%" in budget.report(recorded, RECORDED, "wrk")[0]


def test_a_budget_of_another_engine_compares_cpu_only():
    recorded = {"engine": "python", "rows": RECORDED}
    now = {"available [gateway]": {"gateway_us": 200.0, "service_us": 500.0, "ratio": 0.1}}
    lines = budget.report(recorded, now, "wrk")
    assert "ratios not compared" in lines[0]
    assert not any("BUDGET" in line for line in lines)


def test_without_a_budget_the_report_says_how_to_record_one():
    (line,) = budget.report(None, {}, "wrk")
    assert "BENCH_RECORD=1" in line


def test_a_flagged_ratio_reads_with_three_decimals():
    flag = Flag("calendar?days=60 [gateway]", "ratio", 0.3, 0.25)
    assert flag.describe() == (
        "calendar?days=60 [gateway]: x trivial recorded 0.300, now 0.250 (-17%)"
    )
