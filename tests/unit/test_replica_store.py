"""The replica at rest as a base file and an overlay: every merge, count and read equals the whole-frame merge."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tasks import replica_store
from tasks.replica import count_created_before, merge_delta
from tasks.replica_store import Replica, open_replica, row_hash, write_replica
from utils.replica_layers import (
    HASH_PROBE,
    KEY_HASH,
    KEYS_DAMAGED,
    ROW_HASH,
    ReplicaStamp,
    keys_out_of_order,
    newest_value,
    overlay_path_for,
    read_stored,
    scan_replica,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SCHEMA = {"Id": pl.Utf8, "Name": pl.Utf8, "CreatedDate": pl.Datetime("ms", "UTC"),
          "SystemModstamp": pl.Datetime("ms", "UTC")}
TYPES = {"Id": "id", "Name": "string", "CreatedDate": "datetime", "SystemModstamp": "datetime"}


def _delta(rng: random.Random, step: int, size: int = 40, keys: int = 120) -> pl.DataFrame:
    """Random upserts, soft deletes and undeletes over a small key space (repeats within a delta included)."""
    rows = []
    for i in range(size):
        k = rng.randrange(keys)
        rows.append((f"K{k:04d}", f"v{step}-{i}", T0 + timedelta(seconds=k), T0 + timedelta(minutes=step, seconds=i),
                     rng.random() < 0.2))
    return pl.DataFrame(rows, schema={**SCHEMA, "IsDeleted": pl.Boolean}, orient="row")


def key_problem(base, primary_key: str) -> str | None:
    """Why the base's keys cannot be trusted (the check a merge makes in its own read of them), or None."""
    out_of_order = keys_out_of_order(base, primary_key).collect(engine="streaming").item()
    return KEYS_DAMAGED.format(key=primary_key) if out_of_order else None


def _stamp(replica: Replica, run: int) -> ReplicaStamp:
    return ReplicaStamp(f"RUN{run}", replica.rows, T0 + timedelta(minutes=run), TYPES)


def _written_base(path, rng: random.Random) -> pl.DataFrame:
    """A first base written from 80 random records: the whole-frame merge of them, which it equals."""
    whole, _ = merge_delta(None, _delta(rng, 0, size=80), columns=list(SCHEMA), primary_key="Id",
                           cursor_field="SystemModstamp")
    write_replica(path, Replica.of_frame(whole, "Id"), _stamp(Replica.of_frame(whole, "Id"), 0))
    return whole


def _reopen(path) -> Replica:
    return open_replica(path, read_stored(path), primary_key="Id", schema=SCHEMA)


@pytest.mark.parametrize("compact_min_rows", [10**9, 30])  # never compacted / compacted along the way
def test_layered_merges_equal_whole_frame_merges(tmp_path, monkeypatch, compact_min_rows):
    monkeypatch.setattr(replica_store, "COMPACT_MIN_ROWS", compact_min_rows)
    rng = random.Random(7)
    path = tmp_path / "replica" / "Thing.parquet"
    first = _delta(rng, 0, size=80)
    whole, _ = merge_delta(None, first, columns=list(SCHEMA), primary_key="Id", cursor_field="SystemModstamp")
    replica = write_replica(path, Replica.of_frame(whole, "Id"), _stamp(Replica.of_frame(whole, "Id"), 0))
    compactions = 0
    for step in range(1, 25):
        delta = _delta(rng, step)
        whole, expected = merge_delta(whole, delta, columns=list(SCHEMA), primary_key="Id",
                                      cursor_field="SystemModstamp")
        layered, stats = _reopen(path).merge(delta, cursor_field="SystemModstamp")
        assert stats == expected
        before = read_stored(path).base_stamp
        replica = write_replica(path, layered, _stamp(layered, step))
        compactions += read_stored(path).base_stamp != before
        live = scan_replica(path).collect().sort("Id")
        assert_frame_equal(live, whole)  # what Phase 1 and QA read
        reopened = _reopen(path)
        assert reopened.rows == whole.height == read_stored(path).stamp.rows
        assert_frame_equal(reopened.collect(), whole)
        bound = T0 + timedelta(seconds=60)
        assert reopened.count_created_before("CreatedDate", bound) == count_created_before(whole, "CreatedDate", bound)
        assert key_problem(path, "Id") is None
    assert (compactions > 0) == (compact_min_rows == 30)
    assert replica.rows == whole.height


def test_an_overlay_left_by_a_compaction_is_ignored(tmp_path, monkeypatch):
    """A crash after a compaction wrote the new base leaves the old overlay: it names the old base, so it is not
    applied twice (its inserts would repeat)."""
    path = tmp_path / "Thing.parquet"
    rng = random.Random(3)
    _written_base(path, rng)
    layered, _ = _reopen(path).merge(_delta(rng, 1), cursor_field="SystemModstamp")
    write_replica(path, layered, _stamp(layered, 1))
    stale, expected = overlay_path_for(path).read_bytes(), layered.collect()
    monkeypatch.setattr(replica_store, "COMPACT_MIN_ROWS", 0)
    compacted = write_replica(path, layered, _stamp(layered, 1))  # a new base; the overlay file is untouched
    assert overlay_path_for(path).read_bytes() == stale
    assert read_stored(path).overlay is None
    assert_frame_equal(scan_replica(path).collect().sort("Id"), expected)
    assert compacted.rows == expected.height and compacted.overlay.height == 0


def test_a_base_without_an_id_is_rewritten_once_before_an_overlay_names_it(tmp_path):
    """A replica written by the previous version: one file, a stamp without ``base_id``."""
    path = tmp_path / "Thing.parquet"
    whole, _ = merge_delta(None, _delta(random.Random(1), 0), columns=list(SCHEMA), primary_key="Id",
                           cursor_field="SystemModstamp")
    whole.write_parquet(path, metadata=ReplicaStamp("OLD", whole.height, T0, TYPES).to_metadata())
    layered, _ = _reopen(path).merge(_delta(random.Random(2), 1), cursor_field="SystemModstamp")
    assert layered.needs_compaction()
    write_replica(path, layered, _stamp(layered, 1))
    assert read_stored(path).base_stamp.base_id is not None and not overlay_path_for(path).exists()


def test_a_base_out_of_key_order_is_a_key_problem(tmp_path):
    path = tmp_path / "Thing.parquet"
    pl.DataFrame({"Id": ["b", "a"]}).write_parquet(path)
    assert key_problem(path, "Id") == "Id values repeat or are out of order"
    pl.DataFrame({"Id": ["a", "a"]}).write_parquet(path)
    assert key_problem(path, "Id") is not None


@pytest.mark.parametrize("split", [False, True])  # one key range / many
def test_reconciliation_and_refresh_on_layers_equal_the_whole_frame(tmp_path, monkeypatch, split):
    """Keys compared, hard deletes removed and formula values refreshed one key range at a time give what the
    whole-frame functions give, and leave base records as tombstones in the overlay."""
    if split:  # row groups of 8 records, key ranges of 16
        monkeypatch.setattr(replica_store, "ROW_GROUP_ROWS", 8)
        monkeypatch.setattr(replica_store, "RANGE_ROWS", 16)
    rng = random.Random(11)
    path = tmp_path / "Thing.parquet"
    _written_base(path, rng)
    layered, _ = _reopen(path).merge(_delta(rng, 1), cursor_field="SystemModstamp")
    expected = layered.collect()
    org = expected.filter(pl.col("Id").str.ends_with("1").not_()).select("Id", "CreatedDate")  # some vanished
    org = pl.concat([org, pl.DataFrame({"Id": ["Z1", "Z2"], "CreatedDate": [T0, T0 + timedelta(days=9)]},
                                       schema={"Id": pl.Utf8, "CreatedDate": SCHEMA["CreatedDate"]})])
    vanished, missing = layered.compare_keys(org.lazy(), created_field="CreatedDate",
                                             created_before=T0 + timedelta(days=1), scratch=tmp_path)
    assert vanished.to_list() == sorted(set(expected["Id"]) - set(org["Id"])) and missing == ["Z1"]
    kept = layered.remove(vanished)
    assert_frame_equal(kept.collect(), expected.filter(~pl.col("Id").is_in(vanished.implode())))
    assert kept.rows == expected.height - vanished.len()
    fresh = kept.collect().select("Id", pl.col("Name").str.to_uppercase())
    if split:
        assert len(replica_store.KeyRanges.of_base(path, "Id").bounds) >= 2
    refreshed, changed = kept.refresh(fresh.lazy(), scratch=tmp_path)
    assert changed == fresh.height  # every name was lower case
    assert_frame_equal(refreshed.collect(), kept.collect().with_columns(pl.col("Name").str.to_uppercase()))
    write_replica(path, refreshed, _stamp(refreshed, 2))
    assert_frame_equal(scan_replica(path).collect().sort("Id"), refreshed.collect())


@pytest.mark.parametrize("range_rows", [10**9, 9])  # one key range / many
def test_a_backfill_written_range_by_range_equals_the_whole_frame_merge(tmp_path, monkeypatch, range_rows):
    """Repeated records (latest wins, ties to the last row) and deleted ones, split into key ranges, merged and
    sorted a range at a time: the same base, counts and watermark as one merge of everything."""
    monkeypatch.setattr(replica_store, "BACKFILL_BUCKET_ROWS", range_rows)
    extract = pl.concat([_delta(random.Random(5), step, size=60) for step in range(3)])
    whole, expected = merge_delta(None, extract, columns=list(SCHEMA), primary_key="Id",
                                  cursor_field="SystemModstamp")
    path = tmp_path / "replica" / "Thing.parquet"
    done = replica_store.write_backfill(path, extract.lazy(), extract.height, columns=list(SCHEMA), primary_key="Id",
                                        cursor_field="SystemModstamp", run_id="B1", column_types=TYPES,
                                        scratch=tmp_path)
    assert_frame_equal(scan_replica(path).collect(), whole)  # sorted by key as a whole
    assert pl.read_parquet(path).get_column(ROW_HASH).equals(whole.select(row_hash(list(SCHEMA))).to_series())
    assert done.stats == replace(expected, replica_rows=whole.height)
    assert done.newest == extract["SystemModstamp"].max()
    stored = read_stored(path)
    assert stored.stamp.rows == whole.height and stored.stamp.watermark == done.newest
    assert key_problem(path, "Id") is None and done.replica.rows == whole.height


def test_the_same_run_merges_into_the_base_its_backfill_wrote(tmp_path):
    """A backfill's count can disagree with the org (a record committed while it ran): the reconciliation's records
    fetched by Id merge into the replica the backfill handed out, whose columns are the records' (not its hashes)."""
    extract = _delta(random.Random(41), 0, size=60)
    path = tmp_path / "replica" / "Thing.parquet"
    done = replica_store.write_backfill(path, extract.lazy(), extract.height, columns=list(SCHEMA), primary_key="Id",
                                        cursor_field="SystemModstamp", run_id="B1", column_types=TYPES,
                                        scratch=tmp_path)
    assert list(done.replica.schema) == list(SCHEMA)
    whole, _ = merge_delta(None, extract, columns=list(SCHEMA), primary_key="Id", cursor_field="SystemModstamp")
    fetched = _delta(random.Random(42), 1, size=5).with_columns(pl.lit(False).alias("IsDeleted"))
    expected_replica, expected = merge_delta(whole, fetched, columns=list(SCHEMA), primary_key="Id",
                                             cursor_field="SystemModstamp")
    merged, stats = done.replica.merge(fetched, cursor_field="SystemModstamp")
    assert stats == replace(expected, replica_rows=expected_replica.height)
    assert_frame_equal(merged.collect(), expected_replica)


def _base_with_a_repeated_key(path, *, rehash: bool) -> list[str]:
    """A base edited by hand, as many rows as its stamp says: its second key made the first's, its key hashes kept
    or made anew (as a writer that knows them would). Returns its keys as they were."""
    _written_base(path, random.Random(4))
    on_disk = pl.read_parquet(path)
    ids = on_disk["Id"].to_list()
    edited = list(ids)
    edited[1] = ids[0]
    on_disk = on_disk.with_columns(pl.Series("Id", edited))
    if rehash:
        on_disk = on_disk.with_columns(replica_store.key_hash("Id"))
    on_disk.write_parquet(path, metadata=pl.read_parquet_metadata(path))
    return ids


def test_a_merge_refuses_a_base_whose_keys_repeat_among_the_delta(tmp_path):
    """The repeated key is one of the delta's: found in the merge's own read of the delta's records, never merged."""
    path = tmp_path / "Thing.parquet"
    ids = _base_with_a_repeated_key(path, rehash=True)
    delta = _delta(random.Random(6), 1).with_columns(pl.lit(ids[0]).alias("Id"))
    with pytest.raises(replica_store.DamagedBase, match="Id values repeat or are out of order"):
        _reopen(path).merge(delta, cursor_field="SystemModstamp")


def test_a_compaction_refuses_a_base_whose_keys_repeat_elsewhere(tmp_path, monkeypatch):
    """A repeat no delta touches is found by the next compaction, which checks every key of the base it wrote and
    leaves the old files in place."""
    path = tmp_path / "Thing.parquet"
    ids = _base_with_a_repeated_key(path, rehash=False)
    delta = _delta(random.Random(6), 1).filter(~pl.col("Id").is_in(ids[:2]))
    before = path.read_bytes()
    layered, _ = _reopen(path).merge(delta, cursor_field="SystemModstamp")  # the delta's records are fine
    monkeypatch.setattr(replica_store, "COMPACT_MIN_ROWS", 0)
    with pytest.raises(replica_store.DamagedBase, match="Id values repeat or are out of order"):
        write_replica(path, layered, _stamp(layered, 1))
    assert path.read_bytes() == before


def test_the_merge_reads_no_key_of_the_base(tmp_path):
    """The merge finds the delta's records by the hash of their key: a base whose key column says something else
    (its hashes kept) merges as the hashes say."""
    path = tmp_path / "Thing.parquet"
    _written_base(path, random.Random(8))
    delta = _delta(random.Random(9), 1)
    _, expected = _reopen(path).merge(delta, cursor_field="SystemModstamp")
    on_disk = pl.read_parquet(path)
    on_disk.with_columns(pl.col("Id").str.to_lowercase()).write_parquet(path, metadata=pl.read_parquet_metadata(path))
    _, stats = _reopen(path).merge(delta, cursor_field="SystemModstamp")
    assert stats == expected and expected.updates + expected.deletes > 0


@pytest.mark.parametrize("null_created", [False, True])
def test_a_count_bound_after_every_base_record_reads_no_base_column(tmp_path, null_created):
    """Past the base's newest creation time (the footer's statistics say so) every base record counts; a null
    creation time (never counted) makes the count read the column."""
    path = tmp_path / "Thing.parquet"
    whole, _ = merge_delta(None, _delta(random.Random(12), 0, size=80), columns=list(SCHEMA), primary_key="Id",
                           cursor_field="SystemModstamp")
    if null_created:
        whole = whole.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("CreatedDate"))
                                   .alias("CreatedDate"))
    write_replica(path, Replica.of_frame(whole, "Id"), _stamp(Replica.of_frame(whole, "Id"), 0))
    newest = newest_value(path, "CreatedDate")  # the footer's answer: none when a null is in the column
    assert newest is None if null_created else newest == whole["CreatedDate"].max()
    layered, _ = _reopen(path).merge(_delta(random.Random(13), 1), cursor_field="SystemModstamp")
    expected = layered.collect()
    for bound in (T0 + timedelta(seconds=30), T0 + timedelta(days=1)):
        assert layered.count_created_before("CreatedDate", bound) == count_created_before(expected, "CreatedDate",
                                                                                          bound)


def test_hashes_made_by_another_polars_are_computed_afresh_and_the_base_rewritten(tmp_path):
    """Polars' hashes may change between versions: a base whose stamp names another probe (written by another
    version, on another worker) merges as if its hash columns were made now, and the run rewrites it."""
    path = tmp_path / "Thing.parquet"
    whole = _written_base(path, random.Random(21))
    delta = _delta(random.Random(22), 1)
    expected_replica, expected = merge_delta(whole, delta, columns=list(SCHEMA), primary_key="Id",
                                             cursor_field="SystemModstamp")
    on_disk = pl.read_parquet(path)
    stamp = ReplicaStamp.from_metadata(pl.read_parquet_metadata(path))
    assert stamp is not None and stamp.hash_probe == HASH_PROBE
    foreign = replace(stamp, hash_probe="another polars")
    on_disk.with_columns(pl.col(KEY_HASH) + 1, pl.col(ROW_HASH) + 1).write_parquet(path,
                                                                                    metadata=foreign.to_metadata())
    assert not read_stored(path).has_hashes
    merged, stats = _reopen(path).merge(delta, cursor_field="SystemModstamp")
    assert stats == replace(expected, replica_rows=expected_replica.height)
    assert merged.needs_compaction()
    write_replica(path, merged, _stamp(merged, 1))
    assert read_stored(path).has_hashes
    assert_frame_equal(scan_replica(path).collect().sort("Id"), expected_replica)


def test_delta_keys_sharing_a_hash_are_looked_up_by_key(tmp_path, monkeypatch):
    """Two of the delta's keys with one hash (forced here: every key hashes to its length) would each match the
    other's base record: the lookup goes by key instead, and the merge counts what the whole-frame merge counts."""
    path = tmp_path / "Thing.parquet"
    whole = _written_base(path, random.Random(31))
    delta = _delta(random.Random(32), 1)
    expected_replica, expected = merge_delta(whole, delta, columns=list(SCHEMA), primary_key="Id",
                                             cursor_field="SystemModstamp")
    monkeypatch.setattr(replica_store, "key_hash",
                        lambda key: pl.col(key).str.len_bytes().cast(pl.UInt64).alias(KEY_HASH))
    merged, stats = _reopen(path).merge(delta, cursor_field="SystemModstamp")
    assert stats == replace(expected, replica_rows=expected_replica.height)
    assert_frame_equal(merged.collect(), expected_replica)


def _keys_file(path, keys: list[str | None], *, row_group: int = 4, statistics: bool = True):
    pl.DataFrame({"Id": keys}, schema={"Id": pl.Utf8}).write_parquet(path, row_group_size=row_group,
                                                                      statistics=statistics)
    return path


def test_key_ranges_come_from_the_row_groups_smallest_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(replica_store, "RANGE_ROWS", 8)
    base = _keys_file(tmp_path / "b.parquet", [f"K{i:03d}" for i in range(20)])  # row groups of 4
    ranges = replica_store.KeyRanges.of_base(base, "Id")
    assert ranges.bounds == ("K008", "K016")
    keys = pl.DataFrame({"Id": ["K000", "K007", "K008", "K015", "K016", "K999"]})
    # every key in exactly one range, the same one by the filters and by the split
    by_filter = [keys.filter(*f)["Id"].to_list() for f in ranges.filters()]
    assert by_filter == [["K000", "K007"], ["K008", "K015"], ["K016", "K999"]]
    split = [part.collect()["Id"].to_list() for part in ranges.split(keys.lazy(), tmp_path / "split")]
    assert split == by_filter


def test_a_range_without_pulled_records_is_an_empty_part(tmp_path, monkeypatch):
    monkeypatch.setattr(replica_store, "RANGE_ROWS", 8)
    ranges = replica_store.KeyRanges.of_base(_keys_file(tmp_path / "b.parquet", [f"K{i:03d}" for i in range(20)]),
                                             "Id")
    pulled = pl.DataFrame({"Id": ["K001", "K020"], "Type": ["a", "b"]})
    parts = [part.collect() for part in ranges.split(pulled.lazy(), tmp_path / "split")]
    assert [p.height for p in parts] == [1, 0, 1] and all(p.columns == ["Id", "Type"] for p in parts)
    empty = [part.collect().height for part in ranges.split(pulled.clear().lazy(), tmp_path / "empty")]
    assert empty == [0, 0, 0]


@pytest.mark.parametrize("keys, statistics", [
    ([f"K{i:03d}" for i in range(10, 20)] + [f"K{i:03d}" for i in range(10)], True),  # row groups out of order
    ([f"K{i:03d}" for i in range(19)] + [None], True),                                # a null key
    ([f"K{i:03d}" for i in range(20)], False),                                        # no statistics
])
def test_a_footer_that_cannot_place_every_key_gives_one_range(tmp_path, monkeypatch, keys, statistics):
    """Bounds out of order would send pulled records and base records of one key to different ranges (a refresh
    would miss changed values); a null key would fall in no range's filter. One range is slower, never wrong."""
    monkeypatch.setattr(replica_store, "RANGE_ROWS", 8)
    base = _keys_file(tmp_path / "b.parquet", keys, statistics=statistics)
    assert replica_store.KeyRanges.of_base(base, "Id").bounds == ()
