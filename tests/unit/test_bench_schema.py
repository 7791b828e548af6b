"""The schema benchmark's pure parts: the column backfill's share and the verdict on its per-round median."""

from __future__ import annotations

from benchmarks.bench_schema import column_backfill, verdicts


def test_a_column_backfill_is_the_added_field_run_less_the_unchanged_run_of_its_round():
    share = column_backfill({"seconds": 3.0, "api_requests": 12}, {"seconds": 0.5, "api_requests": 6},
                            {"seconds": 10.0, "api_requests": 30})
    assert share == {"seconds": 0.25, "api_requests": 0.2}


def test_verdicts_take_the_median_of_the_rounds_paired_shares():
    section = {"rows": 1_000_000, "column_backfill_by_round": [
        {"seconds": 0.40, "api_requests": 0.2}, {"seconds": 0.20, "api_requests": 0.2},
        {"seconds": 0.25, "api_requests": 0.35}]}
    by_key = {v["target"].rsplit(", ", 1)[1]: v for v in verdicts(section)}
    assert by_key["seconds"]["measured"] == 0.25 and by_key["seconds"]["ok"]
    assert by_key["api requests"]["measured"] == 0.2 and by_key["api requests"]["ok"]
    section["column_backfill_by_round"][1]["seconds"] = 0.5
    assert not verdicts(section)[0]["ok"]  # 0.40 median
