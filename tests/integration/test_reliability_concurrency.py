"""Runs that overlap (a slow run still going when the next 15-minute run starts) on one data root: nothing is
clobbered, every output stays whole, and the row-count drift history keeps exactly one line per run."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from emulator import build_org
from tasks.quality_parallel import parse_rowcount_history, update_rowcount_history
from tests.reliability_helpers import (
    audit_data_root,
    base_env,
    emulator_env,
    expected_ids,
    fresh_prefect_home,
    ids_in,
    rowcount_entries,
    start_orchestrator,
    temp_files,
)

pytestmark = [pytest.mark.integration]

OBJECTS = ("Lead", "Case")
RUNS = 3


@pytest.mark.slow
def test_three_overlapping_runs_on_one_data_root(emulator, tmp_path):
    root = tmp_path / "data"
    # one Prefect home each: what differs between runs is the run, not the database (SQLite is not shared here)
    procs = [start_orchestrator(base_env(data_root=root, prefect_home=fresh_prefect_home(tmp_path / f"prefect{i}"),
                                         extra=emulator_env(emulator)),
                                "--objects", *OBJECTS, log_file=tmp_path / f"run{i}.log") for i in range(RUNS)]
    codes = [p.wait(timeout=300) for p in procs]
    logs = [(tmp_path / f"run{i}.log").read_text() for i in range(RUNS)]
    assert codes == [0] * RUNS, "\n\n".join(log[-2000:] for log in logs)

    summaries = [json.loads(p.read_text()) for p in sorted((root / "runs").glob("*.json"))]
    run_ids = {s["run_id"] for s in summaries}
    assert len(summaries) == RUNS and len(run_ids) == RUNS, "runs shared an id or overwrote a summary"
    assert all(r["status"] == "ok" for s in summaries for r in s["objects"])

    assert audit_data_root(root) == [] and temp_files(root) == []
    org = build_org()
    for name in OBJECTS:
        raws = sorted((root / "raw").glob(f"{name}_*.csv"))
        assert {p.stem.rsplit("_", 1)[1] for p in raws} == run_ids, f"{name}: a raw extract was clobbered"
        history = rowcount_entries(root, name)
        assert sorted(e.run_id for e in history) == sorted(run_ids), f"{name}: rowcount.txt lost or doubled a line"
        assert set(ids_in(root / "replica" / f"{name}.parquet")) == expected_ids(org, name).live


def _append_rowcounts(path: str, worker: int, count: int) -> None:
    for n in range(count):
        update_rowcount_history(Path(path), object_name="Lead", run_id=f"W{worker}N{n}", rows=100 + n)


def test_concurrent_rowcount_appends_lose_no_line(tmp_path):
    """Many writers appending to one history at once (the QA task of overlapping runs)."""
    path = tmp_path / "qa" / "Lead" / "rowcount.txt"
    path.parent.mkdir(parents=True)
    ctx = multiprocessing.get_context("fork")  # the parent has imported everything: children start at once
    workers = [ctx.Process(target=_append_rowcounts, args=(str(path), w, 15)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * len(workers)
    entries = parse_rowcount_history(path.read_text(encoding="utf-8"))
    assert len(entries) == 4 * 15 and len({e.run_id for e in entries}) == 4 * 15
