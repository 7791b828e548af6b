"""An object that refuses queryAll (issue #17 item 4), synced through the real client against the emulator: the
sync reads it with query instead (REST and Bulk 2.0), says once per run that the delta cannot show deletions, and the
replica still equals the org exactly (Ids and values) after records are changed, created and deleted in the org:
deleted records leave it through reconciliation by Id, when the count disagrees."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from emulator import EmulatorInfo, freeze_clock, reset_state, run_emulator
from tests.sync_helpers import FAST, connect, live_records, replica_of, sync, with_spec
from utils.connection import SalesforceConnection

pytestmark = [pytest.mark.integration]
ROWS = {"User": 10, "Group": 4, "Account": 50, "Contact": 20, "Opportunity": 20, "Lead": 20, "Case": 20,
        "Snapshot__c": 300}
FIELDS = ("Id", "Name", "Value__c", "Status__c", "OwnerId", "CreatedDate", "SystemModstamp")


@pytest.fixture(scope="module")
def org() -> Iterator[EmulatorInfo]:
    with run_emulator(rows=ROWS, faults="", living_rate=0, in_process=True) as info:
        yield info


@pytest.fixture()
def conn(org: EmulatorInfo) -> Iterator[SalesforceConnection]:
    yield connect(org)
    reset_state(org)


@pytest.fixture(autouse=True)
def _fresh_run_ids(monkeypatch):
    """Each test's run ids are its own (a describe is cached per run id, as in every real run)."""
    import tests.sync_helpers

    monkeypatch.setattr(tests.sync_helpers, "RUN_PREFIX", uuid.uuid4().hex[:6].upper())


def _refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=sync_query_all_refused ")]


def _change_the_org(conn: SalesforceConnection, replica_ids: list[str]) -> tuple[str, str, str]:
    """One record updated, one soft-deleted (the recycle bin: queryAll would show it, query does not), one created."""
    updated, deleted = replica_ids[5], replica_ids[17]
    conn.sf.Snapshot__c.update(updated, {"Value__c": 4242.5, "Status__c": "Archived"})
    conn.sf.Snapshot__c.delete(deleted)
    created = conn.sf.Snapshot__c.create({"Name": "Made between the runs", "Value__c": 1.25})["id"]
    return updated, deleted, created


@pytest.mark.parametrize("api", ["rest", "bulk2"])
def test_an_object_that_refuses_query_all_is_read_with_query_and_its_deletes_reach_the_replica(
        conn, tmp_path, monkeypatch, caplog, api):
    with_spec(monkeypatch, "Snapshot__c", fields=FIELDS, api=api)
    root = tmp_path / "data"
    caplog.set_level(logging.INFO)

    first = sync(conn, "Snapshot__c", root, "R1")
    assert (first["mode"], first["api_path"], first["sync"]["deletes_untracked"]) == ("backfill", api, True)
    assert len(_refusals(caplog)) == 1
    assert "INVALID_TYPE_FOR_OPERATION" in _refusals(caplog)[0]
    assert replica_of("Snapshot__c", root).equals(live_records(conn, "Snapshot__c", tmp_path))

    updated, deleted, created = _change_the_org(conn, replica_of("Snapshot__c", root)["Id"].to_list())
    caplog.clear()
    second = sync(conn, "Snapshot__c", root, "R2")

    assert len(_refusals(caplog)) == 1  # once per run, the fallback kept for the run's other extracts
    assert (second["mode"], second["sync"]["deletes_untracked"]) == ("incremental", True)
    assert (second["sync"]["inserts"], second["sync"]["updates"], second["sync"]["deletes"]) == (1, 1, 0)
    assert second["sync"]["hard_deletes"] == 1  # not in the delta: found by the count, then the Ids
    replica, org_now = replica_of("Snapshot__c", root), live_records(conn, "Snapshot__c", tmp_path)
    assert replica.equals(org_now)
    assert deleted not in replica["Id"].to_list() and {updated, created} <= set(replica["Id"].to_list())
    assert replica.filter(replica["Id"] == updated)["Value__c"].item() == 4242.5


def test_an_object_that_takes_query_all_still_tracks_deletes_in_its_delta(conn, tmp_path, caplog):
    root = tmp_path / "data"
    caplog.set_level(logging.INFO)
    sync(conn, "Lead", root, "R1")
    lead = replica_of("Lead", root)["Id"][3]
    conn.sf.Lead.delete(lead)

    second = sync(conn, "Lead", root, "R2", options=FAST)

    assert (second["sync"]["deletes"], second["sync"]["hard_deletes"], second["sync"]["deletes_untracked"]) == \
        (1, 0, False)
    assert not _refusals(caplog)
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))


def test_a_record_committed_behind_the_watermark_is_fetched_by_id_with_query(org, conn, tmp_path, monkeypatch):
    """Reconciliation's other half on such an object: a record the delta cannot see (created with a timestamp
    behind the watermark) is found by the count, then fetched by Id, with query as the delta was."""
    with_spec(monkeypatch, "Snapshot__c", fields=FIELDS, api="rest")
    root = tmp_path / "data"
    sync(conn, "Snapshot__c", root, "R1")
    freeze_clock(org, "2020-01-01T00:00:00Z")  # its CreatedDate and SystemModstamp both years behind the watermark
    try:
        behind = conn.sf.Snapshot__c.create({"Name": "Committed behind the watermark", "Value__c": 7.5})["id"]
    finally:
        freeze_clock(org, None)

    second = sync(conn, "Snapshot__c", root, "R2")

    assert (second["mode"], second["sync"]["recovered"], second["sync"]["deletes_untracked"]) == \
        ("incremental", 1, True)
    replica = replica_of("Snapshot__c", root)
    assert behind in replica["Id"].to_list() and replica.equals(live_records(conn, "Snapshot__c", tmp_path))
