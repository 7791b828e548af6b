"""The replica as a base file and an overlay, end to end: runs that only rewrite the overlay, runs that compact it
into a new base, and a damaged overlay; after each, the replica equals the org and Phase 1 / QA read the same
records."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from emulator.runner import freeze_clock, run_emulator
from tasks import replica_store
from tasks.sync import sync_object
from tests.sync_helpers import FAST, connect, live_records, replica_of
from utils.paths import build_sync_paths
from utils.raw_frame import scan_dataset
from utils.replica_layers import overlay_path_for, read_stored

pytestmark = [pytest.mark.integration]
SIZES = {"User": 10, "Account": 1_500, "Contact": 10, "Opportunity": 10, "Lead": 10, "Case": 10}
MUTABLE = ["Id", "Type", "Rating", "AnnualRevenue", "NumberOfEmployees"]  # fields living updates rewrite


def _at(hours: float) -> str:
    base = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return (base + timedelta(hours=hours)).isoformat()


def _assert_exact(conn, truth_dir: Path, data_root: Path, dataset: str) -> None:
    truth = live_records(conn, "Account", truth_dir)
    replica = replica_of("Account", data_root)
    assert replica["Id"].to_list() == truth["Id"].to_list()
    assert replica.select(MUTABLE).equals(truth.select(MUTABLE))
    # what Phase 1 and QA read (scan_dataset on the run's dataset) is the same set of records
    read = scan_dataset(Path(dataset)).collect().sort("Id")
    assert read.equals(replica.select(read.columns))


def test_runs_write_the_overlay_then_compact_it_and_stay_exact(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(replica_store, "COMPACT_MIN_ROWS", 40)  # about two runs of living changes fill it
    monkeypatch.setattr(replica_store, "COMPACT_SHARE", 0.0)
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    data_root = tmp_path / "data"
    paths = build_sync_paths("Account", data_root=data_root)
    base_ids, overlay_rows = [], []
    with run_emulator(seed=33, rows=SIZES, in_process=True, living_rate=1) as info:
        conn = connect(info)
        for run in range(6):
            freeze_clock(info, _at(6 * run))
            result = sync_object("Account", run_id=f"L{run}", connection=conn, options=FAST, data_root=data_root)
            _assert_exact(conn, tmp_path / f"truth{run}", data_root, result.dataset)
            stored = read_stored(paths.replica)
            base_ids.append(stored.base_stamp.base_id)
            overlay_rows.append(stored.overlay.height if stored.overlay is not None else 0)
            assert stored.stamp.rows == result.sync.replica_rows
    assert not [r for r in caplog.records if "sync_backfill" in r.getMessage() and "L0" not in r.getMessage()]
    assert any(n > 0 for n in overlay_rows), overlay_rows          # some runs only wrote the overlay...
    assert len(set(base_ids)) > 1, (base_ids, overlay_rows)        # ...and some compacted it into a new base
    assert overlay_path_for(paths.replica).is_file()


def _rewrite_keeping_stamp(path: Path, frame: pl.DataFrame) -> None:
    """A replica file edited by hand: other records, the same Parquet metadata (stamp) as before."""
    frame.write_parquet(path, metadata=pl.read_parquet_metadata(path))


def test_a_damaged_overlay_means_a_rebuild_never_a_merge(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    data_root = tmp_path / "data"
    paths = build_sync_paths("Account", data_root=data_root)
    with run_emulator(seed=34, rows=SIZES, in_process=True, living_rate=1) as info:
        conn = connect(info)
        freeze_clock(info, _at(0))
        sync_object("Account", run_id="D1", connection=conn, options=FAST, data_root=data_root)
        freeze_clock(info, _at(6))
        sync_object("Account", run_id="D2", connection=conn, options=FAST, data_root=data_root)
        overlay_file = overlay_path_for(paths.replica)
        stored = read_stored(paths.replica)
        assert stored.overlay is not None and stored.overlay.height > 1
        _rewrite_keeping_stamp(overlay_file, stored.overlay.slice(1))  # a record lost from the overlay
        freeze_clock(info, _at(7))
        third = sync_object("Account", run_id="D3", connection=conn, options=FAST, data_root=data_root)
        _assert_exact(conn, tmp_path / "truth", data_root, third.dataset)
    assert third.mode == "backfill"
    assert [r for r in caplog.records if "sync_replica_mismatch" in r.getMessage() and "the overlay" in r.getMessage()]


def test_a_base_with_a_repeated_key_means_a_rebuild(tmp_path, caplog, monkeypatch):
    """The base edited by hand, its row count and stamp kept, one Id written twice: the next compaction (here: the
    next run) checks every key of what it writes and finds it, the run rebuilds by a backfill, and the replica
    equals the org."""
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    monkeypatch.setattr(replica_store, "COMPACT_MIN_ROWS", 0)
    monkeypatch.setattr(replica_store, "COMPACT_SHARE", 0.0)
    data_root = tmp_path / "data"
    paths = build_sync_paths("Account", data_root=data_root)
    with run_emulator(seed=35, rows=SIZES, in_process=True, living_rate=1) as info:
        conn = connect(info)
        freeze_clock(info, _at(0))
        sync_object("Account", run_id="K1", connection=conn, options=FAST, data_root=data_root)
        base = pl.read_parquet(paths.replica)
        ids = base["Id"].to_list()
        ids[1] = ids[0]
        _rewrite_keeping_stamp(paths.replica, base.with_columns(pl.Series("Id", ids)))
        freeze_clock(info, _at(6))
        second = sync_object("Account", run_id="K2", connection=conn, options=FAST, data_root=data_root)
        _assert_exact(conn, tmp_path / "truth", data_root, second.dataset)
    assert second.mode == "backfill"
    assert second.extracted.rows >= second.sync.replica_rows  # the backfill's extract, not the discarded delta's
    assert second.sync.inserts == second.sync.replica_rows  # the rebuild's counts, not the discarded delta's
    assert [r for r in caplog.records if "sync_replica_mismatch" in r.getMessage() and "repeat" in r.getMessage()]
