"""Schema evolution of the replica (issue #17 item 1): a field added to the registry is filled for every record by
one narrow query (Id + the new fields) merged by Id, a field taken out is dropped, and neither costs a backfill.
Each run ends with the replica equal to the org, column for column."""

from __future__ import annotations

import logging

import pytest

import configs.salesforce_objects as registry
from emulator import get_state
from tasks.sync import read_sync_state
from tests.sync_helpers import live_records, replica_of, sync, with_spec
from utils.errors import ConfigError
from utils.paths import build_sync_paths

pytestmark = [pytest.mark.integration]
LIVE_LEADS = 4948  # the session org's live Leads (5,000 generated, 52 in the recycle bin)


def _events(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={name} ")]


def _api_used(info) -> int:
    return int(get_state(info)["api_usage"]["used"])


def test_a_field_added_to_the_registry_is_filled_by_one_narrow_query(conn, emulator_reset, tmp_path, monkeypatch,
                                                                      caplog):
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    ids = replica_of("Lead", root)["Id"].to_list()
    conn.sf.Lead.update(ids[0], {"Title": "changed while the column is added"})  # in the delta and the fill alike
    lead = registry.SALESFORCE_OBJECTS["Lead"]
    with_spec(monkeypatch, "Lead", fields=(*lead.fields, "Title", "Email"))
    caplog.set_level(logging.INFO)
    used = _api_used(emulator_reset)

    second = sync(conn, "Lead", root, "R2")

    assert (second["mode"], second["schema_changes"]) == ("incremental", "+Title, +Email")
    assert second["sync"]["updates"] == 1  # the record changed since R1; the fill is not counted as updates
    (changed,) = _events(caplog, "sync_columns_changed")
    assert f"filled Title, Email for {LIVE_LEADS} live records by one narrow query" in changed
    replica = replica_of("Lead", root)
    assert replica.columns[-2:] == ["Title", "Email"]  # registry order
    assert replica["Title"].null_count() < replica.height and replica["Email"].null_count() < replica.height
    assert replica.filter(replica["Id"] == ids[0])["Title"].item() == "changed while the column is added"
    # the describe is cached: the delta, the narrow query (two REST pages of 2,000 + the rest) and the COUNT()
    assert _api_used(emulator_reset) - used <= 8
    assert replica.equals(live_records(conn, "Lead", tmp_path))
    state = read_sync_state(build_sync_paths("Lead", data_root=root).state, "Lead")
    assert state is not None and state.fields == (*lead.fields, "Title", "Email")

    third = sync(conn, "Lead", root, "R3")  # the state now knows the columns: nothing more to fill
    assert (third["mode"], third["schema_changes"]) == ("incremental", None)


def test_a_field_taken_out_of_the_registry_is_dropped_from_the_replica(conn, emulator_reset, tmp_path, monkeypatch):
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    lead = registry.SALESFORCE_OBJECTS["Lead"]
    with_spec(monkeypatch, "Lead", fields=tuple(f for f in lead.fields if f not in ("Rating", "Industry")))

    second = sync(conn, "Lead", root, "R2")

    assert (second["mode"], second["schema_changes"]) == ("incremental", "-Industry, -Rating")
    replica = replica_of("Lead", root)
    assert "Rating" not in replica.columns and "Industry" not in replica.columns
    assert replica.equals(live_records(conn, "Lead", tmp_path))


def test_a_field_the_org_does_not_have_fails_before_anything_is_written(conn, emulator_reset, tmp_path,
                                                                       monkeypatch):
    """Without drop_missing_fields, a registry field describe does not show is one clear error, and the replica and
    state of the last run stay exactly as they were."""
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    paths = build_sync_paths("Lead", data_root=root)
    before = {p: p.read_bytes() for p in (paths.replica, paths.state, paths.replica_schema)}
    lead = registry.SALESFORCE_OBJECTS["Lead"]
    with_spec(monkeypatch, "Lead", fields=(*lead.fields, "Favourite_Colour__c"))

    with pytest.raises(ConfigError, match=r"^Lead\.Favourite_Colour__c: not found in the org's describe"):
        sync(conn, "Lead", root, "R2")
    assert {p: p.read_bytes() for p in before} == before


def test_registry_names_are_compared_in_describe_spelling(conn, emulator_reset, tmp_path, monkeypatch):
    """A field typed ``industry`` is the describe's ``Industry``: kept run after run, never dropped and pulled
    again."""
    lead = registry.SALESFORCE_OBJECTS["Lead"]
    with_spec(monkeypatch, "Lead", fields=tuple(f.lower() if f == "Industry" else f for f in lead.fields))
    root = tmp_path / "data"
    sync(conn, "Lead", root, "R1")
    second = sync(conn, "Lead", root, "R2")
    assert (second["mode"], second["schema_changes"]) == ("incremental", None)
    assert "Industry" in replica_of("Lead", root).columns
