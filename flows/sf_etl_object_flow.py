"""One object's run, the unit a fan-out spreads over a work pool: land the object, then Phase 1 and QA on it at the
same time, exactly as the orchestrator does for each of its objects, in a process of its own on any worker.

Run alone it reports like the orchestrator (``runs/`` summary, HTML report, artifacts). Started by a fan-out
(``run_id`` given) it writes its part of the fan-out's run instead, ``runs/parts/<RUNID>/<object>.json`` under
the shared data root, where the fan-out (on another machine perhaps) reads it: a flow run's return value stays in
the process that ran it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import ConcurrentTaskRunner
from pydantic import Field

from flows.common import checked_parameters, config_error_as_failed_state
from flows.naming import current_run_id
from flows.run_summary import BranchOutcome, RunSummary, SummaryRow
from flows.sf_etl_orchestrator_flow import finish_run, run_objects, run_result
from tasks.extract_plan import resolve_extract_plan
from utils import storage
from utils.atomic import write_text_atomic
from utils.paths import build_run_part_path

RUN_ID_PATTERN = r"^[A-Za-z0-9]+$"


@dataclass(frozen=True)
class RunPart:
    """One object's part of a fan-out run: its summary row, the source it read, and how its branches ended."""

    row: SummaryRow
    source: dict[str, str]
    phase1_ok: bool
    qa: BranchOutcome

    def as_dict(self) -> dict[str, Any]:
        return {"row": asdict(self.row), "source": self.source, "phase1_ok": self.phase1_ok, "qa": asdict(self.qa)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPart:
        return cls(SummaryRow(**data["row"]), dict(data["source"]), bool(data["phase1_ok"]),
                   BranchOutcome(**data["qa"]))


def write_run_part(summary: RunSummary, qa: BranchOutcome, data_root: str | None) -> None:
    """The one-object run's part, for the fan-out that started it (published to the store on an object store)."""
    (row,) = summary.objects
    part = RunPart(row, summary.source, summary.phase1_ok, qa)
    path = build_run_part_path(summary.run_id, row.object, data_root=data_root)
    storage.wait_for_uploads()  # the part commits the object's run: every file of it is in the store first
    write_text_atomic(path, json.dumps(part.as_dict(), indent=2, default=str) + "\n")


def read_run_part(run_id: str, object_name: str, data_root: str | None) -> RunPart | None:
    """The part an object's run wrote for fan-out ``run_id`` (the store's copy), or None when there is none."""
    path = build_run_part_path(run_id, object_name, data_root=data_root)
    if not storage.fetch(path):
        return None
    return RunPart.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _run_name() -> str:
    """``<object> <run id>``: the fan-out's run id when it started this run, so its object runs share it."""
    params = flow_run.parameters
    return f"{params.get('object_name')} {current_run_id(params.get('run_id'))}"


@flow(name="sf-etl-object", flow_run_name=_run_name, task_runner=ConcurrentTaskRunner(), validate_parameters=False)
@config_error_as_failed_state
@checked_parameters("object")
def sf_etl_object_flow(
    object_name: str,
    soql: str | None = None,
    fail_on_qa_error: bool = False,
    full_refresh: bool = False,
    api: str | None = None,
    drop_missing_fields: bool = False,
    raw_retention_count: Annotated[int | None, Field(ge=1)] = None,
    raw_retention_days: Annotated[float | None, Field(gt=0)] = None,
    data_root: str | None = None,
    credentials_block: str | None = None,  # a Prefect Secret block's name (utils/settings.py); else .env / env
    run_id: Annotated[str | None, Field(pattern=RUN_ID_PATTERN)] = None,  # the fan-out's, when one started it
) -> dict[str, Any] | State:
    """Land ``object_name``, then Phase 1 and QA on it; returns its run summary (fails if any step failed)."""
    plan = resolve_extract_plan([object_name], {object_name: soql} if soql else None, api=api,
                                strict_qa=fail_on_qa_error)
    summary, qa = run_objects(plan, current_run_id(run_id), max_concurrent=1, full_refresh=full_refresh, api=api,
                              drop_missing_fields=drop_missing_fields, fail_on_qa_error=fail_on_qa_error,
                              raw_retention_count=raw_retention_count, raw_retention_days=raw_retention_days,
                              data_root=data_root, credentials_block=credentials_block)
    if run_id is None:
        return finish_run(summary, qa, data_root, raw_retention_count, raw_retention_days)
    write_run_part(summary, qa, data_root)
    return run_result(summary, qa)
