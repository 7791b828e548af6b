"""A schema change streamed through the replica's layers (tasks/replica_evolve.py): the replica it leaves equals the
whole-frame ``conform_replica`` of the live records, its base is sorted and hashed like any base, and a merge and
write after it give what they give on the whole frame."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks import replica_store
from tasks.replica import conform_replica, join_by_key, merge_delta
from tasks.replica_evolve import evolve_replica
from tasks.replica_store import DamagedBase, KeyRanges, Replica, hashes, open_replica, write_replica
from utils.replica_layers import HASHES, ReplicaStamp, keys_out_of_order, read_stored, scan_replica

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SCHEMA = {"Id": pl.Utf8, "Name": pl.Utf8, "Old__c": pl.Int64, "CreatedDate": pl.Datetime("ms", "UTC"),
          "SystemModstamp": pl.Datetime("ms", "UTC")}
TYPES = {"Id": "id", "Name": "string", "Old__c": "int", "CreatedDate": "datetime", "SystemModstamp": "datetime"}
# after the change: Old__c dropped, Type added (filled by the pull), Note__c added (null: not pulled)
NEW_SCHEMA = {"Id": pl.Utf8, "Name": pl.Utf8, "Type": pl.Utf8, "CreatedDate": pl.Datetime("ms", "UTC"),
              "SystemModstamp": pl.Datetime("ms", "UTC"), "Note__c": pl.Utf8}
NEW_TYPES = {"Id": "id", "Name": "string", "Type": "picklist", "CreatedDate": "datetime",
             "SystemModstamp": "datetime", "Note__c": "string"}


def _delta(rng: random.Random, step: int, size: int, keys: int = 300) -> pl.DataFrame:
    rows = [(f"K{k:04d}", f"v{step}-{i}", k, T0 + timedelta(seconds=k), T0 + timedelta(minutes=step, seconds=i),
             rng.random() < 0.15) for i in range(size) for k in [rng.randrange(keys)]]
    return pl.DataFrame(rows, schema={**SCHEMA, "IsDeleted": pl.Boolean}, orient="row")


def _stamp(replica: Replica, run: int, types: dict[str, str]) -> ReplicaStamp:
    return ReplicaStamp(f"RUN{run}", replica.rows, T0 + timedelta(minutes=run), types)


@pytest.fixture(params=["one range", "key ranges"])
def ranges(request, monkeypatch) -> str:
    """The base rewritten in one streaming join, or (row groups of 32 records, ranges of 64) range by range."""
    if request.param == "key ranges":
        monkeypatch.setattr(replica_store, "ROW_GROUP_ROWS", 32)
        monkeypatch.setattr(replica_store, "RANGE_ROWS", 64)
    return request.param


@pytest.fixture()
def layered(tmp_path, ranges) -> tuple[Replica, pl.DataFrame]:
    """A replica on disk as a base and an overlay (updates, inserts, tombstones), and the same records whole."""
    rng = random.Random(11)
    path = tmp_path / "replica" / "Thing.parquet"
    whole, _ = merge_delta(None, _delta(rng, 0, 400), columns=list(SCHEMA), primary_key="Id",
                           cursor_field="SystemModstamp")
    write_replica(path, Replica.of_frame(whole, "Id"), _stamp(Replica.of_frame(whole, "Id"), 0, TYPES))
    delta = _delta(rng, 1, 60)
    whole, _ = merge_delta(whole, delta, columns=list(SCHEMA), primary_key="Id", cursor_field="SystemModstamp")
    merged, _ = open_replica(path, read_stored(path), primary_key="Id", schema=SCHEMA).merge(
        delta, cursor_field="SystemModstamp")
    replica = write_replica(path, merged, _stamp(merged, 1, TYPES))
    assert replica.overlay.height and replica.overlay["_replica_deleted"].any()  # both layers hold records
    bounds = KeyRanges.of_base(path, "Id").bounds
    assert len(bounds) > 2 if ranges == "key ranges" else not bounds
    return open_replica(path, read_stored(path), primary_key="Id", schema=SCHEMA), whole


def _pull(whole: pl.DataFrame, *, repeated: bool = True) -> pl.DataFrame:
    """``Id, Type`` of the live records, shuffled, two of them missing, and one of them twice (the later wins)."""
    pull = whole.select("Id", pl.format("T{}", pl.col("Old__c") % 3).alias("Type")).sample(fraction=1.0, seed=3)
    twice = [pull.head(1).with_columns(pl.lit("first").alias("Type"))] if repeated else []
    return pl.concat([pull.slice(2), *twice, pull.head(1).with_columns(pl.lit("last").alias("Type"))])


def _joined_on_strings(frame: pl.DataFrame, fill: pl.DataFrame) -> pl.DataFrame:
    return frame.join(fill.unique(subset=["Id"], keep="last"), on="Id", how="left", maintain_order="left")


@pytest.mark.parametrize("repeated", [False, True])  # joined on key hashes / on the keys (a key repeats)
def test_a_join_by_key_equals_a_join_on_the_keys_eager_and_lazy(layered, repeated):
    _, whole = layered
    fill = _pull(whole, repeated=repeated)
    expected = _joined_on_strings(whole.drop("Old__c"), fill)
    assert_frame_equal(join_by_key(whole.drop("Old__c"), fill, primary_key="Id"), expected)
    assert_frame_equal(join_by_key(whole.drop("Old__c").lazy(), fill, primary_key="Id").collect(), expected)
    assert expected["Type"].null_count() == 1


@pytest.mark.parametrize("repeated", [False, True])
def test_the_evolved_replica_equals_the_whole_frame_conform(layered, tmp_path, repeated):
    replica, whole = layered
    fill = _pull(whole, repeated=repeated)
    evolved = evolve_replica(replica, NEW_SCHEMA, fill, run_id="RUN2", column_types=NEW_TYPES, scratch=tmp_path)

    expected = conform_replica(whole, NEW_SCHEMA, primary_key="Id", fill=fill)
    assert_frame_equal(evolved.scan().collect().sort("Id"), expected)
    joined = _joined_on_strings(whole, fill)
    assert_frame_equal(expected.drop("Note__c"), joined.select(expected.drop("Note__c").columns))
    assert evolved.rows == whole.height and evolved.schema == NEW_SCHEMA
    assert expected.filter(pl.col("Id") == fill["Id"][-1])["Type"].item() == "last"


def test_the_new_base_is_sorted_hashed_and_stamped_with_the_old_base_s_watermark(layered, tmp_path):
    replica, whole = layered
    old_base = ReplicaStamp.from_metadata(pl.read_parquet_metadata(replica.base_file))
    evolved = evolve_replica(replica, NEW_SCHEMA, _pull(whole), run_id="RUN2", column_types=NEW_TYPES, scratch=tmp_path)

    base = pl.read_parquet(evolved.base_file)
    assert not keys_out_of_order(evolved.base_file, "Id").collect().item()
    assert_frame_equal(base.select(HASHES), base.select(hashes(list(NEW_SCHEMA), "Id")))
    assert read_stored(evolved.base_file).has_hashes
    stamp = ReplicaStamp.from_metadata(pl.read_parquet_metadata(evolved.base_file))
    assert (stamp.run_id, stamp.rows, stamp.watermark, stamp.column_types, stamp.base_id) == (
        "RUN2", replica.base_rows, old_base.watermark, NEW_TYPES, evolved.base_id)
    # until the run writes its overlay, the old one names the old base: readers see the new base alone
    assert read_stored(evolved.base_file).overlay is None
    assert scan_replica(evolved.base_file).collect().height == replica.base_rows


@pytest.mark.parametrize("compact_min_rows", [10**9, 5])  # the run's overlay written alone / compacted
def test_a_merge_and_write_after_the_change_equal_the_whole_frame_ones(layered, tmp_path, monkeypatch,
                                                                     compact_min_rows):
    monkeypatch.setattr(replica_store, "COMPACT_MIN_ROWS", compact_min_rows)
    replica, whole = layered
    fill = _pull(whole)
    evolved = evolve_replica(replica, NEW_SCHEMA, fill, run_id="RUN2", column_types=NEW_TYPES, scratch=tmp_path)
    delta = (_delta(random.Random(5), 2, 50).drop("Old__c")
             .with_columns(pl.lit("D").alias("Type"), pl.lit(None, dtype=pl.Utf8).alias("Note__c")))

    merged, stats = evolved.merge(delta, cursor_field="SystemModstamp")
    write_replica(evolved.base_file, merged, _stamp(merged, 2, NEW_TYPES))

    conformed = conform_replica(whole, NEW_SCHEMA, primary_key="Id", fill=fill)
    expected, expected_stats = merge_delta(conformed, delta, columns=list(NEW_SCHEMA), primary_key="Id",
                                           cursor_field="SystemModstamp")
    assert stats == expected_stats
    assert_frame_equal(scan_replica(evolved.base_file).collect().sort("Id"), expected)


def test_no_pull_only_drops_and_adds_null_columns(layered, tmp_path):
    replica, whole = layered
    evolved = evolve_replica(replica, NEW_SCHEMA, None, run_id="RUN2", column_types=NEW_TYPES, scratch=tmp_path)
    assert_frame_equal(evolved.scan().collect().sort("Id"), conform_replica(whole, NEW_SCHEMA, primary_key="Id"))


def test_a_base_with_a_repeated_key_is_not_replaced(layered, tmp_path):
    """A base edited by hand (a record copied) is found by the rewrite's key check, like a compaction's: the old base
    stays in place and the sync rebuilds the replica."""
    replica, whole = layered
    damaged = pl.read_parquet(replica.base_file)
    damaged = pl.concat([damaged, damaged.head(1)]).sort("Id")
    metadata = pl.read_parquet_metadata(replica.base_file)
    damaged.write_parquet(replica.base_file, metadata=metadata)
    before = replica.base_file.read_bytes()

    with pytest.raises(DamagedBase):
        evolve_replica(replica, NEW_SCHEMA, _pull(whole), run_id="RUN2", column_types=NEW_TYPES, scratch=tmp_path)
    assert replica.base_file.read_bytes() == before
