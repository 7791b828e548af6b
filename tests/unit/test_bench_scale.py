"""The scale benchmark's pure parts: size labels, sync ratios, the heaviest stage, run flags, checks and verdicts."""

from __future__ import annotations

import pytest

from benchmarks.bench_scale import (
    TARGET_SYNC_RATIO,
    TARGET_WHOLE_RUN_MB,
    check_sync,
    flags_from_events,
    heaviest,
    paired_sync_ratios,
    size_label,
    summarize_runs,
    sync_ratios,
    verdicts,
)


@pytest.mark.parametrize(("rows", "label"), [(20_000, "20k"), (200_000, "0.2M"), (2_000_000, "2M"),
                                             (20_000_000, "20M"), (150_000, "150k")])
def test_size_label_names_sizes_as_the_issue_does(rows, label):
    assert size_label(rows) == label


def test_sync_ratios_divide_every_larger_size_by_the_smallest():
    ratios = sync_ratios({2_000_000: 3.0, 200_000: 1.5, 20_000_000: 6.0})
    assert ratios == {"2M/0.2M": 2.0, "20M/0.2M": 4.0}
    assert sync_ratios({}) == {}
    assert sync_ratios({200_000: None, 2_000_000: 1.0}) == {"2M/0.2M": None}


def test_paired_sync_ratios_divide_within_each_round_then_take_the_median():
    """A loaded round slows both sizes of it: the ratio of each round's pair is what the median is taken of."""
    syncs = {200_000: [0.2, 0.4, 0.1], 20_000_000: [0.8, 1.6, 0.5]}
    assert paired_sync_ratios(syncs) == {"20M/0.2M": 4.0}  # per round 4, 4, 5
    assert sync_ratios({n: sorted(s)[1] for n, s in syncs.items()}) == {"20M/0.2M": 4.0}
    assert paired_sync_ratios({200_000: [0.2], 2_000_000: []}) == {"2M/0.2M": None}
    assert paired_sync_ratios({}) == {}


def test_verdicts_prefer_the_paired_ratio():
    section = {"by_size": {"200000": _size(1.0, 400.0), "20000000": _size(6.0, 1000.0)},
               "paired_sync_ratios": {"20M/0.2M": 4.5}}
    assert verdicts(section)[0]["measured"] == 4.5 and verdicts(section)[0]["ok"]


def test_heaviest_names_the_highest_peak_and_ignores_unmeasured_stages():
    assert heaviest({"sync": 300.0, "qa:profile": 900.0, "phase1": None}) == ("qa:profile", 900.0)
    assert heaviest({"sync": None}) is None


def test_flags_from_events_see_the_refresh_and_the_reconciliation():
    assert flags_from_events(["sync_done"]) == {"formula_refresh": False, "reconcile": False}
    assert flags_from_events(["sync_formulas_refreshed", "sync_reconciled", "sync_done"]) == {
        "formula_refresh": True, "reconcile": True}
    # a refresh that failed did not refresh anything
    assert flags_from_events(["sync_formulas_refresh_failed"])["formula_refresh"] is False


def test_check_sync_compares_the_merge_with_the_org():
    clean = {"replica_rows": 1000, "updates": 10, "inserts": 0, "deletes": 0}
    assert check_sync(clean, org_rows=1000, changed=10) == []
    wrong = {"replica_rows": 999, "updates": 9, "inserts": 1, "deletes": 0}  # a lost row, a missed update, an insert
    assert check_sync(wrong, org_rows=1000, changed=10) == [
        "replica rows 999, org COUNT() 1000", "9 records updated, 10 were changed in the org",
        "1 inserts and 0 deletes; the org had none"]


def test_summarize_runs_takes_medians_and_the_highest_peaks():
    runs = [{"seconds": 3.0, "api_requests": 6, "peak_rss_mb": 300.0, "rss_before_work_mb": 200.0},
            {"seconds": 1.0, "api_requests": 8, "peak_rss_mb": 500.0, "rss_before_work_mb": 250.0},
            {"seconds": 2.0, "api_requests": 7, "peak_rss_mb": 400.0, "rss_before_work_mb": 200.0}]
    summary = summarize_runs(runs)
    assert (summary["seconds"], summary["api_requests"], summary["peak_rss_mb"]) == (2.0, 7, 500.0)
    assert summary["work_added_mb"] == 250.0 and summary["n"] == 3
    assert summarize_runs([{"seconds": 1.0, "peak_rss_mb": 10.0}])["api_requests"] is None


def _size(sync_s: float, whole_mb: float) -> dict:
    return {"sync": {"seconds": sync_s}, "whole_run": {"peak_rss_mb": whole_mb}}


def test_verdicts_compare_the_largest_size_with_the_smallest_and_its_whole_run_peak():
    section = {"by_size": {"200000": _size(1.0, 400.0), "2000000": _size(2.0, 600.0),
                           "20000000": _size(6.0, 2000.0)}}
    ratio_verdict, rss_verdict = verdicts(section)
    assert ratio_verdict["target"] == "scale: incremental sync 20M / 0.2M rows, seconds"
    assert (ratio_verdict["measured"], ratio_verdict["limit"], ratio_verdict["ok"]) == (6.0, TARGET_SYNC_RATIO, False)
    assert rss_verdict["target"] == "scale: whole incremental run at 20M rows, peak RSS"
    assert (rss_verdict["measured"], rss_verdict["limit"], rss_verdict["ok"]) == (2000.0, TARGET_WHOLE_RUN_MB, False)


def test_a_size_that_did_not_fit_is_a_missed_target_and_the_others_are_still_judged():
    section = {"by_size": {"200000": _size(1.0, 400.0), "2000000": _size(3.0, 500.0),
                           "20000000": {"rows": 20_000_000, "failed": "killed by the memory guard"}}}
    out = verdicts(section)
    assert [v["ok"] for v in out] == [True, True, False]
    assert out[0]["target"] == "scale: incremental sync 2M / 0.2M rows, seconds"
    assert out[2]["target"] == "scale: 20M rows fit this machine"
