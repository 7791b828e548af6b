"""`make ui` then `make run`: the local server starts in the background, runs report to it and print their UI
links, `make ui-stop` stops it; the serve scripts refuse to serve schedules with no server to fire them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prefect_server import PROJECT_ROOT, api_post, free_port
from tests.prefect_template import seed_prefect_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    """No server configured, no credentials: what a new user's shell looks like, with the UI on a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "PREFECT_"))}
    env.update(SF_UI_PORT=str(port), SF_UI_HOME=str(tmp_path / "ui"), SF_ENV_FILE="",
               SF_PIPELINE_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "client-home"))
    return env


def _ui(env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "deployments/prefect_ui.py", action], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def test_make_ui_then_make_run_shows_the_run_in_that_ui(tmp_path):
    port = free_port()
    env = _env(tmp_path, port)
    seed_prefect_home(tmp_path / "ui")  # the server's database, migrated once per session (tests/prefect_template)
    seed_prefect_home(tmp_path / "client-home")
    ui = f"http://127.0.0.1:{port}"
    started = _ui(env, "start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"Prefect UI at {ui}" in started.stdout
        assert f"already running at {ui}" in _ui(env, "start").stdout  # a second `make ui` says where it runs

        run = subprocess.run([sys.executable, "run_multiple_times.py", "--runs", "1", "--objects", "Lead"],
                             cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert f"Prefect UI: {ui}" in run.stdout
        link = re.search(rf"in the Prefect UI: {re.escape(ui)}/flow-runs/flow-run/([0-9a-f-]{{36}})", run.stdout)
        assert link, run.stdout
        (flow_run,) = api_post(f"{ui}/api", "/flow_runs/filter", {"flow_runs": {"id": {"any_": [link.group(1)]}}})
        assert flow_run["name"].startswith("sf-etl ") and flow_run["state"]["type"] == "COMPLETED"
    finally:
        stopped = _ui(env, "stop")
    assert stopped.returncode == 0 and "stopped the Prefect UI" in stopped.stdout, stopped.stdout + stopped.stderr
    assert _ui(env, "status").returncode == 1


def test_a_serve_script_without_a_server_says_how_to_get_one(tmp_path):
    env = _env(tmp_path, free_port())  # nothing listens there
    done = subprocess.run([sys.executable, "serve_phase1_15min.py"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "schedules need a Prefect server: run `make ui` first" in done.stderr
