"""A run is OK only if every step it ran succeeded, and no output it could not rewrite is left looking current.

Issue #14 items 6 and 7: a QA task that crashed (a full disk) used to leave the run OK and the previous run's
``dedup.csv`` in place; a raw CSV with rows cut off by hand passed every gate. Everything here is real: the
emulator over HTTPS, the Prefect engine, files on disk; the obstructions are a directory where a file must go
(the tests run as root, so permissions would not stop a write).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest

from flows.object_parallel_flow import object_parallel_flow
from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from flows.sf_etl_orchestrator_flow import PipelineRunError, sf_etl_orchestrator_flow
from tests.reliability_helpers import base_env, emulator_env, fresh_prefect_home, run_orchestrator
from utils.atomic import write_bytes_atomic
from utils.errors import DataQualityError
from utils.paths import build_qa_paths, schema_sidecar_for

pytestmark = pytest.mark.integration


def _first_run(object_name: str, data_root: Path) -> dict:
    state = sf_etl_orchestrator_flow(objects=[object_name], data_root=str(data_root), return_state=True)
    assert state.is_completed(), state.message
    return state.result()["objects"][0]


def _obstruct(path: Path) -> None:
    """Put a non-empty directory where ``path`` (a file the run rewrites) must go: the rename onto it fails."""
    if path.exists():
        path.unlink()
    path.mkdir()
    (path / "keep").write_text("not the pipeline's\n")


def _saved_row(data_root: Path, run_id: str) -> dict:
    (path,) = [p for p in (data_root / "runs").glob("*.json") if json.loads(p.read_text())["run_id"] == run_id]
    (row,) = json.loads(path.read_text())["objects"]
    return row


def _failed_row(state) -> tuple[dict, PipelineRunError]:
    assert state.is_failed(), "the run reported success although a step failed"
    err = state.result(raise_on_failure=False)
    assert isinstance(err, PipelineRunError), err
    (row,) = err.summary["objects"]
    return row, err


# --------------------------------------------------------------------------------- item 6: crashed steps


@pytest.mark.slow
def test_a_crashed_qa_gate_fails_the_run_and_removes_every_output_it_left_stale(prefect_harness, org_env,
                                                                                data_root):
    """Advisory mode: a crash is not a data finding, so it fails the object and the run all the same."""
    _first_run("Account", data_root)
    qc = build_qa_paths("Account", data_root=data_root)
    assert qc.dedup.is_file() and qc.profile.is_file()
    _obstruct(qc.snapshot)  # the gate writes the snapshot first; every other QA task waits on the gate

    row, err = _failed_row(sf_etl_orchestrator_flow(objects=["Account"], return_state=True))

    assert row["status"] == "failed"
    assert row["error"].startswith("qa: qa-gate-Account crashed (IsADirectoryError: "), row["error"]
    assert "snapshot.parquet" in row["error"] and "\n" not in row["error"]
    assert "qa-gate-Account crashed" in str(err)
    assert "skipped" in row["qa"]  # the tasks after the gate did not run: reported, not counted as crashes
    for stale in (qc.dedup, qc.profile, qc.schema_report):
        assert not stale.exists(), f"the previous run's {stale.name} was left looking current"
    assert qc.rowcount.is_file()  # the drift history is a history, not an output of this run
    assert (data_root / "output" / "Account" / "summary.json").is_file()  # Phase 1 itself succeeded
    assert _saved_row(data_root, err.summary["run_id"]) == row  # the run summary file says the same


@pytest.mark.slow  # a subprocess run: the exit code is what a scheduler or a shell sees
def test_a_crashed_dedup_task_fails_the_run_with_exit_code_1(prefect_harness, emulator, data_root, tmp_path):
    _first_run("Account", data_root)
    qc = build_qa_paths("Account", data_root=data_root)
    _obstruct(qc.dedup)  # e.g. a full disk: dedup.csv cannot be rewritten

    env = base_env(data_root=data_root, prefect_home=fresh_prefect_home(tmp_path / "prefect"),
                   extra=emulator_env(emulator))
    proc = run_orchestrator(env, "--objects", "Account")

    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "FAILED" in proc.stdout and "error: qa: qa-dedup-Account crashed (IsADirectoryError" in proc.stdout
    (row,) = [r for p in (data_root / "runs").glob("*.json") for r in json.loads(p.read_text())["objects"]
              if r["status"] != "ok"]
    assert row["status"] == "failed" and row["error"].startswith("qa: qa-dedup-Account crashed"), row
    assert "task_crashed(error)" in row["qa"]
    profile = json.loads(qc.profile.read_text())  # the tasks that did not crash rewrote their files
    assert profile["raw_csv"] == row["dataset"]
    assert qc.dedup.is_dir() and (qc.dedup / "keep").is_file()  # not ours to delete


@pytest.mark.slow
def test_a_crashed_process_step_fails_the_run_and_removes_the_stale_summary(prefect_harness, org_env, data_root):
    _first_run("Lead", data_root)
    output_json = data_root / "output" / "Lead" / "summary.json"
    assert output_json.is_file()
    _obstruct(data_root / "processed" / "Lead" / "summary.csv")

    row, _ = _failed_row(sf_etl_orchestrator_flow(objects=["Lead"], return_state=True))

    assert row["error"].startswith("process: ") and "IsADirectoryError" in row["error"], row
    assert row["summary_json"] is None
    assert not output_json.exists(), "the previous run's summary.json was left looking current"
    assert not (data_root / "processed" / "Lead" / "summary.schema.json").exists()
    assert "task_crashed" not in row["qa"]  # QA of the same dataset was fine


# ---------------------------------------------------------------------------- item 7: truncated datasets


def _drop_last_rows(raw_csv: Path, n: int) -> int:
    """Remove the last ``n`` records of a raw CSV by hand, keeping its conventions; returns the rows left."""
    with open(raw_csv, newline="", encoding="utf-8") as fh:
        header, *records = list(csv.reader(fh))
    kept = records[:-n]
    with open(raw_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows([header, *kept])
    return len(kept)


def _truncate_parquet(path: Path, n: int) -> int:
    frame = pl.read_parquet(path)
    write_bytes_atomic(path, b"")  # make sure the rewrite below really replaces the file
    frame.head(frame.height - n).write_parquet(path)
    return frame.height - n


def _checks(summary: dict, object_name: str) -> dict[str, dict]:
    return {r["check"]: r for r in summary["objects"][object_name]["results"]}


@pytest.mark.slow
def test_a_truncated_raw_csv_fails_the_gate_and_an_intact_one_passes(prefect_harness, org_env, data_root):
    row = _first_run("Lead", data_root)
    raw = Path(row["raw_csv"])
    expected = json.loads(schema_sidecar_for(raw).read_text())["row_count"]

    intact = object_parallel_flow(raw_files={"Lead": str(raw)}, fail_on_qa_error=True)
    assert _checks(intact, "Lead")["rowcount_sidecar"]["passed"]

    left = _drop_last_rows(raw, 10)
    assert left == expected - 10
    with pytest.raises(DataQualityError) as excinfo:
        object_parallel_flow(raw_files={"Lead": str(raw)}, fail_on_qa_error=True)

    checks = _checks(excinfo.value.summary, "Lead")
    gate = checks["rowcount_sidecar"]
    assert (gate["passed"], gate["severity"], gate["observed"], gate["threshold"]) == (False, "error", left,
                                                                                       expected)
    assert gate["message"] == (
        f"Lead: {raw.name} has {left} rows but its schema sidecar says {expected}: the file was truncated or "
        "edited after it was written; re-run the extract (full_refresh=True rebuilds a replica)")
    assert checks["completeness_required"]["skipped"] and checks["rowcount_drift"]["skipped"]
    assert "rowcount_sidecar" in str(excinfo.value)
    qc = build_qa_paths("Lead", data_root=data_root)
    assert not qc.dedup.exists() and not qc.profile.exists()  # the intact run's files do not describe this one


@pytest.mark.slow
def test_a_truncated_replica_fails_the_gate(prefect_harness, org_env, data_root):
    row = _first_run("Lead", data_root)
    replica = Path(row["dataset"])
    assert replica.suffix == ".parquet"
    expected = json.loads(schema_sidecar_for(replica).read_text())["row_count"]
    left = _truncate_parquet(replica, 10)

    summary = object_parallel_flow(raw_files={"Lead": str(replica)})  # advisory: a result, not a crash

    gate = _checks(summary, "Lead")["rowcount_sidecar"]
    assert (gate["passed"], gate["severity"]) == (False, "error")
    assert f"Lead.parquet has {left} rows but its schema sidecar says {expected}" in gate["message"]
    assert "full_refresh=True" in gate["message"]
    assert summary["blocking_failures"] and not summary["crashed"]


@pytest.mark.slow
def test_phase1_alone_does_not_recount_a_dataset(prefect_harness, org_env, data_root):
    """The chosen split: the QA gate owns the sidecar comparison; Phase 1 aggregates what it is given."""
    row = _first_run("Lead", data_root)
    raw = Path(row["raw_csv"])
    left = _drop_last_rows(raw, 10)
    result = sf_csv_polars_json_flow(raw_files={"Lead": str(raw)})
    records = json.loads(Path(result["objects"]["Lead"]["load"]).read_text())
    assert sum(r["Id_count"] for r in records) == left
