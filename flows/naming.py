"""What the Prefect UI calls things: flow runs named by the pipeline's run id, task runs by step and object.

A flow run's name is set when it starts (``sf-etl 6E98288AE1``), before any task, and the run id in it is the one
in every log line and file name of that run. A task run's name is given at creation (``process-Account-0`` in the
creation log, then ``process-Account``), so no run is ever listed as ``qa_gate-4``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task
from prefect.runtime import flow_run

from utils.run_ids import new_run_id, run_id_from

T = TypeVar("T", bound=Task[Any, Any])


def current_run_id(given: str | None = None) -> str:
    """``given`` (a parent run's id), else this flow run's own, derived from its Prefect id; a fresh one when no
    flow run is active (a flow's function called directly)."""
    if given:
        return given
    flow_run_id = flow_run.id
    return run_id_from(flow_run_id) if flow_run_id else new_run_id()


def flow_run_namer(label: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<label> <run id>``, the run id being the ``run_id`` parameter when a parent
    passed one (Phase 1 and QA under the orchestrator share its id), else the flow run's own."""
    def name() -> str:
        return f"{label} {current_run_id(flow_run.parameters.get('run_id'))}"
    return name


def for_object(task: T, step: str, object_name: str) -> T:
    """``task`` named ``<step>-<object>`` from its creation on (its run name stays the same)."""
    name = f"{step}-{object_name}"
    return task.with_options(name=name, task_run_name=name)
