"""Small pieces the flows share: per-object outcome records, bounded landing, failure summaries and stale-output
removal."""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar, cast, get_type_hints

from prefect.states import Failed, State
from prefect.utilities.annotations import quote
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from configs.salesforce_objects import ApiChoice
from flows.naming import for_object
from tasks.extract_plan import ExtractPlanItem
from tasks.land import LandingResult, land_object, landing_step
from utils import storage
from utils.errors import ConfigError, PipelineError
from utils.progress import report_progress

V = TypeVar("V")
P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["StepOutcome", "checked_parameters", "config_error_as_failed_state", "error_line", "in_flow_threads",
           "land_objects", "one_line", "outcome_from_state", "outcome_of", "plain", "remove_files"]


def one_line(err: object) -> str:
    """An error message on one line (lines joined with '; ', or a space after a line ending in ':')."""
    text = ""
    for part in (line.strip(" -") for line in str(err).splitlines() if line.strip(" -")):
        text += part if not text else (" " if text.endswith(":") else "; ") + part
    return text or type(err).__name__


@dataclass
class StepOutcome(Generic[V]):
    """What happened to one object in one step (extract, process, load, qa); ``value`` is the step's result
    (a ``LandingResult`` for extract, the file written for process and load)."""

    object_name: str
    step: str
    ok: bool
    seconds: float
    value: V | None = None
    error: str | None = None
    error_type: str | None = None
    removed_stale: tuple[str, ...] = ()  # outputs a failed step could not rewrite, deleted so none looks current

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parameters_model(signature: inspect.Signature, fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters: their annotations (``Annotated`` constraints included) and defaults."""
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {n: (hints[n], p.default) for n, p in signature.parameters.items()}
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def checked_parameters(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Validate a flow's arguments against its own signature before its body runs, so each parameter is declared
    once; a bad value is a ConfigError "invalid <what> parameters: ...". Use under ``@flow(validate_parameters=False)``:
    Prefect would otherwise reject a constraint first, with its own error type."""
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        model = _parameters_model(signature, fn, f"{what.title()}Params")

        @functools.wraps(fn)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                params = model(**signature.bind(*args, **kwargs).arguments)
            except ValidationError as err:
                msg = f"invalid {what} parameters: {err}"
                raise ConfigError(msg) from None
            call = cast(Callable[..., R], fn)  # called by name with every parameter, validated
            return call(**{name: getattr(params, name) for name in model.model_fields})

        return checked
    return decorate


def config_error_as_failed_state(fn: Callable[P, R]) -> Callable[P, R | State]:
    """A flow body that stops on a ConfigError (a bad parameter, an unknown object) ends in a Failed state carrying
    the error, so the UI and the console show its one line instead of a traceback; calling the flow still raises
    it. On an object-store data root the flow returns once every file it published is in the store (a failed
    upload fails it). Use under ``@flow``."""
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | State:
        try:
            result = fn(*args, **kwargs)
        except ConfigError as err:
            return Failed(message=one_line(err), data=err)
        storage.wait_for_uploads()  # an object-store data root: the flow ends once its files are in the store
        return result

    return run


def outcome_of(object_name: str, step: str, run: Callable[[], State[V]]) -> StepOutcome[V]:
    """Run a task with ``return_state=True`` and turn its final state into a StepOutcome (never raises)."""
    started = time.monotonic()
    state = run()
    return outcome_from_state(object_name, step, state, time.monotonic() - started)


def error_line(err: BaseException) -> str:
    """One line for a run summary; an unexpected exception (not one of ours, which say what to do) is named,
    since ``[Errno 28] No space left on device`` alone does not say what broke."""
    return one_line(err) if isinstance(err, PipelineError) else f"{type(err).__name__}: {one_line(err)}"


def outcome_from_state(object_name: str, step: str, state: State[V], seconds: float) -> StepOutcome[V]:
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
        # on an object store it may be there while the scratch lacks it; False: an overlapping run removed it first
        if not path.is_dir() and storage.remove_file(path):
            removed.append(path)
    return removed


_quoted = cast(Callable[[object], object], quote)  # a namedtuple subclass: mypy cannot see its one field


def plain(value: V) -> V:
    """``value`` handed to a task as data only. Prefect 2 links every argument whose ``id()`` equals a part of an
    earlier task's result to that task, so the run id string inside one object's landing result drew the next
    object's landing as depending on it (a false arrow in the graph); a quoted argument is not inspected."""
    return cast(V, _quoted(value))


def land_objects(plan: Sequence[ExtractPlanItem], run_id: str, *, max_concurrent: int, full_refresh: bool,
                 data_root: str | None, api: ApiChoice | None,
                 drop_missing_fields: bool) -> dict[str, StepOutcome[LandingResult]]:
    """Land every planned object with ``land_object``, at most ``max_concurrent`` at a time; outcomes in plan order.

    The bound is a pool of ``max_concurrent`` threads, each submitting one landing task and waiting for its final
    state (retries included) before taking the next object, so a task run is only created once a slot is free.
    Each thread runs in a copy of the flow's context: Prefect needs it to attach the task run to this flow run
    (prefect2-notes §1 C1/C2). Not a Prefect tag concurrency limit: that is a row on the server shared by every
    run, and a task it blocks waits 30 s before asking again (§2).
    """
    def land(item: ExtractPlanItem) -> StepOutcome[LandingResult]:
        started = time.monotonic()
        named = for_object(land_object, landing_step(item), item.object_name)
        future = named.submit(plain(item), plain(run_id), full_refresh=full_refresh, data_root=plain(data_root),
                              api=api, drop_missing_fields=drop_missing_fields)
        outcome = outcome_from_state(item.object_name, "extract", future.wait(), time.monotonic() - started)
        if not outcome.ok:  # a step marks itself done; a failure is marked by whoever catches it
            report_progress(item.object_name, "extract", status="failed", note=outcome.error)
        return outcome

    outcomes = in_flow_threads([functools.partial(land, item) for item in plan], max_workers=max_concurrent,
                               name="land")
    return {item.object_name: outcome for item, outcome in zip(plan, outcomes, strict=True)}


def in_flow_threads(calls: Sequence[Callable[[], R]], *, max_workers: int, name: str) -> list[R]:
    """Run ``calls`` on at most ``max_workers`` threads and return their results in order. Each thread runs in a
    copy of the caller's context: Prefect needs it to attach a task or subflow run to this flow run (prefect2-notes
    §1 C1/C2: without it a subflow becomes a root run and the process hangs)."""
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
        return [future.result() for future in futures]
