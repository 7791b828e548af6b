"""SIGKILL an orchestrator run whose data root is on S3 (SeaweedFS on loopback) at five points: while the raw
CSV streams to scratch, while it uploads, while the replica is written, between the replica's upload and the
state's, and while QA writes. After each kill, every object in the bucket parses whole (no partial object is
ever visible); a normal run on an empty scratch then leaves the replica exact against the org."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

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
    wait_for_change,
)
from tests.s3_server import S3Store
from tests.s3_server import s3_store as s3_store  # the session fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = {"Opportunity": 60_000}  # Bulk 2.0 (above the 50,000-row threshold): each stage lasts a moment
OBJECTS = ("--objects", "Opportunity")
SEED = 20261202
ATTEMPTS = 3

# (label, globs under the scratch mirror that mark the moment, longest seeded extra delay before the kill, whether
# the run must backfill: an incremental run with nothing new leaves the replica as it is, so it has no such moment)
KILL_POINTS = [
    ("extract", ("raw/.Opportunity_*.tmp-*",), 0.5, False),               # the raw CSV half streamed to scratch
    ("raw upload", ("raw/Opportunity_*.csv",), 0.02, False),              # complete in scratch: its upload under way
    ("replica", ("replica/.Opportunity.parquet.tmp-*",), 0.0, True),      # the replica being written
    ("replica upload", ("replica/Opportunity.parquet",), 0.02, True),     # published or publishing, not the state
    ("qa", ("processed/**/.*.tmp-*", "output/**/.*.tmp-*"), 0.05, False),  # both branches writing
]


@pytest.fixture(scope="module")
def big_emulator():
    with run_emulator(rows=ROWS, faults="") as info:
        yield info


def _bucket_copy(store: S3Store, url: str, dest: Path) -> Path:
    """Everything the store holds under ``url``, as a reader would get it."""
    import s3fs

    fs = s3fs.S3FileSystem(**store.storage_options(), skip_instance_cache=True, use_listings_cache=False)
    prefix = url.removeprefix("s3://")
    for key in fs.find(prefix):
        target = dest / key[len(prefix):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(key, str(target))
    return dest


def _mirror(scratch: Path) -> Path | None:
    """The data root's mirror in a scratch folder, once a run made it (not the ``.versions`` folder beside it)."""
    return next((p for p in scratch.glob("*") if not p.name.endswith(".versions")), None)


def _forget_state(store: S3Store, url: str) -> None:
    """Remove the object's sync state from the store: the next run backfills and rewrites the replica."""
    import s3fs

    fs = s3fs.S3FileSystem(**store.storage_options(), skip_instance_cache=True, use_listings_cache=False)
    key = f"{url.removeprefix('s3://')}/state/Opportunity.json"
    if fs.isfile(key):
        fs.rm_file(key)


def test_sigkill_at_five_points_never_leaves_a_partial_object(big_emulator, s3_store, tmp_path):
    url, rng = s3_store.url(f"crash-{uuid.uuid4().hex[:8]}"), random.Random(SEED)
    env = base_env(data_root=tmp_path / "unused", prefect_home=fresh_prefect_home(tmp_path / "prefect"),
                   extra={**emulator_env(big_emulator), **s3_store.env(), "SF_PIPELINE_DATA_DIR": url,
                          "SF_PIPELINE_SCRATCH_DIR": str(tmp_path / "scratch"),
                          "SF_PIPELINE_LOCK_TTL_SECONDS": "5"})  # a killed run's lease: 5 s, not 60
    killed_at = []
    for n, (label, patterns, max_delay, backfill) in enumerate(KILL_POINTS):
        hit = None
        for attempt in range(ATTEMPTS):  # a busy machine may poll past a short stage: the next run has it again
            if backfill:
                _forget_state(s3_store, url)
            before = file_stamps(_mirror(tmp_path / "scratch") or tmp_path / "none")
            proc = start_orchestrator(env, *OBJECTS, log_file=tmp_path / f"{label}-{attempt}.log")
            while hit is None and proc.poll() is None:
                scratch = _mirror(tmp_path / "scratch")
                hit = wait_for_change(scratch, patterns, before, proc, timeout=0.5) if scratch else None
            if hit is not None:
                break
        assert hit is not None, f"{label}: {ATTEMPTS} runs ended before {patterns} appeared:\n" + \
            (tmp_path / f"{label}-{ATTEMPTS - 1}.log").read_text()[-3000:]
        time.sleep(rng.uniform(0, max_delay))
        kill_group(proc)
        killed_at.append((label, hit.name))
        problems = audit_data_root(_bucket_copy(s3_store, url, tmp_path / f"bucket-{n}"))
        assert problems == [], f"after a kill during {label}: {problems}"

    fresh = {**env, "SF_PIPELINE_SCRATCH_DIR": str(tmp_path / "fresh-scratch")}  # another machine
    final = run_orchestrator(fresh, *OBJECTS)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    bucket = _bucket_copy(s3_store, url, tmp_path / "bucket-final")
    assert audit_data_root(bucket) == []
    live = expected_ids(build_org(rows=ROWS), "Opportunity").live
    replica = ids_in(bucket / "replica" / "Opportunity.parquet")
    assert len(replica) == len(set(replica)) and set(replica) == live, "replica not exact"
    assert set(ids_in(bucket / "processed" / "qa" / "Opportunity" / "snapshot.parquet")) == live
    assert summary_id_count(bucket / "output" / "Opportunity" / "summary.json") == len(live)
    assert [label for label, _ in killed_at] == [label for label, *_ in KILL_POINTS]
