"""The replica merge: upserts, soft deletes, undeletes, ties at the cursor, overlap repeats, hard deletes."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
from polars.testing import assert_frame_equal

from tasks.replica import delta_filter, drop_missing_keys, merge_delta, next_watermark

T = [datetime(2026, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in range(6)]
SCHEMA = {"Id": pl.Utf8, "Name": pl.Utf8, "SystemModstamp": pl.Datetime("ms", "UTC")}


def frame(rows, deleted=None):
    df = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    if deleted is not None:
        df = df.with_columns(pl.Series("IsDeleted", deleted, dtype=pl.Boolean))
    return df


def merge(replica, delta):
    return merge_delta(replica, delta, columns=list(SCHEMA), primary_key="Id", cursor_field="SystemModstamp")


def test_backfill_then_inserts_updates_and_soft_deletes():
    replica, stats = merge(None, frame([("a", "A", T[0]), ("b", "B", T[0]), ("x", "X", T[0])], [False, False, True]))
    assert replica["Id"].to_list() == ["a", "b"] and (stats.inserts, stats.deletes) == (2, 0)
    delta = frame([("b", "B2", T[2]), ("c", "C", T[2]), ("a", "A", T[3])], [False, False, True])
    replica, stats = merge(replica, delta)
    assert_frame_equal(replica, frame([("b", "B2", T[2]), ("c", "C", T[2])]))
    assert (stats.delta_rows, stats.inserts, stats.updates, stats.deletes, stats.replica_rows) == (3, 1, 1, 1, 2)


def test_overlap_repeats_are_idempotent_and_unchanged_rows_are_not_updates():
    replica, _ = merge(None, frame([("a", "A", T[1]), ("b", "B", T[1])], [False, False]))
    again, stats = merge(replica, frame([("a", "A", T[1])], [False]))
    assert_frame_equal(again, replica)
    assert (stats.inserts, stats.updates, stats.deletes) == (0, 0, 0)


def test_latest_version_wins_and_ties_go_to_the_last_row():
    delta = frame([("a", "v2", T[2]), ("a", "v1", T[1]), ("a", "tie-first", T[3]), ("a", "tie-last", T[3])],
                  [False] * 4)
    replica, stats = merge(None, delta)
    assert replica["Name"].to_list() == ["tie-last"] and stats.delta_rows == 1


def test_undelete_brings_a_record_back():
    replica, _ = merge(None, frame([("a", "A", T[0])], [False]))
    replica, _ = merge(replica, frame([("a", "A", T[1])], [True]))
    assert replica.height == 0
    replica, stats = merge(replica, frame([("a", "A", T[2])], [False]))
    assert replica["Id"].to_list() == ["a"] and stats.inserts == 1


def test_hard_deletes_are_dropped_by_reconciliation():
    replica, _ = merge(None, frame([("a", "A", T[0]), ("b", "B", T[0])], [False, False]))
    kept, removed = drop_missing_keys(replica, pl.DataFrame({"Id": ["b"]}), primary_key="Id")
    assert kept["Id"].to_list() == ["b"] and removed == 1


def test_watermark_never_moves_backwards_and_filter_applies_overlap():
    delta = frame([("a", "A", T[3]), ("b", "B", T[1])], [False, False])
    assert next_watermark(delta, "SystemModstamp", None) == T[3]
    assert next_watermark(delta, "SystemModstamp", T[5]) == T[5]
    assert next_watermark(delta.clear(), "SystemModstamp", T[2]) == T[2]
    assert delta_filter("SystemModstamp", T[5], 1) == "SystemModstamp >= 2025-12-31T23:59:05.000Z"
