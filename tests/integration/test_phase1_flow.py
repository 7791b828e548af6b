"""Phase 1 on its own against the emulator: extract (sync), Polars summary, JSON, checked independently."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from emulator import build_org
from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow

pytestmark = pytest.mark.integration


def expected_opportunity_summary() -> dict[str, dict]:
    """The registry's Opportunity metrics computed straight from the emulator's own data (live rows)."""
    live = build_org().frame("Opportunity").filter(~pl.col("IsDeleted"))
    out = {}
    for stage, group in live.group_by("StageName"):
        amount = group["Amount"].drop_nulls()
        out[stage[0]] = {
            "Id_count": group.height,
            "Amount_sum": float(amount.sum()) if amount.len() else None,
            "Amount_mean": amount.mean(), "Amount_median": amount.median(),
            "Amount_min": amount.min(), "Amount_max": amount.max(), "Amount_std": amount.std(),
            "Probability_mean": group["Probability"].mean(),
        }
    return out


def test_phase1_flow_end_to_end_matches_an_independent_computation(prefect_harness, emulator_reset, org_env,
                                                                   data_root):
    result = sf_csv_polars_json_flow(objects=["Opportunity", "Account"])
    opp = result["objects"]["Opportunity"]
    assert Path(opp["process"]).name == "summary.csv" and Path(opp["load"]).name == "summary.json"
    records = json.loads(Path(opp["load"]).read_text(encoding="utf-8"))
    expected = expected_opportunity_summary()
    assert {r["StageName"] for r in records} == set(expected)
    for record in records:
        want = expected[record["StageName"]]
        assert record["Id_count"] == want["Id_count"]  # exact
        assert record["Amount_min"] == want["Amount_min"] and record["Amount_max"] == want["Amount_max"]
        assert record["Amount_sum"] == pytest.approx(want["Amount_sum"], rel=1e-12)
        for key in ("Amount_mean", "Amount_median", "Amount_std", "Probability_mean"):
            assert record[key] == pytest.approx(want[key], rel=1e-9), key
    assert [r["StageName"] for r in records] == sorted(r["StageName"] for r in records)
    account = json.loads(Path(result["objects"]["Account"]["load"]).read_text(encoding="utf-8"))
    assert sum(r["Id_count"] for r in account) == build_org().frame("Account").filter(~pl.col("IsDeleted")).height
