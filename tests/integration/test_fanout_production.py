"""The fan-out on the production shape (issue #19): a Prefect server on PostgreSQL, the data root on an S3 server
(SeaweedFS on loopback), the README's pool and deployments, two ``prefect worker start`` machines (each its own
working directory and scratch folder, the store's AWS_* credentials in their environment) and a living org whose
clock stands still at one moment, so that every run sees the same org.

A fan-out of every registry object completes on both workers, and what it leaves in the store equals what the
single-machine orchestrator leaves on a local disk for the same org at the same moment. The fan-out's deployment,
registered on a cron of every minute, fires on its own: the server's scheduler makes the run, a worker runs it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from configs.salesforce_objects import SALESFORCE_OBJECTS
from emulator import EmulatorInfo, build_org, freeze_clock, run_emulator
from tests.fanout_helpers import (
    FANOUT,
    OBJECT,
    POOL,
    artifact_keys,
    child_runs,
    orchestrator_run,
    org_env,
    outputs,
    paused_pool_deployments,
    register_pool_deployments,
    run_summary,
    start_workers,
    started_by,
    summary_rows,
    worker_logs,
)
from tests.float_compare import close
from tests.postgres_server import Postgres, postgres_binaries, running_postgres
from tests.prefect_server import (
    PrefectServer,
    api_get,
    api_post,
    create_flow_run,
    deployment_crons,
    failure_report,
    pause_deployment,
    read_deployment,
    running_prefect_server,
    wait_for_flow_run,
    wait_until,
)
from tests.reliability_helpers import expected_ids
from tests.s3_server import S3Store
from tests.s3_server import s3_store as s3_store  # the session fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORG = {"Account": 300, "Contact": 300, "Opportunity": 300, "Lead": 300, "Case": 300}
OBJECTS = sorted(SALESFORCE_OBJECTS)  # every registry object: the fan-out's default
# half of it is when an object run still going counts as lost and is re-submitted: five object runs share the two
# cores with the workers, the server and PostgreSQL, so leave them minutes
FANOUT_TIMEOUT_S = 600
RUN_TIMEOUT_S = FANOUT_TIMEOUT_S + 120.0
EVERY_MINUTE = "* * * * *"
PAST_SCHEDULED = ["PENDING", "RUNNING", "PAUSED", "CANCELLING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED"]


@dataclass(frozen=True)
class Production:
    """The running parts, as the tests reach them."""

    postgres: Postgres
    server: PrefectServer
    store: S3Store
    org: EmulatorInfo
    data_root: str  # the workers' SF_PIPELINE_DATA_DIR: s3://bucket/prefix
    fanout: dict[str, Any]  # the fan-out's deployment, as registered
    workers: dict[str, Any]  # name -> Popen
    logs: dict[str, Path]
    machines: Path  # worker-a/, worker-b/: the workers' working directories, each with its scratch/

    def watched(self) -> dict[str, Any]:
        """A wait's logs to quote and processes to watch (``wait_for_flow_run`` adds the server's log)."""
        return {"logs": list(self.logs.values()), "watch": list(self.workers.values())}

    def all_logs(self) -> list[Path]:
        return [self.server.log, *self.logs.values()]


def _next_full_hour() -> str:
    """The moment the org's clock stands at: its life up to then applied, nothing after (as test_living_sync)."""
    return (datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).isoformat()


@pytest.fixture(scope="module")
def production(s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """PostgreSQL, the Prefect server on it (its first start creates the tables: ~15 s of CPU), the living org
    frozen, the pool and deployments (the fan-out's cron paused), two workers; all stopped in reverse order."""
    work = tmp_path_factory.mktemp("production")
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(running_postgres(postgres_binaries()))
        server = stack.enter_context(running_prefect_server(work / "server", database_url=postgres.url))
        org = stack.enter_context(run_emulator(rows=ORG, faults="", living_rate=1, in_process=True))
        freeze_clock(org, _next_full_hour())
        fanout = paused_pool_deployments(server)
        data_root = s3_store.url(f"production-{uuid.uuid4().hex[:10]}")
        logs = worker_logs(server)
        machines = work / "machines"
        machines.mkdir()
        workers = start_workers(stack, {**org_env(server, org, data_root), **s3_store.env()}, logs, machines)
        yield Production(postgres, server, s3_store, org, data_root, fanout, workers, logs, machines)


def _download(store: S3Store, url: str, target: Path) -> Path:
    """Everything under ``url`` in the store, copied to ``target`` (read there as a local data root)."""
    import s3fs

    s3fs.S3FileSystem(**store.storage_options(), skip_instance_cache=True).get(f"{url}/", f"{target}/",
                                                                               recursive=True)
    return target


def _assert_same_outputs(there: dict[str, Any], here: dict[str, Any], name: str) -> None:
    assert there["replica_ids"] == here["replica_ids"], name
    for part in ("summary", "profile"):
        assert close(there[part], here[part]), f"{name} {part}:\n{there[part]}\n{here[part]}"


def test_a_fanout_of_every_object_on_postgres_s3_and_two_workers_equals_a_single_machine_run(
        production: Production, tmp_path, monkeypatch):
    p = production
    flow_run_id = create_flow_run(p.server, p.fanout, params={"timeout_seconds": FANOUT_TIMEOUT_S})
    run = wait_for_flow_run(p.server, flow_run_id, timeout_s=RUN_TIMEOUT_S, **p.watched())
    assert run["state"]["type"] == "COMPLETED", failure_report(run, p.all_logs())

    children = child_runs(p.server, flow_run_id)
    assert sorted(c["parameters"]["object_name"] for c in children) == OBJECTS, "one run per object, none again"
    assert {c["state"]["type"] for c in children} == {"COMPLETED"}
    assert {c["deployment_id"] for c in children} == {read_deployment(p.server, OBJECT)["id"]}
    taken = {name: started_by(log) for name, log in p.logs.items()}
    assert set.union(*taken.values()) == {flow_run_id, *(c["id"] for c in children)}, taken
    assert sum(map(len, taken.values())) == len(OBJECTS) + 1, f"a flow run started twice: {taken}"
    objects_taken = {name: ids - {flow_run_id} for name, ids in taken.items()}
    assert all(objects_taken.values()), f"a worker ran no object: {objects_taken}"
    assert {"sf-etl-run-summary", "qa-summary", "sf-etl-files"} <= artifact_keys(p.server, flow_run_id)
    for machine in p.logs:  # each machine's runs mirrored the store in its own scratch folder
        assert list((p.machines / machine / "scratch").iterdir()), machine

    fetched = _download(p.store, p.data_root, tmp_path / "fetched")
    single_root = tmp_path / "single"
    orchestrator_run(p.server, p.org, single_root, monkeypatch, None)  # every object, same org, same moment
    fanned, single = run_summary(fetched), run_summary(single_root)
    run_id = run["name"].split()[-1]
    assert fanned["run_id"] == run_id and fanned["phase1_ok"] and fanned["qa_ok"], fanned
    assert fanned["source"] == single["source"]
    assert [row["object"] for row in fanned["objects"]] == [row["object"] for row in single["objects"]]
    assert summary_rows(fanned) == summary_rows(single)
    assert all(row["raw_csv"].startswith(f"{p.data_root}/raw/") for row in fanned["objects"]), "written to the store"
    for name in OBJECTS:
        _assert_same_outputs(outputs(fetched, name), outputs(single_root, name), name)
    assert (fetched / "reports" / "latest.html").is_file()
    assert not list((fetched / "runs" / "parts").rglob("*")), "the parts were merged and removed"
    still = build_org(rows=ORG)  # the org lived: the replicas hold records the generated org does not
    assert any(set(outputs(single_root, name)["replica_ids"]) != expected_ids(still, name).live for name in OBJECTS)


def _patch_deployment(server: PrefectServer, deployment_id: str, changes: dict[str, Any]) -> None:
    """``PATCH /deployments/{id}``; the server deletes the runs it had scheduled from the old values."""
    httpx.patch(f"{server.api_url}/deployments/{deployment_id}", json=changes, timeout=10).raise_for_status()


def _clear_of_the_minute(margin_s: float = 12.0) -> None:
    """Wait, if the next whole minute is under ``margin_s`` away, until just past it: the cron's first run is then
    at least that far off, so none can start before the test has set its parameters."""
    to_go = 60.0 - time.time() % 60.0
    if to_go < margin_s:
        time.sleep(to_go + 0.5)


def _runs_past_scheduled(server: PrefectServer, deployment_id: str) -> list[dict[str, Any]]:
    """The deployment's runs no longer Scheduled, earliest first. Filtered by the server: a cron of every minute has
    a hundred runs scheduled ahead, and a page of them in id order (random) may miss the one that started."""
    return api_post(server.api_url, "/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": PAST_SCHEDULED}}},
        "sort": "EXPECTED_START_TIME_ASC", "limit": 50})


def _first_fired_run(server: PrefectServer, deployment_id: str) -> dict[str, Any] | None:
    return next((r for r in _runs_past_scheduled(server, deployment_id) if r["auto_scheduled"]), None)


def test_the_fanout_deployment_fires_on_its_cron_on_the_postgres_server_and_a_worker_completes_the_run(
        production: Production):
    p = production
    _clear_of_the_minute()
    registered_at = datetime.now(timezone.utc)
    fanout = register_pool_deployments(p.server, cron=EVERY_MINUTE)  # the README's script, on a cron that comes soon
    deployment_id = fanout["id"]
    try:
        assert deployment_crons(fanout) == [EVERY_MINUTE] and not fanout["paused"]
        # one object into a root of its own: the firing is the subject here, the outputs are the other test's
        params = {"objects": ["Lead"], "data_root": p.store.url(f"scheduled-{uuid.uuid4().hex[:10]}"),
                  "timeout_seconds": FANOUT_TIMEOUT_S}
        _patch_deployment(p.server, deployment_id, {"parameters": params})
        run = wait_until(lambda: _first_fired_run(p.server, deployment_id), timeout_s=120,
                         what=f"the scheduler's first run of {FANOUT} to start", logs=p.all_logs(),
                         watch=list(p.workers.values()))
    finally:
        pause_deployment(p.server, deployment_id)  # no second firing: its scheduled runs are deleted
    run = wait_for_flow_run(p.server, run["id"], timeout_s=RUN_TIMEOUT_S, **p.watched())
    assert run["state"]["type"] == "COMPLETED", failure_report(run, p.all_logs())

    states = api_get(p.server.api_url, f"/flow_run_states/?flow_run_id={run['id']}")
    history = [s["type"] for s in sorted(states, key=lambda s: s["timestamp"])]
    assert history[0] == "SCHEDULED" and history[-1] == "COMPLETED", history
    assert run["auto_scheduled"] and run["parameters"] == params, run
    fired = datetime.fromisoformat(run["expected_start_time"])
    assert fired > registered_at and fired.second == fired.microsecond == 0, "a minute of the cron, after it was set"
    assert run["work_pool_name"] == POOL and any(run["id"] in started_by(log) for log in p.logs.values())
    (child,) = child_runs(p.server, run["id"])
    assert child["parameters"]["object_name"] == "Lead" and child["state"]["type"] == "COMPLETED"
    # the server keeps it in PostgreSQL
    assert p.postgres.psql(f"SELECT auto_scheduled, state_type FROM flow_run WHERE id = '{run['id']}'") == [
        "t|COMPLETED"]
    fired_runs = [r["id"] for r in _runs_past_scheduled(p.server, deployment_id) if r["auto_scheduled"]]
    assert fired_runs == [run["id"]], "only the first firing ran"
    still_scheduled = api_post(p.server.api_url, "/flow_runs/count", {
        "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": ["SCHEDULED"]}}}})
    assert still_scheduled == 0, "the pause deleted the runs the cron had scheduled ahead"
