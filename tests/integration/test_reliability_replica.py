"""A replica that heals itself: records behind the watermark, lost rows, a watermark from the future, schema drift,
and a hard delete racing an insert are all repaired by the next run, against the real emulator."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

import tasks.sync
from emulator import freeze_clock, get_state, purge, set_faults
from tasks.process import process_object_data
from tasks.sync import read_sync_state
from tests.sync_helpers import live_records, replica_of, sync
from utils.connection import SalesforceConnection
from utils.paths import build_sync_paths

pytestmark = pytest.mark.integration


def events(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={name} ")]


def test_a_record_committed_behind_the_watermark_is_recovered(conn, emulator_reset, tmp_path, caplog):
    """A long transaction commits a record whose SystemModstamp is older than watermark - overlap: no delta will
    ever bring it; the creation-bounded COUNT() sees it and Id-level reconciliation fetches it."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    watermark = read_sync_state(build_sync_paths("Lead", data_root=root).state, "Lead").watermark
    freeze_clock(emulator_reset, (watermark - timedelta(hours=2)).isoformat())
    late_id = conn.sf.Lead.create({"LastName": "Committed late", "Company": "Slow Tx",
                                   "Status": "Open - Not Contacted"})["id"]
    freeze_clock(emulator_reset, None)
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert late_id in replica_of("Lead", root)["Id"].to_list()
    assert second["mode"] == "incremental" and second["rows"] < 50, "still a delta run, not a backfill"
    assert second["sync"]["recovered"] == 1
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
    assert any("recovered=1" in e for e in events(caplog, "sync_reconciled"))


def test_a_replica_missing_rows_is_completed_when_state_and_replica_agree(conn, emulator_reset, tmp_path):
    """Replica and state restored together from a backup that lacks 100 rows: they agree with each other, the org
    has more; the next run adds the 100 back (before, only removals were ever reconciled)."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    smaller = replica_of("Lead", root).slice(100)
    smaller.write_parquet(paths.replica)  # another tool: no stamp, so the state is the reference
    state = json.loads(paths.state.read_text())
    state["replica_rows"] = smaller.height
    paths.state.write_text(json.dumps(state))

    second = sync(conn, "Lead", root, "R2")

    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
    assert second["mode"] == "incremental" and second["sync"]["recovered"] == 100


def test_a_replica_that_disagrees_with_its_state_is_rebuilt(conn, emulator_reset, tmp_path, caplog):
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    replica_of("Lead", root).slice(100).write_parquet(paths.replica)  # edited by hand, state untouched
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert second["mode"] == "backfill"
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
    assert any("rows, the state recorded" in e for e in events(caplog, "sync_replica_mismatch"))


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda df: df.drop("Company"), "column(s) missing: Company"),
    (lambda df: df.with_columns(pl.col("AnnualRevenue").cast(pl.Utf8)), "dtype changed: AnnualRevenue"),
], ids=["missing-column", "changed-dtype"])
def test_replica_schema_drift_is_rebuilt_never_written_back(conn, emulator_reset, tmp_path, caplog, damage, reason):
    """The damaged file keeps its stamp (a tool that preserves Parquet metadata): the stamp catches it."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    damage(pl.read_parquet(paths.replica)).write_parquet(paths.replica, metadata=pl.read_parquet_metadata(
        paths.replica))
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert second["mode"] == "backfill"
    assert any(reason in e for e in events(caplog, "sync_replica_mismatch"))
    replica = replica_of("Lead", root)
    assert replica.schema["AnnualRevenue"] == pl.Float64 and "Company" in replica.columns
    assert replica.equals(live_records(conn, "Lead", tmp_path))
    process_object_data.fn("Lead", second["dataset"], data_root=str(root))  # Phase 1 reads it


@pytest.mark.parametrize(("stamped", "event"), [
    (True, "sync_replica_state_disagree"),   # the replica's own stamp still has the true watermark
    (False, "sync_watermark_ahead"),         # an unstamped replica (older version): the org's clock catches it
], ids=["stamped-replica", "unstamped-replica"])
def test_a_watermark_in_the_future_is_reset_and_the_run_catches_up(conn, emulator_reset, tmp_path, caplog, stamped,
                                                                    event):
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    if not stamped:
        pl.read_parquet(paths.replica).write_parquet(paths.replica)
    state = json.loads(paths.state.read_text())
    state["watermark"] = "2099-01-01T00:00:00Z"
    paths.state.write_text(json.dumps(state))
    changed = replica_of("Lead", root)["Id"][5]
    conn.sf.Lead.update(changed, {"Company": "Changed after the clock jump"})
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert events(caplog, event), "the future watermark is reported"
    assert second["mode"] == "incremental" and second["sync"]["updates"] == 1
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
    saved = read_sync_state(paths.state, "Lead").watermark
    assert saved < datetime.now(timezone.utc) + timedelta(minutes=1)


def _during_the_count(emulator, action) -> None:
    """Run ``action`` while the sync's COUNT() (the run's second REST query) is held by a latency fault."""
    deadline = time.monotonic() + 60
    while get_state(emulator)["fault_rules"][0]["fired"] < 1:
        assert time.monotonic() < deadline, "the COUNT() request never arrived"
        time.sleep(0.02)
    action()


@pytest.mark.slow
def test_a_hard_delete_racing_an_insert_between_delta_and_count_is_caught(conn, emulator_reset, tmp_path):
    """Between the delta query and COUNT(), one record is purged and one inserted: plain counts cancel out; the
    creation-bounded count does not, so the purged record leaves the replica in the same run."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    victim = replica_of("Lead", root)["Id"][7]
    # the delta is the first REST query of the run, the COUNT() the second: hold the COUNT() for a moment
    set_faults(emulator_reset, "rest.query:latency=4000:after=1:times=1")
    other = SalesforceConnection(conn.credentials, source="emulator")

    def purge_one_insert_one():
        purge(emulator_reset, [victim])
        other.sf.Lead.create({"LastName": "Racing insert", "Company": "Race", "Status": "Open - Not Contacted"})

    racer = threading.Thread(target=_during_the_count, args=(emulator_reset, purge_one_insert_one))
    racer.start()
    result = sync(conn, "Lead", root, "R2")
    racer.join(timeout=60)

    assert result["sync"]["hard_deletes"] == 1
    assert victim not in replica_of("Lead", root)["Id"].to_list()
    assert result["sync"]["recovered"] == 0, "the racing insert is the next delta's, not a recovered record"
    set_faults(emulator_reset, "")
    sync(conn, "Lead", root, "R3")
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))


def test_a_crash_after_the_replica_write_resumes_from_the_older_watermark(conn, emulator_reset, tmp_path):
    """Replica written, state not (the run died in between): the stamp tells them apart; nothing is rebuilt."""
    root = tmp_path / "data"
    sync(conn, "Case", root, "R1")
    paths = build_sync_paths("Case", data_root=root)
    old_state = paths.state.read_bytes()
    conn.sf.Case.update(replica_of("Case", root)["Id"][3], {"Subject": "before the crash"})
    sync(conn, "Case", root, "R2")
    paths.state.write_bytes(old_state)  # as if R2 died right after its replica rename

    third = sync(conn, "Case", root, "R3")

    assert third["mode"] == "incremental" and third["sync"]["updates"] == 0  # the repeat is idempotent
    assert replica_of("Case", root).equals(live_records(conn, "Case", tmp_path))


def test_an_insert_racing_the_count_on_a_skewed_clock_costs_no_reconciliation(conn, emulator_reset, tmp_path,
                                                                               caplog):
    """The org's clock is an hour behind ours. The offset measured at each COUNT() moves the creation bound onto
    the org's clock, so a record created while the count runs is outside it: no Id pull, no false 'recovered'."""
    root = tmp_path / "data"
    org_now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    freeze_clock(emulator_reset, org_now.isoformat())
    sync(conn, "Lead", root, "R1")
    offset = read_sync_state(build_sync_paths("Lead", data_root=root).state, "Lead").clock_offset_seconds
    assert -3700 < offset < -3500, "the state records how far the org's clock is from ours"
    set_faults(emulator_reset, "rest.query:latency=2000:after=1:times=1")
    caplog.set_level(logging.INFO)
    creator = SalesforceConnection(conn.credentials, source="emulator")
    racer = threading.Thread(target=_during_the_count, args=(emulator_reset, lambda: creator.sf.Lead.create(
        {"LastName": "Racing insert", "Company": "Race", "Status": "Open - Not Contacted"})))
    racer.start()
    second = sync(conn, "Lead", root, "R2")
    racer.join(timeout=60)

    assert not events(caplog, "sync_reconciled"), "an insert racing the count is not a reason to compare Ids"
    assert second["mode"] == "incremental" and second["sync"]["recovered"] == 0


def test_a_state_watermark_moved_forward_cannot_skip_changes(conn, emulator_reset, tmp_path, caplog):
    """The state file's watermark is edited forward (still behind the org's clock); the replica's own stamp knows
    better, so the change made in between still arrives."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    watermark = read_sync_state(paths.state, "Lead").watermark
    freeze_clock(emulator_reset, (watermark + timedelta(hours=1)).isoformat())
    changed = replica_of("Lead", root)["Id"][9]
    conn.sf.Lead.update(changed, {"Company": "Changed between the watermarks"})
    freeze_clock(emulator_reset, None)
    state = json.loads(paths.state.read_text())
    state["watermark"] = (watermark + timedelta(hours=2)).isoformat()
    paths.state.write_text(json.dumps(state))
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert events(caplog, "sync_replica_state_disagree")
    assert second["sync"]["updates"] == 1
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))


def test_a_retyped_column_is_refilled_in_the_same_run(conn, emulator_reset, tmp_path, caplog):
    """The replica (stamp and state agreeing) was written when AnnualRevenue was a text field; describe now says
    currency: merging would cast the new values to text, so that column is refilled at once for every record by
    one narrow query (Id + AnnualRevenue), not by a backfill of every column (issue #17)."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    metadata = pl.read_parquet_metadata(paths.replica)
    stamp = json.loads(metadata["sf_pipeline.replica"])
    stamp["column_types"]["AnnualRevenue"] = "string"
    pl.read_parquet(paths.replica).with_columns(pl.col("AnnualRevenue").cast(pl.Utf8)).write_parquet(
        paths.replica, metadata={**metadata, "sf_pipeline.replica": json.dumps(stamp)})
    state = json.loads(paths.state.read_text())
    state["column_types"]["AnnualRevenue"] = "string"
    paths.state.write_text(json.dumps(state))
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    changed = events(caplog, "sync_columns_changed")
    assert len(changed) == 1 and "AnnualRevenue: string -> currency" in changed[0], changed
    assert "filled AnnualRevenue for 4948 live records" in changed[0]
    assert (second["mode"], second["schema_changes"]) == ("incremental", "AnnualRevenue: string -> currency")
    assert replica_of("Lead", root).schema["AnnualRevenue"] == pl.Float64
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))


def test_too_many_missing_records_are_rebuilt_by_a_backfill(conn, emulator_reset, tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    smaller = replica_of("Lead", root).slice(100)
    smaller.write_parquet(paths.replica)
    state = json.loads(paths.state.read_text())
    state["replica_rows"] = smaller.height
    paths.state.write_text(json.dumps(state))
    monkeypatch.setattr(tasks.sync, "RECONCILE_FETCH_MIN", 50)  # 100 missing of ~5,000: over the limit
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert second["mode"] == "backfill"
    assert any("full backfill" in e for e in events(caplog, "sync_reconciled"))
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
