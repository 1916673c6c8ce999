"""The ceiling line: the trivial app behind a minimal Caddy, as a ratio to itself direct."""

from __future__ import annotations

from bench.load import Result
from bench.report import ceiling_lines
from bench.rounds import PROXIED_TRIVIAL_ROW, TRIVIAL_ROW, assign_ratios, summarize


def result(row: str, rps: float, target: str, cpu: dict[str, float] | None = None) -> Result:
    return Result(
        row=row,
        target=target,
        requests=int(rps * 10),
        seconds=10.0,
        rps=rps,
        p50_ms=1.0,
        p99_ms=2.0,
        statuses={"200": int(rps * 10)},
        socket_errors=0,
        non_2xx=0,
        round=1,
        cpu=cpu or {},
    )


def test_the_ceiling_is_the_proxied_trivial_rows_ratio_with_its_cpu():
    sequence = [
        result(TRIVIAL_ROW, 7000, "direct"),
        # 25,000 requests: 8.5 s of Caddy's CPU is 340 us a request, 6.25 s of the app's 250.
        result(PROXIED_TRIVIAL_ROW, 2500, "minimal", {"gateway": 8.5, "service": 6.25}),
        result(TRIVIAL_ROW, 6000, "direct"),
    ]
    assign_ratios(sequence)
    (line,) = ceiling_lines(summarize(sequence))
    assert "does 0.385 x itself direct" in line  # 2500 / mean(7000, 6000)
    assert "caddy 340 us + app 250 us" in line


def test_no_ceiling_line_without_its_row():
    sequence = [result(TRIVIAL_ROW, 7000, "direct"), result("available", 3000, "direct")]
    assign_ratios(sequence)
    assert ceiling_lines(summarize(sequence)) == []
