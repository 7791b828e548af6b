"""The replica merge: upserts, soft deletes, undeletes, ties at the cursor, overlap repeats, hard deletes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
from polars.testing import assert_frame_equal

from tasks.replica import (
    conform_replica,
    count_created_before,
    delta_filter,
    fallback_watermark,
    find_missing_keys,
    find_replica_mismatch,
    is_watermark_ahead,
    merge_delta,
    next_watermark,
    plan_column_changes,
    refresh_columns,
    with_null_columns,
)
from utils.replica_layers import ReplicaStamp

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


def test_watermark_never_moves_backwards_and_filter_applies_overlap():
    delta = frame([("a", "A", T[3]), ("b", "B", T[1])], [False, False])
    assert next_watermark(delta, "SystemModstamp", None) == T[3]
    assert next_watermark(delta, "SystemModstamp", T[5]) == T[5]
    assert next_watermark(delta.clear(), "SystemModstamp", T[2]) == T[2]
    assert delta_filter("SystemModstamp", T[5], 1) == "SystemModstamp >= 2025-12-31T23:59:05.000Z"


# --- self-healing checks (reliability round 2) ---------------------------------------------------------------


def test_find_missing_keys_lists_live_keys_the_replica_lacks():
    replica = frame([("a", "A", T[0]), ("c", "C", T[0])])
    live = pl.DataFrame({"Id": ["d", "a", "b", "c"]})
    assert find_missing_keys(replica, live, primary_key="Id") == ["b", "d"]


def test_find_missing_keys_leaves_out_records_created_after_the_bound():
    replica = frame([("a", "A", T[0])])
    live = pl.DataFrame({"Id": ["a", "b", "d"], "CreatedDate": [T[0], T[1], T[4]]},
                        schema={"Id": pl.Utf8, "CreatedDate": pl.Datetime("ms", "UTC")})
    assert find_missing_keys(replica, live, primary_key="Id", created_field="CreatedDate",
                             created_before=T[3]) == ["b"]


def test_replica_mismatch_names_the_first_difference():
    expected = dict(SCHEMA)
    assert find_replica_mismatch(SCHEMA, 3, expected=expected, expected_rows=3) is None
    assert find_replica_mismatch({"Id": pl.Utf8, "SystemModstamp": SCHEMA["SystemModstamp"]}, 3, expected=expected,
                            expected_rows=3) == "column(s) missing: Name"
    assert find_replica_mismatch({**SCHEMA, "X": pl.Int64}, 3, expected=expected, expected_rows=3) \
        == "unexpected column(s): X"
    assert find_replica_mismatch({**SCHEMA, "Name": pl.Int64}, 3, expected=expected, expected_rows=3) \
        == "dtype changed: Name is Int64, expected String"
    assert find_replica_mismatch(SCHEMA, 2, expected=expected, expected_rows=3) == "2 rows, the state recorded 3"
    assert find_replica_mismatch(SCHEMA, 2, expected=expected, expected_rows=None) is None


def test_created_before_count_ignores_records_created_after_the_bound():
    replica = pl.DataFrame({"Id": ["a", "b", "c"], "CreatedDate": [T[0], T[2], T[4]]},
                           schema={"Id": pl.Utf8, "CreatedDate": pl.Datetime("ms", "UTC")})
    assert count_created_before(replica, "CreatedDate", T[2]) == 1
    assert count_created_before(replica, "CreatedDate", T[5]) == 3


def test_a_watermark_is_ahead_only_beyond_the_tolerance():
    assert not is_watermark_ahead(T[0] + timedelta(seconds=30), T[0])
    assert is_watermark_ahead(T[0] + timedelta(minutes=2), T[0])
    assert not is_watermark_ahead(None, T[0]) and not is_watermark_ahead(T[0], None)


def test_safe_watermark_is_the_newest_replica_change_capped_by_the_org_clock():
    replica = frame([("a", "A", T[1]), ("b", "B", T[3])])
    assert fallback_watermark(replica, "SystemModstamp", T[5]) == T[3]
    assert fallback_watermark(replica, "SystemModstamp", T[2]) == T[2]
    assert fallback_watermark(replica.clear(), "SystemModstamp", T[5]) is None


def test_replica_stamp_round_trips_through_parquet_metadata(tmp_path):
    stamp = ReplicaStamp("RUN1", 2, T[3], {"Id": "id", "Name": "string", "SystemModstamp": "datetime"})
    path = tmp_path / "r.parquet"
    frame([("a", "A", T[1]), ("b", "B", T[3])]).write_parquet(path, metadata=stamp.to_metadata())
    assert ReplicaStamp.from_metadata(pl.read_parquet_metadata(path)) == stamp
    assert ReplicaStamp.from_metadata({}) is None
    assert ReplicaStamp.from_metadata({"sf_pipeline.replica": "not json"}) is None


RECORDED = {"Id": "id", "Name": "string", "Amount": "string", "Rating": "picklist", "Old__c": "string"}


def test_column_changes_are_planned_from_the_registry_and_describe():
    visible = {"Id": "id", "Name": "string", "Amount": "currency", "Title": "string"}  # Rating hidden, Old__c gone
    changes = plan_column_changes(RECORDED, visible, ("Id", "Name", "Title", "Amount", "Rating"), primary_key="Id")
    assert (changes.added, changes.retyped, changes.dropped, changes.hidden) == (
        ("Title",), ("Amount",), ("Old__c",), ("Rating",))
    assert changes.columns == ("Id", "Name", "Title", "Amount", "Rating")  # registry order, hidden kept
    assert dict(changes.types) == {"Id": "id", "Name": "string", "Title": "string", "Amount": "currency",
                                   "Rating": "picklist"}
    assert changes.to_fill == ("Title", "Amount")
    assert changes.describe(RECORDED) == "+Title, -Old__c, Amount: string -> currency, ~Rating (hidden)"
    same = plan_column_changes(RECORDED, RECORDED, tuple(RECORDED), primary_key="Id")
    assert not same and same.columns == tuple(RECORDED)
    still = plan_column_changes(RECORDED, visible, ("Id", "Name", "Title", "Amount", "Rating"), primary_key="Id",
                                previously_hidden=("Rating",))
    assert still.hidden == ("Rating",) and not still.newly_hidden and "hidden" not in still.describe(RECORDED)


def test_a_hidden_column_visible_again_is_refilled():
    changes = plan_column_changes(RECORDED, RECORDED, tuple(RECORDED), primary_key="Id", previously_hidden=("Rating",))
    assert changes.added == ("Rating",) and changes.to_fill == ("Rating",) and not changes.hidden


def test_conform_replica_drops_fills_by_key_and_keeps_hidden_columns():
    replica = pl.DataFrame({"Id": ["a", "b", "c"], "Name": ["A", "B", "C"], "Amount": ["1", "2", "3"],
                            "Old__c": ["x", "y", "z"], "Rating": ["Hot", None, "Cold"]})
    fill = pl.DataFrame({"Id": ["c", "a", "d"], "Title": ["tc", "ta", "td"], "Amount": [3.5, 1.5, 9.0]})
    schema = {"Id": pl.Utf8, "Name": pl.Utf8, "Title": pl.Utf8, "Amount": pl.Float64, "Rating": pl.Utf8}
    out = conform_replica(replica, schema, primary_key="Id", fill=fill)
    assert_frame_equal(out, pl.DataFrame({"Id": ["a", "b", "c"], "Name": ["A", "B", "C"],
                                          "Title": ["ta", None, "tc"], "Amount": [1.5, None, 3.5],
                                          "Rating": ["Hot", None, "Cold"]}, schema=schema))
    # no fill: a new column is null; a delta that cannot see a hidden column gets it as null
    assert conform_replica(replica, schema, primary_key="Id")["Title"].null_count() == 3
    delta = with_null_columns(pl.DataFrame({"Id": ["a"]}), {"Rating": pl.Utf8})
    assert delta.schema == {"Id": pl.Utf8, "Rating": pl.Utf8} and delta["Rating"].to_list() == [None]


def test_a_refresh_takes_the_pulled_values_keeps_the_others_and_counts_changes():
    replica = pl.DataFrame({"Id": ["a", "b", "c"], "Formula__c": [1.0, 2.0, None], "Name": ["x", "y", "z"]})
    pulled = pl.DataFrame({"Id": ["c", "a", "new"], "Formula__c": [5.0, None, 7.0]})  # "new": raced the delta
    refreshed, changed = refresh_columns(replica, pulled, primary_key="Id")
    assert_frame_equal(refreshed, pl.DataFrame({"Id": ["a", "b", "c"], "Formula__c": [None, 2.0, 5.0],
                                                "Name": ["x", "y", "z"]}))
    assert changed == 2  # a became null, c became 5.0; b (not pulled) keeps its value
    assert refresh_columns(replica, replica.select("Id", "Formula__c"), primary_key="Id")[1] == 0
