"""Incremental sync of one object: extract the delta, fold it into the replica, then advance the watermark.

Order is what makes it exact: the delta CSV lands, the replica is written (atomically), and only then the state
file with the new watermark. A crash anywhere before the state write means the next run repeats the same delta;
the merge is keyed on the primary key, so a repeat changes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from configs.salesforce_objects import SALESFORCE_OBJECTS, ObjectSpec
from tasks.extract import Caller, ExtractOptions, extract_object, retry_only_transient
from tasks.extract_plan import ExtractPlanItem, build_soql
from tasks.replica import DELETED_FLAG, MergeStats, delta_filter, drop_missing_keys, merge_delta, next_watermark
from utils.atomic import atomic_path, write_text_atomic
from utils.connection import SalesforceConnection
from utils.logs import log_event
from utils.paths import build_sync_paths
from utils.raw_frame import scan_raw_csv
from utils.raw_schema import RawSchema, read_raw_schema, write_raw_schema
from utils.source import get_connection

STATE_VERSION = 1


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


def _delta_item(object_name: str, spec: ObjectSpec, watermark: datetime | None, api: str) -> ExtractPlanItem:
    columns = list(spec.fields) + ([DELETED_FLAG] if DELETED_FLAG not in spec.fields else [])
    soql = build_soql(object_name, columns)
    if watermark is not None:
        soql += " WHERE " + delta_filter(spec.cursor_field, watermark, spec.incremental_overlap_minutes)
    return ExtractPlanItem(object_name, soql, tuple(columns), api, False)


def _live_keys(conn: SalesforceConnection, object_name: str, spec: ObjectSpec, options: ExtractOptions,
               run_id: str) -> pl.DataFrame:
    item = ExtractPlanItem(object_name, f"SELECT {spec.primary_key} FROM {object_name}", (spec.primary_key,),
                           "auto", True)
    with tempfile.TemporaryDirectory(prefix="sf-reconcile-") as tmp:
        result = extract_object(item, run_id=run_id, connection=conn, options=options, data_root=tmp)
        return scan_raw_csv(Path(result.raw_csv)).collect()


def _reconcile(conn, object_name, spec, replica, options, run_id, due: bool) -> tuple[pl.DataFrame, int, bool]:
    """Compare with SELECT COUNT(); when Salesforce has fewer records (or when due) drop the vanished keys.

    More live records than replica rows only means inserts after the delta query: the next delta brings them,
    so that case alone does not cost a full Id extract.
    """
    call = Caller(conn, object_name, options, run_id)
    live = int(call(lambda: conn.sf.query(f"SELECT COUNT() FROM {object_name}")["totalSize"], "the row count"))
    if live >= replica.height and not due:
        return replica, 0, False
    kept, removed = drop_missing_keys(replica, _live_keys(conn, object_name, spec, options, run_id),
                                      primary_key=spec.primary_key)
    log_event("sync_reconciled", object=object_name, run_id=run_id, live_rows=live, replica_rows=kept.height,
              hard_deletes=removed)
    return kept, removed, True


@contextlib.contextmanager
def _object_lock(state_path: Path) -> Iterator[None]:
    """One sync of an object at a time (serve + a manual run, overlapping schedules): read-merge-write is atomic."""
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with open(state_path.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _resume_point(state: dict | None, *, source: str, fields: list[str], replica: Path, full_refresh: bool):
    """The watermark to resume from, or None for a backfill (first run, new org, changed fields, forced)."""
    if state is None or full_refresh or not replica.is_file() or state.get("watermark") is None:
        return None
    if state.get("fields") != fields or state.get("source") != source:
        return None  # a replica of another org (e.g. the emulator) or of another field list is not resumable
    try:
        pl.read_parquet_schema(replica)
    except Exception as err:  # noqa: BLE001 - any unreadable replica means the same thing: rebuild it
        log_event("sync_replica_corrupt", level=30, file=str(replica), error=type(err).__name__,
                  action="full backfill")
        return None
    return state["watermark"]


def _write_replica(paths, merged: pl.DataFrame, raw_schema: RawSchema, columns: list[str], extracted, run_id, mode):
    with atomic_path(paths.replica) as tmp:
        merged.write_parquet(tmp, compression="zstd")
        write_raw_schema(paths.replica_schema, RawSchema(
            object=raw_schema.object, columns=tuple(c for c in raw_schema.columns if c.name in columns),
            row_count=merged.height, api_path=extracted.api_path, source=extracted.source,
            soql=build_soql(raw_schema.object, columns), run_id=run_id, extracted_at=raw_schema.extracted_at,
            extra={"replica": True, "mode": mode}))


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
    options = replace(options or ExtractOptions(), include_deleted=True)
    paths = build_sync_paths(object_name, data_root=data_root)
    started = time.monotonic()
    source = f"{conn.source}:{conn.instance_url}"
    with _object_lock(paths.state):
        state = read_sync_state(paths.state, object_name)
        watermark = _resume_point(state, source=source, fields=list(spec.fields), replica=paths.replica,
                                  full_refresh=full_refresh)

        def extract(since: datetime | None):
            # a delta is small: skip auto's COUNT() request and page it over REST (unless bulk2 is forced)
            chosen = api or ("rest" if since and spec.api == "auto" else spec.api)
            result = extract_object(_delta_item(object_name, spec, since, chosen), run_id=run_id, connection=conn,
                                    options=options, data_root=data_root, bulk_threshold_rows=spec.bulk_threshold_rows)
            schema = read_raw_schema(Path(result.raw_schema))
            cols = [c for c in schema.column_names if c != DELETED_FLAG or DELETED_FLAG in spec.fields]
            return result, schema, cols

        extracted, raw_schema, columns = extract(watermark)
        if watermark and state.get("columns") != columns:  # a field appeared/vanished in describe since last run
            log_event("sync_columns_changed", level=30, object=object_name, run_id=run_id, action="full backfill")
            watermark = None
            extracted, raw_schema, columns = extract(None)
        mode = "incremental" if watermark else "backfill"
        delta = scan_raw_csv(Path(extracted.raw_csv), raw_schema).collect()
        replica = pl.read_parquet(paths.replica) if watermark else None
        merged, stats = merge_delta(replica, delta, columns=columns, primary_key=spec.primary_key,
                                    cursor_field=spec.cursor_field)
        runs_since = state.get("runs_since_reconcile", 0) + 1 if watermark and state else 0
        merged, hard_deletes, reconciled = _reconcile(conn, object_name, spec, merged, options, run_id,
                                                      due=runs_since >= spec.reconcile_every_runs)
        stats = replace(stats, hard_deletes=hard_deletes, replica_rows=merged.height)
        _write_replica(paths, merged, raw_schema, columns, extracted, run_id, mode)
        # the watermark moves only now that the replica is safely in place
        write_sync_state(paths.state, {
            "version": STATE_VERSION, "object": object_name, "source": source, "fields": list(spec.fields),
            "columns": columns, "watermark": next_watermark(delta, spec.cursor_field, watermark),
            "runs_since_reconcile": 0 if reconciled else runs_since, "replica_rows": merged.height,
            "last_run_id": run_id, "updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    log_event("sync_done", object=object_name, run_id=run_id, mode=mode, seconds=round(time.monotonic() - started, 3),
              **stats.as_dict())
    return {**extracted.as_dict(), "mode": mode, "dataset": str(paths.replica), "sync": stats.as_dict()}


@task(task_run_name="sync-{object_name}", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_only_transient)
def sync_salesforce_object(object_name: str, run_id: str, full_refresh: bool = False, data_root: str | None = None,
                           api: str | None = None, drop_missing_fields: bool = False) -> dict[str, Any]:
    """Prefect task: incremental sync of one object (delta CSV in data/raw, replica in data/replica)."""
    return sync_object(object_name, run_id=run_id, full_refresh=full_refresh, data_root=data_root, api=api,
                       options=ExtractOptions(drop_missing_fields=drop_missing_fields))


__all__ = ["MergeStats", "read_sync_state", "sync_object", "sync_salesforce_object", "write_sync_state"]
