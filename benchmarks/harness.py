"""Timing, peak-RSS and child-process helpers shared by every benchmark stage.

Each measurement runs in a fresh ``python -m benchmarks.child`` process so its peak RSS (VmHWM) is its own and
nothing cached by an earlier run (imports, Polars' string cache, sockets) helps a later one. Variants of one
comparison run interleaved, round after round, so background load on this noisy machine hits them alike.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from utils.timefmt import now_utc_seconds

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work"
CHILD_TIMEOUT_S = 600.0
PACKAGES = ("polars", "prefect", "simple-salesforce", "pyarrow", "numpy", "requests", "pandas", "duckdb")


# --- pure helpers -------------------------------------------------------------------------------------------


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def interleaved_order(variants: Sequence[str], repeat: int) -> list[tuple[int, str]]:
    """``(round, variant)`` pairs: every variant once per round, rounds one after another."""
    if repeat < 1:
        msg = f"repeat must be at least 1, got {repeat}"
        raise ValueError(msg)
    return [(r, v) for r in range(repeat) for v in variants]


def summarize_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median seconds, every run's seconds, and the highest peak RSS over the runs of one variant."""
    peaks = [peak for r in runs if (peak := r.get("peak_rss_mb")) is not None]
    return {
        "median_s": median(r["seconds"] for r in runs),
        "runs_s": [round(r["seconds"], 3) for r in runs],
        "peak_rss_mb": round(max(peaks), 1) if peaks else None,
        "rss_before_work_mb": round(max(r.get("rss_before_work_mb") or 0 for r in runs), 1) or None,
        "n": len(runs),
    }


def per_second(amount: float | None, seconds: float | None) -> float | None:
    """A rate; None when either side is unknown or the time is zero."""
    return ratio(amount, seconds)


# --- this process -------------------------------------------------------------------------------------------


def read_proc_status_mb(key: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` of this process in MB (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    peak = read_proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def current_rss_mb() -> float | None:
    return read_proc_status_mb("VmRSS")


# --- child processes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One variant of a comparison: a ``module:function`` setup hook run in a child, with JSON params."""

    name: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a measurement child: quiet Prefect, no developer .env, the repo importable."""
    # A developer's SF_ credentials never reach a child: each stage says which emulator to use.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SF_")}
    # Cached bytecode makes the (untimed) imports of every child ~3x faster, which keeps `make bench` in budget.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env["SF_ENV_FILE"] = ""  # never pick up real credentials from .env
    env.update(extra or {})
    return env


def run_child(case: Case, *, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run one measurement in a fresh process; returns the JSON dict the child printed last."""
    cmd = [sys.executable, "-m", "benchmarks.child", json.dumps({"target": case.target, "params": case.params})]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=child_env(case.env), timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        msg = f"benchmark child {case.name} ({case.target}) failed with exit code {done.returncode}:\n{tail}"
        raise RuntimeError(msg)
    return json.loads(lines[-1])


def measure_interleaved(cases: Sequence[Case], repeat: int, *, log=print) -> dict[str, dict[str, Any]]:
    """Run every case ``repeat`` times, round-robin; per case the summary plus every run's raw output."""
    by_name = {c.name: c for c in cases}
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in cases}
    for round_no, name in interleaved_order(list(by_name), repeat):
        result = run_child(by_name[name])
        runs[name].append(result)
        log(f"  [{round_no + 1}/{repeat}] {name:<28} {result['seconds']:8.2f} s  peak {result['peak_rss_mb']:7.0f} MB")
    return {name: {**summarize_runs(rs), "raw": rs} for name, rs in runs.items()}


# --- machine and versions -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _git_commit() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15-minute load averages, rounded (None where the OS has none): the machine is shared,
    so every result says how busy it was."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare numbers across machines: CPU, cores, memory, OS, Python, versions, load."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_total_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "git": _git_commit(),
        "load_average_at_start": load_average(),
        "started_at": now_utc_seconds(),
    }
