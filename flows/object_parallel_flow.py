"""Phase 2 QA flow: gates, then every quality task of every object at once on the ConcurrentTaskRunner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import ConcurrentTaskRunner

from configs.salesforce_objects import SALESFORCE_OBJECTS
from flows.common import config_error_as_failed_state, error_line, one_line, plain, remove_files
from flows.naming import flow_run_namer, for_object
from flows.run_artifacts import QA_SUMMARY_KEY, check_status, publish_markdown, qa_markdown
from tasks.quality_checks import CheckResult, crashed_result, not_run_result, validator_check_name
from tasks.quality_parallel import (
    GateOutcome,
    QaReport,
    qa_completeness,
    qa_dedup,
    qa_gate,
    qa_profile,
    qa_rowcount,
    qa_validator,
    read_rowcount_counts,
)
from utils.errors import ConfigError, DataQualityError, PipelineError, QaTaskError
from utils.paths import QaPaths, build_qa_paths, resolve_data_root
from utils.prefect_sync import blocking
from utils.progress import report_progress
from utils.raw_files import find_latest_dataset


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


@dataclass(frozen=True)
class SubmittedQa:
    """One object's QA tasks in flight: the dataset they check, their futures (the gate first), and when."""

    dataset: str | None
    futures: list[PrefectFuture]
    submitted_at: datetime


def submit_object_checks(object_name: str, raw_csv: str | None, run_id: str | None, data_root: str) -> SubmittedQa:
    """Gate first (it also writes the Parquet snapshot the others read); the rest wait on it and run side by side.

    Each task is named ``qa-<check>-<object>`` from its creation on; plain values are passed quoted (``plain``)
    so that only the gate is drawn as their upstream."""
    submitted_at = datetime.now(timezone.utc)
    report_progress(object_name, "qa")
    gate_future = for_object(qa_gate, "qa-gate", object_name).submit(
        plain(object_name), plain(raw_csv), plain(data_root))
    # Prefect hands each check the gate's value and starts it once the gate is done (the future is the argument)
    gate = cast(GateOutcome, gate_future)
    name, root = plain(object_name), plain(data_root)
    futures: list[PrefectFuture] = [
        gate_future,
        for_object(qa_completeness, "qa-completeness", object_name).submit(name, gate),
        for_object(qa_dedup, "qa-dedup", object_name).submit(name, gate, root),
        for_object(qa_profile, "qa-profile", object_name).submit(name, gate, root),
        for_object(qa_rowcount, "qa-rowcount", object_name).submit(name, gate, plain(run_id), root),
    ]
    futures += [for_object(qa_validator, f"qa-{validator_check_name(v)}", object_name).submit(
        name, plain(v), gate) for v in SALESFORCE_OBJECTS[object_name].validators]
    return SubmittedQa(raw_csv, futures, submitted_at)


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
    seconds: float | None = None  # from submitting its gate to its last task ending

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
            "seconds": self.seconds,
        }


def remove_stale_outputs(dataset: str | None, reports: Iterable[QaReport], qc: QaPaths) -> tuple[str, ...]:
    """Delete the object's QA outputs that QA of ``dataset`` did not rewrite (a crashed, skipped or blocked
    task), so no reader takes an earlier run's dedup.csv, profile or snapshot for this run's."""
    if dataset is None:  # nothing was checked: the files still describe the dataset they name
        return ()
    written = {f for rep in reports for f in rep.files}
    return tuple(str(p) for p in remove_files(p for p in qc.rewritable if str(p) not in written))


def collect_object_qa(object_name: str, submitted: SubmittedQa, data_root: str) -> ObjectQa:
    """Wait for every QA task of one object, then remove the outputs they left stale."""
    reports = tuple(_report_of(object_name, f) for f in submitted.futures)
    states: list[State] = [blocking(f.wait()) for f in submitted.futures]  # final by now: no waiting
    dataset = submitted.dataset
    removed = remove_stale_outputs(dataset, reports, build_qa_paths(object_name, data_root=data_root))
    ended = [s.timestamp for s in states if s.is_final()]
    seconds = round((max(ended) - submitted.submitted_at).total_seconds(), 2) if ended else None
    checked = ObjectQa(str(Path(dataset)) if dataset else None, reports, removed, seconds)
    report_progress(object_name, "qa", status="failed" if checked.crashed else "done",
                    note=checked.crashed[0] if checked.crashed else None)
    return checked


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


def log_summary(summary: Mapping[str, Any]) -> None:
    logger = get_run_logger()
    for name, entry in summary["objects"].items():
        statuses = [check_status(r) for r in entry["results"]]
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        logger.info("QA %s: %s", name, ", ".join(f"{n} {s}" for s, n in counts.items()))
        if entry["removed_stale"]:
            logger.warning("QA %s: removed %s, not rewritten by this run", name, ", ".join(entry["removed_stale"]))


def rowcount_histories(object_names: Iterable[str], data_root: str) -> dict[str, list[int]]:
    """Each object's recorded row counts, oldest first (empty when its history is missing or unreadable)."""
    return {name: read_rowcount_counts(build_qa_paths(name, data_root=data_root).rowcount) for name in object_names}


@flow(name="object-parallel-qa", flow_run_name=flow_run_namer("qa"), task_runner=ConcurrentTaskRunner())
@config_error_as_failed_state
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
    submitted = {name: submit_object_checks(name, raw, run_id, root) for name, raw in targets.items()}
    checked = {name: collect_object_qa(name, qa, root) for name, qa in submitted.items()}
    summary = summarise(run_id, checked)
    log_summary(summary)
    if not flow_run.parent_flow_run_id:  # under the orchestrator, it publishes QA with the run's other artifacts
        publish_markdown(QA_SUMMARY_KEY, qa_markdown(summary, history=rowcount_histories(checked, root)),
                         "QA checks per object")
    failure = qa_failure(summary, strict=fail_on_qa_error)
    if failure is not None:
        raise failure
    return summary
