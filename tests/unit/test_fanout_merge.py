"""The fan-out's pure parts: what each object run is given, and how the object runs' parts (or why there is none)
become one run summary and one QA branch."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed, Crashed

from flows.run_summary import BranchOutcome
from flows.sf_etl_fanout_flow import failed_row, merge_run, object_run_parameters, part_or_reason
from flows.sf_etl_object_flow import RunPart

SOURCE = {"kind": "salesforce", "instance_url": "https://example.my.salesforce.com", "auth_flow": "access_token"}


def _part(name: str, *, qa_ok: bool = True, landed: bool = True) -> RunPart:
    row = replace(failed_row(name, "x"), status="ok", error=None, mode="backfill", rows=10, qa="7/7 passed",
                  dataset=f"/data/replica/{name}.parquet" if landed else None)
    qa = BranchOutcome(qa_ok, {"run_id": "R1", "objects": {name: {"results": [{"check": "gate"}]}},
                               "blocking_failures": [], "crashed": [] if qa_ok else [f"{name}.gate crashed"]},
                       None if qa_ok else "QA task(s) crashed")
    return RunPart(row, SOURCE, True, qa)


def _run(state) -> FlowRun:
    return FlowRun(name="Lead R1", flow_id=uuid4(), state=state)


def test_each_object_run_gets_the_fanout_options_that_are_set_and_its_own_query():
    options = {"full_refresh": True, "api": None, "data_root": None, "credentials_block": "sf-prod"}
    params = object_run_parameters("Lead", "R1", {"Lead": "SELECT Id FROM Lead"}, options)
    assert params == {"object_name": "Lead", "run_id": "R1", "full_refresh": True, "credentials_block": "sf-prod",
                      "soql": "SELECT Id FROM Lead"}
    assert "soql" not in object_run_parameters("Account", "R1", {"Lead": "SELECT Id FROM Lead"}, options)


def test_parts_merge_into_rows_in_plan_order_and_one_qa_branch():
    summary, qa = merge_run("R1", {"Lead": _part("Lead"), "Account": _part("Account")}, "2026-01-01T00:00:00Z", 3.14)
    assert [r.object for r in summary.objects] == ["Lead", "Account"]
    assert summary.source == SOURCE and summary.phase1_ok and summary.qa_ok and summary.failed_objects == []
    assert qa.ok and set(qa.part("objects")) == {"Lead", "Account"}


def test_an_object_run_without_a_part_is_a_failed_row_and_the_others_still_count():
    reason = part_or_reason("R1", "Lead", None, 60, "/nowhere")
    summary, qa = merge_run("R1", {"Account": _part("Account"), "Lead": reason}, "2026-01-01T00:00:00Z", 61)
    assert summary.failed_objects == ["Lead"]
    lead = summary.objects[1]
    assert lead.error == "its flow run did not finish within 60 s; cancelled" and lead.qa == "skipped (no result)"
    assert qa.ok and summary.qa_ok  # QA ran, and passed, on what landed


def test_a_qa_failure_in_one_object_run_fails_the_merged_qa_branch():
    summary, qa = merge_run("R1", {"Account": _part("Account"), "Lead": _part("Lead", qa_ok=False)}, "t", 1)
    assert not qa.ok and qa.error == "Lead: QA task(s) crashed" and summary.qa_error == qa.error
    assert qa.result is not None and qa.result["crashed"] == ["Lead.gate crashed"]


def test_nothing_landed_means_no_qa_and_an_unknown_source():
    summary, qa = merge_run("R1", {"Lead": "its flow run Lead R1 ended Crashed: killed"}, "t", 1)
    assert not qa.ok and qa.error == "no object was extracted" and summary.source["kind"] == "unknown"
    assert not summary.phase1_ok


def test_why_an_object_run_left_no_part(tmp_path):
    crashed = part_or_reason("R1", "Lead", _run(Crashed(message="Flow run infrastructure exited with non-zero "
                                                                 "status code -9.")), 60, str(tmp_path))
    assert crashed == "its flow run Lead R1 ended Crashed: Flow run infrastructure exited with non-zero status code -9."
    completed = part_or_reason("R1", "Lead", _run(Completed()), 60, str(tmp_path))
    assert isinstance(completed, str) and "completed but left no Lead.json" in completed
    assert "SF_PIPELINE_DATA_DIR" in completed
