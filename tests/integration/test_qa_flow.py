"""QA on real raw files: discovery, the report writers, and the Prefect flow (advisory, strict, concurrent)."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.object_parallel_flow import _report_of, object_parallel_flow
from tasks.quality_parallel import (
    inspect_raw_extract,
    parse_rowcount_history,
    run_custom_validator,
    update_rowcount_history,
    write_dedup,
)
from tests.fixtures_raw import ACCOUNT_COLUMNS, OPPORTUNITY_COLUMNS, write_raw_fixture
from utils.errors import ConfigError, DataQualityError, QaTaskError
from utils.paths import build_qa_paths, raw_csv_name, schema_sidecar_for
from utils.raw_files import find_latest_raw_csv, list_raw_csvs, run_id_of
from utils.raw_frame import scan_dataset
from utils.raw_schema import read_raw_schema


def opp(id_, *, name="Deal", stage="Prospecting", amount="1500.0", close="2024-03-01",
        modstamp="2024-01-01T12:00:00.000Z"):
    return [id_, name, stage, amount, "10.0", close, "false", "false", "Pipeline", "Web", "001A",
            'Acme, "Intl"', "005A", "Ann Lee", "2024-01-01T00:00:00.000Z", modstamp]


def account(id_, *, name="Acme", rows_industry="Tech"):
    return [id_, name, "Customer", rows_industry, "FR", "1000000.0", "42", "Hot", "005A", "Ann Lee",
            "2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z", "2024-01-02T00:00:00.000Z"]


CLEAN_OPPORTUNITIES = [opp(f"006{i:03d}", name=f"Deal {i}") for i in range(6)]
DEFECT_OPPORTUNITIES = [
    opp("006000"),
    opp("006001", modstamp="2024-01-01T12:00:00.000Z"),
    opp("006001", amount="900.0", modstamp="2024-02-01T12:00:00.000Z"),  # defect: duplicate Id (newer, kept)
    opp("006002", name=None),                                              # defect: null required Name
    opp("006003", stage=None, amount="-5.0"),                             # defect: null StageName, Amount < 0
    opp("006004", amount="-1.0"),                                          # defect: Amount < 0
]
CLEAN_ACCOUNTS = [account(f"001{i:03d}", name=f"Acme {i}") for i in range(4)]


def write_opportunities(data_root: Path, rows, run_id="RUN1", columns=OPPORTUNITY_COLUMNS) -> Path:
    return write_raw_fixture(data_root / "raw", "Opportunity", columns, rows, run_id=run_id)


def results_by_check(summary: dict, object_name: str) -> dict[str, dict]:
    return {r["check"]: r for r in summary["objects"][object_name]["results"]}


# ------------------------------------------------------------------------------------------ discovery


def test_list_raw_csvs_orders_by_timestamp_then_run_id_and_ignores_temp_and_other_objects(data_root):
    raw = data_root / "raw"
    older = write_raw_fixture(raw / raw_csv_name("Account", "B", datetime(2024, 1, 1, tzinfo=timezone.utc)),
                              "Account", ACCOUNT_COLUMNS, [])
    same_a = write_raw_fixture(raw / raw_csv_name("Account", "A", datetime(2024, 1, 2, tzinfo=timezone.utc)),
                               "Account", ACCOUNT_COLUMNS, [])
    same_b = write_raw_fixture(raw / raw_csv_name("Account", "B", datetime(2024, 1, 2, tzinfo=timezone.utc)),
                               "Account", ACCOUNT_COLUMNS, [])
    (raw / f".{same_b.name}.tmp-123-abcd1234").write_text("partial")
    write_raw_fixture(raw / raw_csv_name("Account_History", "Z", datetime(2025, 1, 1, tzinfo=timezone.utc)),
                      "Account_History", [("Id", "id")], [])

    assert list_raw_csvs("Account") == [older, same_a, same_b]
    assert find_latest_raw_csv("Account") == same_b
    assert find_latest_raw_csv("Lead") is None
    assert run_id_of(same_a) == "A"


# -------------------------------------------------------------------------------------------- writers


def test_dedup_csv_keeps_latest_row_in_raw_conventions(data_root):
    raw = write_opportunities(data_root, DEFECT_OPPORTUNITIES)
    qc = build_qa_paths("Opportunity")

    report = write_dedup("Opportunity", scan_dataset(raw), SALESFORCE_OBJECTS["Opportunity"], qc)

    (result,) = report.results
    assert (result.observed, result.sample_ids, result.severity) == (1, ("006001",), "warning")
    text = qc.dedup.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(f'"{name}"' for name, _ in OPPORTUNITY_COLUMNS)
    assert '"2024-02-01T12:00:00.000Z"' in text and '"Acme, ""Intl"""' in text and '""' in text
    deduped = scan_dataset(qc.dedup, read_raw_schema(schema_sidecar_for(raw)))
    expected = scan_dataset(raw).collect()[[0, 2, 3, 4, 5]]
    assert_frame_equal(deduped.collect(), expected)
    assert not [p for p in qc.directory.iterdir() if p.name.startswith(".")]


def test_gate_writes_the_parquet_snapshot_with_types_for_pyarrow_and_polars(data_root):
    raw = write_opportunities(data_root, CLEAN_OPPORTUNITIES)
    qc = build_qa_paths("Opportunity")

    gate = inspect_raw_extract("Opportunity", raw, SALESFORCE_OBJECTS["Opportunity"], qc)

    assert gate.blocked_reason is None and gate.typed_rows == str(qc.snapshot)
    assert str(qc.snapshot) in gate.report.files and gate.row_count == len(CLEAN_OPPORTUNITIES)
    assert_frame_equal(pl.read_parquet(qc.snapshot), scan_dataset(raw).collect())
    arrow = pq.read_table(qc.snapshot).schema
    assert str(arrow.field("CloseDate").type) == "date32[day]"
    assert str(arrow.field("SystemModstamp").type) == "timestamp[ms, tz=UTC]"
    assert str(arrow.field("Amount").type) == "double" and str(arrow.field("IsWon").type) == "bool"
    assert pq.ParquetFile(qc.snapshot).metadata.row_group(0).column(0).compression == "ZSTD"


def test_validator_that_cannot_be_imported_is_an_error_naming_object_and_validator(data_root):
    raw = write_opportunities(data_root, CLEAN_OPPORTUNITIES)

    (result,) = run_custom_validator("Opportunity", "tasks.nope:rule", scan_dataset(raw),
                                     SALESFORCE_OBJECTS["Opportunity"]).results

    assert (result.passed, result.severity, result.check) == (False, "error", "custom_rule")
    assert "Opportunity" in result.message and "tasks.nope:rule" in result.message


def test_gate_names_columns_whose_values_do_not_parse(data_root):
    bad = [*CLEAN_OPPORTUNITIES[:2], opp("006009", amount="lots", close="2024-02-30")]  # defects: bad number, date
    raw = write_opportunities(data_root, bad)

    gate = inspect_raw_extract("Opportunity", raw, SALESFORCE_OBJECTS["Opportunity"], build_qa_paths("Opportunity"))

    (result,) = gate.report.results
    assert (result.check, result.severity) == ("schema_conformance", "error")
    assert "do not parse as their type: Amount, CloseDate" in result.message
    assert gate.blocked_reason and gate.row_count is None and gate.typed_rows is None
    report = json.loads(build_qa_paths("Opportunity").schema_report.read_text())
    assert report["unparseable_columns"] == ["Amount", "CloseDate"]
    assert not build_qa_paths("Opportunity").snapshot.exists()  # a failed parse publishes no snapshot


def test_gate_on_missing_sidecar_is_an_error_not_a_crash(data_root):
    raw = write_opportunities(data_root, CLEAN_OPPORTUNITIES)
    schema_sidecar_for(raw).unlink()  # defect: sidecar lost

    gate = inspect_raw_extract("Opportunity", raw, SALESFORCE_OBJECTS["Opportunity"], build_qa_paths("Opportunity"))

    assert gate.report.results[0].severity == "error" and "sidecar" in gate.report.results[0].message
    assert gate.blocked_reason


# ---------------------------------------------------------------------------------- rowcount history


def test_rowcount_history_first_run_then_baseline_and_rerun_replaces_its_line(tmp_path):
    path = tmp_path / "rowcount.txt"
    moment = datetime(2024, 1, 1, tzinfo=timezone.utc)

    first = update_rowcount_history(path, object_name="Account", run_id="R1", rows=10, now=moment)
    second = update_rowcount_history(path, object_name="Account", run_id="R2", rows=12, now=moment)
    rerun = update_rowcount_history(path, object_name="Account", run_id="R2", rows=13, now=moment)

    assert first == (None, "")
    assert second[0].rows == 10 and rerun[0].rows == 10
    assert [(e.run_id, e.rows) for e in parse_rowcount_history(path.read_text())] == [("R1", 10), ("R2", 13)]
    assert path.read_text().splitlines()[1] == "2024-01-01T00:00:00Z R1 10"


def test_corrupt_rowcount_history_is_reported_and_replaced(tmp_path):
    path = tmp_path / "rowcount.txt"
    path.write_text("2024-01-01T00:00:00Z R1 10\nthis is not a count line\n")

    previous, note = update_rowcount_history(path, object_name="Account", run_id="R2", rows=5)

    assert previous is None and "corrupt" in note and "line 2" in note
    assert [(e.run_id, e.rows) for e in parse_rowcount_history(path.read_text())] == [("R2", 5)]


def test_concurrent_rowcount_updates_never_corrupt_the_history(tmp_path):
    path = tmp_path / "rowcount.txt"

    def record(i: int) -> None:
        for j in range(20):
            update_rowcount_history(path, object_name="Account", run_id=f"T{i}R{j}", rows=j)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    entries = parse_rowcount_history(path.read_text())  # raises if a race ever left a broken file
    assert 1 <= len(entries) <= 80
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------- flow


@pytest.mark.integration
@pytest.mark.slow  # when it runs first it also pays the session's ~5 s Prefect database setup
def test_flow_on_clean_extracts_passes_and_writes_every_report(prefect_harness, data_root):
    write_opportunities(data_root, CLEAN_OPPORTUNITIES)
    write_raw_fixture(data_root / "raw", "Account", ACCOUNT_COLUMNS, CLEAN_ACCOUNTS, run_id="RUN1")

    summary = object_parallel_flow(objects=["Opportunity", "Account"], data_root=str(data_root))

    json.dumps(summary)  # plain JSON, no States or Paths
    assert summary["blocking_failures"] == []
    for name in ("Opportunity", "Account"):
        checks = results_by_check(summary, name)
        assert all(r["passed"] for r in checks.values()), checks
        qc = build_qa_paths(name, data_root=data_root)
        for path in (qc.dedup, qc.profile, qc.schema_report, qc.snapshot, qc.rowcount):
            assert str(path) in summary["objects"][name]["files"] and path.exists()
    assert {"custom_amount_non_negative", "completeness_required", "uniqueness_primary_key", "schema_conformance",
            "non_empty", "rowcount_drift", "profile", "snapshot"} <= set(results_by_check(summary, "Opportunity"))


@pytest.mark.integration
def test_flow_with_defects_is_advisory_by_default(prefect_harness, data_root):
    write_opportunities(data_root, DEFECT_OPPORTUNITIES)

    summary = object_parallel_flow(objects=["Opportunity"], data_root=str(data_root))

    checks = results_by_check(summary, "Opportunity")
    assert checks["uniqueness_primary_key"]["observed"] == 1
    assert checks["completeness_required"]["observed"] == {"Id": 0, "Name": 1, "StageName": 1, "CloseDate": 0}
    assert checks["completeness_required"]["sample_ids"] == ["006002", "006003"]
    assert checks["custom_amount_non_negative"]["observed"] == 2
    assert checks["custom_amount_non_negative"]["sample_ids"] == ["006003", "006004"]
    assert len(summary["blocking_failures"]) == 2  # completeness + validator; duplicates are a warning
    assert summary["objects"]["Opportunity"]["errors"] == 2


@pytest.mark.integration
def test_strict_mode_fails_after_every_report_is_written(prefect_harness, data_root):
    write_opportunities(data_root, DEFECT_OPPORTUNITIES)

    with pytest.raises(DataQualityError, match="completeness_required") as excinfo:
        object_parallel_flow(objects=["Opportunity"], fail_on_qa_error=True, data_root=str(data_root))

    assert "custom_amount_non_negative" in str(excinfo.value)
    qc = build_qa_paths("Opportunity", data_root=data_root)
    assert all(p.exists() for p in (qc.dedup, qc.profile, qc.schema_report, qc.snapshot, qc.rowcount))


@pytest.mark.integration
def test_strict_mode_lists_a_crashed_task_and_a_data_finding_each_under_its_own_heading(prefect_harness, data_root):
    write_opportunities(data_root, DEFECT_OPPORTUNITIES)
    qc = build_qa_paths("Opportunity", data_root=data_root)
    qc.dedup.mkdir(parents=True)  # a directory where dedup.csv must go: the dedup task crashes
    (qc.dedup / "keep").write_text("not the pipeline's\n")

    with pytest.raises(QaTaskError) as excinfo:
        object_parallel_flow(objects=["Opportunity"], fail_on_qa_error=True, data_root=str(data_root))

    crashes, findings = str(excinfo.value).split("\nQA failed in strict mode:\n")
    assert crashes.startswith("QA task(s) crashed, their reports are missing:\n  - qa-dedup-Opportunity crashed")
    assert crashes.count("\n  - ") == 1
    assert findings.startswith("  - Opportunity.completeness_required: ")
    assert "custom_amount_non_negative" in findings and "crashed" not in findings


def test_the_qa_failure_message_has_a_section_for_crashes_and_one_for_findings():
    from flows.object_parallel_flow import qa_failure

    summary = {"crashed": ["qa-dedup-Lead crashed (OSError: disk full); see the task run's logs"],
               "blocking_failures": ["Lead.completeness_required: 2 nulls"]}
    both = qa_failure(summary, strict=True)
    assert isinstance(both, QaTaskError)
    assert str(both) == ("QA task(s) crashed, their reports are missing:\n"
                         "  - qa-dedup-Lead crashed (OSError: disk full); see the task run's logs\n"
                         "QA failed in strict mode:\n"
                         "  - Lead.completeness_required: 2 nulls")
    assert "completeness_required" not in str(qa_failure(summary, strict=False))  # advisory: findings are results
    findings_only = qa_failure({**summary, "crashed": []}, strict=True)
    assert isinstance(findings_only, DataQualityError) and str(findings_only).startswith("QA failed in strict mode:")
    assert qa_failure({**summary, "crashed": []}, strict=False) is None


@pytest.mark.integration
def test_strict_mode_passes_on_clean_data(prefect_harness, data_root):
    write_opportunities(data_root, CLEAN_OPPORTUNITIES)

    summary = object_parallel_flow(objects=["Opportunity"], fail_on_qa_error=True, data_root=str(data_root))

    assert summary["blocking_failures"] == []


@pytest.mark.integration
@pytest.mark.slow
def test_failed_gates_skip_downstream_checks_and_other_objects_carry_on(prefect_harness, data_root):
    no_stage = [c for c in OPPORTUNITY_COLUMNS if c[0] != "StageName"]  # defect: required column missing
    row = [v for v, c in zip(opp("006000"), OPPORTUNITY_COLUMNS, strict=True) if c[0] != "StageName"]
    opp_raw = write_raw_fixture(data_root / "raw", "Opportunity", no_stage, [row])
    empty_raw = write_raw_fixture(data_root / "raw", "Account", ACCOUNT_COLUMNS, [])  # defect: headers only
    lead_columns = [("Id", "id"), ("LastName", "string"), ("Company", "string"), ("Status", "picklist"),
                    ("IsConverted", "boolean"), ("SystemModstamp", "datetime")]
    write_raw_fixture(data_root / "raw", "Lead", lead_columns,
                      [["00Q1", "Lee", "Acme", "Open", "false", "2024-01-01T00:00:00.000Z"]])

    summary = object_parallel_flow(
        raw_files={"Opportunity": str(opp_raw), "Account": str(empty_raw)}, objects=["Opportunity", "Account",
                                                                                     "Lead", "Case"],
        data_root=str(data_root))

    opp_checks = results_by_check(summary, "Opportunity")
    assert opp_checks["schema_conformance"]["severity"] == "error"
    assert "StageName" in opp_checks["schema_conformance"]["message"]
    assert opp_checks["profile"]["skipped"] and "gate failed" in opp_checks["profile"]["message"]
    assert opp_checks["custom_amount_non_negative"]["skipped"]
    account_checks = results_by_check(summary, "Account")
    assert not account_checks["non_empty"]["passed"] and account_checks["non_empty"]["severity"] == "warning"
    assert account_checks["uniqueness_primary_key"]["skipped"]
    assert results_by_check(summary, "Case")["schema_conformance"]["skipped"]  # no raw file at all
    lead_checks = results_by_check(summary, "Lead")  # missing optional fields: a warning, checks still run
    assert lead_checks["schema_conformance"]["severity"] == "warning"
    assert lead_checks["profile"]["passed"] and lead_checks["completeness_required"]["passed"]
    report = json.loads(build_qa_paths("Opportunity", data_root=data_root).schema_report.read_text())
    assert report["missing_required"] == ["StageName"]


@pytest.mark.integration
@pytest.mark.slow
def test_rowcount_drift_beyond_tolerance_warns_and_corrupt_baseline_is_replaced(prefect_harness, data_root):
    write_opportunities(data_root, CLEAN_OPPORTUNITIES, run_id="RUN1")
    first = object_parallel_flow(objects=["Opportunity"], data_root=str(data_root))
    shrunk = write_opportunities(data_root, CLEAN_OPPORTUNITIES[:2], run_id="RUN2")  # defect: 6 -> 2 rows (-67%)
    second = object_parallel_flow(raw_files={"Opportunity": str(shrunk)}, data_root=str(data_root))
    rowcount = build_qa_paths("Opportunity", data_root=data_root).rowcount
    rowcount.write_text("garbage\n")  # defect: corrupt history
    third = object_parallel_flow(raw_files={"Opportunity": str(shrunk)}, data_root=str(data_root))

    assert "no baseline" in results_by_check(first, "Opportunity")["rowcount_drift"]["message"]
    drift = results_by_check(second, "Opportunity")["rowcount_drift"]
    assert (drift["passed"], drift["severity"], drift["threshold"]) == (False, "warning", 50.0)
    assert drift["observed"] == {"current": 2, "previous": 6, "change_pct": -66.667}
    assert "corrupt" in results_by_check(third, "Opportunity")["rowcount_drift"]["message"]
    assert [(e.run_id, e.rows) for e in parse_rowcount_history(rowcount.read_text())] == [("RUN2", 2)]


@pytest.mark.integration
def test_unknown_object_is_a_config_error(prefect_harness, data_root):
    with pytest.raises(ConfigError, match="Invoice__c"):
        object_parallel_flow(objects=["Invoice__c"], data_root=str(data_root))


@pytest.mark.integration
@pytest.mark.slow
def test_quality_tasks_really_run_concurrently(prefect_harness, data_root):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    write_opportunities(data_root, CLEAN_OPPORTUNITIES)
    write_raw_fixture(data_root / "raw", "Account", ACCOUNT_COLUMNS, CLEAN_ACCOUNTS, run_id="RUN1")
    state = object_parallel_flow(objects=["Opportunity", "Account"], data_root=str(data_root), return_state=True)
    assert state.is_completed()

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))

    names = {r.name for r in runs}
    assert {"qa-gate-Opportunity", "qa-dedup-Opportunity", "qa-profile-Account", "qa-rowcount-Account"} <= names
    quality_runs = [r for r in runs if not r.name.startswith("qa-gate")]
    spans = [(r.start_time, r.end_time) for r in quality_runs if r.start_time and r.end_time]
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two QA task runs overlapped: {sorted(spans)}"


@pytest.mark.integration
def test_summary_artifact_is_published(prefect_harness, data_root):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    write_opportunities(data_root, DEFECT_OPPORTUNITIES)
    state = object_parallel_flow(objects=["Opportunity"], data_root=str(data_root), return_state=True)

    async def read_summary_artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["qa-summary"])),
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))

    (artifact,) = asyncio.run(read_summary_artifacts())
    assert artifact.type == "markdown"
    assert "| Opportunity | completeness_required | FAIL (error) |" in artifact.data


@pytest.mark.integration
def test_a_crashed_task_becomes_an_error_result(prefect_harness):
    from prefect import flow, task

    @task(task_run_name="qa-broken-{object_name}")
    def broken(object_name: str) -> None:
        raise RuntimeError("disk on fire")

    @flow
    def run_broken() -> dict:
        return _report_of("Lead", broken.submit("Lead")).results[0].to_dict()

    result = run_broken()

    assert (result["check"], result["passed"], result["severity"]) == ("task_crashed", False, "error")
    assert "qa-broken-Lead" in result["message"] and "disk on fire" in result["message"]


@pytest.mark.integration
def test_a_task_waiting_on_a_crashed_one_is_reported_as_not_run_not_as_a_second_crash(prefect_harness):
    from prefect import flow, task

    @task(task_run_name="qa-broken-{object_name}")
    def broken(object_name: str) -> None:
        raise RuntimeError("disk on fire")

    @task(task_run_name="qa-after-{object_name}")
    def after(object_name: str, upstream: None) -> None:
        return None

    @flow
    def run_broken() -> dict:
        return _report_of("Lead", after.submit("Lead", broken.submit("Lead"))).results[0].to_dict()

    result = run_broken()

    assert (result["check"], result["skipped"]) == ("task_not_run", True)
    assert "did not run (Upstream task run" in result["message"]  # a task that never started has no rendered name
