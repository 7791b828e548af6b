"""SIGKILL the orchestrator (a real subprocess, whole process group) mid-run: nothing a reader sees is partial,
temp files are swept by the next run, and the next run succeeds with exact row parity."""

from __future__ import annotations

import random
import time

import pytest

from emulator import build_org, run_emulator
from tests.reliability_helpers import (
    audit_data_root,
    base_env,
    emulator_env,
    expected_ids,
    file_stamps,
    fresh_prefect_home,
    ids_in,
    kill_group,
    run_orchestrator,
    start_orchestrator,
    summary_id_count,
    temp_files,
    wait_for_change,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIG = {"Opportunity": 200_000}  # Bulk 2.0 (above the 50,000-row threshold), a few seconds per stage
OBJECTS = ("--objects", "Opportunity")
SEED = 20240601

# (label, globs under the data root that mark the stage, longest seeded extra delay before the kill)
KILL_POINTS = [
    ("extract", ("raw/.Opportunity_*.tmp-*",), 1.0),                      # raw CSV half streamed
    ("sync", ("replica/.Opportunity.parquet.tmp-*",), 0.0),                # replica written, watermark not yet
    ("process+load+qa", ("processed/**/.*.tmp-*", "output/**/.*.tmp-*"), 0.05),  # both branches writing
]


@pytest.fixture(scope="module")
def big_emulator():
    with run_emulator(rows=BIG, faults="") as info:
        yield info


def test_sigkill_at_every_stage_then_the_next_run_recovers(big_emulator, tmp_path):
    root, rng = tmp_path / "data", random.Random(SEED)
    env = base_env(data_root=root, prefect_home=fresh_prefect_home(tmp_path / "prefect"),
                   extra=emulator_env(big_emulator))
    killed_at = []
    for label, patterns, max_delay in KILL_POINTS:
        before = file_stamps(root)
        proc = start_orchestrator(env, *OBJECTS, log_file=tmp_path / f"{label}.log")
        hit = wait_for_change(root, patterns, before, proc)
        assert hit is not None, f"{label}: the run ended before {patterns} appeared:\n" + \
            (tmp_path / f"{label}.log").read_text()[-3000:]
        time.sleep(rng.uniform(0, max_delay))
        kill_group(proc)
        killed_at.append((label, hit.name, len(temp_files(root))))  # the next run sweeps them at its start
        problems = audit_data_root(root)
        assert problems == [], f"after a kill during {label}: {problems}"

    assert any(left for *_, left in killed_at), f"no kill left a temp file: the kill points missed {killed_at}"
    final = run_orchestrator(env, *OBJECTS)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert temp_files(root) == [], "a later run did not sweep the killed runs' temp files"
    assert audit_data_root(root) == []
    org = build_org(rows=BIG)
    for name in ("Opportunity",):
        live = expected_ids(org, name).live
        replica = ids_in(root / "replica" / f"{name}.parquet")
        assert len(replica) == len(set(replica)) and set(replica) == live, f"{name}: replica not exact"
        assert set(ids_in(root / "processed" / "qa" / name / "snapshot.parquet")) == live
        assert summary_id_count(root / "output" / name / "summary.json") == len(live)
    assert len(killed_at) == len(KILL_POINTS)
