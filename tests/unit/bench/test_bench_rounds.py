"""The bench's rounds arithmetic (bench/rounds.py): CPU per request, ratios to the trivial runs
either side, medians over rounds."""

from __future__ import annotations

import pytest

from bench.load import Result
from bench.rounds import (
    TRIVIAL_ROW,
    assign_ratios,
    cpu_per_request,
    median,
    ratio_to_trivial,
    spread,
    summarize,
)


def run(row: str, rps: float, target: str = "gateway", round_no: int = 1, **kwargs) -> Result:
    fields = {
        "requests": int(rps * 10),
        "seconds": 10.0,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "statuses": {"200": int(rps * 10)},
        "socket_errors": 0,
        "non_2xx": 0,
        **kwargs,
    }
    return Result(row=row, target=target, rps=rps, round=round_no, **fields)


def trivial(rps: float, round_no: int = 1) -> Result:
    return run(TRIVIAL_ROW, rps, "direct", round_no)


def test_cpu_per_request_is_cpu_seconds_over_requests_in_microseconds():
    assert cpu_per_request(0.5, 1000) == pytest.approx(500.0)
    assert cpu_per_request(2.0, 4000) == pytest.approx(500.0)
    assert cpu_per_request(0.0, 10) == 0.0


def test_cpu_per_request_without_a_reading_or_a_request_is_none():
    assert cpu_per_request(None, 1000) is None
    assert cpu_per_request(0.5, 0) is None


def test_a_result_reads_its_cpu_per_request_by_role():
    r = run("available", 100.0, requests=2000, cpu={"gateway": 0.4, "service": 1.0})
    assert r.cpu_us("gateway") == pytest.approx(200.0)
    assert r.cpu_us("service") == pytest.approx(500.0)
    assert r.cpu_us("minimal") is None


def test_a_ratio_is_over_the_mean_of_the_trivial_runs_either_side():
    assert ratio_to_trivial(500.0, 900.0, 1100.0) == pytest.approx(0.5)
    assert ratio_to_trivial(500.0, 1000.0, None) == pytest.approx(0.5)
    assert ratio_to_trivial(500.0, None, 2000.0) == pytest.approx(0.25)
    assert ratio_to_trivial(500.0, None, None) is None
    assert ratio_to_trivial(500.0, 0.0, 0.0) is None


def test_each_row_of_a_round_gets_the_ratio_to_its_own_neighbours():
    sequence = [
        trivial(1000.0),
        run("available", 400.0),
        trivial(800.0),
        run("calendar?days=60", 300.0),
        trivial(1200.0),
    ]
    assign_ratios(sequence)
    assert sequence[1].ratio == pytest.approx(400.0 / 900.0)
    assert sequence[3].ratio == pytest.approx(300.0 / 1000.0)
    assert [sequence[i].ratio for i in (0, 2, 4)] == [None, None, None]


def test_rows_in_a_row_look_past_each_other_for_a_trivial_run():
    sequence = [trivial(1000.0), run("a", 100.0), run("b", 200.0), trivial(3000.0)]
    assign_ratios(sequence)
    assert sequence[1].ratio == pytest.approx(0.05)
    assert sequence[2].ratio == pytest.approx(0.1)


def test_median_ignores_missing_values():
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5
    assert median([None]) is None
    assert median([]) is None


def test_spread_is_the_range_over_the_largest():
    assert spread([800.0, 1000.0]) == pytest.approx(0.2)
    assert spread([1000.0]) == 0.0
    assert spread([]) == 0.0


def test_a_summary_takes_the_medians_over_the_rounds_and_sums_the_counts():
    rounds = [
        run("available", 400.0, round_no=1, requests=4000, cpu={"service": 2.0}),
        run("available", 500.0, round_no=2, requests=5000, cpu={"service": 3.0}),
        run("available", 450.0, round_no=3, requests=4500, cpu={"service": 1.8}),
    ]
    for r, ratio in zip(rounds, (0.40, 0.50, 0.30), strict=True):
        r.ratio = ratio
    rounds[1].statuses = {"200": 4990, "503": 10}
    (s,) = summarize(rounds)
    assert (s.row, s.target, s.rounds) == ("available", "gateway", 3)
    assert s.rps == 450.0
    assert s.ratio == pytest.approx(0.40)
    # per round: 500, 600 and 400 us per request
    assert s.cpu_us == {"service": pytest.approx(500.0)}
    assert s.requests == 13500
    assert s.statuses == {"200": 4000 + 4990 + 4500, "503": 10}
    assert s.key == "available [gateway]"


def test_summaries_keep_rows_and_targets_apart_in_the_order_they_ran():
    runs = [
        trivial(1000.0),
        run("available", 400.0, "gateway"),
        trivial(1000.0),
        run("available", 600.0, "direct"),
        trivial(1000.0, round_no=2),
        run("available", 420.0, "gateway", round_no=2),
    ]
    keys = [(s.row, s.target, s.rounds) for s in summarize(runs)]
    assert keys == [
        (TRIVIAL_ROW, "direct", 3),
        ("available", "gateway", 2),
        ("available", "direct", 1),
    ]
    assert summarize(runs)[0].ratio is None  # the trivial app is the base, not a row


def test_a_round_without_a_cpu_reading_is_left_out_of_the_median():
    rounds = [
        run("a", 100.0, requests=1000, cpu={"gateway": 0.3}),
        run("a", 100.0, requests=0, cpu={"gateway": 0.3}),
        run("a", 100.0, requests=1000, cpu={}),
    ]
    (s,) = summarize(rounds)
    assert s.cpu_us == {"gateway": pytest.approx(300.0)}
