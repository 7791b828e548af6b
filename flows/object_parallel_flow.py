"""Phase 2 QA flow: gates, then every quality task of every object at once on the ConcurrentTaskRunner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture
from prefect.task_runners import ConcurrentTaskRunner

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.common import error_line, one_line, remove_files
from tasks.quality_checks import CheckResult, crashed_result, not_run_result
from tasks.quality_parallel import (
    GateOutcome,
    QaReport,
    qa_completeness,
    qa_dedup,
    qa_gate,
    qa_profile,
    qa_rowcount,
    qa_validator,
)
from utils.errors import ConfigError, DataQualityError, PipelineError, QaTaskError
from utils.paths import QaPaths, build_qa_paths, resolve_data_root
from utils.prefect_sync import blocking
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
        incremental = SALESFORCE_OBJECTS[name].effective_sync_mode == "incremental"
        latest = None if given.get(name) else find_latest_dataset(name, data_root, incremental=incremental)
        targets[name] = given.get(name) or (str(latest) if latest else None)
    return targets


def submit_object_checks(object_name: str, raw_csv: str | None, run_id: str | None, data_root: str) -> list:
    """Gate first (it also writes the Parquet snapshot the others read); the rest wait on it and run side by side."""
    gate_future = qa_gate.submit(object_name, raw_csv, data_root)
    # Prefect hands each check the gate's value and starts it once the gate is done (the future is the argument)
    gate = cast(GateOutcome, gate_future)
    futures: list[PrefectFuture] = [
        gate_future,
        qa_completeness.submit(object_name, gate),
        qa_dedup.submit(object_name, gate, data_root),
        qa_profile.submit(object_name, gate, data_root),
        qa_rowcount.submit(object_name, gate, run_id, data_root),
    ]
    futures += [qa_validator.submit(object_name, v, gate) for v in SALESFORCE_OBJECTS[object_name].validators]
    return futures


def _task_run_name(future: PrefectFuture) -> str:
    """The rendered run name (``qa-dedup-Account``); the future only knows the provisional one."""
    if future.task_run is None:
        return future.name
    try:
        with get_client(sync_client=True) as client:
            return client.read_task_run(future.task_run.id).name
    except Exception:  # noqa: BLE001 - only used to word an error message; the provisional name will do
        return future.name


def _report_of(object_name: str, future: PrefectFuture) -> QaReport:
    """A task's report; a task that raised becomes a crash result instead of a lost one (and a task that never
    ran because the gate raised, a skipped one)."""
    state = blocking(future.wait())
    if state.is_completed():
        value = state.result()
        return getattr(value, "report", value)  # a gate carries its report inside its outcome
    name = _task_run_name(future)
    if not state.is_final():  # NotReady: a task it waits on raised, so this one never started
        return QaReport((not_run_result(object_name, name, one_line(state.message or state.name)),))
    error = state.result(raise_on_failure=False)
    reason = error_line(error) if isinstance(error, BaseException) else one_line(state.message or state.name)
    return QaReport((crashed_result(object_name, name, reason),))


@dataclass(frozen=True)
class ObjectQa:
    """One object's QA in this run: the dataset checked, each task's report, and the stale outputs removed."""

    dataset: str | None
    reports: tuple[QaReport, ...]
    removed_stale: tuple[str, ...] = ()

    @property
    def results(self) -> list[CheckResult]:
        return [r for rep in self.reports for r in rep.results]

    @property
    def files(self) -> list[str]:
        return sorted({f for rep in self.reports for f in rep.files})

    @property
    def crashed(self) -> list[str]:
        return [r.message for r in self.results if r.is_crash]

    def to_dict(self) -> dict[str, Any]:
        """The object's entry in the flow's JSON return value."""
        results = self.results
        return {
            "raw_csv": self.dataset,
            "errors": sum(r.is_blocking for r in results),
            "warnings": sum(not r.passed and not r.skipped and r.severity == "warning" for r in results),
            "skipped": sum(r.skipped for r in results),
            "crashed": self.crashed,
            "results": [r.to_dict() for r in results],
            "files": self.files,
            "removed_stale": list(self.removed_stale),
        }


def remove_stale_outputs(dataset: str | None, reports: Iterable[QaReport], qc: QaPaths) -> tuple[str, ...]:
    """Delete the object's QA outputs that QA of ``dataset`` did not rewrite (a crashed, skipped or blocked
    task), so no reader takes an earlier run's dedup.csv, profile or snapshot for this run's."""
    if dataset is None:  # nothing was checked: the files still describe the dataset they name
        return ()
    written = {f for rep in reports for f in rep.files}
    return tuple(str(p) for p in remove_files(p for p in qc.rewritable if str(p) not in written))


def collect_object_qa(object_name: str, dataset: str | None, futures: list[PrefectFuture], data_root: str) -> ObjectQa:
    """Wait for every QA task of one object, then remove the outputs they left stale."""
    reports = tuple(_report_of(object_name, f) for f in futures)
    removed = remove_stale_outputs(dataset, reports, build_qa_paths(object_name, data_root=data_root))
    return ObjectQa(str(Path(dataset)) if dataset else None, reports, removed)


def summarise(run_id: str | None, checked: Mapping[str, ObjectQa]) -> dict:
    """The flow's plain JSON-able return value; ``crashed`` fails QA in every mode, ``blocking_failures`` only
    in strict mode."""
    results = [r for qa in checked.values() for r in qa.results]
    return {
        "run_id": run_id,
        "objects": {name: qa.to_dict() for name, qa in checked.items()},
        "blocking_failures": [f"{r.object_name}.{r.check}: {r.message}" for r in results
                              if r.is_blocking and not r.is_crash],
        "crashed": [r.message for r in results if r.is_crash],
    }


def qa_failure_message(crashed: Sequence[str], failing: Sequence[str]) -> str:
    """Crashed tasks and data findings, each under its own heading (one item a line)."""
    sections = [(heading, items) for heading, items in (
        ("QA task(s) crashed, their reports are missing", crashed),
        ("QA failed in strict mode", failing)) if items]
    return "\n".join(f"{heading}:\n  - " + "\n  - ".join(items) for heading, items in sections)


def qa_failure(summary: Mapping[str, Any], *, strict: bool) -> PipelineError | None:
    """The error that fails the QA flow, if any: a crashed task always, an error-severity result in strict mode."""
    crashed = list(summary["crashed"])
    failing = list(summary["blocking_failures"]) if strict else []
    if not crashed and not failing:
        return None
    error = QaTaskError if crashed else DataQualityError
    return error(qa_failure_message(crashed, failing), dict(summary))


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
        blocking(create_markdown_artifact(render_markdown(summary), key=ARTIFACT_KEY,
                                          description="QA checks per object"))
    except Exception as err:  # noqa: BLE001 - advisory by design: reporting must not change the QA outcome
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
    checked = {name: collect_object_qa(name, targets[name], futs, root) for name, futs in futures.items()}
    summary = summarise(run_id, checked)
    log_summary(summary)
    publish_artifact(summary)
    failure = qa_failure(summary, strict=fail_on_qa_error)
    if failure is not None:
        raise failure
    return summary
