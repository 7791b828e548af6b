"""Incremental sync against the emulator, with real REST writes between runs: the replica stays exact."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from emulator import freeze_clock, purge, undelete
from tasks.sync import read_sync_state, sync_object
from tests.sync_helpers import FAST, live_records, replica_of, sync, with_spec
from utils.connection import SalesforceConnection
from utils.paths import build_sync_paths

pytestmark = pytest.mark.integration


def test_inserts_updates_deletes_undeletes_and_hard_deletes_keep_the_replica_exact(conn, emulator_reset, tmp_path):
    root = tmp_path / "data"
    first = sync(conn, "Lead", root, "R1")
    assert first["mode"] == "backfill"
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))
    ids = replica_of("Lead", root)["Id"].to_list()
    sf = conn.sf

    new_id = sf.Lead.create({"LastName": 'Zoë, "the" new', "Company": "株式会社",
                             "Status": "Open - Not Contacted"})["id"]
    sf.Lead.update(ids[0], {"Company": "Renamed, Inc."})
    sf.Lead.delete(ids[1])
    purge(emulator_reset, [ids[2]])  # a hard delete: never appears in any delta
    second = sync(conn, "Lead", root, "R2")
    stats = second["sync"]
    assert second["mode"] == "incremental"
    assert (stats["inserts"], stats["updates"], stats["deletes"], stats["hard_deletes"]) == (1, 1, 1, 1)
    assert second["rows"] < 50, "an incremental run must fetch the delta, not the object"
    replica = replica_of("Lead", root)
    assert replica.equals(live_records(conn, "Lead", tmp_path))
    assert new_id in replica["Id"].to_list() and ids[1] not in replica["Id"].to_list()

    undelete(emulator_reset, [ids[1]])
    third = sync(conn, "Lead", root, "R3")
    assert ids[1] in replica_of("Lead", root)["Id"].to_list() and third["sync"]["inserts"] == 1
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))


def test_several_updates_sharing_one_system_modstamp_are_all_caught(conn, emulator_reset, tmp_path, monkeypatch):
    with_spec(monkeypatch, "Contact", incremental_overlap_minutes=0)  # no overlap: only ">=" protects the tie
    root = tmp_path / "data"
    sync(conn, "Contact", root, "R1")
    ids = replica_of("Contact", root)["Id"].to_list()[:5]
    freeze_clock(emulator_reset, "2030-01-01T00:00:00.000Z")
    for i, record_id in enumerate(ids[:3]):
        conn.sf.Contact.update(record_id, {"Title": f"Tie {i}"})
    sync(conn, "Contact", root, "R2")
    for i, record_id in enumerate(ids[3:]):  # same instant as the watermark: >= must include them
        conn.sf.Contact.update(record_id, {"Title": f"Tie late {i}"})
    sync(conn, "Contact", root, "R3")
    freeze_clock(emulator_reset, None)
    replica = replica_of("Contact", root)
    assert replica.equals(live_records(conn, "Contact", tmp_path))
    titles = dict(replica.select("Id", "Title").iter_rows())
    assert [titles[i] for i in ids] == ["Tie 0", "Tie 1", "Tie 2", "Tie late 0", "Tie late 1"]


def test_crash_between_replica_and_watermark_writes_loses_nothing(conn, emulator_reset, tmp_path):
    """The disk state a SIGKILL leaves after the replica rename and before the state rename: new replica, old
    watermark. The next run repeats the delta, and the repeat changes nothing but what really changed since."""
    root = tmp_path / "data"
    sync(conn, "Case", root, "R1")
    paths = build_sync_paths("Case", data_root=root)
    saved_state = tmp_path / "state-before.json"
    shutil.copy(paths.state, saved_state)
    ids = replica_of("Case", root)["Id"].to_list()
    conn.sf.Case.update(ids[0], {"Subject": "changed before the crash"})
    conn.sf.Case.delete(ids[1])
    sync(conn, "Case", root, "R2")
    shutil.copy(saved_state, paths.state)  # the "crash": the watermark never advanced
    conn.sf.Case.update(ids[2], {"Subject": "changed after the crash"})
    repeat = sync(conn, "Case", root, "R3")
    assert repeat["sync"]["updates"] == 1 and repeat["sync"]["deletes"] == 0  # the repeat is idempotent
    assert replica_of("Case", root).equals(live_records(conn, "Case", tmp_path))


def test_full_refresh_and_a_corrupt_state_rebuild_the_replica(conn, emulator_reset, tmp_path):
    root = tmp_path / "data"
    sync(conn, "Account", root, "R1")
    assert sync(conn, "Account", root, "R2")["mode"] == "incremental"
    assert sync(conn, "Account", root, "R3", full_refresh=True)["mode"] == "backfill"
    paths = build_sync_paths("Account", data_root=root)
    paths.state.write_text("{not json")  # a corrupt state file: reported, then a clean backfill
    result = sync(conn, "Account", root, "R4")
    assert result["mode"] == "backfill" and read_sync_state(paths.state, "Account").last_run_id == result["run_id"]
    assert result["run_id"].endswith("R4")
    assert replica_of("Account", root).equals(live_records(conn, "Account", tmp_path))


@pytest.mark.slow
def test_switching_an_object_to_full_and_back(prefect_harness, conn, emulator_reset, tmp_path, monkeypatch):
    from flows.sf_etl_orchestrator_flow import sf_etl_orchestrator_flow

    monkeypatch.setenv("SF_INSTANCE_URL", emulator_reset.instance_url)
    monkeypatch.setenv("SF_ACCESS_TOKEN", emulator_reset.access_token)
    monkeypatch.setenv("SF_CA_BUNDLE", emulator_reset.ca_bundle)
    root = tmp_path / "data"

    def run():
        state = sf_etl_orchestrator_flow(objects=["Lead"], data_root=str(root), return_state=True)
        assert state.is_completed(), state.message
        (row,) = state.result()["objects"]
        return row

    assert run()["mode"] == "backfill"
    with monkeypatch.context() as m:
        with_spec(m, "Lead", sync_mode="full")
        ids = replica_of("Lead", root)["Id"].to_list()
        conn.sf.Lead.update(ids[0], {"Company": "changed while in full mode"})
        conn.sf.Lead.delete(ids[1])
        full = run()
        assert full["mode"] == "full" and full["replica_rows"] is None
    back = run()
    assert back["mode"] == "incremental" and (back["updates"], back["deletes"]) == (1, 1)
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path))


def test_a_replica_from_another_org_is_never_resumed(conn, emulator_reset, tmp_path):
    """E.g. `make run` on the emulator, then credentials in .env: the real org must get a full backfill."""
    import json as _json

    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    state = _json.loads(paths.state.read_text())
    state["source"] = "salesforce:https://acme.my.salesforce.com"
    paths.state.write_text(_json.dumps(state))
    assert sync(conn, "Lead", root, "R2")["mode"] == "backfill"
    assert sync(conn, "Lead", root, "R3")["mode"] == "incremental"


def test_overlapping_syncs_of_one_object_stay_exact(conn, emulator_reset, tmp_path):
    """Serve plus a manual run at the same moment: the per-object lock serialises read-merge-write."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "data"
    sync(conn, "Case", root, "R0")
    ids = replica_of("Case", root)["Id"].to_list()

    def one(i):
        c = SalesforceConnection(conn.credentials, source="emulator")
        c.sf.Case.update(ids[i], {"Subject": f"concurrent {i}"})
        return sync(c, "Case", root, f"C{i}")

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(6)))
    assert all(r["mode"] == "incremental" for r in results)
    assert replica_of("Case", root).equals(live_records(conn, "Case", tmp_path))


def test_drop_missing_fields_works_for_incremental_objects(conn, emulator_reset, tmp_path, monkeypatch):
    import configs.salesforce_objects as registry

    lead = registry.SALESFORCE_OBJECTS["Lead"]
    with_spec(monkeypatch, "Lead", fields=(*lead.fields, "Favourite_Colour__c"))
    root = tmp_path / "data"
    from utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"Lead\.Favourite_Colour__c: not found"):
        sync(conn, "Lead", root, "R1")
    options = replace(FAST, drop_missing_fields=True)
    first = sync_object("Lead", run_id="R2", connection=conn, options=options, data_root=root).as_dict()
    second = sync_object("Lead", run_id="R3", connection=conn, options=options, data_root=root).as_dict()
    assert (first["mode"], second["mode"]) == ("backfill", "incremental")
    assert "Favourite_Colour__c" not in replica_of("Lead", root).columns
    assert replica_of("Lead", root).equals(live_records(conn, "Lead", tmp_path, options))
