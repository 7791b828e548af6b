"""Process-level reliability: the emulator never outlives the run that started it, and first runs that start
together on a fresh Prefect home all succeed (Prefect's database is created once, under a lock)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import EmulatorInfo, emulator_session
from tests.reliability_helpers import (
    PYTHON,
    ROOT,
    base_env,
    emulator_env,
    fresh_prefect_home,
    kill_group,
    start_orchestrator,
)

pytestmark = [pytest.mark.integration]

DEADLINE_S = 120.0  # generous: the machine is shared; only "eventually" is asserted


def _poll(condition, *, timeout: float = DEADLINE_S, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _children(pid: int) -> list[int]:
    """Direct child pids, from every thread's /proc children list (Linux)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whoever adopted it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _emulator_child(pid: int) -> int | None:
    return next((kid for kid in _children(pid) if "emulator serve" in _cmdline(kid)), None)


@pytest.mark.slow  # a real run started and killed
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the child through /proc")
def test_emulator_exits_when_the_run_is_killed(tmp_path):
    """``kill -9`` of the run: no finally block runs, yet the emulator it started does not stay behind."""
    # an already migrated home: the run reaches its emulator without first spending ~5 s creating a database
    env = base_env(data_root=tmp_path / "data", prefect_home=fresh_prefect_home(tmp_path / "prefect"))
    log = tmp_path / "run.log"
    proc = start_orchestrator(env, "--objects", "Lead", log_file=log)
    emulator_pid = None
    try:
        assert _poll(lambda: "source: emulator" in log.read_text() or proc.poll() is not None), log.read_text()
        assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()}"
        emulator_pid = _emulator_child(proc.pid)
        assert emulator_pid is not None and _is_alive(emulator_pid)

        os.kill(proc.pid, signal.SIGKILL)  # the run alone, not its process group: nobody tells the emulator
        proc.wait(timeout=30)

        assert _poll(lambda: not _is_alive(emulator_pid)), f"emulator {emulator_pid} outlived its run"
    finally:
        kill_group(proc)  # whatever is left of the group, whatever the outcome


@contextlib.contextmanager
def _serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m emulator serve`` with stdin on a pipe we hold; killed (by its pid) if still running at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SF_EMULATOR")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([PYTHON, "-m", "emulator", "serve", "--rows", "Lead=5", *args], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _query_works(proc: subprocess.Popen[str]) -> bool:
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line, f"serve exited with {proc.wait()}: {proc.stderr.read()}"
    info = EmulatorInfo.from_json(line)
    with emulator_session(info) as http:
        response = http.get(f"{info.instance_url}/services/data/v{info.api_version}/query",
                            params={"q": "SELECT COUNT() FROM Lead"},
                            headers={"Authorization": f"Bearer {info.access_token}"}, timeout=30)
    return response.status_code == 200


def test_exit_with_parent_stops_serving_when_stdin_closes():
    with _serving("--exit-with-parent") as proc:
        assert _query_works(proc)
        assert proc.stdin is not None
        proc.stdin.close()  # what the OS does to the pipe when the parent dies
        assert _poll(lambda: proc.poll() is not None), "serve --exit-with-parent kept running after EOF on stdin"
        assert proc.returncode == 0


def test_serve_by_hand_ignores_stdin():
    """Without the flag a closed stdin (``serve < /dev/null``, nohup, cron) changes nothing."""
    with _serving() as proc:
        assert proc.stdin is not None
        proc.stdin.close()
        assert _query_works(proc) and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


FIRST_RUNS = 3


@pytest.mark.slow
def test_first_runs_started_together_share_one_fresh_prefect_home(emulator, tmp_path):
    """Each run would create Prefect's database itself; together they used to collide (duplicate column,
    UNIQUE constraint on block_schema.checksum). Now the first one creates it under a lock, the others wait."""
    home = tmp_path / "prefect"  # fresh: no database yet
    procs = [start_orchestrator(base_env(data_root=tmp_path / f"data{i}", prefect_home=home,
                                         extra=emulator_env(emulator)),
                                "--objects", "Lead", log_file=tmp_path / f"run{i}.log") for i in range(FIRST_RUNS)]
    try:
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            kill_group(p)
    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(FIRST_RUNS)]
    assert codes == [0] * FIRST_RUNS, "\n\n".join(log[-3000:] for log in logs)
    assert all("UNIQUE constraint failed" not in log and "duplicate column" not in log for log in logs)
