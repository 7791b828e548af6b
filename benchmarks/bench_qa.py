"""Load and QA on one raw extract: each QA task alone, the real QA flow, and the parallel speed-up.

Three children per round: every task body run one after another (their sum, and the JSON load), the same
bodies run concurrently in plain threads (the speed-up with no Prefect at all), and the real
``object_parallel_flow`` on the ConcurrentTaskRunner (Prefect's engine started by a warm-up flow first, untimed).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bench_extract import ensure_raw_extract
from benchmarks.harness import WORK, Case, measure_interleaved, median, ratio

OBJECT = "Opportunity"
RUN_ID = "BENCHQA"


# --- inside a child -------------------------------------------------------------------------------------------


def _gate(raw_csv: str, data_root: str):
    from tasks.quality_parallel import inspect_raw_extract, spec_for
    from utils.paths import build_qa_paths

    return inspect_raw_extract(OBJECT, raw_csv, spec_for(OBJECT), build_qa_paths(OBJECT, data_root=data_root))


def _checks_after_gate(gate, data_root: str) -> dict[str, Callable[[], Any]]:
    """The task bodies the flow runs side by side once the gate passed (names as in the Prefect UI).

    The gate itself writes the Parquet snapshot; these read it (``typed_rows_of``), as the flow's tasks do.
    """
    from tasks import quality_parallel as qp
    from utils.paths import build_qa_paths

    spec, qc, raw = qp.spec_for(OBJECT), build_qa_paths(OBJECT, data_root=data_root), Path(gate.raw_csv)

    def validator_check(dotted: str) -> Callable[[], Any]:
        """One validator's check; a function so each lambda holds its own validator, not the loop's last."""
        return lambda: qp.run_custom_validator(OBJECT, dotted, qp.typed_rows_of(gate), spec)

    checks: dict[str, Callable[[], Any]] = {
        "completeness": lambda: qp.check_completeness(OBJECT, qp.typed_rows_of(gate), spec),
        "dedup": lambda: qp.write_dedup(OBJECT, qp.typed_rows_of(gate), spec, qc),
        "profile": lambda: qp.write_profile(OBJECT, qp.typed_rows_of(gate), raw, qc),
        "rowcount": lambda: qp.record_rowcount(OBJECT, gate.row_count, RUN_ID, spec, qc),
    }
    for dotted in spec.validators:
        checks[f"validator:{dotted.rpartition(':')[2]}"] = validator_check(dotted)
    return checks


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def setup_tasks_sequential(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Each QA task body alone, one after another, plus the Phase 1 JSON load (its processing untimed)."""
    from tasks.load import load_summary_file
    from tasks.process import process_object_file

    raw, root = params["raw_csv"], params["data_root"]
    summary_csv = process_object_file(OBJECT, raw, data_root=root)

    def work() -> dict[str, Any]:
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        gate = _gate(raw, root)
        seconds["gate"] = time.perf_counter() - started
        if gate.blocked_reason:
            raise RuntimeError(f"QA gate blocked the benchmark extract: {gate.blocked_reason}")
        for name, fn in _checks_after_gate(gate, root).items():
            seconds[name] = _timed(fn)
        qa_sum = sum(seconds.values())
        seconds["json_load"] = _timed(lambda: load_summary_file(OBJECT, summary_csv, data_root=root))
        return {"tasks_s": seconds, "qa_sum_s": qa_sum}

    return work


def setup_tasks_threads(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The same task bodies as the flow, concurrently in plain threads: the parallel speed-up without Prefect."""
    import tasks.quality_parallel  # noqa: F401 - import cost stays out of the timing

    raw, root = params["raw_csv"], params["data_root"]

    def work() -> dict[str, Any]:
        gate = _gate(raw, root)
        checks = _checks_after_gate(gate, root)
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            for future in [pool.submit(fn) for fn in checks.values()]:
                future.result()
        return {}

    return work


def setup_flow(params: dict[str, Any]) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], dict[str, Any]]]:
    """The real QA flow on this one object; its task-run durations are read back from Prefect's API."""
    from benchmarks.bench_e2e import read_run_tree, use_private_prefect_home, warm_up_prefect

    home = use_private_prefect_home()
    from flows.object_parallel_flow import object_parallel_flow

    startup = warm_up_prefect()

    def work() -> dict[str, Any]:
        state = object_parallel_flow(raw_files={OBJECT: params["raw_csv"]}, objects=[OBJECT], run_id=RUN_ID,
                                     data_root=params["data_root"], return_state=True)
        if not state.is_completed():
            raise RuntimeError(f"the QA flow ended {state.type.value}: {state.message}")
        return {"flow_run_id": str(state.state_details.flow_run_id)}

    def after(facts: dict[str, Any]) -> dict[str, Any]:
        tree = read_run_tree()
        shutil.rmtree(home, ignore_errors=True)
        return {"prefect_startup_s": startup, "task_runs_s": {t["name"]: t["seconds"] for t in tree["tasks"]},
                "flow_run_s": tree["flow_runs"][0]["seconds"] if tree["flow_runs"] else None}

    return work, after


# --- in the parent --------------------------------------------------------------------------------------------


def per_task_medians(runs: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Task name -> median seconds over the rounds of the sequential child."""
    names = list(dict.fromkeys(n for r in runs for n in r["tasks_s"]))
    return {n: median(r["tasks_s"].get(n) for r in runs) for n in names}


def run_stage(*, rows: int, repeat: int, log=print) -> dict[str, Any]:
    """The load/QA timings and the QA branch's speed-up; returns the JSON-able section of latest.json."""
    raw = ensure_raw_extract(rows, log=log)
    log(f"qa: {rows:,}-row raw extract: tasks one by one, in threads, and the real QA flow")
    root = WORK / "qa-out"
    params = {"raw_csv": str(raw), "data_root": str(root)}
    cases = [
        Case("tasks_sequential", "benchmarks.bench_qa:setup_tasks_sequential", params),
        Case("tasks_threads", "benchmarks.bench_qa:setup_tasks_threads", params),
        Case("qa_flow", "benchmarks.bench_qa:setup_flow", params),
    ]
    results = measure_interleaved(cases, repeat, log=log)
    sequential = results["tasks_sequential"]["raw"]
    tasks = per_task_medians(sequential)
    qa_sum = median(r["qa_sum_s"] for r in sequential)
    flow_s = results["qa_flow"]["median_s"]
    return {
        "rows": rows,
        "task_medians_s": tasks,
        "qa_tasks_sum_s": qa_sum,
        "qa_threads_wall_s": results["tasks_threads"]["median_s"],
        "qa_flow_wall_s": flow_s,
        "speedup_flow_vs_sum": ratio(qa_sum, flow_s),
        "speedup_threads_vs_sum": ratio(qa_sum, results["tasks_threads"]["median_s"]),
        "prefect_startup_s": median(r.get("prefect_startup_s") for r in results["qa_flow"]["raw"]),
        "variants": results,
    }
