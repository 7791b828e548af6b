"""The replica's files, read: which overlay applies to which base, and the live records they make together.

``tasks/replica_store.py`` writes them (and says why the replica is a base file and an overlay); this module is the
one reader, for the sync and for Phase 1 and QA (through ``utils.raw_frame.scan_dataset``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from utils.timefmt import utc_iso

STAMP_KEY = "sf_pipeline.replica"  # Parquet key-value metadata written with the rows, so it is atomic with them
OVERLAY_SUFFIX = ".overlay.parquet"
TOMBSTONE = "_replica_deleted"  # overlay flag: the record was deleted since the base (it stays in the base file)
IN_BASE = "_replica_in_base"    # overlay flag: the base file holds an older version of the record
FLAGS = (TOMBSTONE, IN_BASE)
ROW_HASH = "_replica_row_hash"  # base files only: each record's values hashed (tasks/replica_store.row_hash)
KEY_HASH = "_replica_key_hash"  # base files only: the record's key hashed, what a merge finds the delta's records by
HASHES = (ROW_HASH, KEY_HASH)


def row_hash(columns: Sequence[str]) -> pl.Expr:
    """A record's values as one 64-bit hash (Polars' own, fixed seed): stored beside every base record, so a merge
    tells an update from a repeat without reading the base's values."""
    return pl.struct(list(columns)).hash(seed=0).alias(ROW_HASH)


def key_hash(primary_key: str) -> pl.Expr:
    """A record's key as a 64-bit hash: stored beside every base record, so a merge finds the delta's records
    without reading the base's keys."""
    return pl.col(primary_key).hash(seed=0).alias(KEY_HASH)


def hashes(columns: Sequence[str], primary_key: str) -> list[pl.Expr]:
    """The columns every base record carries beside its values (``HASHES``)."""
    return [row_hash(columns), key_hash(primary_key)]


def _hash_probe() -> str:
    """The hashes this Polars computes for a fixed sample. Polars does not promise the same hashes across versions:
    a base whose stamp holds another probe (written by another version, on another worker) has its stored hashes
    ignored, computed afresh, and is rewritten by the run."""
    sample = pl.DataFrame({"Id": ["001000000000000AAA", None], "amount": [1.5, None], "count": [7, None],
                           "flag": [True, None], "at": [datetime(2024, 1, 1, tzinfo=timezone.utc), None],
                           "day": [date(2024, 1, 1), None]})
    values = sample.select(hashes(sample.columns, "Id"))
    return ",".join(str(v) for row in values.iter_rows() for v in row)


HASH_PROBE = _hash_probe()


def overlay_path_for(base: Path) -> Path:
    return base.with_name(base.name[: -len(".parquet")] + OVERLAY_SUFFIX)


@dataclass(frozen=True)
class ReplicaStamp:
    """What a sync knew when it wrote the replica, stored inside the Parquet file itself.

    The state file is written after the replica, so after a crash between the two writes (or a replica restored
    from a backup) they disagree; the stamp says which run wrote these rows and up to which watermark they are
    complete, so resuming from the older of the two watermarks is always safe.
    """

    run_id: str
    rows: int  # live records of the whole replica (base and overlay)
    watermark: datetime | None
    column_types: dict[str, str]
    base_id: str | None = None  # a base file's own id; an overlay's: the base it applies to (tasks/replica_store)
    primary_key: str | None = None  # what an overlay's records replace base records by
    overlay_rows: int | None = None  # an overlay's own rows (live, replaced and deleted records)
    hash_probe: str | None = HASH_PROBE  # the Polars hashes the file's hash columns were made with (_hash_probe)

    def to_metadata(self) -> dict[str, str]:
        watermark = utc_iso(self.watermark) if self.watermark else None
        return {STAMP_KEY: json.dumps({"run_id": self.run_id, "rows": self.rows, "watermark": watermark,
                                       "column_types": self.column_types, "base_id": self.base_id,
                                       "primary_key": self.primary_key, "overlay_rows": self.overlay_rows,
                                       "hash_probe": self.hash_probe})}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ReplicaStamp | None:
        """The stamp of a replica, or None when the file has none (another tool or an older version wrote it)."""
        try:
            data = json.loads(metadata[STAMP_KEY])
            watermark = datetime.fromisoformat(data["watermark"]) if data["watermark"] else None
            base_id, key, overlay_rows = data.get("base_id"), data.get("primary_key"), data.get("overlay_rows")
            probe = data.get("hash_probe")
            return cls(str(data["run_id"]), int(data["rows"]), watermark, dict(data["column_types"]),
                       str(base_id) if base_id else None, str(key) if key else None,
                       int(overlay_rows) if overlay_rows is not None else None, str(probe) if probe else None)
        except (KeyError, TypeError, ValueError):
            return None


def split_layers(base: pl.LazyFrame, overlay: pl.DataFrame,
                 primary_key: str) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """The base's records the overlay leaves in place, and the overlay's live records: one owner of what the layers
    mean (a read concatenates them, a compaction merges them in key order)."""
    replaced = overlay.filter(pl.col(IN_BASE)).get_column(primary_key)
    if replaced.len():
        base = base.filter(~pl.col(primary_key).is_in(replaced.implode()))
    return base, overlay.filter(~pl.col(TOMBSTONE)).drop(FLAGS)


def layered_scan(base: pl.LazyFrame, overlay: pl.DataFrame, primary_key: str) -> pl.LazyFrame:
    """The live records of a base scan with an overlay applied (the base's hashes left out)."""
    kept, live = split_layers(base.drop(HASHES, strict=False), overlay, primary_key)
    return pl.concat([kept, live.lazy()], how="vertical") if live.height else kept


@dataclass(frozen=True)
class StoredReplica:
    """What the replica's files say: the base's stamp and rows, the overlay that applies to it (if any) and its
    stamp, which is the replica's when there is one."""

    base_stamp: ReplicaStamp | None
    base_rows: int
    base_schema: dict[str, pl.DataType]  # the records' columns (the hashes left out)
    overlay: pl.DataFrame | None
    overlay_stamp: ReplicaStamp | None
    has_hashes: bool = True  # False: hashes missing or made by another Polars (recomputed, rewritten by the next run)

    @property
    def stamp(self) -> ReplicaStamp | None:
        return self.overlay_stamp or self.base_stamp


def read_stored(base: Path) -> StoredReplica:
    """The replica's files, read for their stamps, schema and row counts (the base's rows are not read). An
    overlay written for another base (left by a compaction) is left out. Raises when a file is unreadable."""
    base_stamp = ReplicaStamp.from_metadata(pl.read_parquet_metadata(base))
    base_schema = dict(pl.read_parquet_schema(base))
    stored = all([base_schema.pop(column, None) is not None for column in HASHES])
    has_hashes = stored and base_stamp is not None and base_stamp.hash_probe == HASH_PROBE
    base_rows = int(pl.scan_parquet(base).select(pl.len()).collect().item())
    overlay_file = overlay_path_for(base)
    if base_stamp is None or base_stamp.base_id is None or not overlay_file.is_file():
        return StoredReplica(base_stamp, base_rows, base_schema, None, None, has_hashes)
    overlay_stamp = ReplicaStamp.from_metadata(pl.read_parquet_metadata(overlay_file))
    if overlay_stamp is None or overlay_stamp.base_id != base_stamp.base_id or overlay_stamp.primary_key is None:
        return StoredReplica(base_stamp, base_rows, base_schema, None, None, has_hashes)
    return StoredReplica(base_stamp, base_rows, base_schema, pl.read_parquet(overlay_file), overlay_stamp,
                         has_hashes)


def scan_replica(base: Path) -> pl.LazyFrame:
    """The live records of a replica on disk, layers applied: what Phase 1 and QA read."""
    stored = read_stored(base)
    scan = pl.scan_parquet(base)
    if stored.overlay is None or stored.overlay_stamp is None or stored.overlay_stamp.primary_key is None:
        return scan.drop(HASHES, strict=False)
    return layered_scan(scan, stored.overlay, stored.overlay_stamp.primary_key)


@dataclass(frozen=True)
class RowGroupRange:
    """One row group's smallest and largest value of a column (from the footer's statistics) and its row count."""

    low: Any
    high: Any
    rows: int


def row_group_ranges(path: Path, column: str) -> list[RowGroupRange] | None:
    """Each row group's range of ``column`` from the Parquet footer, without reading the column; None when a row
    group has no statistics or holds a null (its range would not say where every value lies)."""
    metadata = pq.read_metadata(path)
    index = metadata.schema.names.index(column)
    ranges = []
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(index).statistics
        if statistics is None or not statistics.has_min_max or not statistics.has_null_count or statistics.null_count:
            return None
        ranges.append(RowGroupRange(statistics.min, statistics.max, metadata.row_group(group).num_rows))
    return ranges


def newest_value(path: Path, column: str) -> Any | None:
    """A column's largest value from the Parquet footer's statistics, without reading the column; None when a row
    group holds a null or has no statistics, or the file has no rows (the caller then reads the column)."""
    ranges = row_group_ranges(path, column)
    return max((r.high for r in ranges), default=None) if ranges else None


def keys_out_of_order(base: Path, primary_key: str) -> pl.LazyFrame:
    """One streaming pass over a base's key column: true when a key repeats or comes out of order (every base is
    written sorted by key, and a compaction checks the base it wrote)."""
    keys = pl.col(primary_key)
    return pl.scan_parquet(base).select((keys <= keys.shift(1)).any())


KEYS_DAMAGED = "{key} values repeat or are out of order"
