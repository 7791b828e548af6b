"""The README's scheduling entry points, run as written against a real local Prefect server.

Each test starts the entry point as a subprocess (no Salesforce credentials, so extraction uses the emulator),
triggers its deployment and polls the API until the run finishes. The agent test triggers with the README's
`prefect deployment run` CLI; the serve tests ask the API directly, as that CLI does (a CLI process costs ~4 s of
CPU, and its path is the agent test's).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.prefect_server import (
    PREFECT_BIN,
    PROJECT_ROOT,
    PrefectServer,
    background_process,
    create_flow_run,
    deployment_crons,
    failure_report,
    pause_deployment,
    prefect_server,  # noqa: F401 - the shared server's fixture
    read_block_data,
    read_deployment,
    scheduled_run_times,
    tails,
    trigger_deployment,
    wait_for_flow_run,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # one xdist worker runs them all: tests/conftest.py

CRON = "*/15 * * * *"
ONE_OBJECT = {"objects": ["Account"]}
ORCHESTRATOR = "sf-etl-orchestrator/sf-etl-orchestrator-15min"
REGISTER_TIMEOUT_S = 90.0  # serve start-up: ~7 s on an idle 2-core box, ~35 s when it is busy
RUN_TIMEOUT_S = 120.0


@pytest.fixture()
def run_env(prefect_server: PrefectServer, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """The server's client env plus a private data root and fast polling."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    return {**prefect_server.env, "SF_PIPELINE_DATA_DIR": str(data_root),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_AGENT_QUERY_INTERVAL": "2"}


def _wait_for_deployment(server: PrefectServer, full_name: str, *, logs: list[Path], watch) -> dict:
    return wait_until(lambda: read_deployment(server, full_name), timeout_s=REGISTER_TIMEOUT_S,
                      what=f"deployment {full_name} to be registered", logs=[server.log, *logs], watch=watch)


def _assert_cron_is_live_then_pause(server: PrefectServer, deployment: dict, logs: list[Path]) -> None:
    """The deployment carries the cron and the server's scheduler has made quarter-hour runs of it.

    Then the schedule is paused (which deletes those runs), so a quarter-hour passing mid-test cannot start a
    full, unparameterised run next to the one the test triggers; manual triggers still run.
    """
    assert deployment_crons(deployment) == [CRON], deployment.get("schedules")
    assert not deployment["paused"]
    times = wait_until(lambda: scheduled_run_times(server, deployment["id"]) or None, timeout_s=30,
                       what=f"scheduled runs of {deployment['name']}", logs=[server.log, *logs])
    starts = [datetime.fromisoformat(t) for t in times]
    assert all(s.minute % 15 == 0 and s.second == 0 for s in starts), times
    pause_deployment(server, deployment["id"])


@contextlib.contextmanager
def _serve(script: str, env: dict[str, str], server: PrefectServer, name: str) -> Iterator[tuple]:
    """``python <script>`` from the project root, as the README says; yields (process, log file)."""
    log = server.log_path(f"{name}.log")
    with background_process([sys.executable, script], env=env, log_path=log) as proc:
        yield proc, log


def test_serve_parallel_qa_runs_a_triggered_flow_run(prefect_server: PrefectServer, run_env):  # noqa: F811
    full_name = "object-parallel-qa/sf-parallel-qa-15min"
    with _serve("serve_parallel_qa_15min.py", run_env, prefect_server, "serve-parallel-qa") as (proc, log):
        deployment = _wait_for_deployment(prefect_server, full_name, logs=[log], watch=[proc])
        _assert_cron_is_live_then_pause(prefect_server, deployment, [log])

        flow_run_id = create_flow_run(prefect_server, deployment)
        run = wait_for_flow_run(prefect_server, flow_run_id, timeout_s=RUN_TIMEOUT_S, logs=[log], watch=[proc])

        assert run["state"]["type"] == "COMPLETED", failure_report(run, [prefect_server.log, log])
        assert run["deployment_id"] == deployment["id"]


def test_serve_orchestrator_runs_one_object_end_to_end(prefect_server: PrefectServer, run_env):  # noqa: F811
    data_root = Path(run_env["SF_PIPELINE_DATA_DIR"])
    with _serve("serve_orchestrator_15min.py", run_env, prefect_server, "serve-orchestrator") as (proc, log):
        deployment = _wait_for_deployment(prefect_server, ORCHESTRATOR, logs=[log], watch=[proc])
        _assert_cron_is_live_then_pause(prefect_server, deployment, [log])

        flow_run_id = create_flow_run(prefect_server, deployment, params=ONE_OBJECT)
        run = wait_for_flow_run(prefect_server, flow_run_id, timeout_s=RUN_TIMEOUT_S, logs=[log], watch=[proc])

        assert run["state"]["type"] == "COMPLETED", failure_report(run, [prefect_server.log, log])
        assert run["parameters"] == ONE_OBJECT
        _assert_one_object_outputs(data_root)


def test_deployment_and_agent_run_one_object_end_to_end(prefect_server: PrefectServer, run_env):  # noqa: F811
    data_root = Path(run_env["SF_PIPELINE_DATA_DIR"])
    apply_log = prefect_server.log_path("apply-deployment.log")
    done = _run_logged([sys.executable, "deployments/apply_15min_deployment.py"], run_env, apply_log)
    assert done == 0, f"apply_15min_deployment.py exited {done}\n{tails([apply_log])}"

    deployment = read_deployment(prefect_server, ORCHESTRATOR)
    assert deployment is not None, f"apply did not register {ORCHESTRATOR}"
    assert deployment["work_queue_name"] == "default"
    # runs must start in the project root: a temp working dir means copying the whole tree first, and
    # losing ./data outputs and sync state with the temp dir
    infrastructure = read_block_data(prefect_server, deployment["infrastructure_document_id"])
    assert infrastructure.get("working_dir") == str(PROJECT_ROOT), infrastructure
    _assert_cron_is_live_then_pause(prefect_server, deployment, [apply_log])

    agent_log = prefect_server.log_path("agent.log")
    agent_cmd = [str(PREFECT_BIN), "agent", "start", "-q", "default"]
    with background_process(agent_cmd, env=run_env, log_path=agent_log) as agent:
        flow_run_id = trigger_deployment(prefect_server, ORCHESTRATOR, params=ONE_OBJECT,
                                         log_name="trigger-orchestrator-agent.log")
        run = wait_for_flow_run(prefect_server, flow_run_id, timeout_s=RUN_TIMEOUT_S, logs=[agent_log],
                                watch=[agent])

    assert run["state"]["type"] == "COMPLETED", failure_report(run, [prefect_server.log, apply_log, agent_log])
    _assert_one_object_outputs(data_root)


def _run_logged(cmd: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("ab") as out:
        return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=90).returncode


def _assert_one_object_outputs(data_root: Path) -> None:
    """Phase 1 wrote the Account summary and Phase 2 its profile, both valid JSON."""
    summary = data_root / "output" / "Account" / "summary.json"
    profile = data_root / "processed" / "qa" / "Account" / "profile.json"
    assert summary.is_file(), f"missing {summary}; data root holds {sorted(p.name for p in data_root.rglob('*'))}"
    assert profile.is_file(), f"missing {profile}"
    json.loads(summary.read_text())
    json.loads(profile.read_text())
