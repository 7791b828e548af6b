"""The typed values the flows hand each other: LandingResult, BranchOutcome, checked flow parameters, summary rows.
Pure, no Prefect run and no API call."""

from __future__ import annotations

import inspect
from typing import Annotated

import pytest
from pydantic import AfterValidator, Field

from flows.common import StepOutcome, checked_parameters
from flows.run_summary import SYNC_COLUMNS, BranchOutcome, build_run_summary
from tasks.extract import ExtractResult
from tasks.extract_plan import resolve_extract_plan
from tasks.land import LandingResult, uses_incremental_sync
from tasks.replica import MergeStats
from tasks.sync import SyncResult
from utils.errors import ConfigError

EXTRACTED = ExtractResult("Lead", "raw/Lead_1.csv", "raw/Lead_1.schema.json", 12, "rest", 0.5, "emulator", "R1",
                          ("Fax",))
SYNCED = SyncResult(EXTRACTED, "incremental", "replica/Lead.parquet", MergeStats(12, 2, 3, 1, 0, 40, 0))
SYNC_TASK_DICT = {**EXTRACTED.as_dict(), "mode": "incremental", "dataset": "replica/Lead.parquet",
                  "sync": MergeStats(12, 2, 3, 1, 0, 40, 0).as_dict(), "schema_changes": None}
SOURCE = {"kind": "emulator", "instance_url": "https://127.0.0.1", "auth_flow": "access_token"}
ROW_KEYS = ["object", "status", "mode", "rows", "api", *SYNC_COLUMNS, "dataset", "extract_s", "process_s", "load_s",
            "qa_s", "qa", "raw_csv", "summary_json", "error", "schema_changes", "refreshed", "deletes_untracked"]


def test_a_full_extract_lands_its_raw_csv_as_the_dataset_and_keeps_the_extract_task_dict():
    landed = LandingResult.from_extract(EXTRACTED)
    assert (landed.mode, landed.dataset, landed.sync) == ("full", "raw/Lead_1.csv", None)
    assert landed.as_dict() == EXTRACTED.as_dict()
    assert list(landed.as_dict()) == list(EXTRACTED.as_dict())


def test_a_sync_lands_its_replica_as_the_dataset_and_keeps_the_sync_task_dict():
    landed = LandingResult.from_sync(SYNCED)
    assert (landed.mode, landed.dataset, landed.raw_csv) == ("incremental", "replica/Lead.parquet", "raw/Lead_1.csv")
    assert landed.sync == MergeStats(12, 2, 3, 1, 0, 40, 0)
    assert SYNCED.as_dict() == SYNC_TASK_DICT and list(SYNCED.as_dict()) == list(SYNC_TASK_DICT)
    assert landed.as_dict() == SYNC_TASK_DICT and list(landed.as_dict()) == list(SYNC_TASK_DICT)


def test_landing_result_is_frozen():
    with pytest.raises(AttributeError):
        LandingResult.from_extract(EXTRACTED).rows = 0  # type: ignore[misc]


def test_registry_objects_sync_unless_queried_with_custom_soql():
    (lead,) = resolve_extract_plan(["Lead"])
    soql = "SELECT Id, Status, IsConverted, AnnualRevenue, Company FROM Lead"
    (custom,) = resolve_extract_plan(["Lead"], {"Lead": soql})
    assert uses_incremental_sync(lead) and not uses_incremental_sync(custom)


def _not_empty(names: list[str] | None) -> list[str] | None:
    if names == []:
        msg = "names is an empty list"
        raise ValueError(msg)
    return names


@checked_parameters("demo")
def demo(names: Annotated[list[str] | None, AfterValidator(_not_empty)] = None,
         workers: Annotated[int, Field(ge=1, le=4)] = 2, days: float | None = None) -> tuple:
    return names, workers, days


def test_checked_parameters_validate_against_the_signature_and_keep_it():
    assert demo() == (None, 2, None)
    assert demo(["a"], workers="3", days=1) == (["a"], 3, 1.0)  # coerced as pydantic does
    assert inspect.signature(demo) == inspect.signature(demo.__wrapped__)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"workers": 0}, r"invalid demo parameters: 1 validation error for DemoParams\nworkers"),
    ({"names": []}, "names is an empty list"),
])
def test_a_bad_parameter_is_a_config_error_naming_it(kwargs, expected):
    with pytest.raises(ConfigError, match=expected):
        demo(**kwargs)


def test_run_summary_rows_keep_their_keys_and_read_the_landing_result():
    extracts = {
        "Lead": StepOutcome("Lead", "extract", True, 1.234, value=LandingResult.from_sync(SYNCED)),
        "Account": StepOutcome("Account", "extract", True, 2.0, value=LandingResult.from_extract(
            ExtractResult("Account", "raw/A.csv", "raw/A.schema.json", 5, "bulk2", 1.0, "emulator", "R1"))),
        "Case": StepOutcome("Case", "extract", False, 0.5, error="MALFORMED_QUERY: bad", error_type="X"),
    }
    etl = BranchOutcome(True, {"objects": {"Lead": {"process": "p/Lead.csv", "load": "o/Lead.json"}},
                               "seconds": {"Lead": {"process": 0.1, "load": 0.2}}})
    qa = BranchOutcome(False, None, "QA task(s) crashed")
    summary = build_run_summary("R1", SOURCE, extracts, etl, qa, "2026-01-01T00:00:00Z", 3.456).as_dict()
    assert list(summary) == ["run_id", "source", "started_at", "seconds", "objects", "phase1_ok", "qa_ok", "qa_error"]
    lead, account, case = summary["objects"]
    assert all(list(row) == ROW_KEYS for row in summary["objects"])
    assert {k: lead[k] for k in ("status", "mode", "rows", "api", "updates", "replica_rows", "dataset", "raw_csv",
                                 "summary_json", "process_s", "extract_s")} == {
        "status": "ok", "mode": "incremental", "rows": 12, "api": "rest", "updates": 3, "replica_rows": 40,
        "dataset": "replica/Lead.parquet", "raw_csv": "raw/Lead_1.csv", "summary_json": "o/Lead.json",
        "process_s": 0.1, "extract_s": 1.23}
    assert (account["mode"], account["api"], account["inserts"], account["dataset"]) == ("full", "bulk2", None,
                                                                                         "raw/A.csv")
    assert (case["status"], case["mode"], case["rows"], case["qa"], case["error"]) == (
        "failed", None, None, "skipped (no extract)", "MALFORMED_QUERY: bad")
    assert (summary["phase1_ok"], summary["qa_ok"], summary["qa_error"]) == (True, False, "QA task(s) crashed")


def test_a_run_with_nothing_extracted_reports_why_phase1_did_not_run():
    nothing = BranchOutcome(False, error="no object was extracted")
    lead = StepOutcome("Lead", "extract", True, 1.0, value=LandingResult.from_extract(EXTRACTED))
    (row,) = build_run_summary("R1", SOURCE, {"Lead": lead}, nothing, nothing, "t", 1.0).as_dict()["objects"]
    assert row["status"] == "failed" and row["error"] == "phase1: no object was extracted"


def test_the_landing_task_retries_a_transient_fault_once_like_the_thin_tasks():
    from tasks.extract import extract_salesforce_to_csv, retry_only_transient
    from tasks.land import land_object
    from tasks.sync import sync_salesforce_object

    for landing in (land_object, extract_salesforce_to_csv, sync_salesforce_object):
        assert (landing.retries, landing.retry_delay_seconds, landing.retry_condition_fn) == (
            1, 5, retry_only_transient), landing.name
