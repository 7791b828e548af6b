"""A real local Prefect server for scheduling tests: start it, run serve/agent processes against it, poll its API.

Every process runs in its own session and is stopped with ``os.killpg``, so the flow-run and emulator
subprocesses it spawned go with it. Every wait has a deadline; a failed wait quotes the tails of the logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.prefect_template import seed_prefect_home

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_BIN = Path(sys.executable).parent / "prefect"  # 2.20 has no `python -m prefect`
SERVER_START_TIMEOUT_S = 90.0
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_UUID_RE = re.compile(r"UUID:\s*([0-9a-f-]{36})")

T = TypeVar("T")


@dataclass(frozen=True)
class PrefectServer:
    """A running server: its API URL, the env every client process should use, and where logs go."""

    api_url: str
    env: Mapping[str, str]
    log_dir: Path
    log: Path  # the server's own log

    def log_path(self, name: str) -> Path:
        """A fresh log file for one test's process (``name`` should be unique in the session)."""
        return self.log_dir / name


def free_port() -> int:
    """A TCP port nobody listens on right now (a fresh one per server: see prefect2-notes §3, port reuse)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_env(base: Mapping[str, str], *, prefect_home: Path, api_url: str) -> dict[str, str]:
    """The parent env minus any Salesforce credentials (runs must use the emulator), pointed at the server."""
    env = {k: v for k, v in base.items() if not k.startswith("SF_")}
    env.update({
        "SF_ENV_FILE": "",  # never read a developer's .env
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_URL": api_url,
        "PREFECT_LOGGING_LEVEL": "INFO",  # the logs are files, read only when a test fails
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, headed by its name."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        text = ["(not written)"]
    return f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text)


def tails(logs: Sequence[Path]) -> str:
    return "\n".join(log_tail(p) for p in logs)


@contextlib.contextmanager
def background_process(cmd: Sequence[str], *, env: Mapping[str, str], log_path: Path,
                       cwd: Path = PROJECT_ROOT) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in its own session with output to ``log_path``; kill its whole process group on exit."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, *, grace_s: float = 15.0) -> None:
    """SIGTERM the group (children included), then SIGKILL whatever is left after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        if sig is signal.SIGTERM:  # the leader is gone; make sure no child outlived it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        return


def wait_until(probe: Callable[[], T | None], *, timeout_s: float, what: str, logs: Sequence[Path] = (),
               watch: Sequence[subprocess.Popen] = (), interval_s: float = 0.5) -> T:
    """Call ``probe`` until it returns something other than None; fail with log tails at the deadline or as
    soon as a watched process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        dead = [p for p in watch if p.poll() is not None]
        if dead:
            codes = ", ".join(f"{' '.join(str(a) for a in p.args[-2:])} exited {p.returncode}"  # type: ignore[index]
                              for p in dead)
            pytest.fail(f"while waiting for {what}: {codes}\n{tails(logs)}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout_s:.0f} s waiting for {what}\n{tails(logs)}", pytrace=False)
        time.sleep(interval_s)


def api_get(api_url: str, path: str) -> Any | None:
    """GET a JSON resource; None on 404 or while the server is unreachable."""
    try:
        response = httpx.get(f"{api_url}{path}", timeout=10)
    except httpx.TransportError:
        return None
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def api_post(api_url: str, path: str, payload: Mapping[str, Any]) -> Any:
    response = httpx.post(f"{api_url}{path}", json=dict(payload), timeout=10)
    response.raise_for_status()
    return response.json()


@contextlib.contextmanager
def running_prefect_server(work_dir: Path, *, database_url: str | None = None) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free port with its own PREFECT_HOME; yields once /api/health says true.

    The home starts with a copy of the session's migrated template database (``tests/prefect_template.py``):
    the server would otherwise spend ~10 s of CPU creating and migrating one before it answers. With
    ``database_url`` (``postgresql+asyncpg://...``, tests/postgres_server.py) the server keeps its data there
    instead, and creates its tables on that first start.
    """
    home, log_dir = work_dir / "prefect-home", work_dir / "logs"
    home.mkdir(parents=True)
    if database_url is None:
        seed_prefect_home(home)
    log_dir.mkdir()
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = client_env(os.environ, prefect_home=home, api_url=api_url)
    server_env = {**env, "PREFECT_UI_ENABLED": "false",
                  # schedule new deployments' cron runs within seconds, not the default 60 s loop
                  "PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
                  # its SQLite writes race the API's ("database is locked", PrefectHQ/prefect#10188); unused here
                  "PREFECT_API_SERVICES_FLOW_RUN_NOTIFICATIONS_ENABLED": "false"}
    server_env.pop("PREFECT_API_URL")
    if database_url is not None:
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    log = log_dir / "server.log"
    cmd = [str(PREFECT_BIN), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background_process(cmd, env=server_env, log_path=log) as proc:
        wait_until(lambda: api_get(api_url, "/health") or None, timeout_s=SERVER_START_TIMEOUT_S,
                   what=f"the Prefect server's {api_url}/health", logs=[log], watch=[proc])
        yield PrefectServer(api_url=api_url, env=env, log_dir=log_dir, log=log)


def read_deployment(server: PrefectServer, full_name: str) -> dict[str, Any] | None:
    """The deployment ``<flow-name>/<deployment-name>`` as the API returns it, or None if it does not exist."""
    return api_get(server.api_url, f"/deployments/name/{full_name}")


def deployment_crons(deployment: Mapping[str, Any]) -> list[str]:
    """The cron strings of a deployment's active schedules."""
    return [s["schedule"].get("cron") for s in deployment.get("schedules", []) if s.get("active", True)]


def trigger_deployment(server: PrefectServer, full_name: str, *, params: Mapping[str, Any] | None = None,
                       log_name: str = "trigger.log") -> str:
    """``prefect deployment run <full_name> [--params JSON]``; returns the new flow run's id."""
    cmd = [str(PREFECT_BIN), "deployment", "run", full_name]
    if params is not None:
        cmd += ["--params", json.dumps(params)]
    done = subprocess.run(cmd, env=dict(server.env), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=90)
    (server.log_dir / log_name).write_text(done.stdout + done.stderr)
    found = _UUID_RE.search(done.stdout)
    if done.returncode != 0 or not found:
        pytest.fail(f"`{' '.join(cmd[1:])}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return found.group(1)


def create_flow_run(server: PrefectServer, deployment: Mapping[str, Any], *,
                    params: Mapping[str, Any] | None = None) -> str:
    """A manual run of ``deployment`` through the API (``POST /deployments/{id}/create_flow_run``, what
    ``prefect deployment run`` sends), without the ~4 s of CPU of a CLI process importing Prefect; the CLI itself
    is ``trigger_deployment``'s. Returns the new flow run's id."""
    run = api_post(server.api_url, f"/deployments/{deployment['id']}/create_flow_run",
                   {"parameters": dict(params or {})})
    return run["id"]


def wait_for_flow_run(server: PrefectServer, flow_run_id: str, *, timeout_s: float, logs: Sequence[Path],
                      watch: Sequence[subprocess.Popen] = ()) -> dict[str, Any]:
    """Poll the API until the flow run is in a terminal state; returns the flow run."""

    def finished() -> dict[str, Any] | None:
        run = api_get(server.api_url, f"/flow_runs/{flow_run_id}")
        return run if run and run["state"] and run["state"]["type"] in TERMINAL_STATES else None

    return wait_until(finished, timeout_s=timeout_s, what=f"flow run {flow_run_id} to finish",
                      logs=[server.log, *logs], watch=watch)


def scheduled_run_times(server: PrefectServer, deployment_id: str) -> list[str]:
    """Expected start times of the deployment's SCHEDULED runs (what the server's scheduler made of the cron)."""
    runs = api_post(server.api_url, "/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": ["SCHEDULED"]}}},
        "limit": 20,
    })
    return sorted(r["expected_start_time"] for r in runs)


def pause_deployment(server: PrefectServer, deployment_id: str) -> None:
    """Switch the deployment's schedule off; the server also deletes its auto-scheduled runs."""
    api_post(server.api_url, f"/deployments/{deployment_id}/pause_deployment", {})


def read_block_data(server: PrefectServer, block_document_id: str) -> dict[str, Any]:
    """The fields of a block document (e.g. a deployment's Process infrastructure)."""
    document = api_get(server.api_url, f"/block_documents/{block_document_id}")
    assert document is not None, f"no block document {block_document_id}"
    return document["data"]


def failure_report(flow_run: Mapping[str, Any], logs: Sequence[Path]) -> str:
    """The flow run's final state and message plus the tails of the given logs, for an assertion message."""
    state = flow_run["state"]
    return f"flow run ended {state['type']}: {state.get('message')}\n{tails(logs)}"


class SharedServer:
    """The one real Prefect server of this process: started by the first test that asks for it, stopped as soon as
    the next test does not need it (``tests/conftest.py``, ``pytest_runtest_teardown``) rather than at the end of
    the session. The files that use it run one after the other on one xdist worker (``ONE_WORKER_GROUPS``), so they
    share one start-up (~9 s of CPU), and the idle server's loops do not run on for the rest of the session."""

    FIXTURE = "prefect_server"

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self._server: PrefectServer | None = None

    def get(self, tmp_path_factory: pytest.TempPathFactory) -> PrefectServer:
        if self._server is None:
            stack = contextlib.ExitStack()
            try:
                self._server = stack.enter_context(running_prefect_server(tmp_path_factory.mktemp("prefect-server")))
            except BaseException:
                stack.close()
                raise
            self._stack = stack
        return self._server

    def stop(self) -> None:
        stack, self._stack, self._server = self._stack, None, None
        if stack is not None:
            stack.close()


SHARED_SERVER = SharedServer()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> PrefectServer:
    """One real Prefect server (start-up costs ~9 s of CPU), shared by the modules that run one after the other and
    killed with its process group when the next test needs none (``SharedServer``)."""
    return SHARED_SERVER.get(tmp_path_factory)
