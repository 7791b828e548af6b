"""The pipeline's incremental sync against a living org: between two runs the org inserts, updates, deletes and
purges records on its own; each run merges exactly that, the replica equals the org, and a restarted emulator
(same seed, new port) is the same org, so the next run resumes instead of backfilling."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from emulator.runner import freeze_clock, run_emulator
from tasks.sync import sync_object
from tests.sync_helpers import FAST, connect, live_records, replica_of

pytestmark = [pytest.mark.integration]
SIZES = {"User": 10, "Account": 1_500, "Contact": 10, "Opportunity": 10, "Lead": 10, "Case": 10}


def _at(hours: float) -> str:
    base = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return (base + timedelta(hours=hours)).isoformat()


def _assert_replica_is_the_org(conn, tmp_path, data_root) -> None:
    truth = live_records(conn, "Account", tmp_path)
    replica = replica_of("Account", data_root)
    assert replica["Id"].to_list() == truth["Id"].to_list()
    mutable = ["Id", "Type", "Rating", "AnnualRevenue", "NumberOfEmployees"]  # fields living updates rewrite
    assert replica.select(mutable).equals(truth.select(mutable))


def test_incremental_runs_follow_a_living_org_across_a_restart(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    data_root = tmp_path / "data"
    with run_emulator(seed=21, rows=SIZES, in_process=True, living_rate=1) as info:
        conn = connect(info)
        freeze_clock(info, _at(0))
        sync_object("Account", run_id="R1", connection=conn, options=FAST, data_root=data_root)
        freeze_clock(info, _at(2 * 24))  # two days of the org's own life
        second = sync_object("Account", run_id="R2", connection=conn, options=FAST, data_root=data_root)
        _assert_replica_is_the_org(conn, tmp_path / "t2", data_root)
    stats = second.sync
    assert second.mode == "incremental"
    assert stats.inserts > 0 and stats.updates > 0 and stats.deletes + stats.hard_deletes > 0, stats
    caplog.clear()
    with run_emulator(seed=21, rows=SIZES, in_process=True, living_rate=1) as restarted:
        conn = connect(restarted)
        freeze_clock(restarted, _at(3 * 24))
        third = sync_object("Account", run_id="R3", connection=conn, options=FAST, data_root=data_root)
        _assert_replica_is_the_org(conn, tmp_path / "t3", data_root)
    assert not [r for r in caplog.records if r.getMessage().startswith("event=sync_backfill ")]
    assert third.mode == "incremental" and third.sync.updates > 0
