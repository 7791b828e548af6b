"""The fan-out on a real work pool: a Prefect server, a ``process`` pool named sf-etl with the README's deployments
(deployments/work_pool.py), two ``prefect worker start --pool sf-etl`` subprocesses, each in a working directory of
its own (as two machines would have), and a small emulator org. The fan-out deployment's run, taken by one worker,
starts one ``sf-etl-object`` flow run per object, which the workers run each in a process of its own; its outputs
equal a single-machine orchestrator run of the same org. A worker SIGKILLed with its flow run mid-run: the fan-out
re-submits the lost object run, the other worker completes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorInfo, build_org, run_emulator
from tests.prefect_server import (
    PREFECT_BIN,
    PROJECT_ROOT,
    PrefectServer,
    api_post,
    background_process,
    create_flow_run,
    failure_report,
    pause_deployment,
    prefect_server,  # noqa: F401 - the shared server's fixture
    read_deployment,
    wait_for_flow_run,
)
from tests.reliability_helpers import expected_ids, ids_in
from utils.replica_layers import scan_replica

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # one xdist worker with the other server tests

OBJECTS = ["Account", "Lead"]  # each object run is a process importing Prefect and Polars: ~6.5 s of CPU
SMALL_ORG = {"Account": 300, "Contact": 300, "Opportunity": 300, "Lead": 300, "Case": 300}
FANOUT = "sf-etl-fanout/sf-etl-fanout-15min"
OBJECT = "sf-etl-object/sf-etl-object"
RUN_TIMEOUT_S = 240.0
SAME_IN_BOTH = ("object", "status", "mode", "rows", "api", "inserts", "updates", "deletes", "hard_deletes",
                "recovered", "unchanged", "deleted_absent", "replica_rows", "qa", "error", "schema_changes")


@pytest.fixture(scope="module")
def small_org() -> Iterator[EmulatorInfo]:
    """A still org of a few hundred rows per object, served from a thread of the test process."""
    with run_emulator(rows=SMALL_ORG, faults="", living_rate=0, in_process=True) as info:
        yield info


def _org_env(server: PrefectServer, org: EmulatorInfo, data_root: Path) -> dict[str, str]:
    """What a worker machine has: the server, the org's credentials in the environment, the shared data root."""
    return {**server.env, "SF_INSTANCE_URL": org.instance_url, "SF_ACCESS_TOKEN": org.access_token,
            "SF_CA_BUNDLE": org.ca_bundle, "SF_PIPELINE_DATA_DIR": str(data_root),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2"}


@pytest.fixture(scope="module")
def pool_deployments(prefect_server: PrefectServer) -> dict[str, Any]:  # noqa: F811
    """The README's `python deployments/work_pool.py`, called in this process (a subprocess costs ~5 s of CPU): it
    creates the process pool and both deployments, the fan-out on its cron; returns the fan-out's deployment, its
    schedule paused (a quarter-hour passing mid-test must not start a run of every object)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.work_pool import CRON, ensure_process_pool, register

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        assert ensure_process_pool("sf-etl")
        register(cron=CRON)
    fanout = read_deployment(prefect_server, FANOUT)
    assert fanout is not None and fanout["work_pool_name"] == "sf-etl"
    assert [s["schedule"]["cron"] for s in fanout["schedules"]] == ["*/15 * * * *"]
    pause_deployment(prefect_server, fanout["id"])
    return fanout


def _in_process(server: PrefectServer, org: EmulatorInfo, root: Path, monkeypatch) -> contextlib.AbstractContextManager:
    """Flows called in this process report to the server and read the org and data root a worker would."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for name, value in _org_env(server, org, root).items():
        if name.startswith("SF_"):
            monkeypatch.setenv(name, value)
    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


def _children(server: PrefectServer, parent_id: str) -> list[dict[str, Any]]:
    return api_post(server.api_url, "/flow_runs/filter",
                    {"flow_runs": {"parent_flow_run_id": {"any_": [parent_id]}}, "limit": 50})


def _artifact_keys(server: PrefectServer, flow_run_id: str) -> set[str]:
    artifacts = api_post(server.api_url, "/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 50})
    return {a["key"] for a in artifacts if a["key"]}


def _run_summary(root: Path) -> dict[str, Any]:
    (path,) = (root / "runs").glob("*.json")
    return json.loads(path.read_text())


def _outputs(root: Path, name: str) -> dict[str, Any]:
    return {"summary": json.loads((root / "output" / name / "summary.json").read_text()),
            "replica_ids": sorted(scan_replica(root / "replica" / f"{name}.parquet").collect()["Id"].to_list()),
            "profile": json.loads((root / "processed" / "qa" / name / "profile.json").read_text()) | {"raw_csv": None}}


def _orchestrator_run(server: PrefectServer, org: EmulatorInfo, root: Path, monkeypatch) -> None:
    """The single-machine orchestrator on the same org, in this process, reporting to the same server."""
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow

    with _in_process(server, org, root, monkeypatch):
        state = sf_etl_orchestrator_flow(objects=OBJECTS, return_state=True)
    assert state.is_completed(), state.message


def _started_by(log: Path) -> set[str]:
    """The flow runs a worker started, from its log: ``Completed submission of flow run '<id>'`` (both workers may
    try one; the server lets one through and the other logs ``Aborted submission``)."""
    return set(re.findall(r"Completed submission of flow run '([0-9a-f-]{36})'", log.read_text(errors="replace")))


def _worker_logs(server: PrefectServer) -> dict[str, Path]:
    return {name: server.log_path(f"{name}.log") for name in ("worker-a", "worker-b")}


def _start_workers(stack: contextlib.ExitStack, env: dict[str, str], logs: dict[str, Path],
                   tmp_path: Path) -> dict[str, subprocess.Popen]:
    """Two machines, each its own working directory; each worker in a session of its own (with the flow runs it
    starts: a process worker does not detach them), stopped as a group when the stack closes."""
    workers = {}
    for name, log in logs.items():
        (tmp_path / name).mkdir()
        # at most 2 runs each: the worker that takes the fan-out leaves an object run or two to the other
        cmd = [str(PREFECT_BIN), "worker", "start", "--pool", "sf-etl", "--name", name, "--limit", "2"]
        workers[name] = stack.enter_context(background_process(cmd, env=env, log_path=log, cwd=tmp_path / name))
    return workers


def test_a_fanout_on_two_workers_runs_each_object_in_its_own_flow_run_and_matches_the_orchestrator(
        prefect_server: PrefectServer, pool_deployments, small_org, tmp_path, monkeypatch):  # noqa: F811
    shared_root, single_root, fanout = tmp_path / "shared", tmp_path / "single", pool_deployments
    assert str(PROJECT_ROOT) in json.dumps(fanout["pull_steps"]), "runs start in the checkout"
    assert read_deployment(prefect_server, OBJECT)["work_pool_name"] == "sf-etl"

    env = _org_env(prefect_server, small_org, shared_root)
    logs = _worker_logs(prefect_server)
    with contextlib.ExitStack() as stack:
        workers = list(_start_workers(stack, env, logs, tmp_path).values())
        flow_run_id = create_flow_run(prefect_server, fanout, params={"objects": OBJECTS, "timeout_seconds": 180})
        run = wait_for_flow_run(prefect_server, flow_run_id, timeout_s=RUN_TIMEOUT_S, logs=list(logs.values()),
                                watch=workers)
        assert run["state"]["type"] == "COMPLETED", failure_report(run, [prefect_server.log, *logs.values()])
    children = _children(prefect_server, flow_run_id)

    run_id = run["name"].split()[-1]
    assert sorted(c["name"] for c in children) == sorted(f"{name} {run_id}" for name in OBJECTS)
    assert {c["state"]["type"] for c in children} == {"COMPLETED"}
    assert {c["deployment_id"] for c in children} == {read_deployment(prefect_server, OBJECT)["id"]}
    assert {c["work_pool_name"] for c in children} == {"sf-etl"}
    pids = {c["infrastructure_pid"] for c in children} | {run["infrastructure_pid"]}
    assert None not in pids and len(pids) == len(OBJECTS) + 1, "each flow run had a process of its own"
    taken = {name: _started_by(log) for name, log in logs.items()}
    assert set.union(*taken.values()) == {flow_run_id, *(c["id"] for c in children)}, taken
    assert sum(map(len, taken.values())) == len(OBJECTS) + 1, f"a flow run started twice: {taken}"
    assert all(taken.values()), f"a worker ran nothing: {taken}"
    assert {"sf-etl-run-summary", "qa-summary", "sf-etl-files"} <= _artifact_keys(prefect_server, flow_run_id)

    _orchestrator_run(prefect_server, small_org, single_root, monkeypatch)
    fanned, single = _run_summary(shared_root), _run_summary(single_root)
    assert fanned["run_id"] == run_id and fanned["phase1_ok"] and fanned["qa_ok"]
    assert fanned["source"] == single["source"]
    assert [{k: r[k] for k in SAME_IN_BOTH} for r in fanned["objects"]] == \
        [{k: r[k] for k in SAME_IN_BOTH} for r in single["objects"]]
    for name in OBJECTS:
        assert _outputs(shared_root, name) == _outputs(single_root, name), name
        assert list((shared_root / "raw").glob(f"{name}_*_{run_id}.csv")), "the object runs share the run id"
    assert (shared_root / "reports" / "latest.html").is_file()
    assert not list((shared_root / "runs" / "parts").rglob("*")), "the parts were merged and removed"


def test_object_runs_no_worker_takes_are_cancelled_at_the_timeout_and_their_objects_reported_failed(
        prefect_server: PrefectServer, pool_deployments, small_org, tmp_path, monkeypatch):  # noqa: F811
    from flows.sf_etl_fanout_flow import sf_etl_fanout_flow

    root = tmp_path / "data"
    with _in_process(prefect_server, small_org, root, monkeypatch):  # no worker runs: nothing takes the object run
        state = sf_etl_fanout_flow(objects=["Account"], timeout_seconds=2, return_state=True)

    assert state.is_failed() and state.message == "object(s) failed: Account; QA: no object was extracted"
    (row,) = _run_summary(root)["objects"]
    assert row["status"] == "failed" and row["error"] == "its flow run did not finish within 2 s; cancelled"
    children = _children(prefect_server, str(state.state_details.flow_run_id))
    assert [c["state"]["type"] for c in children] == ["CANCELLED"], "a worker started later must not run it"


@pytest.fixture(scope="module")
def slow_org() -> Iterator[EmulatorInfo]:
    """The small org, 200 ms per request: an object run stays Running long enough to be killed mid-run."""
    with run_emulator(rows=SMALL_ORG, faults="", living_rate=0, in_process=True, latency_ms=200) as info:
        yield info


class _Killer(threading.Thread):
    """Watches the server for an object run going Running, then SIGKILLs the process group of the worker that
    started it: the worker and its flow run processes, as a machine lost would."""

    def __init__(self, server: PrefectServer, workers: dict[str, subprocess.Popen], deployment_id: str) -> None:
        super().__init__(daemon=True)
        self.server, self.workers, self.deployment_id = server, workers, deployment_id
        self.stop, self.killed_worker, self.killed_run = threading.Event(), "", ""

    def run(self) -> None:
        query = {"flow_runs": {"deployment_id": {"any_": [self.deployment_id]},
                               "state": {"type": {"any_": ["RUNNING"]}}}, "limit": 5}
        while not self.stop.wait(0.2):
            for run in api_post(self.server.api_url, "/flow_runs/filter", query):
                pid = int(run["infrastructure_pid"].rsplit(":", 1)[1])
                with contextlib.suppress(ProcessLookupError):
                    group = os.getpgid(pid)
                    for name, worker in self.workers.items():
                        if worker.pid == group:
                            os.killpg(group, signal.SIGKILL)
                            worker.wait()
                            self.killed_worker, self.killed_run = name, run["id"]
                            return


def test_a_worker_killed_mid_run_loses_its_object_run_which_the_fanout_resubmits_to_the_other_worker(
        prefect_server: PrefectServer, pool_deployments, slow_org, tmp_path, monkeypatch):  # noqa: F811
    """The fan-out runs in this process (so no kill can take it down); the workers only run object runs."""
    from flows.sf_etl_fanout_flow import sf_etl_fanout_flow

    # half of it is when a run counts as lost: under the whole suite on 2 cores the surviving worker once took over
    # 30 s to start the other object (a 60 s timeout gave up on both), so 180 s: 90 s for a healthy start
    root, timeout_s = tmp_path / "shared", 180
    object_deployment = read_deployment(prefect_server, OBJECT)
    logs = _worker_logs(prefect_server)
    with contextlib.ExitStack() as stack:
        workers = _start_workers(stack, _org_env(prefect_server, slow_org, root), logs, tmp_path)
        killer = _Killer(prefect_server, workers, object_deployment["id"])
        killer.start()
        stack.callback(killer.stop.set)
        started = time.monotonic()
        with _in_process(prefect_server, slow_org, root, monkeypatch):
            state = sf_etl_fanout_flow(objects=OBJECTS, timeout_seconds=timeout_s, return_state=True)
        seconds = time.monotonic() - started
        killer.stop.set()
        killer.join()
    report = failure_report({"state": {"type": state.type.value, "message": state.message}},
                            [prefect_server.log, *logs.values()])
    assert killer.killed_run, "no object run was seen Running"
    assert state.is_completed(), report
    assert seconds < timeout_s + 10, f"the fan-out took {seconds:.0f} s"

    children = _children(prefect_server, str(state.state_details.flow_run_id))
    killed = next(c for c in children if c["id"] == killer.killed_run)
    object_name = killed["parameters"]["object_name"]
    assert killed["state"]["type"] == "CANCELLED" and "the fan-out gave up on it" in killed["state"]["message"]
    runs_of = {name: [c for c in children if c["parameters"]["object_name"] == name] for name in OBJECTS}
    again = [c for c in runs_of[object_name] if c["id"] != killer.killed_run]
    assert len(again) == 1 and again[0]["state"]["type"] == "COMPLETED", runs_of
    survivor = next(name for name in workers if name != killer.killed_worker)
    assert again[0]["id"] in _started_by(logs[survivor]), "the other worker ran the re-submitted run"
    assert all(any(c["state"]["type"] == "COMPLETED" for c in runs) for runs in runs_of.values()), runs_of

    summary = _run_summary(root)
    assert [(r["object"], r["status"]) for r in summary["objects"]] == [(name, "ok") for name in OBJECTS], summary
    org = build_org(rows=SMALL_ORG)
    for name in OBJECTS:  # nothing lost, nothing twice
        replica = ids_in(root / "replica" / f"{name}.parquet")
        assert len(replica) == len(set(replica)) and set(replica) == expected_ids(org, name).live, name
    assert not list((root / "runs" / "parts").rglob("*")), "the parts were merged and removed"
