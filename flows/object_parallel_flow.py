"""Phase 2 QA flow: gates, then every quality task of every object at once on the ConcurrentTaskRunner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture
from prefect.task_runners import ConcurrentTaskRunner

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.common import error_line, one_line, remove_files
from tasks.quality_checks import crashed_result, not_run_result
from tasks.quality_parallel import (
    QaReport,
    qa_completeness,
    qa_dedup,
    qa_gate,
    qa_profile,
    qa_rowcount,
    qa_validator,
)
from utils.errors import ConfigError, DataQualityError, PipelineError, QaTaskError
from utils.paths import QcPaths, build_qc_paths, resolve_data_root
from utils.raw_files import find_latest_dataset

ARTIFACT_KEY = "qa-summary"


def resolve_targets(
    raw_files: Mapping[str, str] | None, objects: Iterable[str] | None, data_root: str
) -> dict[str, str | None]:
    """Object -> raw CSV to check: the given path, else the newest on disk, else None (reported as skipped)."""
    names = list(objects) if objects is not None else list(raw_files or SALESFORCE_OBJECTS)
    unknown = [n for n in names if n not in SALESFORCE_OBJECTS]
    if unknown:
        msg = (f"QA asked for objects not in configs/salesforce_objects.py: {', '.join(unknown)}; "
               f"use one of {', '.join(SALESFORCE_OBJECTS)}")
        raise ConfigError(msg)
    given = dict(raw_files or {})
    targets: dict[str, str | None] = {}
    for name in names:
        latest = None if given.get(name) else find_latest_dataset(name, data_root)
        targets[name] = given.get(name) or (str(latest) if latest else None)
    return targets


def submit_object_checks(object_name: str, raw_csv: str | None, run_id: str | None, data_root: str) -> list:
    """Gate first (it also writes the Parquet snapshot the others read); the rest wait on it and run side by side."""
    gate = qa_gate.submit(object_name, raw_csv, data_root)
    futures: list[PrefectFuture] = [
        gate,
        qa_completeness.submit(object_name, gate),
        qa_dedup.submit(object_name, gate, data_root),
        qa_profile.submit(object_name, gate, data_root),
        qa_rowcount.submit(object_name, gate, run_id, data_root),
    ]
    futures += [qa_validator.submit(object_name, v, gate) for v in SALESFORCE_OBJECTS[object_name].validators]
    return futures


def _task_run_name(future: PrefectFuture) -> str:
    """The rendered run name (``qa-dedup-Account``); the future only knows the provisional one."""
    try:
        with get_client(sync_client=True) as client:
            return client.read_task_run(future.task_run.id).name
    except Exception:  # only used to word an error message; the provisional name will do
        return future.name


def _report_of(object_name: str, future: PrefectFuture) -> QaReport:
    """A task's report; a task that raised becomes a crash result instead of a lost one (and a task that never
    ran because the gate raised, a skipped one)."""
    state = future.wait()
    if state.is_completed():
        value = state.result()
        return getattr(value, "report", value)  # a gate carries its report inside its outcome
    if not state.is_final():  # NotReady: a task it waits on raised, so this one never started
        return QaReport((not_run_result(object_name, _task_run_name(future), one_line(state.message or state.name)),))
    error = state.result(raise_on_failure=False)
    reason = error_line(error) if isinstance(error, BaseException) else one_line(state.message or state.name)
    return QaReport((crashed_result(object_name, _task_run_name(future), reason),))


def remove_stale_outputs(dataset: str | None, object_reports: list[QaReport], qc: QcPaths) -> list[str]:
    """Delete the object's QA outputs that QA of ``dataset`` did not rewrite (a crashed, skipped or blocked
    task), so no reader takes an earlier run's dedup.csv, profile or snapshot for this run's."""
    if dataset is None:  # nothing was checked: the files still describe the dataset they name
        return []
    written = {f for rep in object_reports for f in rep.files}
    return [str(p) for p in remove_files(p for p in qc.rewritable if str(p) not in written)]


def summarise(run_id: str | None, raw_csvs: Mapping[str, str | None], reports: Mapping[str, list[QaReport]],
              removed: Mapping[str, list[str]] | None = None) -> dict:
    """The flow's plain JSON-able return value; ``crashed`` fails QA in every mode, ``blocking_failures`` only
    in strict mode."""
    objects: dict[str, Any] = {}
    failing: list[str] = []
    crashed: list[str] = []
    for name, object_reports in reports.items():
        results = [r for rep in object_reports for r in rep.results]
        failing += [f"{r.object_name}.{r.check}: {r.message}" for r in results if r.is_blocking and not r.is_crash]
        crashed += [r.message for r in results if r.is_crash]
        objects[name] = {
            "raw_csv": raw_csvs.get(name),
            "errors": sum(r.is_blocking for r in results),
            "warnings": sum(not r.passed and not r.skipped and r.severity == "warning" for r in results),
            "skipped": sum(r.skipped for r in results),
            "crashed": [r.message for r in results if r.is_crash],
            "results": [r.to_dict() for r in results],
            "files": sorted({f for rep in object_reports for f in rep.files}),
            "removed_stale": list((removed or {}).get(name, [])),
        }
    return {"run_id": run_id, "objects": objects, "blocking_failures": failing, "crashed": crashed}


def qa_failure(summary: Mapping[str, Any], *, strict: bool) -> PipelineError | None:
    """The error that fails the QA flow, if any: a crashed task always, an error-severity result in strict mode."""
    failing = list(summary["blocking_failures"]) if strict else []
    if summary["crashed"]:
        msg = "QA task(s) crashed, their reports are missing:\n  - " + "\n  - ".join(summary["crashed"] + failing)
        return QaTaskError(msg, dict(summary))
    if failing:
        msg = "QA failed in strict mode:\n  - " + "\n  - ".join(failing)
        return DataQualityError(msg, dict(summary))
    return None


def _status(result: Mapping[str, Any]) -> str:
    if result["skipped"]:
        return "skipped"
    return "pass" if result["passed"] else f"FAIL ({result['severity']})"


def render_markdown(summary: Mapping[str, Any]) -> str:
    """One table row per object and check."""
    lines = ["# QA summary", "", "| object | check | status | observed | message |", "|---|---|---|---|---|"]
    for name, entry in summary["objects"].items():
        for r in entry["results"]:
            cells = [name, r["check"], _status(r), str(r["observed"] if r["observed"] is not None else ""),
                     r["message"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def log_summary(summary: Mapping[str, Any]) -> None:
    logger = get_run_logger()
    for name, entry in summary["objects"].items():
        statuses = [_status(r) for r in entry["results"]]
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        logger.info("QA %s: %s", name, ", ".join(f"{n} {s}" for s, n in counts.items()))
        if entry["removed_stale"]:
            logger.warning("QA %s: removed %s, not rewritten by this run", name, ", ".join(entry["removed_stale"]))


def publish_artifact(summary: Mapping[str, Any]) -> None:
    """The markdown artifact; a failure here is logged and never fails QA."""
    try:
        create_markdown_artifact(render_markdown(summary), key=ARTIFACT_KEY, description="QA checks per object")
    except Exception as err:  # advisory by design: reporting must not change the QA outcome
        get_run_logger().warning("QA summary artifact not created: %s", err)


@flow(name="object-parallel-qa", task_runner=ConcurrentTaskRunner())
def object_parallel_flow(
    raw_files: dict[str, str] | None = None,
    objects: list[str] | None = None,
    fail_on_qa_error: bool = False,
    run_id: str | None = None,
    data_root: str | None = None,
) -> dict:
    """QA every object's dataset; raises after all reports if a task crashed, or (``fail_on_qa_error``) if an
    error-severity check failed."""
    root = str(resolve_data_root(data_root))
    targets = resolve_targets(raw_files, objects, root)
    futures = {name: submit_object_checks(name, raw, run_id, root) for name, raw in targets.items()}
    reports = {name: [_report_of(name, f) for f in futs] for name, futs in futures.items()}
    removed = {name: remove_stale_outputs(targets[name], reports[name], build_qc_paths(name, data_root=root))
               for name in reports}
    summary = summarise(run_id, {n: str(Path(p)) if p else None for n, p in targets.items()}, reports, removed)
    log_summary(summary)
    publish_artifact(summary)
    failure = qa_failure(summary, strict=fail_on_qa_error)
    if failure is not None:
        raise failure
    return summary
