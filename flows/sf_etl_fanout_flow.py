"""The fan-out: one ``sf-etl-object`` flow run per object on a work pool (each in a process of its own, on whichever
worker takes it), waited for up to a deadline, then merged into the run summary, HTML report and artifacts the
single-machine orchestrator publishes.

The object runs report back through the shared data root (``runs/parts/<RUNID>/``, see flows/sf_etl_object_flow.py):
the fan-out and every worker must use the same one (an object store, or a shared disk).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling, State
from pydantic import AfterValidator, Field

from flows.common import checked_parameters, config_error_as_failed_state, one_line
from flows.naming import current_run_id, flow_run_namer
from flows.run_summary import BranchOutcome, RunSummary, SummaryRow
from flows.sf_etl_object_flow import RunPart, read_run_part
from flows.sf_etl_orchestrator_flow import _not_empty, finish_run
from tasks.extract_plan import resolve_extract_plan
from utils import storage
from utils.errors import ConfigError
from utils.housekeeping import ensure_data_root
from utils.logs import kv
from utils.paths import build_qa_paths, build_run_part_path
from utils.prefect_sync import blocking
from utils.timefmt import now_utc_seconds

OBJECT_DEPLOYMENT = "sf-etl-object/sf-etl-object"  # deployments/work_pool.py registers it on the sf-etl pool
POLL_SECONDS = 2.0  # one API call per poll for every object run still going
NO_SOURCE = {"kind": "unknown", "instance_url": "", "auth_flow": ""}  # no object run got as far as its source


def object_run_parameters(object_name: str, run_id: str, soql: Mapping[str, str] | None,
                          options: Mapping[str, Any]) -> dict[str, Any]:
    """One object run's parameters: the fan-out's own options (those set), its object, query and run id. A data
    root left unset stays so: each worker then uses its own ``SF_PIPELINE_DATA_DIR``."""
    chosen = {name: value for name, value in options.items() if value is not None}
    if soql and object_name in soql:
        chosen["soql"] = soql[object_name]
    return {"object_name": object_name, "run_id": run_id, **chosen}


def submit_object_runs(deployment: str, run_id: str, parameters: Mapping[str, dict[str, Any]], *,
                       attempt: int = 1) -> dict[str, UUID]:
    """Start one flow run of ``deployment`` per object (as subflows of this run), without waiting for any. A
    second attempt (an object run lost, re-submitted) has an idempotency key of its own."""
    suffix = "" if attempt == 1 else f"-{attempt}"
    try:
        return {name: blocking(run_deployment(
            deployment, parameters=params, timeout=0, flow_run_name=f"{name} {run_id}",
            # a retried fan-out finds the run it started, not a second one
            idempotency_key=f"{run_id}-{name}{suffix}",
        )).id for name, params in parameters.items()}
    except ObjectNotFound:
        msg = (f"no deployment {deployment!r} on this Prefect server: register it with "
               "`python deployments/work_pool.py` (README: Scale out on a work pool)")
        raise ConfigError(msg) from None


@dataclass(frozen=True)
class Lost:
    """An object's run given up on: it crashed, or it was still going at half the fan-out's timeout (a worker
    killed with it leaves it Running forever: a Prefect 2 flow run has no heartbeat). Re-submitted once."""

    object: str
    reason: str  # names the run (its name and id: both of an object's runs share the name)


STUCK_STATES = (StateType.RUNNING, StateType.PENDING)  # a worker took it; a Scheduled one waits for a free worker


def run_label(run: FlowRun) -> str:
    return f"{run.name} ({run.id})"


def lost_run(name: str, run: FlowRun, *, elapsed: float, timeout_seconds: float, resubmitted: bool) -> Lost | None:
    """The rule: an object's first run that ended Crashed (its process died, its worker lived) is lost at once;
    one still Running or Pending ``elapsed`` seconds after a worker took it, half of ``timeout_seconds``, is lost
    then (the second run gets the rest). Time spent Scheduled, waiting for a free worker, does not count. A second
    run is never lost: its crash or timeout is the object's failure."""
    state = run.state
    if resubmitted or state is None:
        return None
    if state.type is StateType.CRASHED:
        return Lost(name, f"its flow run {run_label(run)} ended Crashed: {one_line(state.message or 'no message')}")
    if state.type in STUCK_STATES and elapsed >= timeout_seconds / 2:
        return Lost(name, f"its flow run {run_label(run)} was still {state.name} {timeout_seconds / 2:g} s after a "
                          "worker took it (half the timeout: its worker may have died) and was cancelled")
    return None


def seconds_since_taken(taken: dict[UUID, float], run: FlowRun, now: float) -> float:
    """Seconds since ``run`` was first seen taken by a worker (Pending or Running), on this process's clock;
    0 while it waits Scheduled. ``taken`` keeps the first sightings between polls."""
    if run.state is not None and run.state.type in STUCK_STATES:
        taken.setdefault(run.id, now)
    return now - taken.get(run.id, now)


def after_loss(outcome: RunPart | str, lost: Lost | None, second: FlowRun | None) -> RunPart | str:
    """An object's outcome, saying (on a failure) that it was its second run: the first was lost."""
    if lost is None or isinstance(outcome, RunPart):
        return outcome
    which = run_label(second) if second is not None else "its second run"
    return f"{lost.reason}; re-submitted as {which}, which failed too: {outcome}"


def wait_for_object_runs(runs: Mapping[str, UUID], *, timeout_seconds: float,
                         resubmit: Callable[[str], UUID] | None = None, poll_seconds: float = POLL_SECONDS,
                         ) -> tuple[dict[str, FlowRun], dict[str, FlowRun], dict[str, Lost]]:
    """Poll the object runs until each is final or ``timeout_seconds`` passed; (finished, still going, lost) by
    object. A lost run (``lost_run``) is marked Cancelled and its object re-submitted once with ``resubmit``
    (within the same deadline). The ones still going at the deadline are cancelled: one that finished later would
    contradict the run's summary."""
    logger = get_run_logger()
    current = dict(runs)
    finished: dict[str, FlowRun] = {}
    lost: dict[str, Lost] = {}
    deadline = time.monotonic() + timeout_seconds
    taken: dict[UUID, float] = {}  # when each run was first seen taken by a worker (Pending or Running)
    with get_client(sync_client=True) as client:
        while True:
            going = {}
            names = {flow_run_id: name for name, flow_run_id in current.items() if name not in finished}
            ids = list(names)
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))):
                name = names[run.id]
                gone = lost_run(name, run, elapsed=seconds_since_taken(taken, run, time.monotonic()),
                                timeout_seconds=timeout_seconds, resubmitted=name in lost)
                if gone is not None and resubmit is not None:
                    _mark_lost(client, run, gone)
                    lost[name] = gone
                    current[name] = resubmit(name)
                    logger.warning(kv("object_run_lost", object=name, flow_run=str(run.id), reason=gone.reason,
                                      resubmitted=str(current[name])))
                    going[name] = run
                elif run.state is not None and run.state.is_final():
                    finished[name] = run
                    logger.info(kv("object_run_done", object=name, flow_run=run.name, state=run.state.name))
                else:
                    going[name] = run
            if not going or time.monotonic() >= deadline:
                break
            time.sleep(poll_seconds)
        going = {name: run for name, run in going.items() if run.id == current[name]}  # a lost one is no longer
        for name in set(current) - set(finished) - set(going):  # re-submitted, not seen yet: cancel it too
            going[name] = client.read_flow_run(current[name])
        for name, run in going.items():
            _cancel(client, run, f"the fan-out stopped waiting after {timeout_seconds:g} s")
            logger.error(kv("object_run_timed_out", object=name, flow_run=run.name,
                            state=run.state.name if run.state else None, seconds=timeout_seconds))
    return finished, going, lost


def _mark_lost(client: Any, run: FlowRun, lost: Lost) -> None:
    """A lost run still Running or Pending is set Cancelled, forced: its worker is presumed dead, so nobody would
    finish a Cancelling. Were it alive after all, the object lock (utils/locks.py) keeps it and the second run
    apart: they write one after the other, and a merge by primary key makes the repeat change nothing. A lock held by
    a SIGKILLed run is no obstacle: a file lock is released by the kernel with the process, and a lease on an object
    store expires unrenewed after SF_PIPELINE_LOCK_TTL_SECONDS."""
    if run.state is not None and not run.state.is_final():
        client.set_flow_run_state(run.id, Cancelled(message=f"the fan-out gave up on it: {lost.reason}"),
                                  force=True)


def _cancel(client: Any, run: FlowRun, reason: str) -> None:
    """A run not started yet is cancelled outright; a started one is asked to stop (its worker kills it)."""
    scheduled = run.state is None or run.state.is_scheduled()
    client.set_flow_run_state(run.id, Cancelled(message=reason) if scheduled else Cancelling(message=reason),
                              force=True)


def failed_row(object_name: str, error: str) -> SummaryRow:
    """The summary row of an object whose run left no part: failed, with why."""
    return SummaryRow(object=object_name, status="failed", mode=None, rows=None, api=None, inserts=None,
                      updates=None, deletes=None, hard_deletes=None, recovered=None, unchanged=None,
                      deleted_absent=None, replica_rows=None, dataset=None, extract_s=0.0, process_s=None,
                      load_s=None, qa_s=None, qa="skipped (no result)", raw_csv=None, summary_json=None, error=error)


def part_or_reason(run_id: str, name: str, run: FlowRun | None, timeout_seconds: float,
                   data_root: str | None) -> RunPart | str:
    """What one object's run reported, or why there is nothing to read."""
    if run is None:
        return f"its flow run did not finish within {timeout_seconds:g} s; cancelled"
    try:
        part = read_run_part(run_id, name, data_root)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"its flow run {run.name} left a part that cannot be read ({type(err).__name__}: {one_line(err)})"
    if part is not None:
        return part
    state = run.state
    if state is not None and state.is_completed():
        where = build_run_part_path(run_id, name, data_root=data_root)
        return (f"its flow run {run.name} completed but left no {where.name} under {where.parent}: does the worker "
                "use this data root? (the data_root parameter, or the same SF_PIPELINE_DATA_DIR everywhere)")
    return f"its flow run {run.name} ended {state.name if state else 'without a state'}: " + one_line(
        (state.message if state else None) or "no message")


def merge_qa(run_id: str, parts: Sequence[RunPart]) -> BranchOutcome:
    """The QA branches of the object runs that landed, as one: ok only if every one was."""
    if not parts:
        return BranchOutcome(False, error="no object was extracted")
    results = [p.qa.result for p in parts if p.qa.result]
    merged = {"run_id": run_id, "objects": {k: v for r in results for k, v in r.get("objects", {}).items()},
              "blocking_failures": [f for r in results for f in r.get("blocking_failures", [])],
              "crashed": [c for r in results for c in r.get("crashed", [])]} if results else None
    errors = [f"{p.row.object}: {p.qa.error}" for p in parts if not p.qa.ok]
    return BranchOutcome(not errors, merged, "; ".join(errors) or None)


def merge_run(run_id: str, outcomes: Mapping[str, RunPart | str], started_at: str,
              seconds: float) -> tuple[RunSummary, BranchOutcome]:
    """The fan-out's run summary (rows in plan order) and QA branch, from each object's part or failure."""
    parts = [o for o in outcomes.values() if isinstance(o, RunPart)]
    rows = tuple(o.row if isinstance(o, RunPart) else failed_row(name, o) for name, o in outcomes.items())
    landed = [p for p in parts if p.row.dataset is not None]
    qa = merge_qa(run_id, landed)
    source = parts[0].source if parts else NO_SOURCE
    summary = RunSummary(run_id, source, started_at, round(seconds, 2), rows,
                         bool(landed) and all(p.phase1_ok for p in landed), qa.ok, None if qa.ok else qa.error)
    return summary, qa


def fetch_report_inputs(object_names: Sequence[str], data_root: str | None) -> None:
    """The QA files the HTML report reads, as the workers left them in the store (a no-op on a local root)."""
    for name in object_names:
        qa = build_qa_paths(name, data_root=data_root)
        for path in (qa.rowcount, qa.profile, qa.schema_report, qa.snapshot):
            storage.fetch(path)


def remove_parts(run_id: str, object_names: Sequence[str], data_root: str | None) -> None:
    """The parts, once merged into the run's summary (and their folder, when that leaves it empty)."""
    paths = [build_run_part_path(run_id, name, data_root=data_root) for name in object_names]
    for path in paths:
        storage.remove_file(path)
    with contextlib.suppress(IndexError, OSError):  # none, or not empty
        paths[0].parent.rmdir()


@flow(name="sf-etl-fanout", flow_run_name=flow_run_namer("sf-etl-fanout"), validate_parameters=False)
@config_error_as_failed_state
@checked_parameters("fanout")
def sf_etl_fanout_flow(
    objects: Annotated[list[str] | None, AfterValidator(_not_empty)] = None,
    soql: dict[str, str] | None = None,
    fail_on_qa_error: bool = False,
    full_refresh: bool = False,
    api: str | None = None,
    drop_missing_fields: bool = False,
    raw_retention_count: Annotated[int | None, Field(ge=1)] = None,
    raw_retention_days: Annotated[float | None, Field(gt=0)] = None,
    data_root: str | None = None,
    credentials_block: str | None = None,  # a Prefect Secret block's name, read by each object run
    deployment: str = OBJECT_DEPLOYMENT,
    timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0,  # how long to wait for every object run
) -> dict[str, Any] | State:
    """One ``sf-etl-object`` run per object on the deployment's work pool, then the run summary of them all
    (fails if any object failed or did not finish in time)."""
    logger = get_run_logger()
    plan = resolve_extract_plan(objects, soql, api=api, strict_qa=fail_on_qa_error)  # bad input: no run started
    run_id = current_run_id()
    started_at, started = now_utc_seconds(), time.monotonic()
    ensure_data_root(data_root)
    options = {"fail_on_qa_error": fail_on_qa_error, "full_refresh": full_refresh, "api": api,
               "drop_missing_fields": drop_missing_fields, "raw_retention_count": raw_retention_count,
               "raw_retention_days": raw_retention_days, "data_root": data_root,
               "credentials_block": credentials_block}
    names = [item.object_name for item in plan]
    params = {n: object_run_parameters(n, run_id, soql, options) for n in names}
    runs = submit_object_runs(deployment, run_id, params)
    logger.info(kv("fanout_start", run_id=run_id, deployment=deployment, objects=",".join(names)))

    def resubmit(name: str) -> UUID:
        return submit_object_runs(deployment, run_id, {name: params[name]}, attempt=2)[name]

    finished, going, lost = wait_for_object_runs(runs, timeout_seconds=timeout_seconds, resubmit=resubmit)
    outcomes = {n: after_loss(part_or_reason(run_id, n, finished.get(n), timeout_seconds, data_root), lost.get(n),
                              finished.get(n) or going.get(n)) for n in names}
    summary, qa = merge_run(run_id, outcomes, started_at, time.monotonic() - started)
    fetch_report_inputs([row.object for row in summary.objects if row.dataset], data_root)
    result = finish_run(summary, qa, data_root, raw_retention_count, raw_retention_days)
    remove_parts(run_id, [n for n, o in outcomes.items() if isinstance(o, RunPart)], data_root)
    return result
