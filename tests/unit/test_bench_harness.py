"""The benchmark harness's pure helpers: medians, ratios, run order, interval union, summary comparison, tables."""

from __future__ import annotations

import pytest

from benchmarks.bench_e2e import busy_seconds, overhead_share, store_core_layout
from benchmarks.bench_process import METRICS, compare_summaries, normalize_summary
from benchmarks.harness import interleaved_order, median, ratio, summarize_runs
from benchmarks.report import evaluate_targets, format_table, format_value


def test_median_ignores_missing_values_and_is_none_when_empty():
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5
    assert median([None]) is None


@pytest.mark.parametrize(("num", "den", "expected"), [(3.0, 1.5, 2.0), (1.0, 0.0, None), (None, 1.0, None)])
def test_ratio_is_none_instead_of_dividing_by_zero_or_missing(num, den, expected):
    assert ratio(num, den) == expected


def test_interleaved_order_runs_every_variant_once_per_round():
    assert interleaved_order(["a", "b"], 2) == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    with pytest.raises(ValueError, match="at least 1"):
        interleaved_order(["a"], 0)


def test_summarize_runs_takes_the_median_time_and_the_highest_peak():
    runs = [{"seconds": 3.0, "peak_rss_mb": 100.0}, {"seconds": 1.0, "peak_rss_mb": 300.0},
            {"seconds": 2.0, "peak_rss_mb": 200.0}]
    summary = summarize_runs(runs)
    assert summary["median_s"] == 2.0
    assert summary["peak_rss_mb"] == 300.0
    assert summary["runs_s"] == [3.0, 1.0, 2.0] and summary["n"] == 3


def test_store_core_layout_gives_the_store_the_last_cpu_and_the_runs_the_rest():
    assert store_core_layout({0, 1}) == ({0}, {1})
    assert store_core_layout({0, 2, 5, 7}) == ({0, 2, 5}, {7})
    with pytest.raises(ValueError, match="at least 2 CPUs"):
        store_core_layout({3})


def test_busy_seconds_merges_overlapping_intervals_and_keeps_gaps():
    assert busy_seconds([(0, 2), (1, 3), (5, 6)]) == 4.0  # [0,3] and [5,6]
    assert busy_seconds([]) == 0.0
    assert overhead_share(10.0, 4.0) == pytest.approx(0.6)
    assert overhead_share(0.0, 1.0) is None


def _summary(amount_sum: float, null_count: int = 5):
    row = [10, amount_sum, 1.0, 1.0, 0.0, 2.0, 0.5, 50.0]
    return normalize_summary([("Prospecting", *row), (None, null_count, *row[1:])])


def test_compare_summaries_accepts_float_noise_and_reports_real_differences():
    assert len(METRICS) == 8
    assert compare_summaries(_summary(1e6), _summary(1e6 * (1 + 1e-12))) == []
    problems = compare_summaries(_summary(1e6), _summary(1e6, null_count=6))
    assert problems == ["<null>.Id_count: expected 5.0, got 6.0"]
    assert compare_summaries(_summary(1e6), {}) == ["group '<null>': missing", "group 'Prospecting': missing"]


def test_normalize_summary_maps_null_and_nan_groups_and_values_to_none():
    nan = float("nan")
    assert normalize_summary([(nan, 1, nan, 2, 3, 4, 5, 6, 7)]) == {"<null>": [1.0, None, 2.0, 3.0, 4.0, 5.0, 6.0,
                                                                              7.0]}


def test_format_table_aligns_columns_and_formats_numbers():
    table = format_table(["variant", "median s", "rows/s"], [["bulk2", 1.23456, 250_000.7], ["rest", None, 12]])
    assert table.splitlines() == [
        "variant  median s   rows/s",
        "-------  --------  -------",
        "bulk2        1.23  250,001",
        "rest            -       12",
    ]
    assert format_value(True) == "yes"


def test_evaluate_targets_flags_a_missed_process_ratio():
    variants = {name: {"median_s": s, "peak_rss_mb": 100.0, "ratio_to_bare_polars": None}
                for name, s in (("bare_polars", 1.0), ("process", 1.5), ("pandas", 6.0), ("duckdb", 2.0))}
    verdicts = {v["target"]: v for v in evaluate_targets({"process": {"by_size": {"1000": {"variants": variants}}}})}
    assert verdicts["process 1000 rows: time / bare Polars"]["ok"] is False
    assert verdicts["process 1000 rows: pandas time / process time"]["ok"] is True
    assert verdicts["process 1000 rows: DuckDB time / process time"]["measured"] == pytest.approx(1.333, abs=1e-3)
    assert verdicts["process 1000 rows: peak RSS"]["ok"] is True
