"""The orchestrator: extract each object once, then run Phase 1 (Polars -> JSON) and Phase 2 (QA) at the same
time on the same raw files, keep data/raw bounded, and report exactly what happened."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import ConcurrentTaskRunner
from pydantic import BaseModel, ConfigDict, Field, field_validator

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.common import StepOutcome, dataset_of, landing_task, one_line, outcome_from_state
from flows.object_parallel_flow import object_parallel_flow
from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from tasks.extract_plan import ExtractPlanItem, resolve_extract_plan
from utils.atomic import write_text_atomic
from utils.errors import ConfigError, PipelineError
from utils.housekeeping import apply_retention, ensure_data_root, sweep_temp_files
from utils.logs import kv
from utils.paths import resolve_data_root
from utils.run_ids import new_run_id
from utils.source import pipeline_source

SYNC_COLUMNS = ("inserts", "updates", "deletes", "hard_deletes", "recovered", "replica_rows")


class PipelineRunError(PipelineError):
    """Some objects or checks failed; ``summary`` holds the whole run summary."""


class OrchestratorParams(BaseModel):
    """The orchestrator's parameters, validated before anything runs."""

    model_config = ConfigDict(extra="forbid")

    objects: list[str] | None = None
    soql: dict[str, str] | None = None
    fail_on_qa_error: bool = False
    full_refresh: bool = False
    api: str | None = None
    max_concurrent_extracts: int = Field(default=3, ge=1, le=25)  # Salesforce allows 25 long-running requests
    drop_missing_fields: bool = False
    raw_retention_count: int | None = Field(default=None, ge=1)
    raw_retention_days: float | None = Field(default=None, gt=0)
    data_root: str | None = None

    @field_validator("objects")
    @classmethod
    def _known_objects(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            msg = "objects is an empty list; pass None for every registry object"
            raise ValueError(msg)
        return value


def _validate(params: dict[str, Any]) -> tuple[OrchestratorParams, list[ExtractPlanItem]]:
    try:
        p = OrchestratorParams(**params)
    except Exception as err:
        msg = f"invalid orchestrator parameters: {err}"
        raise ConfigError(msg) from None
    return p, resolve_extract_plan(p.objects, p.soql, api=p.api, strict_qa=p.fail_on_qa_error)


def _extract_all(plan: list[ExtractPlanItem], p: OrchestratorParams, run_id: str) -> dict[str, StepOutcome]:
    """Submit extracts concurrently, at most ``max_concurrent_extracts`` in flight."""
    pending = list(plan)
    running: dict[str, tuple[PrefectFuture, float]] = {}
    outcomes: dict[str, StepOutcome] = {}
    while pending or running:
        while pending and len(running) < p.max_concurrent_extracts:
            item = pending.pop(0)
            land, args, kwargs = landing_task(item, run_id, full_refresh=p.full_refresh, data_root=p.data_root,
                                              api=p.api, drop_missing_fields=p.drop_missing_fields)
            running[item.object_name] = (land.submit(*args, **kwargs), time.monotonic())
        for name, (future, started) in list(running.items()):
            state = future.wait(timeout=0.1)
            if state is None or not state.is_final():
                continue
            del running[name]
            outcomes[name] = outcome_from_state(name, "extract", state, time.monotonic() - started)
    return {item.object_name: outcomes[item.object_name] for item in plan}  # registry order, not finish order


def _branch_outcome(state) -> dict[str, Any]:
    """A subflow's final state as {ok, result, error}; a failed branch still hands over its summary."""
    if state.is_completed():
        return {"ok": True, "result": state.result(), "error": None}
    err = state.result(raise_on_failure=False)
    return {"ok": False, "result": getattr(err, "summary", None) or None, "error": one_line(err)}


@task(task_run_name="branch-phase1-etl")
def run_etl_branch(raw_files: dict[str, str], run_id: str, data_root: str | None) -> dict[str, Any]:
    """Phase 1 as a subflow inside a task, so it runs concurrently with the QA branch (prefect2-notes §1 B)."""
    state = sf_csv_polars_json_flow(raw_files=raw_files, run_id=run_id, data_root=data_root, return_state=True)
    return _branch_outcome(state)


@task(task_run_name="branch-phase2-qa")
def run_qa_branch(raw_files: dict[str, str], run_id: str, data_root: str | None, fail_on_qa_error: bool):
    state = object_parallel_flow(raw_files=raw_files, fail_on_qa_error=fail_on_qa_error, run_id=run_id,
                                 data_root=data_root, return_state=True)
    return _branch_outcome(state)


def _qa_status(qa_objects: dict[str, Any], name: str) -> str:
    checks = (qa_objects.get(name) or {}).get("results", [])
    if not checks:
        return "n/a"
    failed = [f"{c['check']}({c['severity']})" for c in checks if not c.get("passed") and not c.get("skipped")]
    skipped = [c["check"] for c in checks if c.get("skipped")]
    ran = len(checks) - len(skipped)
    text = f"{ran - len(failed)}/{ran} passed" + (f", {len(skipped)} skipped" if skipped else "")
    return text + (": " + ", ".join(failed) if failed else "")


def _object_errors(ext: StepOutcome, etl_steps: dict[str, Any], qa_entry: dict[str, Any],
                   etl: dict[str, Any]) -> list[str]:
    """Why one object's row is failed: its extract, process or load failed, a QA task crashed, or Phase 1 died
    before reaching it. Empty when every step it ran succeeded (a QA finding is not an error here)."""
    errors = [ext.error] if not ext.ok else []
    for label in ("process", "load"):
        step = etl_steps.get(label)
        if isinstance(step, dict) and "error" in step:
            errors.append(f"{label}: {step['error']}")
    errors += [f"qa: {crash}" for crash in qa_entry.get("crashed", [])]
    if ext.ok and not etl.get("ok") and not etl_steps:
        errors.append(f"phase1: {etl.get('error')}")
    return errors


def build_run_summary(run_id: str, source: dict[str, str], extracts: dict[str, StepOutcome],
                      etl: dict[str, Any], qa: dict[str, Any], started_at: str, seconds: float) -> dict[str, Any]:
    """One row per object: rows, API path, durations, QA result and the files written.

    A row is ``ok`` only if every step it ran succeeded: a failed extract, process or load, or a crashed QA
    task, makes it ``failed`` with the reason in ``error`` (a QA finding stays in ``qa``).
    """
    etl_objects = (etl.get("result") or {}).get("objects", {})
    etl_seconds = (etl.get("result") or {}).get("seconds", {})
    qa_objects = (qa.get("result") or {}).get("objects", {})
    rows = []
    for name, ext in extracts.items():
        steps = etl_objects.get(name, {})
        load = steps.get("load")
        value = ext.value or {}
        errors = _object_errors(ext, steps, qa_objects.get(name) or {}, etl)
        rows.append({
            "object": name,
            "status": "ok" if not errors else "failed",
            "mode": value.get("mode", "full") if ext.ok else None,
            "rows": value.get("rows"),
            "api": value.get("api_path"),
            **{k: (value.get("sync") or {}).get(k) for k in SYNC_COLUMNS},
            "dataset": value.get("dataset") or value.get("raw_csv"),
            "extract_s": round(ext.seconds, 2),
            "process_s": etl_seconds.get(name, {}).get("process"),
            "load_s": etl_seconds.get(name, {}).get("load"),
            "qa": _qa_status(qa_objects, name) if ext.ok else "skipped (no extract)",
            "raw_csv": value.get("raw_csv"),
            "summary_json": load if isinstance(load, str) else None,
            "error": "; ".join(e for e in errors if e) or None,
        })
    return {"run_id": run_id, "source": source, "started_at": started_at, "seconds": round(seconds, 2),
            "objects": rows, "phase1_ok": etl.get("ok"), "qa_ok": qa.get("ok"),
            "qa_error": None if qa.get("ok") else qa.get("error")}


def _log_table(logger, summary: dict[str, Any]) -> None:
    for row in summary["objects"]:
        logger.info(kv("object_summary", run_id=summary["run_id"], object=row["object"], status=row["status"],
                       rows=row["rows"], api=row["api"], extract_seconds=row["extract_s"], qa=row["qa"],
                       error=row["error"]))


def _publish(summary: dict[str, Any], data_root: str | None) -> None:
    table = [{k: v for k, v in row.items() if k != "raw_csv"} for row in summary["objects"]]
    try:
        create_table_artifact(key="sf-etl-run-summary", table=json.loads(json.dumps(table, default=str)),
                              description=f"run {summary['run_id']} on {summary['source']['kind']}")
    except Exception as err:  # noqa: BLE001 - the artifact is a view; never fail the run for it
        get_run_logger().warning(kv("artifact_failed", run_id=summary["run_id"], error=type(err).__name__))
    runs_dir = resolve_data_root(data_root) / "runs"
    write_text_atomic(runs_dir / f"{summary['started_at'].replace(':', '')}_{summary['run_id']}.json",
                      json.dumps(summary, indent=2, default=str) + "\n")


@flow(name="sf-etl-orchestrator", task_runner=ConcurrentTaskRunner())
def sf_etl_orchestrator_flow(
    objects: list[str] | None = None,
    soql: dict[str, str] | None = None,
    fail_on_qa_error: bool = False,
    full_refresh: bool = False,
    api: str | None = None,
    max_concurrent_extracts: int = 3,
    drop_missing_fields: bool = False,
    raw_retention_count: int | None = None,
    raw_retention_days: float | None = None,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Extract once, then Phase 1 and Phase 2 concurrently; returns the run summary (fails if anything failed)."""
    logger = get_run_logger()
    p, plan = _validate({k: v for k, v in locals().items() if k not in ("logger",)})
    run_id = new_run_id()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.monotonic()
    ensure_data_root(p.data_root)
    sweep_temp_files(p.data_root, run_id, logger)
    with pipeline_source(logger) as source:
        logger.info(kv("run_start", run_id=run_id, source=source.kind, objects=",".join(i.object_name for i in plan)))
        extracts = _extract_all(plan, p, run_id)
    raw_files = {n: dataset_of(o.value) for n, o in extracts.items() if o.ok}
    if raw_files:
        etl_future = run_etl_branch.submit(raw_files, run_id, p.data_root)
        qa_future = run_qa_branch.submit(raw_files, run_id, p.data_root, p.fail_on_qa_error)
        etl, qa = etl_future.result(), qa_future.result()
    else:
        etl = qa = {"ok": False, "error": "no object was extracted"}
    keep = {n: p.raw_retention_count or SALESFORCE_OBJECTS[n].raw_retention_count for n in extracts}
    apply_retention({n: (o.value or {}).get("raw_csv") for n, o in extracts.items()}, keep_counts=keep,
                    max_age_days=p.raw_retention_days, data_root=p.data_root, run_id=run_id, logger=logger)
    summary = build_run_summary(run_id, {"kind": source.kind, "instance_url": source.instance_url,
                                         "auth_flow": source.auth_flow},
                                extracts, etl, qa, started_at, time.monotonic() - started)
    _log_table(logger, summary)
    _publish(summary, p.data_root)
    failed = [r["object"] for r in summary["objects"] if r["status"] != "ok"]
    if failed or not qa["ok"]:
        reasons = [f"object(s) failed: {', '.join(failed)}"] if failed else []
        if not qa["ok"]:
            reasons.append(f"QA: {qa.get('error')}")
        message = "; ".join(reasons)
        return Failed(message=message, data=PipelineRunError(message, summary))
    return summary
