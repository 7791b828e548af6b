"""End to end: the orchestrator against an emulator, and the share of its wall time that is Prefect's own.

The emulator is started first (outside the timing) and reached like a real org (SF_INSTANCE_URL,
SF_ACCESS_TOKEN, SF_CA_BUNDLE). Each run is a fresh child with a fresh PREFECT_HOME and data root; a trivial
warm-up flow starts Prefect's ephemeral API first (reported apart as ``prefect_startup_s``). Afterwards the
task runs are read back from Prefect's API: the time during which at least one task body was running is "our
work"; the rest of the flow's wall time is orchestration overhead (flow/task/subflow engine, state round trips,
plus the orchestrator's few non-task steps: plan, retention, artifact, run summary).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from benchmarks.harness import WORK, Case, load_average, machine_info, measure_interleaved, median, ratio

PREFECT_HOMES = WORK / "prefect-homes"
WRAPPER_TASK_PREFIX = "branch-"  # flows/sf_etl_orchestrator_flow.py: tasks that run a whole subflow
MAX_CONCURRENT_EXTRACTS = 3      # the orchestrator's default


# --- pure -----------------------------------------------------------------------------------------------------


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals: time during which at least one of them was running."""
    total = 0.0
    span: tuple[float, float] | None = None  # the union of the overlapping intervals since the last gap
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if span is None or start > span[1]:
            if span is not None:
                total += span[1] - span[0]
            span = (start, end)
        else:
            span = (span[0], max(span[1], end))
    if span is not None:
        total += span[1] - span[0]
    return total


def overhead_share(wall_seconds: float, busy: float) -> float | None:
    """Share of the wall time when no task body ran; None without a positive wall time."""
    if wall_seconds <= 0:
        return None
    return max(0.0, wall_seconds - busy) / wall_seconds


# --- inside a child -------------------------------------------------------------------------------------------


def _template_db() -> Path:
    from importlib.metadata import version

    return PREFECT_HOMES.parent / f"prefect-db-template-{version('prefect')}" / "prefect.db"


def use_private_prefect_home() -> str:
    """Point Prefect at a fresh home (own SQLite database) before it is imported; returns the path.

    The database starts as a copy of an already-migrated empty one when a previous child left it (see
    ``warm_up_prefect``): creating it costs ~15 s per child on this machine and is not what we measure.
    """
    home = PREFECT_HOMES / uuid.uuid4().hex[:12]
    home.mkdir(parents=True, exist_ok=True)
    if _template_db().exists():
        shutil.copyfile(_template_db(), home / "prefect.db")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)  # the ephemeral in-process API, never a developer's server
    return str(home)


def warm_up_prefect() -> float:
    """Run a trivial flow so the ephemeral API and its database exist before the timing; returns its seconds.

    Its flow is named ``bench-warm-up`` so ``read_run_tree`` can leave it out."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> int:
        return 1

    template, fresh = _template_db(), not _template_db().exists()
    if fresh:  # snapshot the migrated, still empty database for the next children
        from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

        db = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[-1])
    started = time.perf_counter()
    warm_up()
    seconds = time.perf_counter() - started
    if fresh and db.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        # its one warm-up run comes along; read_run_tree leaves every bench-warm-up run out
        with sqlite3.connect(db) as source, sqlite3.connect(template) as target:
            source.backup(target)
    return seconds


def read_run_tree(skip_flow: str = "bench-warm-up") -> dict[str, Any]:
    """Every flow run and leaf task run in this Prefect home, with their running intervals (epoch seconds).

    A task run that is the parent of a subflow run (the branch wrappers, the subflow stand-ins) holds other
    runs' work, so it is not a leaf.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        skipped = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[skip_flow])))
        skip_ids = {f.id for f in skipped}
        flow_runs = [f for f in client.read_flow_runs(limit=200) if f.id not in skip_ids]
        task_runs = client.read_task_runs(limit=200)
    # The branch tasks only wait on their subflow, whose tasks are counted themselves.
    parents = {f.parent_task_run_id for f in flow_runs if f.parent_task_run_id}
    parents |= {t.id for t in task_runs if t.name.startswith(WRAPPER_TASK_PREFIX)}
    tasks = [
        {"name": t.name, "seconds": t.total_run_time.total_seconds(),
         "start": t.start_time.timestamp(), "end": t.end_time.timestamp()}
        for t in task_runs if t.id not in parents and t.start_time and t.end_time
    ]
    flows_out = [{"name": f.name, "seconds": f.total_run_time.total_seconds(), "parent": f.parent_task_run_id}
                 for f in flow_runs]
    flows_out.sort(key=lambda f: f["parent"] is not None)  # the top-level flow first
    return {"tasks": tasks, "flow_runs": flows_out}


def process_cpu_s() -> float:
    """CPU seconds (user + system, every thread) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pid_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far (/proc/<pid>/stat), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime in clock ticks


def setup_orchestrator(params: dict[str, Any]) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], dict]]:
    """The real orchestrator flow, as ``make run`` calls it, on a fresh data root."""
    home = use_private_prefect_home()
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow
    from utils import storage

    startup = warm_up_prefect()
    data_root = params["data_root"]
    if storage.is_remote(data_root):  # a new prefix per run (its scratch is the child's own, removed after)
        data_root = f"{data_root}/{uuid.uuid4().hex[:12]}"
    shutil.rmtree(data_root, ignore_errors=True)
    store = params.get("store_pid")  # the loopback S3 server's process, for its CPU time

    def work() -> dict[str, Any]:
        cpu, store_cpu = process_cpu_s(), pid_cpu_s(store)
        state = sf_etl_orchestrator_flow(objects=params.get("objects"), data_root=data_root, return_state=True)
        cpu, store_cpu = process_cpu_s() - cpu, _used(store_cpu, pid_cpu_s(store))
        summary = state.result(raise_on_failure=False)
        if not state.is_completed():
            raise RuntimeError(f"the orchestrator ended {state.type.value}: {state.message}")
        assert isinstance(summary, dict)  # the flow returns a State only when it fails
        return {"rows": {r["object"]: r["rows"] for r in summary["objects"]},
                "api": {r["object"]: r["api"] for r in summary["objects"]},
                "cpu_s": round(cpu, 2), "store_cpu_s": None if store_cpu is None else round(store_cpu, 2)}

    def after(facts: dict[str, Any]) -> dict[str, Any]:
        tree = read_run_tree()
        busy = busy_seconds((t["start"], t["end"]) for t in tree["tasks"])
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(os.environ.get("SF_PIPELINE_SCRATCH_DIR") or WORK / "no-scratch", ignore_errors=True)
        return {"prefect_startup_s": startup, "task_busy_s": busy,
                "task_sum_s": sum(t["seconds"] for t in tree["tasks"]), "task_runs": len(tree["tasks"]),
                "task_seconds_by_kind": seconds_by_kind(tree["tasks"])}

    return work, after


def _used(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def run_plain_pipeline(data_root: str, objects: list[str] | None = None) -> dict[str, Any]:
    """The orchestrator's work with the same concurrency shape, as plain function calls (each task's ``.fn``).

    Extracts (or syncs) at most three at a time; then Phase 1 (process + load, object after object) beside
    QA (each object's gate, then every check of every object at once), as the flows do; no Prefect engine.
    """
    from tasks import quality_parallel as qp
    from tasks.extract_plan import resolve_extract_plan
    from tasks.land import land_object
    from tasks.load import load_csv_to_json
    from tasks.process import process_object_data
    from utils.run_ids import new_run_id
    from utils.source import pipeline_source

    plan, run_id = resolve_extract_plan(objects), new_run_id()

    with pipeline_source(), ThreadPoolExecutor(MAX_CONCURRENT_EXTRACTS) as pool:
        landed = list(pool.map(lambda item: land_object.fn(item, run_id, data_root=data_root), plan))
    raw_files = {result.object_name: result.dataset for result in landed}

    def phase1() -> None:
        for name, raw in raw_files.items():
            load_csv_to_json.fn(name, process_object_data.fn(name, raw, data_root=data_root), data_root=data_root)

    def qa_object(pool: ThreadPoolExecutor, name: str, raw: str) -> list[Future]:
        gate = pool.submit(qp.qa_gate.fn, name, raw, data_root)

        def validator_check(validator: str) -> Callable[[], qp.QaReport]:
            """One validator's check; a function so each lambda holds its own validator, not the loop's last."""
            return lambda: qp.qa_validator.fn(name, validator, gate.result())

        checks = [lambda: qp.qa_completeness.fn(name, gate.result()),
                  lambda: qp.qa_dedup.fn(name, gate.result(), data_root),
                  lambda: qp.qa_profile.fn(name, gate.result(), data_root),
                  lambda: qp.qa_rowcount.fn(name, gate.result(), run_id, data_root)]
        checks += [validator_check(v) for v in qp.spec_for(name).validators]
        return [gate, *(pool.submit(c) for c in checks)]

    with ThreadPoolExecutor(max_workers=64) as pool:
        etl = pool.submit(phase1)
        futures = [f for name, raw in raw_files.items() for f in qa_object(pool, name, raw)]
        for future in [etl, *futures]:
            future.result()
    return {"rows": {result.object_name: result.rows for result in landed}}


def setup_plain_pipeline(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The orchestrator's work without Prefect (see ``run_plain_pipeline``), on a fresh data root."""
    import flows.sf_etl_orchestrator_flow  # noqa: F401 - the same imports as the Prefect child, untimed

    shutil.rmtree(params["data_root"], ignore_errors=True)

    def work() -> dict[str, Any]:
        facts = run_plain_pipeline(params["data_root"], params.get("objects"))
        shutil.rmtree(params["data_root"], ignore_errors=True)
        return facts

    return work


def engine_floor_flow(objects: Sequence[str], checks_per_object: Mapping[str, int], max_extracts: int):
    """The orchestrator's flow/task shape with empty bodies: what Prefect costs for this shape, with no work.

    One flow; the extract tasks (``max_extracts`` at a time); then two wrapper tasks, each running a subflow:
    Phase 1 (process + load per object, one after another) and QA (each object's gate, then its checks at once).
    """
    from prefect import flow, task
    from prefect.futures import PrefectFuture
    from prefect.task_runners import ConcurrentTaskRunner, SequentialTaskRunner

    @task
    def empty(*_: Any) -> None:
        return None

    @flow(name="floor-phase1", task_runner=SequentialTaskRunner())
    def phase1() -> None:
        for _ in objects:
            empty(empty())

    @flow(name="floor-qa", task_runner=ConcurrentTaskRunner())
    def qa() -> None:
        futures: list[PrefectFuture[None, Literal[False]]] = []
        for name in objects:
            gate = empty.submit()
            futures += [gate, *(empty.submit(gate) for _ in range(checks_per_object[name]))]
        for future in futures:
            future.result()

    @task
    def run_phase1() -> None:
        phase1()

    @task
    def run_qa() -> None:
        qa()

    @flow(name="floor-orchestrator", task_runner=ConcurrentTaskRunner())
    def orchestrator() -> None:
        for start in range(0, len(objects), max_extracts):
            for future in [empty.submit() for _ in objects[start:start + max_extracts]]:
                future.result()
        branches = [run_phase1.submit(), run_qa.submit()]
        for future in branches:
            future.result()

    return orchestrator


def setup_engine_floor(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The orchestrator's shape with empty task bodies, for the registry's objects (see ``engine_floor_flow``)."""
    use_private_prefect_home()
    from configs.salesforce_objects import SALESFORCE_OBJECTS

    objects = list(params.get("objects") or SALESFORCE_OBJECTS)
    # completeness, dedup, profile, rowcount + one task per validator (flows/object_parallel_flow.py)
    checks = {n: 4 + len(SALESFORCE_OBJECTS[n].validators) for n in objects}
    floor = engine_floor_flow(objects, checks, MAX_CONCURRENT_EXTRACTS)
    warm_up_prefect()

    def work() -> dict[str, Any]:
        floor()
        return {"task_runs": len(objects) * 3 + sum(checks.values()) + 2}

    return work


def seconds_by_kind(tasks: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Task seconds summed by the run-name prefix (``extract``, ``sync``, ``process``, ``qa-dedup``, ...)."""
    out: dict[str, float] = {}
    for t in tasks:
        parts = t["name"].split("-")
        kind = "-".join(parts[:2]) if parts[0] == "qa" else parts[0]
        out[kind] = round(out.get(kind, 0.0) + t["seconds"], 3)
    return out


# --- in the parent --------------------------------------------------------------------------------------------


def _scale_env(info) -> dict[str, str]:
    return {"SF_INSTANCE_URL": info.instance_url, "SF_ACCESS_TOKEN": info.access_token,
            "SF_CA_BUNDLE": info.ca_bundle, "SF_API_RESERVE": "0"}


def store_core_layout(cpus: set[int]) -> tuple[set[int], set[int]]:
    """``--store-core``: the CPUs of the runs and the emulator (all but one), and the store's own (the last)."""
    if len(cpus) < 2:
        msg = f"--store-core needs at least 2 CPUs for this process; it may use {sorted(cpus)}"
        raise ValueError(msg)
    store = {max(cpus)}
    return cpus - store, store


@contextlib.contextmanager
def _on_cpus(cpus: set[int] | None) -> Iterator[None]:
    """This thread on ``cpus`` for the block; the processes it starts meanwhile inherit them (all their threads,
    and Go's GOMAXPROCS sized to them). ``None``: unchanged."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _one_scale(label: str, rows: dict[str, int] | None, repeat: int, log, *,
               store_core: bool = False) -> dict[str, Any]:
    """``store_core``: the store gets a CPU of its own (as a store elsewhere would), the runs and the emulator
    share the others, the same for the local and the S3 runs; otherwise all share every CPU."""
    from emulator import run_emulator
    from tests.s3_server import run_s3_store  # the tests' loopback S3 server (SeaweedFS, requirements-s3.lock)

    run_cpus, store_cpus = store_core_layout(os.sched_getaffinity(0)) if store_core else (None, None)
    with contextlib.ExitStack() as stack:
        with _on_cpus(store_cpus):  # the store starts on its CPUs; the emulator and every run's child on the rest
            store = stack.enter_context(run_s3_store())
        stack.enter_context(_on_cpus(run_cpus))
        info = stack.enter_context(run_emulator(rows=rows, faults="", living_rate=0))
        env = _scale_env(info)
        s3_env = {**env, **store.env(), "SF_PIPELINE_SCRATCH_DIR": str(WORK / "e2e-data" / f"{label}-scratch")}
        cases = [Case(f"orchestrator[{label}]", "benchmarks.bench_e2e:setup_orchestrator",
                      {"data_root": str(WORK / "e2e-data" / f"{label}-prefect")}, env=env),
                 Case(f"plain_functions[{label}]", "benchmarks.bench_e2e:setup_plain_pipeline",
                      {"data_root": str(WORK / "e2e-data" / f"{label}-plain")}, env=env),
                 Case(f"orchestrator_s3[{label}]", "benchmarks.bench_e2e:setup_orchestrator",
                      {"data_root": store.url(f"bench-{label.replace(' ', '-')}"), "store_pid": store.pid},
                      env=s3_env)]
        if rows is None:  # the overhead target's scale; the floor does not depend on the data
            cases.append(Case(f"engine_floor[{label}]", "benchmarks.bench_e2e:setup_engine_floor", {}, env=env))
        load_at_start = load_average()
        results = measure_interleaved(cases, repeat, log=log)
        load = [load_at_start, load_average()]
    result, plain, on_s3 = results[cases[0].name], results[cases[1].name], results[cases[2].name]
    floor = results.get(f"engine_floor[{label}]")
    runs = result["raw"]
    for run in runs:
        run["overhead_share"] = overhead_share(run["seconds"], run["task_busy_s"])
    return {
        "emulator_rows": rows or "default (small scale)",
        "rows": runs[-1]["rows"], "api": runs[-1]["api"],
        "wall_s": result["median_s"], "runs_s": result["runs_s"],
        "task_busy_s": median(r["task_busy_s"] for r in runs),
        "task_sum_s": median(r["task_sum_s"] for r in runs),
        "plain_functions_wall_s": plain["median_s"], "plain_functions_runs_s": plain["runs_s"],
        "prefect_overhead_share": overhead_share(result["median_s"], plain["median_s"]),
        "engine_floor_wall_s": floor["median_s"] if floor else None,
        "engine_floor_task_runs": floor["raw"][-1]["task_runs"] if floor else None,
        "engine_floor_share": ratio(floor["median_s"], result["median_s"]) if floor else None,
        "idle_share_between_task_bodies": median(r["overhead_share"] for r in runs),
        "prefect_startup_s": median(r["prefect_startup_s"] for r in runs),
        "task_seconds_by_kind": runs[-1]["task_seconds_by_kind"],
        "task_runs": runs[-1]["task_runs"],
        "peak_rss_mb": result["peak_rss_mb"],
        "s3_wall_s": on_s3["median_s"], "s3_runs_s": on_s3["runs_s"], "s3_peak_rss_mb": on_s3["peak_rss_mb"],
        "s3_task_seconds_by_kind": on_s3["raw"][-1]["task_seconds_by_kind"],
        "s3_vs_local": ratio(on_s3["median_s"], result["median_s"]),  # target (issue #18): <= 1.3 at 1M rows
        # CPU seconds of each run's flow: the run's own process, and on S3 the loopback store's (weed)
        "cpu_runs_s": [r.get("cpu_s") for r in runs], "s3_cpu_runs_s": [r.get("cpu_s") for r in on_s3["raw"]],
        "s3_store_cpu_runs_s": [r.get("store_cpu_s") for r in on_s3["raw"]],
        "load_average_at_start_and_end": load,  # the machine is shared: ratios, not absolute times
        "cpus": ({"runs_and_emulator": sorted(run_cpus), "store": sorted(store_cpus)}
                 if run_cpus is not None and store_cpus is not None else "all shared"),
        "parallelism": ratio(median(r["task_sum_s"] for r in runs), result["median_s"]),
    }


def run_stage(*, scales: Sequence[tuple[str, dict[str, int] | None, int]], log=print,
              store_core: bool = False) -> dict[str, Any]:
    """``scales``: (label, emulator rows override, repeat). Returns the JSON-able section of latest.json."""
    out = {}
    for label, rows, repeat in scales:
        log(f"e2e: orchestrator on {label} ({repeat} run(s))")
        out[label] = _one_scale(label, rows, repeat, log, store_core=store_core)
    shutil.rmtree(PREFECT_HOMES, ignore_errors=True)
    shutil.rmtree(WORK / "e2e-data", ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench_e2e``: the e2e stage at one Opportunity size alone (issue #18's S3 / local)."""
    parser = argparse.ArgumentParser(description="The orchestrator on a local data root, the same work as plain "
                                     "functions, and the orchestrator on the loopback S3 store, interleaved")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Opportunity rows in the emulator's org")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--out", type=Path, default=WORK / "e2e_s3.json")
    parser.add_argument("--store-core", action="store_true",
                        help="give the S3 store a CPU of its own, as a store elsewhere has; the runs and the "
                             "emulator share the other CPUs (default: everything shares every CPU)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    WORK.mkdir(parents=True, exist_ok=True)
    label = f"Opportunity {args.rows / 1e6:g}M"
    machine = machine_info()  # the commit, the packages and the load at the start
    section = run_stage(scales=[(label, {"Opportunity": args.rows}, args.repeat)], store_core=args.store_core)
    machine["load_average_at_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**section, "machine": machine}, indent=2, default=str) + "\n")
    run = section[label]
    print(f"local {run['runs_s']} s, S3 {run['s3_runs_s']} s: S3 / local {run['s3_vs_local']:.2f} (target <= 1.3); "
          f"CPU-s of the run local {run['cpu_runs_s']}, on S3 {run['s3_cpu_runs_s']}, the store "
          f"{run['s3_store_cpu_runs_s']}; CPUs {run['cpus']}; load {run['load_average_at_start_and_end']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
