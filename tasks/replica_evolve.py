"""A schema change applied to the replica without holding it whole: the base streamed, in key order, through a join
with the narrow pull (``Id`` + the new or retyped columns) into a new base; the overlay, a few records in memory,
conformed the same way. The records stay the same; only their columns change.

Collecting the replica, joining and rewriting it held all of it in memory (1.3 GB peak at 1M records), and its
merge and write then went through the whole-frame path. Here memory is the pull's lookup (a few columns) and a row
group of the base, and the run's delta afterwards lands in the overlay like any other run's. A big base is joined
one key range at a time (``KeyRanges``): the whole pull as the lookup held 3.7 GB at 20M records.

The new base is written where the base was, before the run's delta is merged: it holds the old base's records as of
that base's watermark (its stamp says so), with the new columns filled as of now. The overlay on disk names the old
base, so until this run writes its own, readers see the new base alone; a crash in between is resumed from the
base's (older) watermark, as after a compaction, and the records the old overlay held come back with the next delta
(deleted ones through reconciliation).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from tasks.replica import conform_replica
from tasks.replica_store import Replica, hashes, new_base_id, sink_base
from utils.replica_layers import FLAGS, HASHES, ReplicaStamp

Fill = pl.DataFrame | pl.LazyFrame


def evolve_replica(replica: Replica, schema: Mapping[str, pl.DataType], fill: Fill | None, *, run_id: str,
                   column_types: Mapping[str, str], scratch: Path) -> Replica:
    """``replica`` with exactly the columns of ``schema`` (``conform_replica``'s rules: dropped, filled by key from
    ``fill``, else null), its base rewritten (streamed; range by range for a big base) and stamped with
    ``column_types``. Like a compaction, the new base's keys are checked before it replaces the old one: a key
    repeated or out of order (a base edited by hand) raises ``DamagedBase``, and the sync rebuilds the replica.
    While a big base is rewritten, ``scratch`` holds the split pull and the joined ranges: about one more copy of
    the base, beside the new base the store's folder holds until it replaces the old one."""
    key = replica.primary_key
    lookup = None if fill is None else fill.lazy()
    if replica.whole is not None or replica.base_file is None:  # rebuilt in memory this run: small, or a backfill
        whole = conform_replica(replica.collect(), schema, primary_key=key, fill=_collected(lookup))
        return Replica.of_frame(whole, key)
    before = ReplicaStamp.from_metadata(pl.read_parquet_metadata(replica.base_file))
    stamp = ReplicaStamp(run_id, replica.base_rows, before.watermark if before else None, dict(column_types),
                         base_id=new_base_id())
    with tempfile.TemporaryDirectory(prefix="evolve-", dir=scratch) as tmp:
        rows = _conformed_base(replica, schema, lookup, Path(tmp))
        sink_base(replica.base_file, rows.with_columns(hashes(list(schema), key)), stamp.to_metadata(), check_keys=key)
    flags: dict[str, pl.DataType] = {flag: pl.Boolean() for flag in FLAGS}
    overlaid = None if lookup is None else lookup.filter(pl.col(key).is_in(replica.overlay.get_column(key).implode()))
    overlay = conform_replica(replica.overlay, {**schema, **flags}, primary_key=key, fill=_collected(overlaid))
    return Replica(key, dict(schema), replica.base_file, stamp.base_id, replica.base_rows, overlay)


def _collected(fill: pl.LazyFrame | None) -> pl.DataFrame | None:
    """A pull (or a range of it) in memory, as ``conform_replica``'s join takes it."""
    return None if fill is None else fill.collect(engine="streaming")


def _conformed_base(replica: Replica, schema: Mapping[str, pl.DataType], fill: pl.LazyFrame | None,
                    tmp: Path) -> pl.LazyFrame:
    """The base's records with the columns of ``schema``, in key order. A base of one key range is joined with the
    whole pull in one streaming pass. A bigger one (``KeyRanges``): each range of the base, joined with its part of
    the pull, is written to ``tmp``; the parts in order are the base, sorted (so written twice: once in parts, once
    whole)."""
    key = replica.primary_key
    base = replica.base_scan().drop(HASHES)
    if fill is None:
        return conform_replica(base, schema, primary_key=key, fill=None)
    parts = []
    with replica.ranges_with(fill, tmp) as ranges:
        if len(ranges) == 1:
            return conform_replica(base, schema, primary_key=key, fill=_collected(ranges[0][1]))
        for index, (in_range, pulled) in enumerate(ranges):
            part = tmp / f"base-{index}.parquet"
            conform_replica(base.filter(*in_range), schema, primary_key=key, fill=_collected(pulled)).sink_parquet(
                part, compression="lz4")
            parts.append(pl.scan_parquet(part))
    return pl.concat(parts)


__all__ = ["evolve_replica"]
