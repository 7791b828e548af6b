"""Incremental sync, pure part: fold a delta (upserts and soft deletes) into the replica, exactly.

A delta holds every record whose cursor is >= watermark - overlap, fetched through queryAll so soft-deleted
records arrive with ``IsDeleted = true``. The overlap means a record can arrive in several deltas; keying on the
primary key makes a repeat harmless, so nothing at the cursor boundary is missed or counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import polars as pl

from utils.timefmt import as_utc, utc_millis

DELETED_FLAG = "IsDeleted"
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


@dataclass(frozen=True)
class MergeStats:
    delta_rows: int
    inserts: int
    updates: int   # existing records whose values changed
    deletes: int   # soft deletes that removed a replica row
    hard_deletes: int = 0
    replica_rows: int = 0
    recovered: int = 0  # live records the replica lacked, found by Id-level reconciliation and merged back
    unchanged: int = 0  # existing records the delta repeated with the same values (the overlap window)
    deleted_absent: int = 0  # soft-deleted records the replica never held (a backfill's recycle bin)
    refreshed: int = 0  # formula / relationship values a refresh found changed (their records' cursor did not move)
    # the object refused queryAll, so the delta could not show deletions (the replica loses deleted records only
    # through reconciliation by Id); a flag, not a count: summed stats (a backfill's ranges) give 0, the sync sets it
    deletes_untracked: bool = False

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ColumnChanges:
    """How the replica's columns must change to match the registry and describe, without a backfill.

    A column added to the registry (or visible again) and a column whose Salesforce type changed are filled for
    every existing record by one narrow pull (``Id`` + those columns); a column taken out of the registry is
    dropped; a registry column the org no longer shows (deleted, or field access revoked, with
    ``drop_missing_fields``) is kept with its last values, null for the records changed since.
    """

    added: tuple[str, ...] = ()    # new in the registry or the org, or visible again after being hidden
    retyped: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()   # every column kept while describe does not show it
    newly_hidden: tuple[str, ...] = ()  # those hidden since the last run: the change to report
    columns: tuple[str, ...] = ()           # the replica's columns after the change, in registry order
    types: tuple[tuple[str, str], ...] = ()  # (column, Salesforce type) for each of them

    @property
    def to_fill(self) -> tuple[str, ...]:
        """The columns the narrow pull must bring, for every live record."""
        return self.added + self.retyped

    def __bool__(self) -> bool:
        return bool(self.added or self.retyped or self.dropped or self.newly_hidden)

    def describe(self, previous: Mapping[str, str]) -> str:
        """``+Foo__c, -Bar__c, AnnualRevenue: string -> currency, ~Baz__c (hidden)`` for logs and the run summary."""
        types = dict(self.types)
        parts = [f"+{c}" for c in self.added] + [f"-{c}" for c in self.dropped]
        parts += [f"{c}: {previous.get(c)} -> {types[c]}" for c in self.retyped]
        parts += [f"~{c} (hidden)" for c in self.newly_hidden]
        return ", ".join(parts)


def plan_column_changes(recorded: Mapping[str, str], visible: Mapping[str, str], registry_fields: Sequence[str], *,
                        primary_key: str, previously_hidden: Sequence[str] = ()) -> ColumnChanges:
    """Compare the replica's columns (``recorded``: column -> Salesforce type) with what describe shows of the
    registry's fields now (``visible``). A column hidden on an earlier run and visible again is refilled: the
    records changed while it was hidden hold nulls."""
    added = tuple(c for c in visible if c != primary_key and (c not in recorded or c in previously_hidden))
    retyped = tuple(c for c in visible if c in recorded and c not in added and recorded[c] != visible[c])
    dropped = tuple(c for c in recorded if c not in registry_fields)
    hidden = tuple(c for c in recorded if c in registry_fields and c not in visible)
    newly_hidden = tuple(c for c in hidden if c not in previously_hidden)
    columns = tuple(c for c in registry_fields if c in visible or c in hidden)
    types = tuple((c, visible[c] if c in visible else recorded[c]) for c in columns)
    return ColumnChanges(added, retyped, dropped, hidden, newly_hidden, columns, types)


def conform_replica(replica: FrameT, schema: Mapping[str, pl.DataType], *, primary_key: str,
                    fill: pl.DataFrame | None = None) -> FrameT:
    """The replica with exactly the columns of ``schema``, in its order: columns outside it dropped, the columns of
    ``fill`` (a narrow pull keyed on ``primary_key``) replaced by its values (null for a record it lacks), and any
    other new column null. A LazyFrame (a base file's scan) stays lazy, in its order: one streaming pass."""
    filled = [c for c in (fill.columns if fill is not None else ()) if c != primary_key and c in schema]
    kept = replica.select([c for c in replica.collect_schema().names() if c in schema and c not in filled])
    if fill is not None and filled:
        kept = join_by_key(kept, fill.select(primary_key, *filled), primary_key=primary_key)
    dtypes: dict[Any, Any] = dict(schema)
    return with_null_columns(kept, schema).select(list(schema)).cast(dtypes)


_KEY_HASH, _FILL_KEY = "__key_hash", "__fill_key"


def join_by_key(frame: FrameT, fill: pl.DataFrame, *, primary_key: str) -> FrameT:
    """``frame`` (in its order) with the other columns of ``fill`` joined by ``primary_key``: null for a key ``fill``
    lacks, the last value for a key it repeats.

    Joined on a 64-bit hash of the key rather than the key: a string join of 1M Salesforce Ids (and the
    de-duplication before it) cost ~2 s here, hashing them ~0.05 s. Exact all the same: a record takes a value only
    when its key equals the one ``fill`` has under that hash, and a ``fill`` whose hashes repeat (a repeated key, or
    two keys that collide) is joined on the keys themselves."""
    hashes = fill.get_column(primary_key).hash(seed=0)
    lazy = isinstance(frame, pl.LazyFrame)
    if hashes.is_duplicated().any():
        latest = fill.unique(subset=[primary_key], keep="last")
        return frame.join(latest.lazy() if lazy else latest, on=primary_key, how="left",  # type: ignore[arg-type]
                          maintain_order="left")
    columns = [c for c in fill.columns if c != primary_key]
    right = fill.rename({primary_key: _FILL_KEY}).with_columns(hashes.alias(_KEY_HASH))
    joined = frame.with_columns(pl.col(primary_key).hash(seed=0).alias(_KEY_HASH)).join(
        right.lazy() if lazy else right, on=_KEY_HASH, how="left", maintain_order="left")  # type: ignore[arg-type]
    same = pl.col(primary_key) == pl.col(_FILL_KEY)
    return joined.with_columns(pl.when(same).then(pl.col(c)).alias(c) for c in columns).drop(_KEY_HASH, _FILL_KEY)


def refresh_columns(replica: pl.DataFrame, fill: pl.DataFrame, *, primary_key: str) -> tuple[pl.DataFrame, int]:
    """The replica with the columns of ``fill`` (a narrow pull keyed on ``primary_key``) taken from it for every
    record it has (null included: a formula can become null), and how many values changed. Records the pull lacks
    (deleted since the delta) keep theirs; the next delta removes them."""
    columns = [c for c in fill.columns if c != primary_key]
    matched = "__refreshed"
    fresh = (fill.unique(subset=[primary_key], keep="last")
             .cast({c: replica.schema[c] for c in columns})
             .rename({c: f"{c}{matched}" for c in columns})
             .with_columns(pl.lit(True).alias(matched)))
    joined = replica.join(fresh, on=primary_key, how="left", maintain_order="left")
    hit = pl.col(matched).fill_null(False)
    changed = joined.select(pl.sum_horizontal(
        [(hit & pl.col(c).ne_missing(pl.col(f"{c}{matched}"))).sum() for c in columns])).item() if columns else 0
    updated = joined.with_columns([pl.when(hit).then(pl.col(f"{c}{matched}")).otherwise(pl.col(c)).alias(c)
                                   for c in columns]).select(replica.columns)
    return updated, int(changed or 0)


def with_null_columns(frame: FrameT, schema: Mapping[str, pl.DataType]) -> FrameT:
    """``frame`` plus every column of ``schema`` it lacks, all null (a hidden field in a delta that cannot see it)."""
    present = frame.collect_schema().names()
    missing = [pl.lit(None, dtype=dtype).alias(c) for c, dtype in schema.items() if c not in present]
    return frame.with_columns(missing) if missing else frame


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
    upserts = upserts.cast(replica.schema)
    keys = replica.select(primary_key)
    inserts = upserts.join(keys, on=primary_key, how="anti").height
    existing = upserts.join(keys, on=primary_key, how="semi")
    # only the delta's own keys can match (the key is one of ``columns``): hashing every replica row cost ~0.7 s at 1M
    updates = existing.join(replica.join(existing.select(primary_key), on=primary_key, how="semi"), on=columns,
                            how="anti", nulls_equal=True).height
    soft_deleted = latest.filter(is_deleted).select(primary_key)
    deletes = soft_deleted.join(keys, on=primary_key, how="semi").height
    # a membership test against the delta's (few) keys: the anti-join hashed every replica row (0.47 s at 1M rows)
    untouched = replica.filter(~pl.col(primary_key).is_in(latest.get_column(primary_key).implode()))
    merged = pl.concat([untouched, upserts], how="vertical").sort(primary_key)
    # every delta record is counted once: latest.height == inserts + updates + unchanged + deletes + deleted_absent
    return merged, MergeStats(latest.height, inserts, updates, deletes, 0, merged.height,
                              unchanged=existing.height - updates, deleted_absent=soft_deleted.height - deletes)


def find_missing_keys(replica: pl.DataFrame, live_keys: pl.DataFrame, *, primary_key: str,
                      created_field: str | None = None, created_before: datetime | None = None) -> list[str]:
    """Reconciliation: live keys the replica lacks (committed behind the watermark, or lost from the replica).

    With a creation bound, records created after it are left out: they raced this run's delta, and the next delta
    brings them, so fetching them by Id would only inflate the count of what reconciliation recovered.
    """
    live = live_keys
    if created_field is not None and created_before is not None:
        live = live.filter(pl.col(created_field) < created_before)
    return live.select(primary_key).join(replica.select(primary_key), on=primary_key, how="anti") \
        .get_column(primary_key).sort().to_list()


def find_replica_mismatch(schema: Mapping[str, pl.DataType], rows: int, *, expected: Mapping[str, pl.DataType],
                     expected_rows: int | None) -> str | None:
    """Why a replica differs from the state it was written with, or None when it matches.

    A replica edited, restored from a backup or written by another version is corrupt for our purposes: merging a
    delta into it would carry the damage forward (a missing column fails every run, a changed dtype is written
    back and breaks Phase 1), so the caller rebuilds it instead.
    """
    missing = [c for c in expected if c not in schema]
    if missing:
        return f"column(s) missing: {', '.join(missing)}"
    unexpected = [c for c in schema if c not in expected]
    if unexpected:
        return f"unexpected column(s): {', '.join(unexpected)}"
    changed = [f"{c} is {schema[c]}, expected {dtype}" for c, dtype in expected.items() if schema[c] != dtype]
    if changed:
        return "dtype changed: " + "; ".join(changed)
    if list(schema) != list(expected):
        return "columns out of order"
    if expected_rows is not None and rows != expected_rows:
        return f"{rows} rows, the state recorded {expected_rows}"
    return None


def count_created_before(replica: pl.DataFrame | pl.LazyFrame, created_field: str, before: datetime) -> int:
    """Replica rows created before ``before``: what ``SELECT COUNT() ... WHERE CreatedDate < before`` should say.

    Bounding both counts by an immutable creation time makes the comparison immune to records inserted between
    the delta query and the count, which would otherwise hide (or fake) a hard delete.
    """
    counted = replica.lazy().filter(pl.col(created_field) < before).select(pl.len())
    return int(counted.collect(engine="streaming").item())


def is_watermark_ahead(watermark: datetime | None, org_now: datetime | None, *,
                       tolerance: timedelta = timedelta(minutes=1)) -> bool:
    """A watermark later than the org's own clock can only come from a damaged or foreign state file."""
    return watermark is not None and org_now is not None and watermark > org_now + tolerance


def fallback_watermark(replica: pl.DataFrame | pl.LazyFrame, cursor_field: str, org_now: datetime) -> datetime | None:
    """Where to resume when the saved watermark cannot be trusted: the newest change the replica holds, never later
    than the org's clock (None: nothing to resume from, backfill)."""
    seen = _newest(replica.lazy().select(pl.col(cursor_field).max()).collect(engine="streaming"), cursor_field)
    return min(seen, org_now) if seen else None


def next_watermark(delta: pl.DataFrame, cursor_field: str, previous: datetime | None) -> datetime | None:
    """The highest cursor seen (never moves backwards); an empty delta keeps the previous watermark."""
    return later_watermark(_newest(delta, cursor_field), previous)


def later_watermark(seen: datetime | None, previous: datetime | None) -> datetime | None:
    """The later of two watermarks, either of which may be unknown: a watermark never moves backwards."""
    if seen is None or previous is None:
        return seen or previous
    return max(seen, previous)


def _newest(frame: pl.DataFrame, cursor_field: str) -> datetime | None:
    """The highest cursor value in UTC (None for an empty frame or an all-null column)."""
    seen = frame[cursor_field].max() if frame.height else None
    if seen is None:
        return None
    if not isinstance(seen, datetime):
        msg = f"cursor field {cursor_field} holds {type(seen).__name__} values, not datetimes"
        raise TypeError(msg)
    return as_utc(seen)


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC, milliseconds)."""
    return utc_millis(moment)


def delta_filter(cursor_field: str, watermark: datetime, overlap_minutes: float) -> str:
    return f"{cursor_field} >= {soql_datetime(watermark - timedelta(minutes=overlap_minutes))}"
