"""A field added to the registry over a replica that has an overlay (issue #17 item 1, the streaming rewrite of
tasks/replica_evolve.py): the new base takes the column for every record, the overlay's records and tombstones
keep applying, and a run that fails after the base was rewritten (before its overlay and state) is resumed by the
next one with the replica equal to the org."""

from __future__ import annotations

import pytest

import configs.salesforce_objects as registry
from emulator.runner import set_faults
from tests.sync_helpers import live_records, ranges_of, replica_of, sync, with_spec
from utils.errors import RetriableSourceError
from utils.paths import build_sync_paths
from utils.replica_layers import read_stored

pytestmark = [pytest.mark.integration]


def _with_an_overlay(conn, root) -> tuple[str, str]:
    """A backfill, then one record updated and one deleted in the org and synced: both live in the overlay."""
    sync(conn, "Lead", root, "R1")
    ids = replica_of("Lead", root)["Id"].to_list()
    conn.sf.Lead.update(ids[1], {"Title": "set before the column is added"})
    conn.sf.Lead.delete(ids[2])
    sync(conn, "Lead", root, "R2")
    overlay = read_stored(build_sync_paths("Lead", data_root=root).replica).overlay
    assert overlay is not None and {ids[1], ids[2]} <= set(overlay["Id"].to_list())
    return ids[1], ids[2]


def test_an_added_field_fills_base_and_overlay_records(conn, tmp_path, monkeypatch, key_ranges):
    root = tmp_path / "data"
    updated, deleted = _with_an_overlay(conn, root)
    assert (ranges_of("Lead", root) > 2) == (key_ranges == "key ranges")
    with_spec(monkeypatch, "Lead", fields=(*registry.SALESFORCE_OBJECTS["Lead"].fields, "Title"))

    third = sync(conn, "Lead", root, "R3")

    assert (third["mode"], third["schema_changes"]) == ("incremental", "+Title")
    replica = replica_of("Lead", root)
    assert replica.filter(replica["Id"] == updated)["Title"].item() == "set before the column is added"
    assert deleted not in replica["Id"].to_list()
    assert replica.equals(live_records(conn, "Lead", tmp_path))


def test_a_run_that_fails_after_the_base_was_rewritten_is_resumed_exactly(conn, emulator_reset, tmp_path,
                                                                          monkeypatch):
    root = tmp_path / "data"
    updated, deleted = _with_an_overlay(conn, root)
    with_spec(monkeypatch, "Lead", fields=(*registry.SALESFORCE_OBJECTS["Lead"].fields, "Title"))

    # the run's REST queries, in order: the delta, the narrow pull of Title, then the row count, which the org
    # refuses on every retry: the run fails after the new base is written, before its overlay and state
    set_faults(emulator_reset, "rest.query:503:after=2:times=0")
    with pytest.raises(RetriableSourceError, match="row count"):
        sync(conn, "Lead", root, "R3")
    set_faults(emulator_reset, "")
    stored = read_stored(build_sync_paths("Lead", data_root=root).replica)
    assert "Title" in stored.base_schema and stored.overlay is None  # the new base alone; the old overlay is stale
    conn.sf.Lead.update(updated, {"Title": "changed after the failed run"})

    fourth = sync(conn, "Lead", root, "R4")

    assert fourth["mode"] == "incremental"  # resumed from the base's watermark, not a backfill
    replica = replica_of("Lead", root)
    assert replica.filter(replica["Id"] == updated)["Title"].item() == "changed after the failed run"
    assert deleted not in replica["Id"].to_list()  # the lost tombstone: found again by the count and the Ids
    assert replica.equals(live_records(conn, "Lead", tmp_path))
