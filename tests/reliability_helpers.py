"""Shared helpers of the reliability suite: run the orchestrator in a real subprocess, and audit a data root."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tests.prefect_template import seed_prefect_home

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RUN_ONCE = ("--runs", "1")


# ------------------------------------------------------------------------------------------- environments


def base_env(*, data_root: Path, prefect_home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean subprocess environment: no inherited SF_/PREFECT_ settings, private data root and Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "PREFECT_"))}
    env.update(SF_PIPELINE_DATA_DIR=str(data_root), PREFECT_HOME=str(prefect_home), SF_ENV_FILE="",
               SF_RETRY_BASE_SECONDS="0.01", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def emulator_env(info) -> dict[str, str]:
    """Access-token variables that point the pipeline at an already running emulator."""
    return {"SF_INSTANCE_URL": info.instance_url, "SF_ACCESS_TOKEN": info.access_token,
            "SF_CA_BUNDLE": info.ca_bundle}


# ------------------------------------------------------------------------------------------- subprocess runs

def fresh_prefect_home(dest: Path) -> Path:
    """A private PREFECT_HOME with an already migrated database: a copy of the session's template
    (``tests/prefect_template.py``: migrated once for every worker, then copied), with a memo store that lets
    Prefect skip registering its block types again.

    Several runs starting at once would each migrate a new SQLite database, and Prefect gives its ephemeral
    API only 30 s to start: on a busy 2-core machine that fails for reasons unrelated to the pipeline.
    """
    dest.mkdir(parents=True)  # a new folder, as a copy of the template always was
    return seed_prefect_home(dest)


def run_orchestrator(env: Mapping[str, str], *args: str, timeout: float = 240,
                     cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python run_multiple_times.py --runs 1 [args]`` to completion; stdout and stderr captured."""
    cmd = [PYTHON, str(ROOT / "run_multiple_times.py"), *RUN_ONCE, *args]
    return subprocess.run(cmd, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)


def start_orchestrator(env: Mapping[str, str], *args: str, log_file: Path) -> subprocess.Popen[bytes]:
    """Start the orchestrator in its own process group (so a kill takes Prefect's children with it)."""
    log = open(log_file, "wb")  # noqa: SIM115 - the child owns it; closed by the OS when both are gone
    cmd = [PYTHON, str(ROOT / "run_multiple_times.py"), *RUN_ONCE, *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group: no atexit, no finally, no cleanup, like a power cut for the process."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for_file(root: Path, pattern: str, proc: subprocess.Popen, *, timeout: float = 180) -> Path | None:
    """Poll until a file matching ``pattern`` (rglob) exists under ``root``; None if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = list(root.rglob(pattern)) if root.exists() else []
        if hits:
            return hits[0]
        if proc.poll() is not None:
            return None
        time.sleep(0.005)
    return None


def file_stamps(root: Path) -> dict[Path, int]:
    """Every file under ``root`` with its modification time (ns): what ``wait_for_change`` compares with."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def wait_for_change(root: Path, patterns: tuple[str, ...], before: dict[Path, int], proc: subprocess.Popen,
                    timeout: float = 240) -> Path | None:
    """The first file matching a pattern that is new or rewritten since ``before``; None if the run ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (p for pattern in patterns for p in root.glob(pattern)) if root.exists() else []:
            try:
                if before.get(path) != path.stat().st_mtime_ns:
                    return path
            except FileNotFoundError:  # a temp file renamed away between glob and stat
                continue
        if proc.poll() is not None:
            return None
        time.sleep(0.005)
    return None


# ------------------------------------------------------------------------------------------- auditing outputs


def temp_files(root: Path) -> list[Path]:
    """Leftover atomic-write temp files (``.<name>.tmp-<pid>-<id>``)."""
    return sorted(p for p in root.rglob(".*.tmp-*")) if root.exists() else []


def _check_raw_csv(path: Path) -> str | None:
    from utils.paths import schema_sidecar_for
    from utils.raw_schema import read_raw_schema

    sidecar = schema_sidecar_for(path)
    if not sidecar.is_file():
        return f"{path}: raw CSV without its schema sidecar"
    rows = pl.read_csv(path, infer_schema=False).height
    expected = read_raw_schema(sidecar).row_count
    return None if rows == expected else f"{path}: {rows} rows but its sidecar says {expected}"


def _check_file(path: Path) -> str | None:
    """None when the file parses completely (and a raw CSV matches its sidecar); else what is wrong."""
    from tasks.quality_parallel import parse_rowcount_history

    try:
        if path.suffix == ".csv":
            if path.parent.name == "raw":
                return _check_raw_csv(path)
            pl.read_csv(path, infer_schema=False)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".parquet":
            pl.read_parquet(path)
        elif path.name == "rowcount.txt":
            parse_rowcount_history(path.read_text(encoding="utf-8"))
    except Exception as err:  # noqa: BLE001 - any parse failure is the finding
        return f"{path}: {type(err).__name__}: {str(err)[:200]}"
    return None


def audit_data_root(root: Path) -> list[str]:
    """Every problem a reader of ``root`` could meet: unparseable files, raw CSVs not matching their sidecar.

    Temp files are not checked here (readers never look at them); see ``temp_files``.
    """
    problems = []
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file() and not path.name.startswith("."):
            problem = _check_file(path)
            if problem:
                problems.append(problem)
    return problems


def rowcount_entries(root: Path, object_name: str):
    from tasks.quality_parallel import parse_rowcount_history

    path = root / "processed" / "qa" / object_name / "rowcount.txt"
    return parse_rowcount_history(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- row parity


@dataclass(frozen=True)
class ExpectedIds:
    """The Ids the emulator serves for one object: every row (queryAll) and the live ones."""

    all: frozenset[str]
    live: frozenset[str]


def expected_ids(org, object_name: str) -> ExpectedIds:
    frame = org.frame(object_name)
    return ExpectedIds(frozenset(frame["Id"].to_list()),
                       frozenset(frame.filter(~pl.col("IsDeleted"))["Id"].to_list()))


def ids_in(path: str | os.PathLike[str]) -> list[str]:
    """The Id column of a raw CSV or a Parquet replica/snapshot, as a list (duplicates kept)."""
    path = Path(path)
    frame = pl.read_parquet(path, columns=["Id"]) if path.suffix == ".parquet" else \
        pl.read_csv(path, columns=["Id"], infer_schema=False)
    return frame["Id"].to_list()


def summary_id_count(summary_json: Path) -> int:
    """Sum of ``Id_count`` over the summary's groups: the number of rows the aggregation saw."""
    return sum(r["Id_count"] for r in json.loads(summary_json.read_text(encoding="utf-8")))


def find_secrets(texts: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[str]:
    """``where: secret`` for every secret found in any (where, text) pair."""
    found = []
    secrets = [s for s in secrets if s]
    for where, text in texts:
        found.extend(f"{where}: {s[:4]}..." for s in secrets if s in text)
    return found


def file_texts(root: Path) -> Iterable[tuple[str, str]]:
    """(path, contents decoded loosely) of every file under ``root``, binary ones included."""
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file():
            yield str(path), path.read_bytes().decode("utf-8", errors="replace")
