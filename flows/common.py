"""Small pieces the flows share: per-object outcome records, failure summaries and stale-output removal."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect.states import State

from utils.errors import PipelineError


def one_line(err: object) -> str:
    """An error message on one line (lines joined with '; ', or a space after a line ending in ':')."""
    text = ""
    for part in (line.strip(" -") for line in str(err).splitlines() if line.strip(" -")):
        text += part if not text else (" " if text.endswith(":") else "; ") + part
    return text or type(err).__name__


@dataclass
class StepOutcome:
    """What happened to one object in one step (extract, process, load, qa)."""

    object_name: str
    step: str
    ok: bool
    seconds: float
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    removed_stale: tuple[str, ...] = ()  # outputs a failed step could not rewrite, deleted so none looks current

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome_of(object_name: str, step: str, run: Callable[[], State]) -> StepOutcome:
    """Run a task with ``return_state=True`` and turn its final state into a StepOutcome (never raises)."""
    started = time.monotonic()
    state = run()
    return outcome_from_state(object_name, step, state, time.monotonic() - started)


def error_line(err: BaseException) -> str:
    """One line for a run summary; an unexpected exception (not one of ours, which say what to do) is named,
    since ``[Errno 28] No space left on device`` alone does not say what broke."""
    return one_line(err) if isinstance(err, PipelineError) else f"{type(err).__name__}: {one_line(err)}"


def outcome_from_state(object_name: str, step: str, state: State, seconds: float) -> StepOutcome:
    """A task's final state as a StepOutcome: its value, or its error on one line."""
    if state.is_completed():
        return StepOutcome(object_name, step, True, seconds, value=state.result())
    err = state.result(raise_on_failure=False)
    message = error_line(err) if isinstance(err, BaseException) else (state.message or state.name)
    return StepOutcome(object_name, step, False, seconds, error=message,
                       error_type=type(err).__name__ if isinstance(err, BaseException) else state.type.value)


def remove_files(paths: Iterable[Path]) -> list[Path]:
    """Delete the regular files among ``paths`` (an output a failed step did not rewrite); returns those removed.

    Anything else at such a path (a directory, say) is not an output we wrote and is left alone.
    """
    removed = []
    for path in paths:
        if path.is_file():
            with contextlib.suppress(FileNotFoundError):  # an overlapping run removed it first
                path.unlink()
                removed.append(path)
    return removed


def uses_incremental_sync(item, full_refresh: bool) -> bool:
    """Registry objects sync incrementally unless set to full or queried with custom SOQL."""
    from configs.salesforce_objects import SALESFORCE_OBJECTS

    return SALESFORCE_OBJECTS[item.object_name].effective_sync_mode == "incremental" and not item.custom_soql


def landing_task(item, run_id: str, *, full_refresh: bool, data_root: str | None, api: str | None,
                 drop_missing_fields: bool) -> tuple[Any, tuple, dict[str, Any]]:
    """The task that lands one planned object (incremental sync or full extract) with its arguments.

    Callers run it as they need: ``task(*args, **kwargs, return_state=True)`` or ``task.submit(*args, **kwargs)``.
    """
    from tasks.extract import extract_salesforce_to_csv
    from tasks.sync import sync_salesforce_object

    if uses_incremental_sync(item, full_refresh):
        return sync_salesforce_object, (item.object_name, run_id), {
            "full_refresh": full_refresh, "data_root": data_root, "api": api,
            "drop_missing_fields": drop_missing_fields}
    return extract_salesforce_to_csv, (item, run_id), {"data_root": data_root,
                                                       "drop_missing_fields": drop_missing_fields}


def dataset_of(extract_value: dict[str, Any]) -> str:
    """The file Phase 1 and 2 read: the replica after an incremental sync, else the raw extract."""
    return extract_value.get("dataset") or extract_value["raw_csv"]
