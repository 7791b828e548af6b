"""The orchestrator: land each object once, then run Phase 1 (Polars -> JSON) and Phase 2 (QA) at the same
time on the same datasets, keep data/raw bounded, and report exactly what happened."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.states import Failed, State
from prefect.task_runners import ConcurrentTaskRunner
from pydantic import AfterValidator, Field

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.common import checked_parameters, config_error_as_failed_state, in_flow_threads, land_objects, plain
from flows.naming import current_run_id, flow_run_namer
from flows.object_parallel_flow import object_parallel_flow, rowcount_histories
from flows.run_artifacts import (
    FILES_KEY,
    QA_SUMMARY_KEY,
    RUN_SUMMARY_KEY,
    compact_summary_rows,
    files_markdown,
    publish_markdown,
    publish_table,
    qa_markdown,
)
from flows.run_summary import BranchOutcome, RunSummary, build_run_summary
from flows.sf_csv_polars_json_flow import sf_csv_polars_json_flow
from reporting import write_run_report
from tasks.extract_plan import ExtractPlanItem, api_choice, resolve_extract_plan
from utils import storage
from utils.atomic import write_text_atomic
from utils.errors import PipelineError
from utils.housekeeping import apply_retention, ensure_data_root, sweep_temp_files
from utils.logs import kv
from utils.paths import build_run_summary_path, display_path, resolve_data_root
from utils.source import pipeline_source
from utils.timefmt import now_utc_seconds


class PipelineRunError(PipelineError):
    """Some objects or checks failed; ``summary`` holds the whole run summary."""


def _not_empty(objects: list[str] | None) -> list[str] | None:
    if objects is not None and not objects:
        msg = "objects is an empty list; pass None for every registry object"
        raise ValueError(msg)
    return objects


def run_branches(datasets: dict[str, str], run_id: str, data_root: str | None,
                 fail_on_qa_error: bool) -> tuple[BranchOutcome, BranchOutcome]:
    """Phase 1 and QA as two subflows at the same time, each called from a thread carrying this flow's context
    (prefect2-notes §1 C2): each shows once in the graph, under this run, with its own logs on its own page.
    The datasets are what the landings returned, so the graph draws each branch after every landing; the run id
    and data root are quoted (``plain``), so they draw nothing."""
    def phase1() -> BranchOutcome:
        return BranchOutcome.from_state(sf_csv_polars_json_flow(
            raw_files=datasets, run_id=plain(run_id), data_root=plain(data_root), return_state=True))

    def qa() -> BranchOutcome:
        return BranchOutcome.from_state(object_parallel_flow(
            raw_files=datasets, fail_on_qa_error=fail_on_qa_error, run_id=plain(run_id),
            data_root=plain(data_root), return_state=True))

    etl, checked = in_flow_threads([phase1, qa], max_workers=2, name="branch")
    return etl, checked


def _log_table(logger, summary: RunSummary) -> None:
    for row in summary.objects:
        logger.info(kv("object_summary", run_id=summary.run_id, object=row.object, status=row.status, rows=row.rows,
                       api=row.api, extract_seconds=row.extract_s, qa=row.qa, error=row.error))


def _write_report(summary: RunSummary, qa: BranchOutcome, data_root: str | None, keep_count: int | None,
                  max_age_days: float | None) -> Path | None:
    """The run's HTML QA report (reports/, kept like raw extracts); a view of the run, so it never fails it."""
    try:
        return write_run_report(summary, qa.result, data_root=data_root, keep_count=keep_count,
                                max_age_days=max_age_days).report
    except Exception as err:  # noqa: BLE001 - advisory by design: reporting must not change the run's outcome
        get_run_logger().warning(kv("report_failed", run_id=summary.run_id, error=f"{type(err).__name__}: {err}"))
        return None


def _publish(summary: RunSummary, qa: BranchOutcome, data_root: str | None, report: Path | None) -> None:
    """The run's JSON summary under ``runs/``, then its artifacts on this flow run: the compact run summary, the
    QA checks, and where the files are."""
    root = resolve_data_root(data_root)
    summary_file = build_run_summary_path(summary.started_at, summary.run_id, data_root=data_root)
    storage.wait_for_uploads()  # the run record commits the run: every file of it is in the store first
    write_text_atomic(summary_file, json.dumps(summary.as_dict(), indent=2, default=str) + "\n")
    publish_table(RUN_SUMMARY_KEY, compact_summary_rows(summary),
                  f"run {summary.run_id} on {summary.source['kind']}: rows, changes, QA and seconds per object")
    qa_objects = qa.part("objects")
    if qa_objects:
        publish_markdown(QA_SUMMARY_KEY, qa_markdown({"objects": qa_objects},
                                                     history=rowcount_histories(qa_objects, str(root)),
                                                     report=display_path(report, root) if report else None),
                         f"QA checks of run {summary.run_id}")
    qa_files = {name: entry.get("files", []) for name, entry in qa_objects.items()}
    publish_markdown(FILES_KEY, files_markdown(summary, root, run_summary_file=summary_file, qa_files=qa_files,
                                               report=report),
                     f"files written by run {summary.run_id}")


def run_objects(plan: list[ExtractPlanItem], run_id: str, *, max_concurrent: int, full_refresh: bool,
                api: str | None, drop_missing_fields: bool, fail_on_qa_error: bool, raw_retention_count: int | None,
                raw_retention_days: float | None, data_root: str | None,
                credentials_block: str | None) -> tuple[RunSummary, BranchOutcome]:
    """Land the planned objects, run Phase 1 and QA at the same time on what landed, keep raw/ bounded: the
    run's summary and its QA branch (the orchestrator's body; ``sf-etl-object``'s for its one object)."""
    logger = get_run_logger()
    started_at = now_utc_seconds()
    started = time.monotonic()
    ensure_data_root(data_root)
    sweep_temp_files(data_root, run_id, logger)
    with pipeline_source(logger, credentials_block=credentials_block) as source:
        logger.info(kv("run_start", run_id=run_id, source=source.kind, objects=",".join(i.object_name for i in plan)))
        extracts = land_objects(plan, run_id, max_concurrent=max_concurrent, full_refresh=full_refresh,
                                data_root=data_root, api=api_choice(api), drop_missing_fields=drop_missing_fields)
    landed = {n: o.value for n, o in extracts.items() if o.ok and o.value is not None}
    datasets = {n: v.dataset for n, v in landed.items()}
    if datasets:
        etl, qa = run_branches(datasets, run_id, data_root, fail_on_qa_error)
    else:
        etl = qa = BranchOutcome(False, error="no object was extracted")
    keep = {n: raw_retention_count or SALESFORCE_OBJECTS[n].raw_retention_count for n in extracts}
    apply_retention({n: landed[n].raw_csv if n in landed else None for n in extracts}, keep_counts=keep,
                    max_age_days=raw_retention_days, data_root=data_root, run_id=run_id, logger=logger)
    summary = build_run_summary(run_id, {"kind": source.kind, "instance_url": source.instance_url,
                                         "auth_flow": source.auth_flow},
                                extracts, etl, qa, started_at, time.monotonic() - started)
    return summary, qa


def finish_run(summary: RunSummary, qa: BranchOutcome, data_root: str | None, raw_retention_count: int | None,
               raw_retention_days: float | None) -> dict[str, Any] | State:
    """Log the run's table, write its HTML report, JSON summary and artifacts; then the flow's final value."""
    _log_table(get_run_logger(), summary)
    report = _write_report(summary, qa, data_root, raw_retention_count, raw_retention_days)
    _publish(summary, qa, data_root, report)
    return run_result(summary, qa)


def run_result(summary: RunSummary, qa: BranchOutcome) -> dict[str, Any] | State:
    """The run summary, or a Failed state (carrying it) when an object or the QA branch failed."""
    failed = summary.failed_objects
    if failed or not qa.ok:
        reasons = [f"object(s) failed: {', '.join(failed)}"] if failed else []
        if not qa.ok:
            reasons.append(f"QA: {qa.error}")
        message = "; ".join(reasons)
        return Failed(message=message, data=PipelineRunError(message, summary.as_dict()))
    return summary.as_dict()


@flow(name="sf-etl-orchestrator", flow_run_name=flow_run_namer("sf-etl"), task_runner=ConcurrentTaskRunner(),
      validate_parameters=False)
@config_error_as_failed_state
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
    credentials_block: str | None = None,  # a Prefect Secret block's name (utils/settings.py); else .env / env
) -> dict[str, Any] | State:
    """Land each object once, then Phase 1 and Phase 2 concurrently; returns the run summary (fails if anything
    failed)."""
    plan = resolve_extract_plan(objects, soql, api=api, strict_qa=fail_on_qa_error)
    summary, qa = run_objects(plan, current_run_id(), max_concurrent=max_concurrent_extracts,
                              full_refresh=full_refresh, api=api, drop_missing_fields=drop_missing_fields,
                              fail_on_qa_error=fail_on_qa_error, raw_retention_count=raw_retention_count,
                              raw_retention_days=raw_retention_days, data_root=data_root,
                              credentials_block=credentials_block)
    return finish_run(summary, qa, data_root, raw_retention_count, raw_retention_days)
