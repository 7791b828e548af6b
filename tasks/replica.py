"""Incremental sync, pure part: fold a delta (upserts and soft deletes) into the replica, exactly.

A delta holds every record whose cursor is >= watermark - overlap, fetched through queryAll so soft-deleted
records arrive with ``IsDeleted = true``. The overlap means a record can arrive in several deltas; keying on the
primary key makes a repeat harmless, so nothing at the cursor boundary is missed or counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import polars as pl

DELETED_FLAG = "IsDeleted"


@dataclass(frozen=True)
class MergeStats:
    delta_rows: int
    inserts: int
    updates: int   # existing records whose values changed
    deletes: int   # soft deletes that removed a replica row
    hard_deletes: int = 0
    replica_rows: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def latest_versions(delta: pl.DataFrame, *, primary_key: str, cursor_field: str) -> pl.DataFrame:
    """One row per key: the highest cursor wins, ties go to the row that came last."""
    return (delta.with_row_index("__pos")
            .sort([cursor_field, "__pos"], nulls_last=False)
            .unique(subset=[primary_key], keep="last", maintain_order=True)
            .drop("__pos"))


def merge_delta(
    replica: pl.DataFrame | None,
    delta: pl.DataFrame,
    *,
    columns: Sequence[str],
    primary_key: str,
    cursor_field: str,
) -> tuple[pl.DataFrame, MergeStats]:
    """The new replica (sorted by key) and what changed. ``delta`` carries ``IsDeleted``; the replica does not."""
    columns = list(columns)
    latest = latest_versions(delta, primary_key=primary_key, cursor_field=cursor_field)
    is_deleted = pl.col(DELETED_FLAG).fill_null(False)
    upserts = latest.filter(~is_deleted).select(columns)
    if replica is None:
        replica = upserts.clear()
    upserts = upserts.cast(dict(replica.schema))
    keys = replica.select(primary_key)
    inserts = upserts.join(keys, on=primary_key, how="anti").height
    existing = upserts.join(keys, on=primary_key, how="semi")
    updates = existing.join(replica, on=columns, how="anti", nulls_equal=True).height
    deletes = latest.filter(is_deleted).select(primary_key).join(keys, on=primary_key, how="semi").height
    untouched = replica.join(latest.select(primary_key), on=primary_key, how="anti")
    merged = pl.concat([untouched, upserts], how="vertical").sort(primary_key)
    return merged, MergeStats(latest.height, inserts, updates, deletes, 0, merged.height)


def drop_missing_keys(replica: pl.DataFrame, live_keys: pl.DataFrame, *, primary_key: str) -> tuple[pl.DataFrame, int]:
    """Reconciliation: remove records Salesforce no longer has at all (hard deletes, purged recycle bin)."""
    kept = replica.join(live_keys.select(primary_key), on=primary_key, how="semi")
    return kept, replica.height - kept.height


def next_watermark(delta: pl.DataFrame, cursor_field: str, previous: datetime | None) -> datetime | None:
    """The highest cursor seen (never moves backwards); an empty delta keeps the previous watermark."""
    seen = delta[cursor_field].max() if delta.height else None
    if seen is None:
        return previous
    seen = seen if seen.tzinfo else seen.replace(tzinfo=timezone.utc)
    return max(seen, previous) if previous else seen


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC, milliseconds)."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def delta_filter(cursor_field: str, watermark: datetime, overlap_minutes: float) -> str:
    return f"{cursor_field} >= {soql_datetime(watermark - timedelta(minutes=overlap_minutes))}"
