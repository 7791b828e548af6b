"""Scale (issue #18): an incremental run with the same 1,000-row delta on a 0.2M, 2M and 20M-row object.

Run: .venv/bin/python -m benchmarks.bench_scale [--sizes 200000,2000000,20000000] [--rounds 3] [--quick]
(``python -m benchmarks --only scale`` runs it as a stage.) Targets (issue #18, "the replica must scale with the
object, not with memory"): the incremental sync at 20M rows takes at most 5x the one at 0.2M rows; a whole
incremental run (every stage) on the 20M-row object peaks under 1.5 GB RSS, and the stage that held the memory is
named.

Per size: one emulator org (Opportunity only, no living changes, its own process), one data root; every size's org
is up at once and the sizes are measured step by step in turn (interleaved, as the other stages interleave their
variants), so the sync ratio is also taken round by round between syncs run back to back (``paired_sync_ratios``:
the verdict's number). A backfill (recorded, not a target), then rounds of: 1,000 random replica records changed
through the real REST API, one incremental ``sync_object`` in a fresh child (wall time of the sync alone, peak RSS,
the API requests the emulator counted), then, on the same data root, Phase 1 (``process_object_file`` + the JSON
load) and the QA task bodies (gate, then each check with the peak reset before it, so each check's own peak is
known) in fresh children. After the rounds, 1,000 more records changed and one whole run of the real orchestrator
flow narrowed to Opportunity (its sync, Phase 1 and QA in one process, as ``make run`` runs them): the target's peak
RSS. Every measured run records whether the formula refresh and the Id reconciliation ran (registry defaults: every
4 and 96 runs).

The replica is never read here except through what the pipeline hands out (``SyncResult.dataset`` scanned with
``utils.raw_frame.scan_dataset``); each sync is checked against the org (replica rows = ``SELECT COUNT()``, exactly
the changed records updated). Children run under a memory guard: one that would push the machine below
``MEMORY_GUARD_MB`` available is killed and the size reported as not fitting, instead of the kernel's OOM killer
picking a process of someone else's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO, WORK, Case, child_env, median, peak_rss_mb, ratio

OBJECT = "Opportunity"
DELTA_ROWS = 1_000                # records changed before each measured run
SIZES = (200_000, 2_000_000, 20_000_000)
QUICK_SIZES = (20_000, 200_000)
TARGET_SYNC_RATIO = 5.0           # issue #18: the 20M-row sync at most 5x the 0.2M-row one
TARGET_WHOLE_RUN_MB = 1536.0      # issue #18: a whole incremental run under 1.5 GB (VmHWM, MiB like every peak here)
MEMORY_GUARD_MB = 2048            # a child is killed when the machine's MemAvailable falls below this
SYNC_TIMEOUT_S = 3600.0           # a 20M-row backfill takes minutes; a hung child must still end
EMULATOR_STARTUP_S = 1800.0       # a 20M-row org takes ~40 s to generate here; the runner's default is 180 s
# Functions timed inside the sync child, ``module:qualified name``, where they exist (the replica layout changes:
# missing ones are skipped). ``_reconcile_ids`` calls ``merge_delta``: their seconds overlap. The rest of a run is
# describe, the delta's query, the lock and the state.
PHASES = ("tasks.sync:_load_replica", "tasks.sync:merge_delta", "tasks.replica_store:Replica.merge",
          "tasks.sync:_narrow_pull", "tasks.sync:refresh_columns", "tasks.sync:_write_replica",
          "tasks.sync:_count_live", "tasks.sync:_reconcile_ids")
STAGES = ("sync", "phase1", "qa", "whole_run")


# --- pure -----------------------------------------------------------------------------------------------------


def size_label(rows: int) -> str:
    """``200_000`` -> ``0.2M``, ``20_000`` -> ``20k``: how the issue names sizes."""
    if rows >= 1_000_000 or rows % 100_000 == 0 and rows >= 100_000:
        return f"{rows / 1_000_000:g}M"
    return f"{rows / 1_000:g}k"


def sync_ratios(sync_seconds: Mapping[int, float | None]) -> dict[str, float | None]:
    """Median sync seconds of each larger size over the smallest's, keyed ``"2M/0.2M"``."""
    if not sync_seconds:
        return {}
    smallest = min(sync_seconds)
    return {f"{size_label(n)}/{size_label(smallest)}": ratio(s, sync_seconds[smallest])
            for n, s in sorted(sync_seconds.items()) if n != smallest}


def heaviest(peaks: Mapping[str, float | None]) -> tuple[str, float] | None:
    """The name with the highest peak RSS, and that peak; None when nothing was measured."""
    known = {name: peak for name, peak in peaks.items() if peak is not None}
    if not known:
        return None
    name = max(known, key=lambda n: known[n])
    return name, known[name]


def flags_from_events(events: Sequence[str]) -> dict[str, bool]:
    """Whether a sync's log events show a formula refresh and an Id reconciliation (``tasks/sync.py``'s events)."""
    return {"formula_refresh": "sync_formulas_refreshed" in events,
            "reconcile": any(e.startswith("sync_reconcil") for e in events)}


def check_sync(stats: Mapping[str, Any], *, org_rows: int, changed: int) -> list[str]:
    """What is wrong with a sync after ``changed`` records were edited: the replica's rows against the org's
    ``COUNT()``, and the merge's updates against the records changed (nothing else changes in this org)."""
    problems = []
    if stats.get("replica_rows") != org_rows:
        problems.append(f"replica rows {stats.get('replica_rows')}, org COUNT() {org_rows}")
    if stats.get("updates") != changed:
        problems.append(f"{stats.get('updates')} records updated, {changed} were changed in the org")
    if stats.get("inserts") or stats.get("deletes"):
        problems.append(f"{stats.get('inserts')} inserts and {stats.get('deletes')} deletes; the org had none")
    return problems


def verdicts(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stage's targets in ``benchmarks.report``'s verdict shape, at the largest and smallest sizes measured."""
    sizes = sorted(int(n) for n, entry in section["by_size"].items() if not entry.get("failed"))
    out: list[dict[str, Any]] = []
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        paired = section.get("paired_sync_ratios", {}).get(f"{size_label(large)}/{size_label(small)}")
        measured = paired if paired is not None else ratio(section["by_size"][str(large)]["sync"]["seconds"],
                                                           section["by_size"][str(small)]["sync"]["seconds"])
        out.append(_verdict(f"scale: incremental sync {size_label(large)} / {size_label(small)} rows, seconds",
                            measured, TARGET_SYNC_RATIO, "x"))
    if sizes:
        whole = section["by_size"][str(sizes[-1])]["whole_run"]
        out.append(_verdict(f"scale: whole incremental run at {size_label(sizes[-1])} rows, peak RSS",
                            whole.get("peak_rss_mb"), TARGET_WHOLE_RUN_MB, "MB"))
    for n, entry in sorted(section["by_size"].items(), key=lambda kv: int(kv[0])):
        if entry.get("failed"):  # a size that did not fit is a missed target, not a missing one
            out.append({"target": f"scale: {size_label(int(n))} rows fit this machine", "measured": None,
                        "comparison": "", "limit": None, "unit": "", "ok": False})
    return out


def _verdict(target: str, measured: float | None, limit: float, unit: str) -> dict[str, Any]:
    return {"target": target, "measured": None if measured is None else round(measured, 3), "comparison": "<=",
            "limit": limit, "unit": unit, "ok": None if measured is None else measured <= limit}


def summarize_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median seconds (and API requests when counted) over the rounds, the highest peak RSS and the highest
    ``peak - RSS before the work``, every round's values."""
    requests = [r["api_requests"] for r in runs if r.get("api_requests") is not None]
    added = [r["peak_rss_mb"] - r["rss_before_work_mb"] for r in runs if r.get("rss_before_work_mb") is not None]
    return {"seconds": median(r["seconds"] for r in runs), "runs_s": [round(r["seconds"], 3) for r in runs],
            "api_requests": median(requests) if requests else None, "api_requests_runs": requests,
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
            "work_added_mb": round(max(added), 1) if added else None, "n": len(runs)}


def table(section: Mapping[str, Any]) -> str:
    """One row per size (sync s, requests, delta rows, peak RSS of each stage, the heaviest stage), then the ratios
    and the QA checks' own peaks."""
    from benchmarks.report import format_table

    rows, checks, phases, failures = [], [], [], []
    names = sorted({p for e in section["by_size"].values() for p in e.get("sync", {}).get("phases_s", {})})
    for n, e in sorted(section["by_size"].items(), key=lambda kv: int(kv[0])):
        if e.get("failed"):
            rows.append([size_label(int(n)), *["-"] * 10, "did not fit"])
            failures.append(f"{size_label(int(n))}: {e['failed']}")
            continue
        phases.append([size_label(int(n)), e["sync"]["seconds"], *(e["sync"]["phases_s"].get(p) for p in names)])
        sync, whole = e["sync"], e["whole_run"]
        top = e.get("heaviest_stage") or ["-", None]
        rows.append([size_label(int(n)), e["backfill"]["seconds"], sync["seconds"], sync["api_requests"],
                     e.get("delta_rows"), sync["peak_rss_mb"], e["phase1"]["peak_rss_mb"], e["qa"]["peak_rss_mb"],
                     whole.get("peak_rss_mb"), whole.get("seconds"), e.get("emulator_peak_rss_mb"),
                     f"{top[0]} ({top[1]:,.0f} MB)" if top[1] else "-"])
        checks.append([size_label(int(n)), *(e["qa"].get("check_peaks_mb", {}).get(c) for c in _QA_COLUMNS)])
    runs = format_table(["scale (Opportunity)", "backfill s", "sync s", "requests", "delta rows", "sync MB",
                         "phase1 MB", "QA MB", "whole MB", "whole s", "emulator MB", "heaviest"], rows)
    ratios = "  ".join([*(f"sync {k}: {v:.2f}x" for k, v in section["sync_ratios"].items() if v is not None),
                        *(f"(paired by round: {k} {v:.2f}x)" for k, v in section.get("paired_sync_ratios", {}).items()
                          if v is not None),
                        *failures])
    qa = format_table(["QA peak RSS MB", *_QA_COLUMNS], checks)
    by_phase = format_table(["sync s by phase", "sync s", *names], phases)
    return runs + ("\n" + ratios if ratios else "") + "\n\n" + qa + "\n\n" + by_phase


_QA_COLUMNS = ("gate", "completeness", "dedup", "profile", "rowcount", "validators")


# --- inside a child -------------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs`` 5), so the next peak is one step's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _EventNames(logging.Handler):
    """Collects the ``event=`` names of the pipeline's log lines (``utils.logs.log_event``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("event="):
            self.names.append(message.split(" ", 1)[0].removeprefix("event="))


def _capture_events() -> _EventNames:
    """Outside a flow ``log_event`` writes to the ``sf_pipeline`` logger: listen there at INFO."""
    handler = _EventNames()
    logger = logging.getLogger("sf_pipeline")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def _time_phases(phases: dict[str, dict[str, float]]) -> None:
    """Wrap the ``PHASES`` that exist to add up their seconds and calls (a method is wrapped on its class)."""
    import importlib

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                entry = phases.setdefault(name, {"seconds": 0.0, "calls": 0})
                entry["seconds"] += time.perf_counter() - started
                entry["calls"] += 1
        return timed

    for dotted in PHASES:
        module_name, _, qualified = dotted.partition(":")
        owner_path, _, attribute = qualified.rpartition(".")
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part, None)
        if callable(getattr(owner, attribute, None)):
            setattr(owner, attribute, wrap(attribute.lstrip("_"), getattr(owner, attribute)))


def sync_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: a client on the emulator; the work is one ``sync_object`` of the registry's entry."""
    from emulator.runner import EmulatorInfo
    from tasks.extract import ExtractOptions
    from tasks.sync import sync_object
    from utils.connection import SalesforceConnection
    from utils.settings import Credentials

    info = EmulatorInfo(**params["emulator"])
    conn = SalesforceConnection(Credentials(flow="access_token", instance_url=info.instance_url,
                                            access_token=info.access_token, ca_bundle=info.ca_bundle))
    events, phases = _capture_events(), dict[str, dict[str, float]]()
    _time_phases(phases)

    def work() -> dict[str, Any]:
        result = sync_object(OBJECT, run_id=params["run_id"], connection=conn, data_root=params["data_root"],
                             options=ExtractOptions(), full_refresh=params.get("full_refresh", False))
        return {"mode": result.mode, "api_path": result.extracted.api_path, "delta_rows": result.extracted.rows,
                "dataset": result.dataset, "sync": result.sync.as_dict(), "events": events.names,
                **flags_from_events(events.names), "phases": phases}

    return work


def phase1_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: Phase 1 on the sync's dataset, as the flow runs it (summary, then its JSON)."""
    from tasks.load import load_summary_file
    from tasks.process import process_object_file

    def work() -> dict[str, Any]:
        summary = process_object_file(OBJECT, params["dataset"], data_root=params["data_root"])
        load_summary_file(OBJECT, summary, data_root=params["data_root"])
        return {}

    return work


def _qa_checks(gate: Any, params: Mapping[str, Any]) -> dict[str, Callable[[], Any]]:
    """The QA bodies the flow runs once the gate passed (``tasks.quality_parallel``'s tasks, their ``.fn``)."""
    from tasks import quality_parallel as qp

    root = params["data_root"]
    checks: dict[str, Callable[[], Any]] = {
        "completeness": lambda: qp.qa_completeness.fn(OBJECT, gate),
        "dedup": lambda: qp.qa_dedup.fn(OBJECT, gate, root),
        "profile": lambda: qp.qa_profile.fn(OBJECT, gate, root),
        "rowcount": lambda: qp.qa_rowcount.fn(OBJECT, gate, params["run_id"], root),
    }
    for dotted in qp.spec_for(OBJECT).validators:
        checks[f"validator:{dotted.rpartition(':')[2]}"] = (lambda v: lambda: qp.qa_validator.fn(OBJECT, v, gate))(
            dotted)
    return checks


def qa_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: the gate, then each QA body one after another, the peak reset before each (its own peak)."""
    from tasks import quality_parallel as qp

    def work() -> dict[str, Any]:
        seconds: dict[str, float] = {}
        peaks: dict[str, float] = {}
        started = time.perf_counter()
        gate = qp.qa_gate.fn(OBJECT, params["dataset"], params["data_root"])
        seconds["gate"], peaks["gate"] = time.perf_counter() - started, peak_rss_mb()
        if getattr(gate, "blocked_reason", None):
            raise RuntimeError(f"the QA gate blocked the replica: {gate.blocked_reason}")
        resets = True
        for name, check in _qa_checks(gate, params).items():
            resets = reset_peak_rss() and resets
            started = time.perf_counter()
            check()
            seconds[name], peaks[name] = time.perf_counter() - started, peak_rss_mb()
        # the child's peak is read after the work: with resets it would be the last check's, so report the highest
        return {"checks_s": seconds, "check_peaks_mb": peaks, "peaks_reset": resets,
                "qa_peak_rss_mb": max(peaks.values())}

    return work


def whole_run_case(params: dict[str, Any]) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], dict]]:
    """Child setup: the real orchestrator flow narrowed to Opportunity on the benchmark's data root (its replica and
    state from the rounds before), in a fresh Prefect home whose ephemeral API is started first."""
    from benchmarks.bench_e2e import read_run_tree, seconds_by_kind, use_private_prefect_home, warm_up_prefect

    home = use_private_prefect_home()
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow

    startup = warm_up_prefect()

    def work() -> dict[str, Any]:
        state = sf_etl_orchestrator_flow(objects=[OBJECT], data_root=params["data_root"], return_state=True)
        summary = state.result(raise_on_failure=False)
        if not state.is_completed():
            raise RuntimeError(f"the orchestrator ended {state.type.value}: {state.message}")
        assert isinstance(summary, dict)  # the flow returns a State only when it fails
        row = next(r for r in summary["objects"] if r["object"] == OBJECT)
        return {"summary_row": row}

    def after(facts: dict[str, Any]) -> dict[str, Any]:
        tree = read_run_tree()
        shutil.rmtree(home, ignore_errors=True)
        return {"prefect_startup_s": startup, "task_seconds_by_kind": seconds_by_kind(tree["tasks"])}

    return work, after


# --- in the parent: children under a memory guard -------------------------------------------------------------


class ChildFailed(RuntimeError):
    """A measurement child that did not finish: killed by the guard, timed out, or exited with an error."""

    def __init__(self, message: str, *, reason: str, sampled_peak_mb: float | None) -> None:
        super().__init__(message)
        self.reason, self.sampled_peak_mb = reason, sampled_peak_mb


def _meminfo_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _rss_of(pid: int, key: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _watch(proc: subprocess.Popen[str], *, timeout: float, guard_mb: float) -> tuple[str | None, float | None]:
    """Wait for the child; kill it (by its pid) past ``timeout`` or when the machine's available memory falls under
    ``guard_mb``. Returns why it was killed (None: it ended by itself) and the highest RSS sampled."""
    started, sampled = time.monotonic(), None
    while proc.poll() is None:
        rss = _rss_of(proc.pid)
        sampled = max(sampled or 0.0, rss or 0.0) or sampled
        available = _meminfo_mb("MemAvailable")
        reason = None
        if time.monotonic() - started > timeout:
            reason = f"timed out after {timeout:.0f} s"
        elif available is not None and available < guard_mb:
            reason = (f"killed by the memory guard: {available:,.0f} MB left on the machine, the child at "
                      f"{rss or 0:,.0f} MB")
        if reason:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return reason, sampled
        time.sleep(0.25)
    return None, sampled


def run_guarded(case: Case, *, timeout: float = SYNC_TIMEOUT_S, guard_mb: float = MEMORY_GUARD_MB) -> dict[str, Any]:
    """``harness.run_child`` under the memory guard: the JSON line the child printed last."""
    cmd = [sys.executable, "-m", "benchmarks.child", json.dumps({"target": case.target, "params": case.params})]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO, env=child_env(case.env))
        killed, sampled = _watch(proc, timeout=timeout, guard_mb=guard_mb)
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        tail = "\n".join(err.read().strip().splitlines()[-15:])
    if killed or proc.returncode != 0 or not lines:
        reason = killed or f"exit code {proc.returncode}" + (" (SIGKILL: the kernel's OOM killer?)"
                                                              if proc.returncode == -signal.SIGKILL else "")
        msg = f"benchmark child {case.name} ({case.target}) failed: {reason}:\n{tail}"
        raise ChildFailed(msg, reason=f"{case.name} {reason}", sampled_peak_mb=sampled)
    return json.loads(lines[-1])


# --- in the parent: the org -----------------------------------------------------------------------------------


def _emulator_pid(known: Sequence[int | None] = ()) -> int | None:
    """This process's ``python -m emulator serve`` child not in ``known`` (``run_emulator`` does not hand out its
    pid; several sizes' emulators run at once)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if (int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"emulator serve" in cmdline
                and int(entry.name) not in known):
            return int(entry.name)
    return None


@contextmanager
def _org(rows: int, known_pids: Sequence[int | None] = ()) -> Iterator[tuple[Any, float, int | None]]:
    """An emulator with ``rows`` Opportunities, no living changes, no faults: (info, startup seconds, pid)."""
    import emulator.runner
    from emulator import run_emulator

    emulator.runner.STARTUP_TIMEOUT_S = max(emulator.runner.STARTUP_TIMEOUT_S, EMULATOR_STARTUP_S)
    started = time.perf_counter()
    with run_emulator(rows={OBJECT: rows}, living_rate=0, faults="") as info:
        yield info, time.perf_counter() - started, _emulator_pid(known_pids)


def changed_ids(dataset: str, *, rows: int, n: int, seed: int) -> list[str]:
    """``n`` Ids at random row positions of the dataset the sync handed out (a streaming scan: only Id is read)."""
    import numpy as np
    import polars as pl

    from utils.raw_frame import scan_dataset

    positions = pl.LazyFrame({"row": np.random.default_rng(seed).choice(rows, size=min(n, rows), replace=False)},
                             schema={"row": pl.UInt32})
    picked = (scan_dataset(Path(dataset)).select("Id").with_row_index("row").join(positions, on="row", how="semi")
              .select("Id").collect(engine="streaming"))
    return picked["Id"].to_list()


def touch(org: Any, ids: Sequence[str], stamp: str) -> float:
    """Change one field of each record through the REST sObject endpoint (as ``bench_incremental`` does), then read
    the object once so the emulator applies the waiting writes now, not inside the measured sync. Seconds taken."""
    started = time.perf_counter()

    def patch(chunk: Sequence[str]) -> None:
        from emulator import emulator_session

        with emulator_session(org.info) as http:
            headers = {"Authorization": f"Bearer {org.info.access_token}"}
            for record_id in chunk:
                http.patch(f"{org.base}/sobjects/{OBJECT}/{record_id}", headers=headers,
                           json={"NextStep": f"bench {stamp}"}, timeout=60).raise_for_status()

    workers = [threading.Thread(target=patch, args=(ids[i::2],)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    org.count()
    return time.perf_counter() - started


def _sync_state_flags(data_root: Path) -> dict[str, Any]:
    """The sync state's run counters (``tasks.sync.read_sync_state``): a counter back at 0 after an incremental run
    says the refresh / reconciliation ran in it. Empty when the state cannot be read."""
    from tasks.sync import read_sync_state
    from utils.paths import build_sync_paths

    try:
        state = read_sync_state(build_sync_paths(OBJECT, data_root=data_root).state, OBJECT)
    except Exception:  # noqa: BLE001 - the state's layout may change; the flags are then unknown, not fatal
        return {}
    if state is None:
        return {}
    return {"runs_since_formula_refresh": getattr(state, "runs_since_formula_refresh", None),
            "runs_since_reconcile": getattr(state, "runs_since_reconcile", None)}


# --- in the parent: one size ----------------------------------------------------------------------------------


class _Size:
    """One size's org, data root and the children measured on them."""

    def __init__(self, rows: int, info: Any, root: Path, log: Callable[[str], None]) -> None:
        from benchmarks.bench_schema import Org

        self.rows, self.info, self.root, self.log = rows, info, root, log
        self.org = Org(info)
        self.emulator = {"instance_url": info.instance_url, "access_token": info.access_token,
                         "ca_bundle": info.ca_bundle, "api_version": info.api_version}

    def child(self, name: str, target: str, params: dict[str, Any], *, env: dict[str, str] | None = None,
              timeout: float = SYNC_TIMEOUT_S) -> dict[str, Any]:
        """One measured child, with the API requests the emulator counted while it ran."""
        before = self.org.used()
        result = run_guarded(Case(name, f"benchmarks.bench_scale:{target}", params, env=env or {}), timeout=timeout)
        result["api_requests"] = self.org.used() - before
        return result

    def sync(self, run_id: str, *, full: bool = False) -> dict[str, Any]:
        result = self.child(run_id, "sync_case", {"emulator": self.emulator, "data_root": str(self.root),
                                                  "run_id": run_id, "full_refresh": full})
        self.log(f"  {size_label(self.rows):>5} {run_id:<10} {result['seconds']:8.2f} s  {result['api_requests']:4d} "
                 f"requests  peak {result['peak_rss_mb']:6.0f} MB  {result['mode']} ({result['api_path']}), delta "
                 f"{result['delta_rows']:,} rows, {result['sync']['updates']:,} updates"
                 + ("  +formula refresh" if result["formula_refresh"] else "")
                 + ("  +reconcile" if result["reconcile"] else ""))
        return result

    def stage(self, name: str, target: str, dataset: str, run_id: str) -> dict[str, Any]:
        result = self.child(name, target, {"dataset": dataset, "data_root": str(self.root), "run_id": run_id})
        if target == "qa_case":
            result["peak_rss_mb"] = max(result["peak_rss_mb"], result["qa_peak_rss_mb"])
        self.log(f"  {size_label(self.rows):>5} {name:<10} {result['seconds']:8.2f} s  "
                 f"peak {result['peak_rss_mb']:6.0f} MB")
        return result

    def change(self, dataset: str, *, seed: int) -> int:
        ids = changed_ids(dataset, rows=self.org.count(), n=DELTA_ROWS, seed=seed)
        seconds = touch(self.org, ids, f"{seed}")
        self.log(f"  {size_label(self.rows):>5} changed {len(ids):,} records over REST in {seconds:.1f} s")
        return len(ids)

    def checked(self, result: Mapping[str, Any], changed: int) -> list[str]:
        problems = check_sync(result["sync"], org_rows=self.org.count(), changed=changed)
        if problems:
            msg = f"{size_label(self.rows)} {result.get('mode')} sync does not match the org: {'; '.join(problems)}"
            raise AssertionError(msg)
        return problems

    def whole_run(self, env: dict[str, str]) -> dict[str, Any]:
        before = _sync_state_flags(self.root)
        result = self.child("whole_run", "whole_run_case", {"data_root": str(self.root)}, env=env)
        after = _sync_state_flags(self.root)
        result["formula_refresh"] = after.get("runs_since_formula_refresh") == 0
        result["reconcile"] = after.get("runs_since_reconcile") == 0 and before.get("runs_since_reconcile") != 0
        result["state_before"], result["state_after"] = before, after
        self.log(f"  {size_label(self.rows):>5} whole run  {result['seconds']:8.2f} s  {result['api_requests']:4d} "
                 f"requests  peak {result['peak_rss_mb']:6.0f} MB  (tasks: {result['task_seconds_by_kind']})"
                 + ("  +formula refresh" if result["formula_refresh"] else "")
                 + ("  +reconcile" if result["reconcile"] else ""))
        return result


def _whole_run_env(info: Any) -> dict[str, str]:
    return {"SF_INSTANCE_URL": info.instance_url, "SF_ACCESS_TOKEN": info.access_token,
            "SF_CA_BUNDLE": info.ca_bundle, "SF_API_RESERVE": "0"}


class _Interleaved:
    """Every size's runs, measured step by step across the sizes (``each``): the machine's load at a moment hits
    every size alike, so the sync ratio compares runs minutes apart, not one size's runs with another's half an hour
    later. A size whose child fails is reported as failed, with every larger one, and measured no further."""

    def __init__(self, sizes: Sequence[_Size], log: Callable[[str], None]) -> None:
        self.live, self.log = list(sizes), log
        self.runs: dict[int, dict[str, Any]] = {size.rows: {"syncs": [], "phase1": [], "qa": []} for size in sizes}
        self.datasets: dict[int, str] = {}
        self.changed: dict[int, int] = {}

    def each(self, step: Callable[..., None], *args: Any) -> None:
        """``step(size, *args)`` for every size still measured, smallest first."""
        for size in list(self.live):
            if size not in self.live:
                continue
            try:
                step(size, *args)
            except ChildFailed as err:
                self.log(f"  {size_label(size.rows):>5} FAILED: {err}")
                for dropped in [s for s in self.live if s.rows >= size.rows]:
                    self.live.remove(dropped)
                    self.runs[dropped.rows]["failed"] = (err.reason, err.sampled_peak_mb)

    def backfill(self, size: _Size) -> None:
        self.runs[size.rows]["backfill"] = result = size.sync("BACKFILL")
        self.datasets[size.rows] = result["dataset"]

    def change(self, size: _Size, seed: int) -> None:
        self.changed[size.rows] = size.change(self.datasets[size.rows], seed=seed)

    def sync(self, size: _Size, run_id: str) -> None:
        result = size.sync(run_id)
        result["checked"] = not size.checked(result, self.changed[size.rows])
        self.runs[size.rows]["syncs"].append(result)
        self.datasets[size.rows] = result["dataset"]

    def stages(self, size: _Size, n: int) -> None:
        dataset, run_id = self.datasets[size.rows], f"INC{n}"
        self.runs[size.rows]["phase1"].append(size.stage(f"phase1-{n}", "phase1_case", dataset, run_id))
        self.runs[size.rows]["qa"].append(size.stage(f"qa-{n}", "qa_case", dataset, run_id))

    def whole(self, size: _Size) -> None:
        self.runs[size.rows]["whole_run"] = size.whole_run(_whole_run_env(size.info))


def _measure_sizes(sizes: Sequence[_Size], rounds: int, log: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    """Every size's backfill, then ``rounds`` of (change every org; every size's sync, back to back, smallest
    first; every size's Phase 1 and QA), then one more change and one whole orchestrator run per size."""
    steps = _Interleaved(sizes, log)
    steps.each(steps.backfill)
    for i in range(rounds):
        steps.each(steps.change, i)
        steps.each(steps.sync, f"INC{i}")
        steps.each(steps.stages, i)
    steps.each(steps.change, rounds)
    steps.each(steps.whole)
    return steps.runs


def paired_sync_ratios(syncs: Mapping[int, Sequence[float]]) -> dict[str, float | None]:
    """Each larger size's sync over the smallest's in the same round (measured back to back), median over rounds,
    keyed ``"2M/0.2M"``: what the load of the moment cannot skew."""
    if not syncs:
        return {}
    smallest = min(syncs)
    out: dict[str, float | None] = {}
    for n, seconds in sorted(syncs.items()):
        if n == smallest:
            continue
        paired = median(ratio(large, small) for large, small in zip(seconds, syncs[smallest], strict=False))
        out[f"{size_label(n)}/{size_label(smallest)}"] = round(paired, 3) if paired is not None else None
    return out


def summarize_size(rows: int, runs: Mapping[str, Any], *, emulator: Mapping[str, Any]) -> dict[str, Any]:
    """One size's section: medians over the rounds per stage, the QA checks' own peaks, the heaviest stage."""
    syncs, qa, whole, backfill = runs["syncs"], runs["qa"], runs["whole_run"], runs["backfill"]
    check_peaks: dict[str, float] = {}
    for name in sorted({n for r in qa for n in r["check_peaks_mb"]}):
        key = "validators" if name.startswith("validator:") else name  # one column for every validator
        peaks = [check_peaks.get(key, 0.0), *(r["check_peaks_mb"].get(name, 0.0) for r in qa)]
        check_peaks[key] = round(max(peaks), 1)
    stage_peaks = {"sync": max(r["peak_rss_mb"] for r in syncs),
                   "phase1": max(r["peak_rss_mb"] for r in runs["phase1"]),
                   **{f"qa:{c}": p for c, p in check_peaks.items()}}
    top = heaviest(stage_peaks)
    phases = {p for r in syncs for p in r["phases"]}
    return {
        "rows": rows, "delta_rows": median(r["delta_rows"] for r in syncs), **emulator,
        "backfill": {"seconds": round(backfill["seconds"], 3), "api_requests": backfill["api_requests"],
                     "peak_rss_mb": round(backfill["peak_rss_mb"], 1), "api_path": backfill["api_path"],
                     "replica_rows": backfill["sync"]["replica_rows"]},
        "sync": {**summarize_runs(syncs), "checked": all(r["checked"] for r in syncs),
                 "formula_refresh_runs": [r["formula_refresh"] for r in syncs],
                 "reconcile_runs": [r["reconcile"] for r in syncs],
                 "phases_s": {p: median(r["phases"].get(p, {}).get("seconds", 0.0) for r in syncs) for p in phases},
                 "merge": [r["sync"] for r in syncs]},
        "phase1": summarize_runs(runs["phase1"]),
        "qa": {**summarize_runs(qa), "checks_s": {c: median(r["checks_s"].get(c) for r in qa)
                                                  for c in qa[0]["checks_s"]},
               "check_peaks_mb": check_peaks, "peaks_reset": all(r["peaks_reset"] for r in qa)},
        "whole_run": {"seconds": round(whole["seconds"], 3), "api_requests": whole["api_requests"],
                      "peak_rss_mb": round(whole["peak_rss_mb"], 1),
                      "work_added_mb": round(whole["peak_rss_mb"] - (whole.get("rss_before_work_mb") or 0.0), 1),
                      "task_seconds_by_kind": whole["task_seconds_by_kind"],
                      "formula_refresh": whole["formula_refresh"], "reconcile": whole["reconcile"],
                      "summary_row": whole["summary_row"], "prefect_startup_s": whole["prefect_startup_s"]},
        "stage_peaks_mb": {k: round(v, 1) for k, v in stage_peaks.items()},
        "heaviest_stage": list(top) if top else None,
        "raw": runs,
    }


def run_stage(*, sizes: Sequence[int] = SIZES, rounds: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every size on its own org and data root, all open at once and measured interleaved (``_measure_sizes``); a
    size that does not fit (a child killed by the memory guard, or by the kernel) is reported as failed and the
    larger sizes are not measured further."""
    started = time.perf_counter()
    log(f"scale: {OBJECT} at {', '.join(size_label(n) for n in sizes)} rows, {rounds} round(s) of "
        f"{DELTA_ROWS:,} changed records + an incremental run, one child per measurement, sizes interleaved")
    roots = {rows: WORK / "scale" / uuid.uuid4().hex[:12] for rows in sizes}
    emulators: dict[int, dict[str, Any]] = {}
    try:
        with ExitStack() as stack:
            measured_sizes = []
            for rows in sorted(sizes):
                info, startup_s, pid = stack.enter_context(_org(rows, [e["pid"] for e in emulators.values()]))
                log(f"  {size_label(rows):>5} emulator ready in {startup_s:.1f} s, "
                    f"RSS {(_rss_of(pid) if pid else None) or 0:,.0f} MB")
                emulators[rows] = {"emulator_startup_s": round(startup_s, 1), "pid": pid}
                measured_sizes.append(_Size(rows, info, roots[rows], log))
            runs = _measure_sizes(measured_sizes, rounds, log)
            for entry in emulators.values():
                pid = entry.pop("pid")
                entry["emulator_peak_rss_mb"] = round(_rss_of(pid, "VmHWM") or 0.0, 1) if pid else None
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
    by_size: dict[str, Any] = {}
    for rows, measured in sorted(runs.items()):
        if "failed" in measured:
            reason, peak = measured["failed"]
            by_size[str(rows)] = {"rows": rows, "failed": reason, "sampled_peak_mb": peak}
        else:
            by_size[str(rows)] = summarize_size(rows, measured, emulator=emulators[rows])
    measured_syncs = {int(n): e["sync"]["runs_s"] for n, e in by_size.items() if not e.get("failed")}
    section = {"object": OBJECT, "delta_rows": DELTA_ROWS, "rounds": rounds, "sizes": list(sizes),
               "interleaved": True, "by_size": by_size,
               "sync_ratios": sync_ratios({n: median(s) for n, s in measured_syncs.items()}),
               "paired_sync_ratios": paired_sync_ratios(measured_syncs),
               "stage_seconds": round(time.perf_counter() - started, 1)}
    largest = str(max(measured_syncs)) if measured_syncs else None
    section["heaviest_stage_at_largest"] = by_size[largest]["heaviest_stage"] if largest else None
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), help="comma-separated row counts")
    parser.add_argument("--rounds", type=int, default=3, help="changed records + incremental run, per size")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(map(size_label, QUICK_SIZES))}, one round")
    parser.add_argument("--out", type=Path, default=WORK / "scale.json")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else tuple(int(n) for n in args.sizes.split(",") if n.strip())
    section = run_stage(sizes=sizes, rounds=1 if args.quick else args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scale": section, "targets": verdicts(section)}, indent=2, default=str) + "\n")
    print("\n" + table(section))
    for v in verdicts(section):
        print(f"{v['target']}: {v['measured']} (limit {v['limit']}) "
              f"{ {True: 'met', False: 'MISSED', None: 'n/a'}[v['ok']] }")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
