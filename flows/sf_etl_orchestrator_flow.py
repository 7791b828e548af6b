"""The orchestrator: land each object once, then run Phase 1 (Polars -> JSON) and Phase 2 (QA) at the same
time on the same datasets, keep data/raw bounded, and report exactly what happened."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.states import Failed, State
from prefect.task_runners import ConcurrentTaskRunner
from pydantic import AfterValidator, Field

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.common import checked_parameters, land_objects
from flows.object_parallel_flow import object_parallel_flow
from flows.run_summary import BranchOutcome, RunSummary, build_run_summary
from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from tasks.extract_plan import api_choice, resolve_extract_plan
from utils.atomic import write_text_atomic
from utils.errors import PipelineError
from utils.housekeeping import apply_retention, ensure_data_root, sweep_temp_files
from utils.logs import kv
from utils.paths import build_run_summary_path
from utils.prefect_sync import blocking
from utils.run_ids import new_run_id
from utils.source import pipeline_source
from utils.timefmt import now_utc_seconds


class PipelineRunError(PipelineError):
    """Some objects or checks failed; ``summary`` holds the whole run summary."""


def _not_empty(objects: list[str] | None) -> list[str] | None:
    if objects is not None and not objects:
        msg = "objects is an empty list; pass None for every registry object"
        raise ValueError(msg)
    return objects


@task(task_run_name="branch-phase1-etl")
def run_phase1_branch(datasets: dict[str, str], run_id: str, data_root: str | None) -> BranchOutcome:
    """Phase 1 as a subflow inside a task, so it runs concurrently with Phase 2 (prefect2-notes §1 B)."""
    state = sf_csv_polars_json_flow(raw_files=datasets, run_id=run_id, data_root=data_root, return_state=True)
    return BranchOutcome.from_state(state)


@task(task_run_name="branch-phase2-qa")
def run_phase2_branch(datasets: dict[str, str], run_id: str, data_root: str | None,
                      fail_on_qa_error: bool) -> BranchOutcome:
    """Phase 2 (QA) as a subflow inside a task, beside Phase 1."""
    state = object_parallel_flow(raw_files=datasets, fail_on_qa_error=fail_on_qa_error, run_id=run_id,
                                 data_root=data_root, return_state=True)
    return BranchOutcome.from_state(state)


def _log_table(logger, summary: RunSummary) -> None:
    for row in summary.objects:
        logger.info(kv("object_summary", run_id=summary.run_id, object=row.object, status=row.status, rows=row.rows,
                       api=row.api, extract_seconds=row.extract_s, qa=row.qa, error=row.error))


def _publish(summary: dict[str, Any], data_root: str | None) -> None:
    table = [{k: v for k, v in row.items() if k != "raw_csv"} for row in summary["objects"]]
    try:
        blocking(create_table_artifact(key="sf-etl-run-summary", table=json.loads(json.dumps(table, default=str)),
                                       description=f"run {summary['run_id']} on {summary['source']['kind']}"))
    except Exception as err:  # noqa: BLE001 - the artifact is a view; never fail the run for it
        get_run_logger().warning(kv("artifact_failed", run_id=summary["run_id"], error=type(err).__name__))
    write_text_atomic(build_run_summary_path(summary["started_at"], summary["run_id"], data_root=data_root),
                      json.dumps(summary, indent=2, default=str) + "\n")


@flow(name="sf-etl-orchestrator", task_runner=ConcurrentTaskRunner(), validate_parameters=False)
@checked_parameters("orchestrator")
def sf_etl_orchestrator_flow(
    objects: Annotated[list[str] | None, AfterValidator(_not_empty)] = None,
    soql: dict[str, str] | None = None,
    fail_on_qa_error: bool = False,
    full_refresh: bool = False,
    api: str | None = None,
    max_concurrent_extracts: Annotated[int, Field(ge=1, le=25)] = 3,  # Salesforce allows 25 long-running requests
    drop_missing_fields: bool = False,
    raw_retention_count: Annotated[int | None, Field(ge=1)] = None,
    raw_retention_days: Annotated[float | None, Field(gt=0)] = None,
    data_root: str | None = None,
) -> dict[str, Any] | State:
    """Land each object once, then Phase 1 and Phase 2 concurrently; returns the run summary (fails if anything
    failed)."""
    logger = get_run_logger()
    plan = resolve_extract_plan(objects, soql, api=api, strict_qa=fail_on_qa_error)
    run_id = new_run_id()
    started_at = now_utc_seconds()
    started = time.monotonic()
    ensure_data_root(data_root)
    sweep_temp_files(data_root, run_id, logger)
    with pipeline_source(logger) as source:
        logger.info(kv("run_start", run_id=run_id, source=source.kind, objects=",".join(i.object_name for i in plan)))
        extracts = land_objects(plan, run_id, max_concurrent=max_concurrent_extracts, full_refresh=full_refresh,
                                data_root=data_root, api=api_choice(api), drop_missing_fields=drop_missing_fields)
    landed = {n: o.value for n, o in extracts.items() if o.ok and o.value is not None}
    datasets = {n: v.dataset for n, v in landed.items()}
    if datasets:
        phase1 = run_phase1_branch.submit(datasets, run_id, data_root)
        phase2 = run_phase2_branch.submit(datasets, run_id, data_root, fail_on_qa_error)
        etl, qa = phase1.result(), phase2.result()
    else:
        etl = qa = BranchOutcome(False, error="no object was extracted")
    keep = {n: raw_retention_count or SALESFORCE_OBJECTS[n].raw_retention_count for n in extracts}
    apply_retention({n: landed[n].raw_csv if n in landed else None for n in extracts}, keep_counts=keep,
                    max_age_days=raw_retention_days, data_root=data_root, run_id=run_id, logger=logger)
    summary = build_run_summary(run_id, {"kind": source.kind, "instance_url": source.instance_url,
                                         "auth_flow": source.auth_flow},
                                extracts, etl, qa, started_at, time.monotonic() - started)
    _log_table(logger, summary)
    _publish(summary.as_dict(), data_root)
    failed = summary.failed_objects
    if failed or not qa.ok:
        reasons = [f"object(s) failed: {', '.join(failed)}"] if failed else []
        if not qa.ok:
            reasons.append(f"QA: {qa.error}")
        message = "; ".join(reasons)
        return Failed(message=message, data=PipelineRunError(message, summary.as_dict()))
    return summary.as_dict()
