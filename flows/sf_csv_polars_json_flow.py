"""Phase 1: Extract -> Process (Polars) -> Load (JSON), object after object, driven by the registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import SequentialTaskRunner

from configs.salesforce_objects import SALESFORCE_OBJECTS, ApiChoice
from flows.common import StepOutcome, config_error_as_failed_state, land_objects, outcome_of, remove_files
from flows.naming import current_run_id, flow_run_namer, for_object
from tasks.extract_plan import ExtractPlanItem, api_choice, resolve_extract_plan
from tasks.land import LandingResult
from tasks.load import load_csv_to_json
from tasks.process import process_object_data
from utils.errors import ConfigError, PipelineError
from utils.housekeeping import apply_retention, ensure_data_root, sweep_temp_files
from utils.logs import kv
from utils.paths import build_summary_paths
from utils.progress import report_progress
from utils.source import pipeline_source


class Phase1Error(PipelineError):
    """One or more objects failed in Phase 1; the message lists them."""


def _process_and_load(object_name: str, dataset: str, data_root: str | None) -> list[StepOutcome]:
    paths = build_summary_paths(object_name, data_root=data_root)
    processed = outcome_of(object_name, "process", lambda: for_object(process_object_data, "process", object_name)(
        object_name, dataset, data_root=data_root, return_state=True))
    if not processed.ok:
        return [_with_stale_removed(processed, paths.process_outputs + paths.load_outputs)]
    loaded = outcome_of(object_name, "load", lambda: for_object(load_csv_to_json, "load", object_name)(
        object_name, processed.value, data_root=data_root, return_state=True))
    return [processed, loaded if loaded.ok else _with_stale_removed(loaded, paths.load_outputs)]


def _with_stale_removed(failed: StepOutcome, outputs: tuple[Path, ...]) -> StepOutcome:
    return replace(failed, removed_stale=tuple(str(p) for p in remove_files(outputs)))


def process_and_load(object_name: str, dataset: str, data_root: str | None) -> list[StepOutcome]:
    """Process then load one object; a processing failure skips its load.

    A failed step removes the outputs it (and the load after it) would have rewritten, listed in its
    ``removed_stale``: the previous run's summary must never be taken for a summary of this dataset.
    """
    report_progress(object_name, "phase1")
    steps = _process_and_load(object_name, dataset, data_root)
    failed = [s for s in steps if not s.ok]
    report_progress(object_name, "phase1", status="failed" if failed else "done",
                    note=f"{failed[0].step}: {failed[0].error}" if failed else None)
    return steps


def run_phase1(datasets: dict[str, str], data_root: str | None, run_id: str) -> dict[str, list[StepOutcome]]:
    """Process + load every given dataset, sequentially (the Phase 1 branch of the orchestrator). Each task logs
    what it wrote on its own page; a failed step is also logged here, with the stale outputs it removed."""
    logger = get_run_logger()
    results: dict[str, list[StepOutcome]] = {}
    for object_name, dataset in datasets.items():
        results[object_name] = process_and_load(object_name, dataset, data_root)
        for step in results[object_name]:
            if not step.ok:
                logger.error(kv(f"{step.step}_failed", run_id=run_id, object=object_name,
                                seconds=round(step.seconds, 3), error=step.error,
                                removed_stale=",".join(step.removed_stale) or None))
    return results


def land_one_at_a_time(
    plan: list[ExtractPlanItem], *, run_id: str, data_root: str | None, api: ApiChoice | None,
    drop_missing_fields: bool, full_refresh: bool, credentials_block: str | None = None,
) -> tuple[dict[str, list[StepOutcome]], dict[str, str]]:
    """Land (sync or extract) each planned object in turn; returns the outcomes and object -> dataset to process."""
    logger = get_run_logger()
    ensure_data_root(data_root)
    sweep_temp_files(data_root, run_id, logger)
    with pipeline_source(logger, credentials_block=credentials_block):
        landed = land_objects(plan, run_id, max_concurrent=1, full_refresh=full_refresh, data_root=data_root, api=api,
                              drop_missing_fields=drop_missing_fields)
    for step in landed.values():
        if not step.ok:
            logger.error(kv("extract_failed", run_id=run_id, object=step.object_name, error=step.error))
    extracted = {n: step.value for n, step in landed.items() if step.ok and step.value is not None}
    apply_retention({n: v.raw_csv for n, v in extracted.items()},
                    keep_counts={n: SALESFORCE_OBJECTS[n].raw_retention_count for n in extracted},
                    max_age_days=None, data_root=data_root, run_id=run_id, logger=logger)
    return {n: [step] for n, step in landed.items()}, {n: v.dataset for n, v in extracted.items()}


def _failures(results: dict[str, list[StepOutcome]]) -> list[str]:
    return [f"{s.object_name} ({s.step}: {s.error})" for steps in results.values() for s in steps if not s.ok]


def _checked_raw_files(raw_files: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(raw_files) - set(SALESFORCE_OBJECTS))
    if unknown:
        msg = f"raw_files names unknown object(s) {', '.join(unknown)}; use registry object names"
        raise ConfigError(msg)
    return dict(raw_files)


def _json_value(value: object) -> object:
    """A step's value as the flow returns it: a landing result as the extract task's dict, a path as is."""
    return value.as_dict() if isinstance(value, LandingResult) else value


def summarise_phase1(run_id: str, results: dict[str, list[StepOutcome]]) -> dict[str, Any]:
    """The flow's JSON-able return value: per object and step, the file written or the error, and the seconds."""
    return {
        "run_id": run_id,
        "objects": {name: {s.step: (_json_value(s.value) if s.ok else {"error": s.error}) for s in steps}
                    for name, steps in results.items()},
        "seconds": {name: {s.step: round(s.seconds, 3) for s in steps} for name, steps in results.items()},
    }


@flow(name="sf-csv-polars-json", flow_run_name=flow_run_namer("phase1"), task_runner=SequentialTaskRunner(),
      log_prints=True)
@config_error_as_failed_state
def sf_csv_polars_json_flow(
    objects: list[str] | None = None,
    soql: dict[str, str] | None = None,
    raw_files: dict[str, str] | None = None,
    api: str | None = None,
    drop_missing_fields: bool = False,
    full_refresh: bool = False,
    run_id: str | None = None,
    data_root: str | None = None,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """Phase 1 for the chosen objects (default: the whole registry).

    With ``raw_files`` (object -> dataset: raw CSV or replica) it starts from datasets that already exist, as
    the orchestrator does; otherwise it lands them first (incremental objects: delta + replica, see tasks/land.py),
    with the credentials of the Prefect Secret block ``credentials_block`` if named (else .env / the environment).
    Returns, per object, the files it wrote; fails at the end, after every object had its turn, if any object
    failed.
    """
    run_id = current_run_id(run_id)
    results: dict[str, list[StepOutcome]] = {}
    if raw_files:
        todo = _checked_raw_files(raw_files)
    else:
        plan = resolve_extract_plan(objects, soql, api=api)
        results, todo = land_one_at_a_time(plan, run_id=run_id, data_root=data_root, api=api_choice(api),
                                           drop_missing_fields=drop_missing_fields, full_refresh=full_refresh,
                                           credentials_block=credentials_block)
    for object_name, steps in run_phase1(todo, data_root, run_id).items():
        results.setdefault(object_name, []).extend(steps)
    summary = summarise_phase1(run_id, results)
    failures = _failures(results)
    if failures:
        msg = f"Phase 1 failed for {len(failures)} object step(s): " + "; ".join(failures)
        raise Phase1Error(msg, summary)
    return summary
