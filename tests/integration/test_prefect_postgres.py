"""`make ui-postgres`, as a person runs it: PostgreSQL on 127.0.0.1 in a throwaway cluster, the Prefect server on
it, an orchestrator run reporting to it; the run and its task runs are rows of PostgreSQL's tables, and no SQLite
database was made. Everything is stopped and removed at the end, even when the test fails."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.prefect_postgres import postmaster_pid, stop_postgres
from tests.postgres_server import postgres_binaries
from tests.prefect_server import PROJECT_ROOT, api_post, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def postgres_bin() -> Path:
    """Debian's PostgreSQL server binaries, installed by apt-get when missing (tests/postgres_server.py)."""
    return postgres_binaries()


@pytest.fixture()
def ui_env(postgres_bin: Path) -> Iterator[dict[str, str]]:
    """A new user's shell (no server configured, no credentials) with `make ui`'s home, UI port and PostgreSQL
    port private to this test. The home is a folder of its own under /tmp that the unprivileged PostgreSQL user
    can enter (pytest's tmp_path is root's alone); it is removed at the end with whatever ran from it."""
    home = Path(tempfile.mkdtemp(prefix="sfpp-ui-postgres-"))
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "PREFECT_"))}
    env.update(SF_UI_HOME=str(home), SF_UI_PORT=str(free_port()), SF_UI_POSTGRES_PORT=str(free_port()),
               SF_ENV_FILE="", SF_PIPELINE_DATA_DIR=str(home / "data"), PREFECT_HOME=str(home / "client-home"))
    try:
        yield env
    finally:
        _script(env, "stop")
        _kill_leftovers(home)
        shutil.rmtree(home, ignore_errors=True)


def _script(env: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "deployments/prefect_postgres.py", action], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _kill_leftovers(home: Path) -> None:
    """Whatever `stop` did not stop (it failed, or start died half-way): PostgreSQL, then the Prefect server."""
    pid = postmaster_pid(home / "postgres" / "data")
    if pid is not None:
        stop_postgres(pid)
    with contextlib.suppress(OSError, ValueError):
        os.killpg(int((home / "server.pid").read_text()), signal.SIGKILL)


def _psql(postgres_bin: Path, port: str, sql: str) -> list[str]:
    done = subprocess.run([str(postgres_bin / "psql"), "-h", "127.0.0.1", "-p", port, "-U", "prefect", "-d",
                           "prefect", "-Atc", sql], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def test_make_ui_postgres_keeps_a_run_and_its_task_runs_in_postgresql(ui_env, postgres_bin):
    ui, home = f"http://127.0.0.1:{ui_env['SF_UI_PORT']}", Path(ui_env["SF_UI_HOME"])
    pg_port = ui_env["SF_UI_POSTGRES_PORT"]
    started = _script(ui_env, "start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"PostgreSQL on 127.0.0.1:{pg_port}" in started.stdout and f"Prefect UI at {ui}" in started.stdout

    run = subprocess.run([sys.executable, "run_multiple_times.py", "--runs", "1", "--objects", "Lead"],
                         cwd=PROJECT_ROOT, env=ui_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    link = re.search(rf"in the Prefect UI: {re.escape(ui)}/flow-runs/flow-run/([0-9a-f-]{{36}})", run.stdout)
    assert link, run.stdout
    flow_run_id = link.group(1)

    (flow_run,) = api_post(f"{ui}/api", "/flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    assert flow_run["name"].startswith("sf-etl ") and flow_run["state"]["type"] == "COMPLETED"
    task_runs = api_post(f"{ui}/api", "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    assert any(t["name"] == "sync-Lead" for t in task_runs), [t["name"] for t in task_runs]

    # the same rows, read from PostgreSQL itself: the run, its subflows (phase1, qa) and every task run
    assert _psql(postgres_bin, pg_port, f"SELECT state_type FROM flow_run WHERE id = '{flow_run_id}'") == [
        "COMPLETED"]
    stored_tasks = _psql(postgres_bin, pg_port, f"SELECT id FROM task_run WHERE flow_run_id = '{flow_run_id}'")
    assert sorted(stored_tasks) == sorted(t["id"] for t in task_runs)
    subflows = _psql(postgres_bin, pg_port, "SELECT split_part(f.name, ' ', 1) || '=' || f.state_type FROM flow_run f"
                     f" JOIN task_run t ON f.parent_task_run_id = t.id WHERE t.flow_run_id = '{flow_run_id}'"
                     " ORDER BY f.name")
    assert subflows == ["phase1=COMPLETED", "qa=COMPLETED"], subflows
    assert int(_psql(postgres_bin, pg_port, "SELECT count(*) FROM task_run WHERE flow_run_id IN (SELECT f.id FROM"
                     " flow_run f JOIN task_run t ON f.parent_task_run_id = t.id"
                     f" WHERE t.flow_run_id = '{flow_run_id}')")[0]) > 0
    assert not list(home.rglob("*.db")), "a SQLite database was made (server or client)"

    stopped = _script(ui_env, "stop")
    assert "stopped the Prefect UI" in stopped.stdout and "stopped PostgreSQL" in stopped.stdout, stopped.stdout
    assert postmaster_pid(home / "postgres" / "data") is None
    assert _script(ui_env, "status").returncode == 1
