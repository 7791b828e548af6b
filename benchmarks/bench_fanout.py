"""Fan-out (issue #19): N objects on a work pool, one flow run each, against the single-machine orchestrator.

Run: .venv/bin/python -m benchmarks.bench_fanout [--objects 5,20] [--latency-ms 50] [--rounds N] [--quick]
(``python -m benchmarks --only fanout`` runs it as a stage; it is not in the default full run: ~10 minutes a round.)

One emulator serves generated custom objects (``--custom-objects``: Bench_01__c ..., 1,000 rows each) with
``--latency-ms`` added to every request, as over a real network. A Prefect server on PostgreSQL (Debian's, as
``make ui-postgres`` starts it; ``--database sqlite`` for its own SQLite file) holds the README's work pool and
deployments (deployments/work_pool.py). The benchmark objects reach every process through the registry extension: a
JSON file named by ``SF_PIPELINE_REGISTRY_EXTRA``, set for the workers (and so for each flow run they start) and the
measured children, never in code.

For each object count, interleaved, round after round, on a fresh data root each (every run is a backfill):
``orchestrator`` (``sf_etl_orchestrator_flow(objects=[...])`` in one process), ``fanout_1w`` and ``fanout_2w``
(``sf_etl_fanout_flow`` in one process, its object runs taken by one or two ``prefect worker start --limit L``
processes, each in a working directory of its own, started before and stopped after the measurement), and ``plain``
(the same work as plain function calls, ``bench_e2e.run_plain_pipeline``: no Prefect). Each is a fresh child whose
imports are done before the timing; the wall time is the flow call's. A run counts only when its run summary says
every object ``ok`` with as many replica rows as the org has live records.

From the Prefect API afterwards, per object run of a fan-out: ``queue`` (created by ``run_deployment`` -> Pending:
waiting for a free worker slot, plus the worker's poll), ``start-up`` (Pending -> the first task running: the worker
spawns ``python -m prefect.engine``, which imports Prefect, loads the flow and proposes Running), the object's own
task time (the union of its task runs' intervals) and its wall on the worker (Pending -> end). ``overhead`` = that
wall minus the task time: what Prefect's machinery costs each object on a worker. Per mode, ``vs plain`` = (wall -
plain wall) / objects, the same measure for every mode. The workers' CPU seconds (their flow-run processes', read
from ``/proc/<worker>/stat`` cutime + cstime once they have reaped them) say what one object run costs the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import REPO, WORK, Case, child_env, load_average, median, ratio, run_child

COUNTS = (5, 20)
QUICK_COUNTS = (2, 4)
LATENCY_MS = 50
WORKER_LIMIT = 2  # flow runs a worker runs at once: one per core of this 2-core machine
WORKER_QUERY_SECONDS = 1  # how often an idle worker asks for runs (Prefect's default 10 s adds up to that per wave)
MODES = ("orchestrator", "fanout_1w", "fanout_2w", "plain")
WORKERS = {"fanout_1w": 1, "fanout_2w": 2}
FANOUT_TIMEOUT_S = 1800.0  # half of it is when the fan-out takes a run still going for lost: far beyond any run here
CHILD_TIMEOUT_S = FANOUT_TIMEOUT_S + 120.0
SERVER_START_TIMEOUT_S = 180.0
WORKER_READY_TIMEOUT_S = 120.0
# the standard objects, small: generated objects look up Users and Accounts
STANDARD_ROWS = {"User": 20, "Group": 2, "Account": 200, "Contact": 10, "Opportunity": 10, "Lead": 10, "Case": 10}
PREFECT_BIN = Path(sys.executable).parent / "prefect"  # 2.20 has no `python -m prefect`
BENCH_WORK = WORK / "fanout"
RESULTS = REPO / "benchmarks" / "results" / "fanout.json"


# --- pure -----------------------------------------------------------------------------------------------------


def bench_entry() -> dict[str, Any]:
    """The registry entry of a generated object (emulator/generated_objects.py): what a data engineer would list."""
    return {"fields": ["Id", "Name", "Account__c", "Account__r.Name", "Amount__c", "Quantity__c", "Status__c",
                       "Region__c", "Is_Active__c", "Due_Date__c", "Note__c", "OwnerId", "CreatedDate",
                       "SystemModstamp"],
            "required": ["Id", "Name"], "group_by": ["Status__c"],
            "metrics": {"Id": ["count"], "Amount__c": ["sum", "mean", "max"], "Quantity__c": ["median"]}}


def registry_extra(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``SF_PIPELINE_REGISTRY_EXTRA`` file's content for the generated objects."""
    return {name: bench_entry() for name in names}


def check_summary(rows: Sequence[Mapping[str, Any]], expected: Mapping[str, int]) -> list[str]:
    """What is wrong with a run summary's rows: every expected object ``ok``, its replica holding the org's live
    records; nothing else."""
    problems = []
    got = {r["object"]: r for r in rows}
    if sorted(got) != sorted(expected):
        problems.append(f"objects {sorted(got)}, expected {sorted(expected)}")
    for name, live in expected.items():
        row = got.get(name)
        if row is None:
            continue
        if row.get("status") != "ok":
            problems.append(f"{name}: {row.get('status')} ({row.get('error')})")
        elif row.get("replica_rows") != live:
            problems.append(f"{name}: {row.get('replica_rows')} replica rows, the org has {live} live records")
    return problems


def parse_time(value: str | None) -> float | None:
    """An API timestamp as epoch seconds."""
    return datetime.fromisoformat(value).timestamp() if value else None


def busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals."""
    from benchmarks.bench_e2e import busy_seconds as union

    return union(intervals)


def leaf_intervals(task_runs: Sequence[Mapping[str, Any]], subflow_parents: set[str]) -> list[tuple[float, float]]:
    """The running intervals of the task runs that did work: not the stand-ins of subflows (or deployment runs)."""
    out = []
    for t in task_runs:
        start, end = parse_time(t.get("start_time")), parse_time(t.get("end_time"))
        if t["id"] not in subflow_parents and start is not None and end is not None:
            out.append((start, end))
    return out


def object_run_times(run: Mapping[str, Any], pending_at: float | None,
                     tasks: Sequence[tuple[float, float]]) -> dict[str, float | None]:
    """One object run's phases from its API record, the time it went Pending and its tree's task intervals."""
    created, started, ended = (parse_time(run.get(k)) for k in ("created", "start_time", "end_time"))
    first = min((s for s, _ in tasks), default=None)
    last = max((e for _, e in tasks), default=None)
    busy = busy_seconds(tasks)

    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    wall = gap(pending_at, ended)
    return {"queue_s": gap(created, pending_at), "spawn_s": gap(pending_at, started),
            "to_first_task_s": gap(started, first), "startup_s": gap(pending_at, first), "task_s": round(busy, 3),
            "tail_s": gap(last, ended), "wall_s": wall,
            "overhead_s": None if wall is None else round(wall - busy, 3), "submit_to_start_s": gap(created, started)}


def linear_fit(points: Mapping[int, float | None]) -> tuple[float, float] | None:
    """``(fixed, per object)`` of the line through the smallest and the largest count's wall times."""
    known = {n: w for n, w in points.items() if w is not None}
    if len(known) < 2:
        return None
    low, high = min(known), max(known)
    per_object = (known[high] - known[low]) / (high - low)
    return known[low] - per_object * low, per_object


def second_machine(section: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a second machine would do to the fan-out at the largest count: the 1-worker line (fixed + per object)
    with its per-object slope halved, as twice the slots on twice the cores take objects twice as fast (the server,
    the org and the driver unchanged)."""
    walls = {int(n): e["modes"].get("fanout_1w", {}).get("wall_s") for n, e in section["by_count"].items()}
    fit = linear_fit(walls)
    if fit is None:
        return None
    fixed, per_object = fit
    largest = max(walls)
    return {"objects": largest, "fixed_s": round(fixed, 2), "per_object_s_one_machine": round(per_object, 3),
            "projected_wall_s_two_machines": round(fixed + per_object / 2 * largest, 2),
            "measured_wall_s_one_machine": walls[largest]}


def growth(section: Mapping[str, Any]) -> dict[str, float | None]:
    """Per mode, the wall time at the largest count over the smallest's."""
    counts = sorted(int(n) for n in section["by_count"])
    if len(counts) < 2:
        return {}
    low, high = (section["by_count"][str(n)]["modes"] for n in (counts[0], counts[-1]))
    return {mode: ratio(high.get(mode, {}).get("wall_s"), low.get(mode, {}).get("wall_s")) for mode in MODES}


def table(section: Mapping[str, Any]) -> str:
    """One row per mode and object count: wall, vs plain per object, and where a fan-out object's time goes."""
    from benchmarks.report import format_table

    rows = []
    for n, entry in sorted(section["by_count"].items(), key=lambda kv: int(kv[0])):
        for mode in MODES:
            m = entry["modes"].get(mode)
            if not m:
                continue
            o = m.get("object_runs") or {}
            rows.append([f"{mode} x {n}", m.get("wall_s"), m.get("vs_plain_per_object_s"),
                         m.get("overhead_per_object_s"), o.get("queue_s"), o.get("startup_s"), o.get("task_s"),
                         o.get("wall_s"), m.get("cpu_per_object_s"), m.get("runs_by_worker"),
                         f"{m.get('counted', 0)}/{m.get('n', 0)}"])
    head = ["mode x objects", "wall s", "vs plain s/obj", "overhead s/obj", "queue s", "start-up s", "task s",
            "run wall s", "CPU s/obj", "runs by worker", "counted"]
    lines = [format_table(head, rows)]
    grown = "  ".join(f"{mode}: {g:.2f}x" for mode, g in section.get("growth", {}).items() if g is not None)
    if grown:
        lines.append(f"wall time {min(map(int, section['by_count']))} -> {max(map(int, section['by_count']))} "
                     f"objects: {grown}")
    more = section.get("second_machine")
    if more:
        lines.append(f"a second machine (projected from fanout_1w): {more['objects']} objects in "
                     f"{more['projected_wall_s_two_machines']:.1f} s instead of "
                     f"{more['measured_wall_s_one_machine']:.1f} s (fixed {more['fixed_s']:.1f} s + "
                     f"{more['per_object_s_one_machine']:.2f} s/object, halved)")
    return "\n".join(lines)


# --- inside a child -------------------------------------------------------------------------------------------


def _checked(state: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a flow's run: its id, and what is wrong with its summary (nothing, for a run that counts)."""
    summary = state.result(raise_on_failure=False)
    problems = [] if state.is_completed() else [f"ended {state.type.value}: {state.message}"]
    if isinstance(summary, dict):
        problems += check_summary(summary["objects"], params["expected"])
    return {"flow_run_id": str(state.state_details.flow_run_id), "problems": problems}


def orchestrator_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: the single-machine orchestrator on the objects, reporting to the benchmark's server."""
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow

    def work() -> dict[str, Any]:
        cpu = time.process_time()
        state = sf_etl_orchestrator_flow(objects=params["objects"], data_root=params["data_root"],
                                         return_state=True)
        return {**_checked(state, params), "cpu_s": time.process_time() - cpu}

    return work


def fanout_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Child setup: the fan-out on the objects; the pool's workers run its object runs."""
    from flows.sf_etl_fanout_flow import sf_etl_fanout_flow

    def work() -> dict[str, Any]:
        cpu = time.process_time()
        state = sf_etl_fanout_flow(objects=params["objects"], data_root=params["data_root"],
                                   timeout_seconds=params["timeout_s"], return_state=True)
        return {**_checked(state, params), "cpu_s": time.process_time() - cpu}

    return work


def plain_case(params: dict[str, Any]) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], dict[str, Any]]]:
    """Child setup: the orchestrator's work as plain calls (no Prefect), the same imports done first; afterwards
    (untimed) each replica's live records counted against the org's."""
    import polars as pl

    import flows.sf_etl_orchestrator_flow  # noqa: F401 - the same imports as the Prefect children, untimed
    from benchmarks.bench_e2e import run_plain_pipeline
    from utils.paths import build_sync_paths
    from utils.replica_layers import scan_replica

    def work() -> dict[str, Any]:
        cpu = time.process_time()
        run_plain_pipeline(params["data_root"], params["objects"])
        return {"cpu_s": time.process_time() - cpu}

    def after(facts: dict[str, Any]) -> dict[str, Any]:
        rows = [{"object": n, "status": "ok", "replica_rows": scan_replica(
            build_sync_paths(n, data_root=params["data_root"]).replica).select(pl.len()).collect().item()}
            for n in params["objects"]]
        return {"problems": check_summary(rows, params["expected"])}

    return work, after


# --- in the parent: the Prefect API ---------------------------------------------------------------------------


class Api:
    """The few reads of the Prefect server's REST API the analysis needs."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, payload: Mapping[str, Any]) -> Any:
        response = httpx.post(f"{self.url}{path}", json=dict(payload), timeout=30)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/flow_runs/{run_id}")

    def children(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The flow runs started inside these runs (subflows, deployment runs)."""
        return self._all("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": list(run_ids)}}})

    def task_runs(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._all("/task_runs/filter", {"flow_runs": {"id": {"any_": list(run_ids)}}})

    def pending_at(self, run_id: str) -> float | None:
        """When the run went Pending (a worker took it)."""
        states = self.get(f"/flow_run_states/?flow_run_id={run_id}")
        return min((t for s in states if s["type"] == "PENDING" and (t := parse_time(s["timestamp"]))), default=None)

    def _all(self, path: str, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.post(path, {**payload, "limit": 200, "offset": len(out)})
            out += page
            if len(page) < 200:
                return out

    def tree(self, root: str) -> tuple[list[str], list[dict[str, Any]], set[str]]:
        """A run and its subflows, recursively: (their ids, their task runs, the task runs that stand for a
        subflow)."""
        ids, level, stand_ins = [root], [root], set()
        while level:
            subflows = self.children(level)
            stand_ins |= {f["parent_task_run_id"] for f in subflows if f.get("parent_task_run_id")}
            level = [f["id"] for f in subflows]
            ids += level
        return ids, self.task_runs(ids), stand_ins


def analyse_orchestrator(api: Api, run_id: str, objects: int, wall: float) -> dict[str, Any]:
    """The orchestrator's task time (union over its run tree) and the rest of its wall, per object."""
    _, tasks, stand_ins = api.tree(run_id)
    busy = busy_seconds(leaf_intervals(tasks, stand_ins))
    run = api.flow_run(run_id)
    first = min((s for s, _ in leaf_intervals(tasks, stand_ins)), default=None)
    started = parse_time(run.get("start_time"))
    return {"task_busy_s": round(busy, 3), "overhead_per_object_s": round((wall - busy) / objects, 3),
            "to_first_task_s": None if first is None or started is None else round(first - started, 3)}


def analyse_fanout(api: Api, run_id: str) -> dict[str, Any]:
    """Every object run of a fan-out: its phases (``object_run_times``), and their medians."""
    per_object = {}
    for run in api.children([run_id]):
        _, tasks, stand_ins = api.tree(run["id"])
        name = run["parameters"].get("object_name", run["name"])
        per_object[name] = {"flow_run_id": run["id"], "state": run["state"]["type"],
                            **object_run_times(run, api.pending_at(run["id"]), leaf_intervals(tasks, stand_ins))}
    keys = ("queue_s", "spawn_s", "to_first_task_s", "startup_s", "task_s", "tail_s", "wall_s", "overhead_s",
            "submit_to_start_s")
    medians = {k: median(r[k] for r in per_object.values()) for k in keys}
    return {"per_object": per_object, "medians": medians}


# --- in the parent: the running parts -------------------------------------------------------------------------


def _wait(probe: Callable[[], bool], *, timeout_s: float, what: str, log: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            msg = f"{what}: {'exited ' + str(proc.returncode) if proc.poll() is not None else 'timed out'}\n{tail}"
            raise RuntimeError(msg)
        time.sleep(0.5)


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port (the tests' ``running_postgres``, on ``make
    ui-postgres``'s programs): its URL for Prefect."""
    from deployments.prefect_postgres import find_postgres_bin
    from tests.postgres_server import running_postgres  # the tests' servers, imported only by the stage using them

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        msg = "no PostgreSQL: `apt-get install postgresql` (or `make ui-postgres` once), or use --database sqlite"
        raise RuntimeError(msg)
    with running_postgres(bin_dir) as postgres:
        yield postgres.url


def _client_env(api_url: str, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A Prefect client's environment: this server, a home of its own, no developer .env (harness.child_env)."""
    return child_env({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "INFO",
                      "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(extra or {})})


@contextlib.contextmanager
def _prefect_server(work: Path, database_url: str | None) -> Iterator[str]:
    """``prefect server start`` on a free port (its own home; on ``database_url`` when given): its API URL."""
    from tests.prefect_server import background_process, free_port

    home = work / "server-home"
    home.mkdir(parents=True)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _client_env(api_url, home, {"PREFECT_UI_ENABLED": "false",
                                      "PREFECT_API_SERVICES_FLOW_RUN_NOTIFICATIONS_ENABLED": "false"})
    env.pop("PREFECT_API_URL")
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    log = work / "server.log"
    cmd = [str(PREFECT_BIN), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background_process(cmd, env=env, log_path=log, cwd=REPO) as proc:
        _wait(lambda: _up(api_url), timeout_s=SERVER_START_TIMEOUT_S, what="the Prefect server", log=log, proc=proc)
        yield api_url


def _up(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _register(api_url: str) -> None:
    """The README's pool and deployments (deployments/work_pool.py), the fan-out's without its cron."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.work_pool import POOL, ensure_process_pool, register

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        ensure_process_pool(POOL)
        register(cron=None)


def _cpu_of(pid: int) -> float | None:
    """CPU seconds of a process's reaped children (cutime + cstime of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Workers:
    """The workers of one fan-out measurement: their processes and logs."""

    procs: dict[str, subprocess.Popen]
    logs: dict[str, Path]

    def runs_started(self) -> dict[str, int]:
        """Flow runs each worker started (``Completed submission of flow run``)."""
        pattern = re.compile(r"Completed submission of flow run '([0-9a-f-]{36})'")
        return {name: len(set(pattern.findall(log.read_text(errors="replace")))) for name, log in self.logs.items()}

    def children_cpu_s(self) -> float | None:
        cpu = [_cpu_of(p.pid) for p in self.procs.values()]
        return None if None in cpu else round(sum(c for c in cpu if c is not None), 2)


@contextlib.contextmanager
def _workers(count: int, *, limit: int, env: Mapping[str, str], work: Path, api: Api) -> Iterator[Workers]:
    """``count`` machines: ``prefect worker start --pool sf-etl --limit L``, each in a working directory of its own;
    yields once the server lists them all."""
    from deployments.work_pool import POOL
    from tests.prefect_server import background_process

    tag = uuid.uuid4().hex[:6]
    names = [f"bench-{tag}-{i + 1}" for i in range(count)]
    with contextlib.ExitStack() as stack:
        procs, logs = {}, {}
        for name in names:
            (work / name).mkdir(parents=True)
            logs[name] = work / f"{name}.log"
            cmd = [str(PREFECT_BIN), "worker", "start", "--pool", POOL, "--name", name, "--limit", str(limit)]
            procs[name] = stack.enter_context(background_process(cmd, env=env, log_path=logs[name], cwd=work / name))

        def listed() -> bool:
            workers = api.post(f"/work_pools/{POOL}/workers/filter", {})
            return set(names) <= {w["name"] for w in workers}

        for name, proc in procs.items():
            _wait(listed, timeout_s=WORKER_READY_TIMEOUT_S, what=f"worker {name}", log=logs[name], proc=proc)
        yield Workers(procs, logs)


# --- in the parent: the measurements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every measurement shares."""

    api: Api
    org_env: dict[str, str]  # SF_* for the emulator, the registry extension
    client_home: Path
    expected: dict[str, int]  # live records per generated object
    worker_limit: int
    log: Callable[[str], None]


def measure(setup: Setup, mode: str, objects: list[str], round_no: int) -> dict[str, Any]:
    """One run of ``mode`` on ``objects`` in a fresh child (workers around it for a fan-out), then its API facts."""
    root = BENCH_WORK / "data" / f"{mode}-{len(objects)}-{round_no}-{uuid.uuid4().hex[:6]}"
    params = {"objects": objects, "data_root": str(root), "timeout_s": FANOUT_TIMEOUT_S,
              "expected": {n: setup.expected[n] for n in objects}}
    env = {**setup.org_env, "PREFECT_API_URL": setup.api.url, "PREFECT_HOME": str(setup.client_home)}
    target = {"orchestrator": "orchestrator_case", "plain": "plain_case"}.get(mode, "fanout_case")
    case = Case(f"{mode}[{len(objects)}]", f"benchmarks.bench_fanout:{target}", params, env=env)
    try:
        if mode in WORKERS:
            worker_env = _client_env(setup.api.url, setup.client_home,
                                     {**setup.org_env, "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_QUERY_SECONDS),
                                      "PREFECT_WORKER_PREFETCH_SECONDS": "2"})
            with _workers(WORKERS[mode], limit=setup.worker_limit, env=worker_env, work=root.parent / "machines"
                          / root.name, api=setup.api) as workers:
                result = run_child(case, timeout=CHILD_TIMEOUT_S)
                time.sleep(1.0)  # the workers reap their last flow-run processes
                result["runs_by_worker"] = sorted(workers.runs_started().values(), reverse=True)
                result["workers_cpu_s"] = workers.children_cpu_s()
        else:
            result = run_child(case, timeout=CHILD_TIMEOUT_S)
        if mode == "orchestrator":
            result.update(analyse_orchestrator(setup.api, result["flow_run_id"], len(objects), result["seconds"]))
        elif mode in WORKERS:
            result["object_runs"] = analyse_fanout(setup.api, result["flow_run_id"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["counted"] = not result["problems"]
    setup.log(f"  [{round_no + 1}] {mode:<12} x {len(objects):>2}  {result['seconds']:7.2f} s{_details(result)}")
    return result


def _details(result: Mapping[str, Any]) -> str:
    """A measurement's log line after its wall time: a fan-out's object-run medians; why it does not count."""
    text = ""
    if "object_runs" in result:
        m = result["object_runs"]["medians"]
        text += (f"  object run: queue {m['queue_s']} s, start-up {m['startup_s']} s, tasks {m['task_s']} s, "
                 f"wall {m['wall_s']} s; runs by worker {result['runs_by_worker']}")
    if not result["counted"]:
        text += f"  NOT COUNTED: {'; '.join(result['problems'])[:300]}"
    return text


def summarize_mode(mode: str, objects: int, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians over the runs that counted."""
    good = [r for r in runs if r["counted"]]
    out: dict[str, Any] = {"wall_s": median(r["seconds"] for r in good), "runs_s": [round(r["seconds"], 2)
                                                                                    for r in runs],
                           "n": len(runs), "counted": len(good),
                           "driver_cpu_s": median(r.get("cpu_s") for r in good),
                           "problems": [p for r in runs for p in r["problems"]]}
    if mode == "orchestrator":
        out["overhead_per_object_s"] = median(r["overhead_per_object_s"] for r in good)
        out["task_busy_s"] = median(r["task_busy_s"] for r in good)
        out["cpu_per_object_s"] = median(r["cpu_s"] / objects for r in good)
    if mode in WORKERS:
        out["object_runs"] = {k: median(r["object_runs"]["medians"][k] for r in good)
                              for k in (good[0]["object_runs"]["medians"] if good else ())}
        out["overhead_per_object_s"] = out["object_runs"].get("overhead_s")
        out["runs_by_worker"] = good[-1]["runs_by_worker"] if good else None
        cpu = [r["workers_cpu_s"] for r in good if r.get("workers_cpu_s") is not None]
        out["cpu_per_object_s"] = median(c / objects for c in cpu) if cpu else None
    if mode == "plain":
        out["cpu_per_object_s"] = median(r["cpu_s"] / objects for r in good)
    return out


def _expected_live(rows: Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    """Live records of each generated object in the org the emulator serves (built here the same way)."""
    import polars as pl

    from emulator import build_org

    org = build_org(rows=rows)
    return {n: org.frame(n).filter(~pl.col("IsDeleted")).height for n in names}


def run_stage(*, counts: Sequence[int] = COUNTS, latency_ms: int = LATENCY_MS, rounds: int = 1,
              rows_per_object: int | None = None, worker_limit: int = WORKER_LIMIT, database: str = "postgres",
              modes: Sequence[str] = MODES, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every (object count, mode), interleaved round after round, on one emulator, one server and one pool."""
    from emulator import run_emulator
    from emulator.generated_objects import custom_object_names, with_custom_objects

    started = time.perf_counter()
    names = custom_object_names(max(counts))
    sized = {n: rows_per_object for n in names} if rows_per_object is not None else {}
    rows = with_custom_objects({**STANDARD_ROWS, **sized}, len(names))
    shutil.rmtree(BENCH_WORK, ignore_errors=True)
    BENCH_WORK.mkdir(parents=True)
    registry = BENCH_WORK / "registry-extra.json"
    registry.write_text(json.dumps(registry_extra(names), indent=2) + "\n")
    log(f"fanout: {', '.join(map(str, counts))} generated objects ({rows[names[0]]:,} rows each), latency "
        f"{latency_ms} ms, {rounds} round(s) of {', '.join(modes)}; workers --limit {worker_limit}; "
        f"Prefect server on {database}")
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        info = stack.enter_context(run_emulator(rows=rows, latency_ms=latency_ms, faults="", living_rate=0))
        db_url = stack.enter_context(_postgres()) if database == "postgres" else None
        api = Api(stack.enter_context(_prefect_server(BENCH_WORK, db_url)))
        _register(api.url)
        org_env = {"SF_INSTANCE_URL": info.instance_url, "SF_ACCESS_TOKEN": info.access_token,
                   "SF_CA_BUNDLE": info.ca_bundle, "SF_API_RESERVE": "0", "SF_PIPELINE_REGISTRY_EXTRA": str(registry)}
        setup = Setup(api, org_env, BENCH_WORK / "client-home", _expected_live(rows, names), worker_limit, log)
        for round_no in range(rounds):
            for n in counts:
                for mode in modes:
                    runs.setdefault((n, mode), []).append(measure(setup, mode, names[:n], round_no))
    by_count: dict[str, Any] = {}
    for n in counts:
        modes_out = {mode: summarize_mode(mode, n, runs[n, mode]) for mode in modes}
        plain = modes_out.get("plain", {}).get("wall_s")
        for m in modes_out.values():
            m["vs_plain_per_object_s"] = None if plain is None or m["wall_s"] is None else round(
                (m["wall_s"] - plain) / n, 3)
        by_count[str(n)] = {"objects": n, "modes": modes_out, "raw": {m: runs[n, m] for m in modes}}
    section: dict[str, Any] = {"counts": list(counts), "latency_ms": latency_ms, "rounds": rounds,
                               "rows_per_object": rows[names[0]], "worker_limit": worker_limit,
                               "worker_query_seconds": WORKER_QUERY_SECONDS, "database": database,
                               "by_count": by_count}
    section["growth"] = growth(section)
    section["second_machine"] = second_machine(section)
    section["stage_seconds"] = round(time.perf_counter() - started, 1)
    shutil.rmtree(BENCH_WORK / "data", ignore_errors=True)
    return section


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness import machine_info

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", default=",".join(map(str, COUNTS)), help="comma-separated object counts")
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS, help="added to every emulator request")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every mode (medians)")
    parser.add_argument("--rows", type=int, default=None, help="rows of each generated object (default 1,000)")
    parser.add_argument("--worker-limit", type=int, default=WORKER_LIMIT, help="flow runs per worker at once")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres",
                        help="the Prefect server's database (default postgres, the production shape)")
    parser.add_argument("--quick", action="store_true", help=f"{'/'.join(map(str, QUICK_COUNTS))} objects, 1 round")
    parser.add_argument("--out", type=Path, help=f"results JSON (default {RESULTS.relative_to(REPO)}; --quick: "
                                                 f"{(WORK / 'fanout.json').relative_to(REPO)})")
    args = parser.parse_args(argv)
    counts = QUICK_COUNTS if args.quick else tuple(int(n) for n in args.objects.split(",") if n.strip())
    machine = machine_info()
    section = run_stage(counts=counts, latency_ms=args.latency_ms, rounds=1 if args.quick else args.rounds,
                        rows_per_object=args.rows, worker_limit=args.worker_limit, database=args.database)
    machine["load_average_at_end"] = load_average()
    out = args.out or (WORK / "fanout.json" if args.quick else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"fanout": section, "machine": machine}, indent=2, default=str) + "\n")
    print("\n" + table(section))
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
