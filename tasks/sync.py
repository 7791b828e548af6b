"""Incremental sync of one object: extract the delta, fold it into the replica, then advance the watermark.

Order is what makes it exact: the delta CSV lands, the replica is written (atomically), and only then the state
file with the new watermark. A crash anywhere before the state write means the next run repeats the same delta;
the merge is keyed on the primary key, so a repeat changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from configs.salesforce_objects import SALESFORCE_OBJECTS, ObjectSpec
from tasks.extract import Caller, ExtractOptions, ExtractResult, extract_object, retry_only_transient
from tasks.extract_plan import ExtractPlanItem, build_soql
from tasks.replica import (
    DELETED_FLAG,
    MergeStats,
    ReplicaStamp,
    created_before_count,
    delta_filter,
    drop_missing_keys,
    keys_missing_from,
    merge_delta,
    next_watermark,
    replica_mismatch,
    safe_watermark,
    soql_datetime,
    watermark_ahead_of,
)
from utils.atomic import atomic_path, write_text_atomic
from utils.connection import SalesforceConnection
from utils.locks import exclusive_lock
from utils.logs import log_event
from utils.paths import SyncPaths, build_sync_paths
from utils.raw_frame import scan_raw_csv
from utils.raw_schema import RawSchema, read_raw_schema, write_raw_schema
from utils.sf_types import DATETIME_DTYPE, polars_dtype_for
from utils.source import get_connection

STATE_VERSION = 2  # 2 adds column_types; a version-1 state is read with the replica sidecar's types
CREATED_FIELD = "CreatedDate"
RECONCILE_FETCH_BATCH = 300   # Ids per `WHERE Id IN (...)` query: ~6 KB of Ids, well under the ~16 KB URL limit
RECONCILE_FETCH_MAX = 6000    # more missing records than this: one backfill is cheaper than 20+ Id queries


def read_sync_state(path: Path, object_name: str) -> dict[str, Any] | None:
    """The saved watermark state, or None (first run; a corrupt file is reported and means a fresh backfill)."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state["watermark"] = datetime.fromisoformat(state["watermark"].replace("Z", "+00:00")) \
            if state.get("watermark") else None
        return state
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        log_event("sync_state_corrupt", level=30, object=object_name, file=str(path), error=type(err).__name__,
                  action="full backfill")
        return None


def write_sync_state(path: Path, state: dict[str, Any]) -> None:
    data = dict(state)
    if isinstance(data.get("watermark"), datetime):
        data["watermark"] = data["watermark"].astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class _SyncTarget:
    """What every extract of one sync shares: the object, the client and the options."""

    object_name: str
    spec: ObjectSpec
    conn: SalesforceConnection
    options: ExtractOptions
    run_id: str
    data_root: str | os.PathLike[str] | None
    api: str | None


def _delta_item(object_name: str, spec: ObjectSpec, watermark: datetime | None, api: str) -> ExtractPlanItem:
    columns = list(spec.fields) + ([DELETED_FLAG] if DELETED_FLAG not in spec.fields else [])
    soql = build_soql(object_name, columns)
    if watermark is not None:
        soql += " WHERE " + delta_filter(spec.cursor_field, watermark, spec.incremental_overlap_minutes)
    return ExtractPlanItem(object_name, soql, tuple(columns), api, False)


# ------------------------------------------------------------------------------------- the replica at rest


def _recorded_types(state: dict[str, Any], paths: SyncPaths) -> dict[str, str] | None:
    """Column -> Salesforce type the state says the replica was written with (version-1 state: the sidecar's)."""
    types = state.get("column_types")
    if not isinstance(types, dict):
        try:
            types = {c.name: c.type for c in read_raw_schema(paths.replica_schema).columns}
        except (OSError, ValueError):
            return None
    columns = state.get("columns") or []
    return {c: types[c] for c in columns} if columns and all(c in types for c in columns) else None


def _replica_problem(replica: pl.DataFrame, stamp: ReplicaStamp | None, state: dict[str, Any], paths: SyncPaths,
                     primary_key: str) -> str | None:
    """Why this replica cannot be resumed, or None. Checked against its own stamp, or (no stamp) the state."""
    if stamp is not None:
        types, rows = stamp.column_types, stamp.rows
    else:
        types, rows = _recorded_types(state, paths), state.get("replica_rows")
        if types is None:
            return "neither the replica nor the state records its columns and types"
    try:
        expected = {c: polars_dtype_for(t) for c, t in types.items()}
    except ValueError as err:
        return str(err)
    problem = replica_mismatch(replica.schema, replica.height, expected=expected, expected_rows=rows)
    if problem is None and replica.get_column(primary_key).n_unique() != replica.height:
        problem = f"duplicate {primary_key} values"
    return problem


def _load_replica(state: dict[str, Any], paths: SyncPaths, spec: ObjectSpec, watermark: datetime, *,
                  object_name: str, run_id: str) -> tuple[pl.DataFrame | None, datetime | None]:
    """The replica and the watermark to resume it from; (None, None) means rebuild, logged with the reason.

    The replica is never written back as it was found: a missing column would fail every run, a changed dtype
    would be merged into and break Phase 1.
    """
    try:
        replica = pl.read_parquet(paths.replica)
        stamp = ReplicaStamp.from_metadata(pl.read_parquet_metadata(paths.replica))
    except Exception as err:  # noqa: BLE001 - any unreadable replica means the same thing: rebuild it
        log_event("sync_replica_corrupt", level=30, object=object_name, run_id=run_id, file=str(paths.replica),
                  error=type(err).__name__, action="full backfill")
        return None, None
    problem = _replica_problem(replica, stamp, state, paths, spec.primary_key)
    if problem is not None:
        log_event("sync_replica_mismatch", level=30, object=object_name, run_id=run_id, file=str(paths.replica),
                  reason=problem, action="full backfill (the replica is rebuilt, never written back)")
        return None, None
    if stamp is not None and stamp.run_id != state.get("last_run_id"):
        # a run that crashed after its replica write, or a replica restored from a backup: the older watermark
        # of the two repeats some delta (harmless, keyed on the primary key) and misses nothing
        resume = min(watermark, stamp.watermark) if stamp.watermark else None
        log_event("sync_replica_newer_or_older", level=30, object=object_name, run_id=run_id,
                  replica_run_id=stamp.run_id, state_run_id=state.get("last_run_id"), resume_from=resume)
        return (replica, resume) if resume else (None, None)
    return replica, watermark


def _resume_point(state: dict | None, *, source: str, fields: list[str], replica: Path,
                  full_refresh: bool) -> datetime | None:
    """The watermark to resume from, or None for a backfill (first run, new org, changed fields, forced)."""
    if state is None or full_refresh or not replica.is_file() or state.get("watermark") is None:
        return None
    if state.get("fields") != fields or state.get("source") != source:
        return None  # a replica of another org (e.g. the emulator) or of another field list is not resumable
    return state["watermark"]


def _write_replica(paths: SyncPaths, merged: pl.DataFrame, raw_schema: RawSchema, columns: list[str], extracted,
                   run_id: str, mode: str, watermark: datetime | None) -> None:
    """The replica (stamped), then its sidecar: a sidecar never describes a replica that is not in place yet."""
    kept = tuple(c for c in raw_schema.columns if c.name in columns)
    stamp = ReplicaStamp(run_id, merged.height, watermark, {c.name: c.type for c in kept})
    with atomic_path(paths.replica) as tmp:
        merged.write_parquet(tmp, compression="zstd", metadata=stamp.to_metadata())
    write_raw_schema(paths.replica_schema, RawSchema(
        object=raw_schema.object, columns=kept, row_count=merged.height, api_path=extracted.api_path,
        source=extracted.source, soql=build_soql(raw_schema.object, columns), run_id=run_id,
        extracted_at=raw_schema.extracted_at, extra={"replica": True, "mode": mode}))


# ------------------------------------------------------------------------------------------ reconciliation


@dataclass(frozen=True)
class OrgCount:
    """``SELECT COUNT()`` of live records (created before ``created_before`` when set) and the org's clock."""

    live: int
    created_before: datetime | None
    org_now: datetime | None


def _count_live(call: Caller, object_name: str, created_before: datetime | None) -> OrgCount:
    """One COUNT() request; its HTTP ``Date`` header is the org's clock, at no extra API cost."""
    soql = f"SELECT COUNT() FROM {object_name}"
    if created_before is not None:
        soql += f" WHERE {CREATED_FIELD} < {soql_datetime(created_before)}"
    response = call(lambda: call.conn.request("GET", "query/", params={"q": soql}), "the row count")
    try:
        org_now = parsedate_to_datetime(response.headers["Date"]).astimezone(timezone.utc)
    except (KeyError, TypeError, ValueError):
        org_now = None
    return OrgCount(int(response.json()["totalSize"]), created_before, org_now)


def _count_bound(columns: list[str], merged: pl.DataFrame, started: datetime, spec: ObjectSpec) -> datetime | None:
    """The creation-time bound for the COUNT() comparison, or None when the replica has no CreatedDate column.

    Local clock minus the overlap, floored to a second: records created after it (inserts racing the delta query)
    are left out of both counts; clock skew beyond the overlap can only cause an extra reconciliation.
    """
    if CREATED_FIELD not in columns or merged.schema.get(CREATED_FIELD) != DATETIME_DTYPE:
        return None
    bound = started - timedelta(minutes=spec.incremental_overlap_minutes)
    return bound.replace(microsecond=0)


def _extract_to_frame(item: ExtractPlanItem, conn: SalesforceConnection, options: ExtractOptions, run_id: str,
                      threshold: int) -> pl.DataFrame:
    """A side query (Ids, records by Id) extracted through the normal path into a throwaway folder."""
    with tempfile.TemporaryDirectory(prefix="sf-reconcile-") as tmp:
        result = extract_object(item, run_id=run_id, connection=conn, options=options, data_root=tmp,
                                bulk_threshold_rows=threshold)
        return scan_raw_csv(Path(result.raw_csv)).collect()


def _live_keys(conn: SalesforceConnection, object_name: str, spec: ObjectSpec, options: ExtractOptions,
               run_id: str, live: int) -> pl.DataFrame:
    """Every live Id: one cheap column, over Bulk 2.0 for big objects (the count is already known)."""
    api = spec.api if spec.api != "auto" else ("bulk2" if live >= spec.bulk_threshold_rows else "rest")
    item = ExtractPlanItem(object_name, f"SELECT {spec.primary_key} FROM {object_name}", (spec.primary_key,),
                           api, True)
    return _extract_to_frame(item, conn, replace(options, include_deleted=False), run_id, spec.bulk_threshold_rows)


def _records_by_id(conn: SalesforceConnection, object_name: str, spec: ObjectSpec, columns: list[str],
                   ids: list[str], options: ExtractOptions, run_id: str) -> pl.DataFrame | None:
    """The replica's columns (plus IsDeleted) of the given records, a few hundred Ids per REST query."""
    wanted = [*columns, DELETED_FLAG] if DELETED_FLAG not in columns else list(columns)
    frames = []
    for start in range(0, len(ids), RECONCILE_FETCH_BATCH):
        batch = ", ".join(f"'{i}'" for i in ids[start:start + RECONCILE_FETCH_BATCH])
        soql = f"{build_soql(object_name, wanted)} WHERE {spec.primary_key} IN ({batch})"
        item = ExtractPlanItem(object_name, soql, tuple(wanted), "rest", True)
        frames.append(_extract_to_frame(item, conn, options, run_id, spec.bulk_threshold_rows))
    return pl.concat(frames, how="vertical") if frames else None


@dataclass(frozen=True)
class Reconciled:
    replica: pl.DataFrame
    hard_deletes: int
    recovered: int
    needs_backfill: bool = False


def _reconcile_ids(target: _SyncTarget, merged: pl.DataFrame, columns: list[str], *, count: OrgCount,
                   reason: str) -> Reconciled:
    """Compare the org's Ids with the replica's: drop the vanished, fetch and merge the missing."""
    object_name, spec, run_id = target.object_name, target.spec, target.run_id
    live_keys = _live_keys(target.conn, object_name, spec, target.options, run_id, count.live)
    kept, removed = drop_missing_keys(merged, live_keys, primary_key=spec.primary_key)
    missing = keys_missing_from(kept, live_keys, primary_key=spec.primary_key)
    if len(missing) > RECONCILE_FETCH_MAX:
        log_event("sync_reconciled", level=30, object=object_name, run_id=run_id, reason=reason,
                  live_rows=live_keys.height, replica_rows=kept.height, missing=len(missing),
                  action="full backfill (cheaper than fetching the missing records by Id)")
        return Reconciled(kept, removed, 0, needs_backfill=True)
    recovered = 0
    fetched = _records_by_id(target.conn, object_name, spec, columns, missing, target.options, run_id)
    if fetched is not None and fetched.height:
        kept, stats = merge_delta(kept, fetched, columns=columns, primary_key=spec.primary_key,
                                  cursor_field=spec.cursor_field)
        recovered = stats.inserts
    log_event("sync_reconciled", level=30 if removed or recovered else 20, object=object_name, run_id=run_id,
              reason=reason, live_rows=live_keys.height, replica_rows=kept.height, hard_deletes=removed,
              recovered=recovered)
    return Reconciled(kept, removed, recovered)


def _reconcile_reason(count: OrgCount, merged: pl.DataFrame, *, due: bool, forced: str | None) -> str | None:
    """Why the Ids must be compared this run, or None: the counts agree and no periodic check is due."""
    if forced:
        return forced
    expected = (merged.height if count.created_before is None
                else created_before_count(merged, CREATED_FIELD, count.created_before))
    if count.live != expected:
        return f"count differs: org {count.live}, replica {expected}"
    return "periodic check (reconcile_every_runs)" if due else None


# ------------------------------------------------------------------------------------------ one object


@dataclass(frozen=True)
class _Landed:
    """One delta (or backfill) extracted and merged, in memory, into the replica it started from."""

    extracted: ExtractResult
    raw_schema: RawSchema
    columns: list[str]
    delta: pl.DataFrame
    merged: pl.DataFrame
    stats: MergeStats


def _land(target: _SyncTarget, since: datetime | None, base: pl.DataFrame | None) -> _Landed:
    """Extract the changes since ``since`` (everything when None) and merge them into ``base``."""
    spec = target.spec
    # a delta is small: skip auto's COUNT() request and page it over REST (unless bulk2 is forced)
    api = target.api or ("rest" if since and spec.api == "auto" else spec.api)
    extracted = extract_object(_delta_item(target.object_name, spec, since, api), run_id=target.run_id,
                               connection=target.conn, options=target.options, data_root=target.data_root,
                               bulk_threshold_rows=spec.bulk_threshold_rows)
    raw_schema = read_raw_schema(Path(extracted.raw_schema))
    columns = [c for c in raw_schema.column_names if c != DELETED_FLAG or DELETED_FLAG in spec.fields]
    delta = scan_raw_csv(Path(extracted.raw_csv), raw_schema).collect()
    merged, stats = merge_delta(base if since else None, delta, columns=columns, primary_key=spec.primary_key,
                                cursor_field=spec.cursor_field)
    return _Landed(extracted, raw_schema, columns, delta, merged, stats)


def _starting_point(state: dict | None, paths: SyncPaths, target: _SyncTarget, source: str,
                    full_refresh: bool) -> tuple[datetime | None, pl.DataFrame | None]:
    """(watermark, replica) to resume from, or (None, None) for a backfill."""
    watermark = _resume_point(state, source=source, fields=list(target.spec.fields), replica=paths.replica,
                              full_refresh=full_refresh)
    if watermark is None:
        return None, None
    replica, watermark = _load_replica(state, paths, target.spec, watermark, object_name=target.object_name,
                                       run_id=target.run_id)
    return watermark, replica


def sync_object(
    object_name: str,
    *,
    run_id: str,
    full_refresh: bool = False,
    connection: SalesforceConnection | None = None,
    options: ExtractOptions | None = None,
    data_root: str | os.PathLike[str] | None = None,
    api: str | None = None,
) -> dict[str, Any]:
    """One incremental run for ``object_name``; returns the extract result plus mode, stats and the replica path."""
    spec = SALESFORCE_OBJECTS[object_name]
    conn = connection or get_connection()
    target = _SyncTarget(object_name, spec, conn, replace(options or ExtractOptions(), include_deleted=True), run_id,
                         data_root, api)
    paths = build_sync_paths(object_name, data_root=data_root)
    started = time.monotonic()
    source = f"{conn.source}:{conn.instance_url}"
    with exclusive_lock(paths.state.with_suffix(".lock"), what=f"sync of {object_name}", object=object_name,
                        run_id=run_id):
        state = read_sync_state(paths.state, object_name)
        watermark, replica = _starting_point(state, paths, target, source, full_refresh)
        delta_started = datetime.now(timezone.utc)
        landed = _land(target, watermark, replica)
        if watermark and state.get("columns") != landed.columns:  # a field appeared/vanished in describe
            log_event("sync_columns_changed", level=30, object=object_name, run_id=run_id, action="full backfill")
            watermark = None
            landed = _land(target, None, None)
        count = _count_live(Caller(conn, object_name, target.options, run_id), object_name,
                            _count_bound(landed.columns, landed.merged, delta_started, spec))
        forced = None
        if watermark_ahead_of(watermark, count.org_now):
            reset_to = safe_watermark(replica, spec.cursor_field, count.org_now)
            log_event("sync_watermark_ahead", level=30, object=object_name, run_id=run_id, watermark=watermark,
                      org_now=count.org_now, reset_to=reset_to,
                      action="delta again from the reset point, then Id-level reconciliation")
            watermark, forced = reset_to, "the saved watermark was ahead of the org's clock"
            landed = _land(target, watermark, replica)
        runs_since = state.get("runs_since_reconcile", 0) + 1 if watermark and state else 0
        reason = _reconcile_reason(count, landed.merged, due=runs_since >= spec.reconcile_every_runs, forced=forced)
        merged, hard_deletes, recovered = landed.merged, 0, 0
        if reason is not None:
            fixed = _reconcile_ids(target, landed.merged, landed.columns, count=count, reason=reason)
            if fixed.needs_backfill:
                watermark = None
                landed = _land(target, None, None)
                merged = landed.merged
            else:
                merged, hard_deletes, recovered = fixed.replica, fixed.hard_deletes, fixed.recovered
        mode = "incremental" if watermark else "backfill"
        stats = replace(landed.stats, hard_deletes=hard_deletes, recovered=recovered, replica_rows=merged.height)
        new_watermark = next_watermark(landed.delta, spec.cursor_field, watermark)  # only what the delta saw
        _write_replica(paths, merged, landed.raw_schema, landed.columns, landed.extracted, run_id, mode,
                       new_watermark)
        # the state moves only now that the replica is safely in place
        write_sync_state(paths.state, {
            "version": STATE_VERSION, "object": object_name, "source": source, "fields": list(spec.fields),
            "columns": landed.columns,
            "column_types": {c.name: c.type for c in landed.raw_schema.columns if c.name in landed.columns},
            "watermark": new_watermark, "runs_since_reconcile": 0 if reason is not None else runs_since,
            "replica_rows": merged.height, "last_run_id": run_id,
            "updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    log_event("sync_done", object=object_name, run_id=run_id, mode=mode, seconds=round(time.monotonic() - started, 3),
              **stats.as_dict())
    return {**landed.extracted.as_dict(), "mode": mode, "dataset": str(paths.replica), "sync": stats.as_dict()}


@task(task_run_name="sync-{object_name}", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_only_transient)
def sync_salesforce_object(object_name: str, run_id: str, full_refresh: bool = False, data_root: str | None = None,
                           api: str | None = None, drop_missing_fields: bool = False) -> dict[str, Any]:
    """Prefect task: incremental sync of one object (delta CSV in data/raw, replica in data/replica)."""
    return sync_object(object_name, run_id=run_id, full_refresh=full_refresh, data_root=data_root, api=api,
                       options=ExtractOptions(drop_missing_fields=drop_missing_fields))


__all__ = ["MergeStats", "read_sync_state", "sync_object", "sync_salesforce_object", "write_sync_state"]
