"""sf-etl-object in process: one object's run gives the outputs the orchestrator gives for that object; started by a
fan-out (``run_id``) it leaves its part for the fan-out instead of publishing a run of its own."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest

from flows.sf_etl_object_flow import read_run_part, sf_etl_object_flow
from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
from utils.errors import ConfigError
from utils.paths import build_qa_paths
from utils.replica_layers import scan_replica

pytestmark = [pytest.mark.integration]


def _outputs(root: Path, name: str) -> dict[str, object]:
    """What a run leaves for one object that does not depend on the run id: summary, replica Ids, QA profile."""
    qa = build_qa_paths(name, data_root=root)
    return {
        "summary": json.loads((root / "output" / name / "summary.json").read_text()),
        "replica_ids": sorted(scan_replica(root / "replica" / f"{name}.parquet").collect()["Id"].to_list()),
        "snapshot_rows": pl.read_parquet(qa.snapshot).height,
        "schema_report": json.loads(qa.schema_report.read_text()) | {"raw_csv": None},  # a path under the root
    }


@pytest.mark.slow
def test_one_object_run_writes_what_the_orchestrator_writes_for_it(prefect_harness, org_env, tmp_path):
    alone, orchestrated = tmp_path / "alone", tmp_path / "orchestrated"
    state = sf_etl_object_flow(object_name="Account", data_root=str(alone), return_state=True)
    assert state.is_completed(), state.message
    assert sf_etl_orchestrator_flow(objects=["Account"], data_root=str(orchestrated), return_state=True).is_completed()

    summary = state.result()
    (row,) = summary["objects"]
    assert row["object"] == "Account" and row["status"] == "ok" and row["mode"] == "backfill", row
    assert summary["phase1_ok"] and summary["qa_ok"]
    assert _outputs(alone, "Account") == _outputs(orchestrated, "Account")
    assert len(list((alone / "runs").glob("*.json"))) == 1  # run alone, it reports like the orchestrator
    assert (alone / "reports" / "latest.html").is_file()
    assert not (alone / "runs" / "parts").exists()


def test_under_a_fan_out_it_leaves_its_part_and_no_run_of_its_own(prefect_harness, org_env, tmp_path):
    root = tmp_path / "data"
    state = sf_etl_object_flow(object_name="Account", run_id="FANOUT1", data_root=str(root), return_state=True)
    assert state.is_completed(), state.message

    part = read_run_part("FANOUT1", "Account", str(root))
    assert part is not None and part.row.object == "Account" and part.row.status == "ok"
    assert asdict(part.row) == state.result()["objects"][0]
    assert part.phase1_ok and part.qa.ok and part.source["kind"] == "salesforce"
    assert part.qa.part("objects")["Account"]["results"], "the part carries the object's QA checks"
    assert list((root / "raw").glob("Account_*_FANOUT1.csv")), "its files carry the fan-out's run id"
    assert not list((root / "runs").glob("*.json")) and not (root / "reports").exists()
    assert read_run_part("FANOUT1", "Lead", str(root)) is None


@pytest.mark.parametrize(("params", "expected"), [
    ({"object_name": "Widget__c"}, r"unknown object\(s\) Widget__c"),
    ({"object_name": "Account", "run_id": "../x"}, "run_id"),
])
def test_bad_parameters_fail_before_any_call(prefect_harness, data_root, params, expected):
    with pytest.raises(ConfigError, match=expected):
        sf_etl_object_flow(**params)
    assert not (data_root / "raw").exists()
