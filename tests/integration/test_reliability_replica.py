"""A replica that heals itself: records behind the watermark, lost rows, a watermark from the future, schema drift,
and a hard delete racing an insert are all repaired by the next run, against the real emulator."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from emulator import freeze_clock, get_state, purge, set_faults
from tasks.extract import ExtractOptions, extract_object
from tasks.extract_plan import resolve_extract_plan
from tasks.process import process_object_data
from tasks.sync import read_sync_state, sync_object
from utils.connection import SalesforceConnection
from utils.paths import build_sync_paths
from utils.raw_frame import scan_raw_csv
from utils.settings import Credentials

pytestmark = pytest.mark.integration
FAST = ExtractOptions(backoff_base_seconds=0.01)


@pytest.fixture()
def conn(emulator_reset):
    creds = Credentials(flow="access_token", instance_url=emulator_reset.instance_url,
                        access_token=emulator_reset.access_token, ca_bundle=emulator_reset.ca_bundle)
    return SalesforceConnection(creds, source="emulator")


def live_records(conn, name, tmp_path) -> pl.DataFrame:
    """The org's current records, through a plain full extract (query, not queryAll)."""
    (item,) = resolve_extract_plan([name])
    result = extract_object(item, run_id="TRUTH", connection=conn, options=FAST, data_root=tmp_path / "truth")
    return scan_raw_csv(Path(result.raw_csv)).collect().sort("Id")


def replica_of(name, root) -> pl.DataFrame:
    return pl.read_parquet(build_sync_paths(name, data_root=root).replica).sort("Id")


def sync(conn, name, root, run_id, **kw):
    return sync_object(name, run_id=run_id, connection=conn, options=FAST, data_root=root, **kw)


def events(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={name} ")]


def test_a_record_committed_behind_the_watermark_is_recovered(conn, emulator_reset, tmp_path, caplog):
    """A long transaction commits a record whose SystemModstamp is older than watermark - overlap: no delta will
    ever bring it; the creation-bounded COUNT() sees it and Id-level reconciliation fetches it."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    watermark = read_sync_state(build_sync_paths("Lead", data_root=root).state, "Lead")["watermark"]
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


def test_a_watermark_ahead_of_the_org_clock_is_reset_and_the_run_catches_up(conn, emulator_reset, tmp_path, caplog):
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    state = json.loads(paths.state.read_text())
    state["watermark"] = "2099-01-01T00:00:00Z"
    paths.state.write_text(json.dumps(state))
    changed = replica_of("Lead", root)["Id"][5]
    conn.sf.Lead.update(changed, {"Company": "Changed after the clock jump"})
    caplog.set_level(logging.INFO)

    second = sync(conn, "Lead", root, "R2")

    assert events(caplog, "sync_watermark_ahead"), "a future watermark is reported"
    assert second["mode"] == "incremental" and second["sync"]["updates"] == 1
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
    saved = read_sync_state(paths.state, "Lead")["watermark"]
    assert saved < datetime.now(timezone.utc) + timedelta(minutes=1)


def test_a_hard_delete_racing_an_insert_between_delta_and_count_is_caught(conn, emulator_reset, tmp_path):
    """Between the delta query and COUNT(), one record is purged and one inserted: plain counts cancel out; the
    creation-bounded count does not, so the purged record leaves the replica in the same run."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    victim = replica_of("Lead", root)["Id"][7]
    # the delta is the first REST query of the run, the COUNT() the second: hold the COUNT() for a moment
    set_faults(emulator_reset, "rest.query:latency=1500:after=1:times=1")
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(sync(conn, "Lead", root, "R2")))
    runner.start()
    deadline = time.monotonic() + 60
    while get_state(emulator_reset)["fault_rules"][0]["fired"] < 1:
        assert time.monotonic() < deadline, "the COUNT() request never arrived"
        time.sleep(0.02)
    purge(emulator_reset, [victim])
    conn2 = SalesforceConnection(conn.credentials, source="emulator")
    conn2.sf.Lead.create({"LastName": "Racing insert", "Company": "Race", "Status": "Open - Not Contacted"})
    runner.join(timeout=120)

    assert result["sync"]["hard_deletes"] == 1
    assert victim not in replica_of("Lead", root)["Id"].to_list()
    set_faults(emulator_reset, "")
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
