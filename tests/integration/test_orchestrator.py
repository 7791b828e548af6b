"""The orchestrator end to end against the emulator, on the real Prefect engine and real files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
)

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.sf_etl_orchestrator_flow import PipelineRunError, sf_etl_orchestrator_flow
from utils.errors import ConfigError
from utils.paths import build_qa_paths

pytestmark = [pytest.mark.integration]


def _read_flow_runs(parent_id):
    import anyio

    async def go():
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))
    return anyio.run(go)


def _read_task_runs(flow_run_id):
    import anyio

    async def go():
        async with get_client() as client:
            return await client.read_task_runs(task_run_filter=TaskRunFilter(), flow_run_filter=FlowRunFilter(
                id={"any_": [flow_run_id]}))
    return anyio.run(go)


@pytest.mark.slow
def test_all_objects_end_to_end_and_branches_overlap(prefect_harness, org_env, data_root):
    state = sf_etl_orchestrator_flow(return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert [r["object"] for r in summary["objects"]] == list(SALESFORCE_OBJECTS)
    assert summary["source"]["kind"] == "salesforce" and summary["source"]["auth_flow"] == "access_token"
    for row in summary["objects"]:
        name = row["object"]
        assert row["status"] == "ok" and row["rows"] > 0 and row["api"] in ("rest", "bulk2"), row
        raw = pl.read_csv(row["raw_csv"], infer_schema=False)
        assert raw.height == row["rows"]
        records = json.loads(Path(row["summary_json"]).read_text(encoding="utf-8"))
        assert records and list(records[0]) == SALESFORCE_OBJECTS[name].summary_columns()
        qc = build_qa_paths(name, data_root=data_root)
        for path in (qc.dedup, qc.profile, qc.schema_report, qc.snapshot, qc.rowcount):
            assert path.is_file(), path
        expected_rows = row["replica_rows"] if row["mode"] != "full" else row["rows"]
        assert pl.read_parquet(qc.snapshot).height == expected_rows
        assert (data_root / "processed" / name / "summary.csv").is_file()
    assert len(list((data_root / "runs").glob("*.json"))) == 1

    runs = _read_flow_runs(state.state_details.flow_run_id)
    assert len(runs) == 2, [r.name for r in runs]
    a, b = runs
    assert max(a.start_time, b.start_time) < min(a.end_time, b.end_time), "Phase 1 and Phase 2 did not overlap"


@pytest.mark.slow
def test_one_failing_object_does_not_stop_the_others(prefect_harness, org_env, data_root):
    bad = {"Opportunity": "SELECT Id, StageName, Amount, Probability FROM Opportunity WHERE Amount >> 5"}
    state = sf_etl_orchestrator_flow(objects=["Lead", "Opportunity", "Case"], soql=bad, return_state=True)
    assert state.is_failed()
    err = state.result(raise_on_failure=False)
    assert isinstance(err, PipelineRunError) and "Opportunity" in str(err)
    rows = {r["object"]: r for r in err.summary["objects"]}
    assert rows["Opportunity"]["status"] == "failed" and "MALFORMED_QUERY" in rows["Opportunity"]["error"]
    assert rows["Opportunity"]["qa"] == "skipped (no extract)"
    for name in ("Lead", "Case"):
        assert rows[name]["status"] == "ok"
        assert (data_root / "output" / name / "summary.json").is_file()
    assert not (data_root / "output" / "Opportunity").exists()


@pytest.mark.slow
def test_retention_keeps_the_newest_raw_files(prefect_harness, org_env, data_root):
    for _ in range(3):
        state = sf_etl_orchestrator_flow(objects=["Lead"], raw_retention_count=2, return_state=True)
        assert state.is_completed(), state.message
    raws = sorted((data_root / "raw").glob("Lead_*.csv"))
    assert len(raws) == 2 and len(list((data_root / "raw").glob("Lead_*.schema.json"))) == 2
    history = build_qa_paths("Lead", data_root=data_root).rowcount.read_text().splitlines()
    assert len([line for line in history if not line.startswith("#")]) == 3  # drift history keeps every run


@pytest.mark.slow
def test_extract_concurrency_limit_is_respected(prefect_harness, org_env, data_root):
    state = sf_etl_orchestrator_flow(objects=["Account", "Lead", "Case"], max_concurrent_extracts=1,
                                     return_state=True)
    assert state.is_completed(), state.message
    runs = [t for t in _read_task_runs(state.state_details.flow_run_id) if t.name.startswith(("extract-", "sync-"))]
    assert len(runs) == 3
    runs.sort(key=lambda t: t.start_time)
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier.end_time <= later.start_time, "extracts overlapped despite max_concurrent_extracts=1"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"objects": ["Widget__c"]}, r"unknown object\(s\) Widget__c"),
        ({"max_concurrent_extracts": 0}, "max_concurrent_extracts"),
        ({"objects": []}, "objects is an empty list"),
        ({"api": "soap"}, "api must be one of"),
        ({"soql": {"Lead": "SELECT Id FROM Lead"}},
         r"Lead: custom SOQL does not select Status \(group_by\), IsConverted \(group_by\)"),
        ({"soql": {"Lead": "SELECT Id, Status, IsConverted, AnnualRevenue, Company FROM Lead"},
          "fail_on_qa_error": True}, r"does not select LastName \(required\), SystemModstamp \(cursor field\)"),
    ],
)
def test_parameters_are_validated_before_the_run(prefect_harness, data_root, params, expected):
    with pytest.raises(ConfigError, match=expected):
        sf_etl_orchestrator_flow(**params)
    assert not (data_root / "raw").exists()


def test_a_config_error_ends_the_run_failed_with_one_line_not_a_traceback(prefect_harness, data_root, caplog):
    with caplog.at_level(logging.INFO):
        state = sf_etl_orchestrator_flow(objects=["Widget__c"], return_state=True)
    assert not [r for r in caplog.records if r.exc_info], "the run's log carries a traceback"
    assert state.is_failed()
    assert "\n" not in state.message and "unknown object(s) Widget__c" in state.message
    assert "Traceback" not in state.message
    with pytest.raises(ConfigError, match=r"unknown object\(s\) Widget__c"):
        state.result()
