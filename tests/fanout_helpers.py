"""The fan-out's end-to-end tests' shared parts (tests/integration/test_fanout*.py): the README's pool and
deployments on a server, two ``prefect worker start`` machines, the flows run in this process against the same
server and org, and the outputs two runs are compared by."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emulator import EmulatorInfo
from tests.prefect_server import (
    PREFECT_BIN,
    PrefectServer,
    api_post,
    background_process,
    pause_deployment,
    read_deployment,
)
from utils.replica_layers import scan_replica

FANOUT = "sf-etl-fanout/sf-etl-fanout-15min"
OBJECT = "sf-etl-object/sf-etl-object"
POOL = "sf-etl"
WORKERS = ("worker-a", "worker-b")
SAME_IN_BOTH = ("object", "status", "mode", "rows", "api", "inserts", "updates", "deletes", "hard_deletes",
                "recovered", "unchanged", "deleted_absent", "replica_rows", "qa", "error", "schema_changes")


def org_env(server: PrefectServer, org: EmulatorInfo, data_root: str | Path) -> dict[str, str]:
    """What a worker machine has: the server, the org's credentials in the environment, the shared data root."""
    return {**server.env, "SF_INSTANCE_URL": org.instance_url, "SF_ACCESS_TOKEN": org.access_token,
            "SF_CA_BUNDLE": org.ca_bundle, "SF_PIPELINE_DATA_DIR": str(data_root),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2"}


def register_pool_deployments(server: PrefectServer, *, cron: str | None, new_pool: bool = False) -> dict[str, Any]:
    """The README's `python deployments/work_pool.py`, called in this process (a subprocess costs ~5 s of CPU): it
    creates the process pool (which must be new with ``new_pool``) and both deployments, the fan-out on ``cron``;
    returns the fan-out's deployment as the server has it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.work_pool import ensure_process_pool, register

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        created = ensure_process_pool(POOL)
        register(cron=cron)
    assert created or not new_pool, f"the work pool {POOL} was there before"
    fanout = read_deployment(server, FANOUT)
    assert fanout is not None and fanout["work_pool_name"] == POOL
    return fanout


def paused_pool_deployments(server: PrefectServer) -> dict[str, Any]:
    """On a new server: the pool and deployments as the README registers them, the fan-out on its cron (*/15), that
    schedule then paused (a quarter-hour passing mid-test must not start a run of every object); the fan-out's
    deployment."""
    from deployments.work_pool import CRON

    fanout = register_pool_deployments(server, cron=CRON, new_pool=True)
    assert [s["schedule"]["cron"] for s in fanout["schedules"]] == [CRON]
    pause_deployment(server, fanout["id"])
    return fanout


def in_process(server: PrefectServer, org: EmulatorInfo, root: str | Path,
               monkeypatch) -> contextlib.AbstractContextManager:
    """Flows called in this process report to the server and read the org and data root a worker would."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for name, value in org_env(server, org, root).items():
        if name.startswith("SF_"):
            monkeypatch.setenv(name, value)
    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


def orchestrator_run(server: PrefectServer, org: EmulatorInfo, root: Path, monkeypatch,
                     objects: Sequence[str] | None) -> None:
    """The single-machine orchestrator on the same org, in this process, reporting to the same server."""
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow

    with in_process(server, org, root, monkeypatch):
        state = sf_etl_orchestrator_flow(objects=list(objects) if objects else None, return_state=True)
    assert state.is_completed(), state.message


def child_runs(server: PrefectServer, parent_id: str) -> list[dict[str, Any]]:
    return api_post(server.api_url, "/flow_runs/filter",
                    {"flow_runs": {"parent_flow_run_id": {"any_": [parent_id]}}, "limit": 50})


def artifact_keys(server: PrefectServer, flow_run_id: str) -> set[str]:
    artifacts = api_post(server.api_url, "/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 50})
    return {a["key"] for a in artifacts if a["key"]}


def run_summary(root: Path) -> dict[str, Any]:
    (path,) = (root / "runs").glob("*.json")
    return json.loads(path.read_text())


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A run summary's rows, with the fields two runs of the same org at the same time must agree on."""
    return [{k: r[k] for k in SAME_IN_BOTH} for r in summary["objects"]]


def outputs(root: Path, name: str) -> dict[str, Any]:
    """One object's outputs under a local data root: its summary, its replica's Ids (base and overlay, read as the
    pipeline reads them) and its QA profile (less the path of the raw CSV it profiled)."""
    return {"summary": json.loads((root / "output" / name / "summary.json").read_text()),
            "replica_ids": sorted(scan_replica(root / "replica" / f"{name}.parquet").collect()["Id"].to_list()),
            "profile": json.loads((root / "processed" / "qa" / name / "profile.json").read_text()) | {"raw_csv": None}}


def started_by(log: Path) -> set[str]:
    """The flow runs a worker started, from its log: ``Completed submission of flow run '<id>'`` (both workers may
    try one; the server lets one through and the other logs ``Aborted submission``)."""
    return set(re.findall(r"Completed submission of flow run '([0-9a-f-]{36})'", log.read_text(errors="replace")))


def worker_logs(server: PrefectServer) -> dict[str, Path]:
    return {name: server.log_path(f"{name}.log") for name in WORKERS}


def start_workers(stack: contextlib.ExitStack, env: Mapping[str, str], logs: Mapping[str, Path],
                  tmp_path: Path) -> dict[str, subprocess.Popen]:
    """Two machines, each its own working directory and scratch folder (``SF_PIPELINE_SCRATCH_DIR``: an object-store
    data root's local mirror); each worker in a session of its own (with the flow runs it starts: a process worker
    does not detach them), stopped as a group when the stack closes."""
    workers = {}
    for name, log in logs.items():
        (tmp_path / name).mkdir()
        machine = {**env, "SF_PIPELINE_SCRATCH_DIR": str(tmp_path / name / "scratch")}
        # at most 2 runs each: the worker that takes the fan-out leaves an object run or two to the other
        cmd = [str(PREFECT_BIN), "worker", "start", "--pool", POOL, "--name", name, "--limit", "2"]
        workers[name] = stack.enter_context(background_process(cmd, env=machine, log_path=log, cwd=tmp_path / name))
    return workers
