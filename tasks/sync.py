"""Incremental sync of one object: check the replica, extract the delta, fold it in, reconcile, save.

Order is what makes it exact: the delta CSV lands, the replica is written (atomically, stamped inside the Parquet
file with the run and the watermark its rows are complete to), then its sidecar, and only then the state file
with the new watermark. A crash anywhere before the state write means the next run resumes from the older of the
state's and the stamp's watermarks and repeats some delta; the merge is keyed on the primary key, so a repeat
changes nothing. A replica that does not match its stamp or state (edited, restored, a column lost or retyped) is
rebuilt, never merged into. Changes no delta can show (hard deletes, records committed behind the watermark) are
found by comparing counts, then Ids, with the org.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from prefect import task

from configs.salesforce_objects import CURSOR_CANDIDATES, SALESFORCE_OBJECTS, ApiChoice, ObjectSpec
from tasks.extract import (
    LANDING_TASK_RETRIES,
    ExtractOptions,
    ExtractResult,
    QueryAllRefused,
    QueryTimedOut,
    RequestRunner,
    describe_object,
    extract_object,
    read_in_windows,
    resolve_fields,
)
from tasks.extract_plan import EARLIEST_CURSOR, ExtractPlanItem, api_choice, build_soql, window_soql
from tasks.replica import (
    DELETED_FLAG,
    ColumnChanges,
    FrameT,
    MergeStats,
    delta_filter,
    fallback_watermark,
    find_replica_mismatch,
    is_watermark_ahead,
    later_watermark,
    next_watermark,
    plan_column_changes,
    soql_datetime,
    with_null_columns,
)
from tasks.replica_evolve import evolve_replica
from tasks.replica_store import CREATED_FIELD, DamagedBase, Replica, open_replica, write_backfill, write_replica
from utils import storage
from utils.atomic import write_text_atomic
from utils.connection import SalesforceConnection
from utils.errors import ConfigError, PipelineError
from utils.locks import exclusive_lock
from utils.logs import log_event
from utils.paths import SyncPaths, build_sync_paths
from utils.progress import report_progress
from utils.raw_frame import scan_dataset
from utils.raw_schema import RawColumn, RawSchema, read_raw_schema, write_raw_schema
from utils.replica_layers import FLAGS, ReplicaStamp, StoredReplica, overlay_path_for, read_stored
from utils.sf_types import DATETIME_DTYPE, polars_dtype_for
from utils.source import get_connection
from utils.timefmt import now_utc_seconds, utc_iso

STATE_VERSION = 2  # 2 adds column_types and clock_offset_seconds; a version-1 state reads as one with them unset
RECONCILE_FETCH_BATCH = 300   # Ids per `WHERE Id IN (...)` query: ~6 KB of Ids, well under the ~16 KB URL limit
RECONCILE_FETCH_MIN = 6000    # fetch up to this many missing records by Id (20 queries) before a backfill wins...
NARROW_PAGE_MAX = 1_000_000   # Bulk result page of a narrow pull (Id + a few columns): ~40 MB at most
RECONCILE_FETCH_SHARE = 0.02  # ...or up to this share of the object, when that is more (a backfill of a big
                              # object costs a Bulk job of every row and column)


# ---------------------------------------------------------------------------------------------------- state


def _utc_text(moment: datetime | None) -> str | None:
    return utc_iso(moment) if moment else None


@dataclass(frozen=True)
class SyncState:
    """What the sync of one object remembers between runs (``data/state/<Object>.json``)."""

    object: str
    source: str                       # "<emulator|salesforce>:<org Id>": a replica of another org never resumes
    fields: tuple[str, ...]           # the registry's field list the replica was built with
    columns: tuple[str, ...]          # the columns it holds (fields found in describe)
    watermark: datetime | None
    column_types: dict[str, str] | None = None  # column -> Salesforce type; None in a version-1 state
    runs_since_reconcile: int = 0
    replica_rows: int | None = None
    clock_offset_seconds: float = 0.0  # the org's clock minus ours at the last COUNT(): bounds the next count
    last_run_id: str | None = None
    updated_at: str | None = None
    version: int = STATE_VERSION
    hidden_columns: tuple[str, ...] = ()  # replica columns describe no longer shows (kept, null for new rows)
    runs_since_formula_refresh: int = 0

    def to_json(self) -> str:
        data = {**asdict(self), "fields": list(self.fields), "columns": list(self.columns),
                "hidden_columns": list(self.hidden_columns), "watermark": _utc_text(self.watermark)}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SyncState:
        data = json.loads(text)
        watermark = datetime.fromisoformat(data["watermark"].replace("Z", "+00:00")) if data.get("watermark") else None
        return cls(object=data["object"], source=data["source"], fields=tuple(data["fields"]),
                   columns=tuple(data.get("columns") or ()), watermark=watermark,
                   column_types=data.get("column_types"), runs_since_reconcile=int(data.get("runs_since_reconcile", 0)),
                   replica_rows=data.get("replica_rows"),
                   clock_offset_seconds=float(data.get("clock_offset_seconds") or 0.0),
                   last_run_id=data.get("last_run_id"), updated_at=data.get("updated_at"),
                   version=int(data.get("version", 1)), hidden_columns=tuple(data.get("hidden_columns") or ()),
                   runs_since_formula_refresh=int(data.get("runs_since_formula_refresh") or 0))


def read_sync_state(path: Path, object_name: str) -> SyncState | None:
    """The saved state, or None (first run; a corrupt file is reported and means a fresh backfill)."""
    if not path.is_file():
        return None
    try:
        return SyncState.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        log_event("sync_state_corrupt", level=30, object=object_name, file=str(path), error=type(err).__name__,
                  action="full backfill")
        return None


def write_sync_state(path: Path, state: SyncState) -> None:
    write_text_atomic(path, state.to_json())


# ------------------------------------------------------------------------------------------- one extract


def _delta_item(target: _SyncTarget, watermark: datetime | None, api: ApiChoice) -> ExtractPlanItem:
    """The delta's query: the registry's fields, IsDeleted when the object has it (so soft deletes arrive through
    queryAll), and the cursor filter (none for a backfill)."""
    spec, name = target.spec, target.object_name
    flag = [DELETED_FLAG] if target.has_deleted_flag and DELETED_FLAG not in spec.fields else []
    columns = [*spec.fields, *flag]
    soql, since = build_soql(name, columns), None
    if watermark is not None:
        soql += " WHERE " + delta_filter(target.cursor, watermark, spec.incremental_overlap_minutes)
        since = watermark - timedelta(minutes=spec.incremental_overlap_minutes)
    return ExtractPlanItem(name, soql, tuple(columns), api, False, cursor=target.cursor, cursor_since=since)


@dataclass
class _Learned:
    """What one sync learns about the object on the way, for every later extract of the same sync."""

    query_all_refused: bool = False  # its deltas are read with query: deletions reach the replica by reconciliation


@dataclass(frozen=True)
class _SyncTarget:
    """What every extract of one sync shares: the object, the client and the options."""

    object_name: str
    spec: ObjectSpec
    conn: SalesforceConnection
    options: ExtractOptions
    run_id: str
    data_root: str | os.PathLike[str] | None
    api: ApiChoice | None
    cursor: str                    # the field deltas are taken on (ObjectSpec.cursor)
    scratch: Path                  # this sync's throwaway folder (side queries), removed when it ends
    has_deleted_flag: bool = True  # the object has IsDeleted (User, Group, History and setup objects may not)
    has_created_date: bool = True  # the object has CreatedDate: row counts are bounded and windowed on it
    learned: _Learned = field(default_factory=_Learned)

    @property
    def delta_options(self) -> ExtractOptions:
        """The options of every query that wants deleted records (the delta, the records fetched by Id): queryAll
        unless the object refused it this run. The one place a sync turns queryAll on: ``options`` has it off."""
        return replace(self.options, include_deleted=not self.learned.query_all_refused)


@dataclass(frozen=True)
class _Resumed:
    """The replica a delta is merged into, with the Salesforce type of each column and the columns describe no
    longer shows (kept from an earlier run, null for records changed since)."""

    replica: Replica
    column_types: dict[str, str]
    hidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Landed:
    """One delta (or backfill) extracted and merged, in memory, into the replica it started from."""

    extracted: ExtractResult
    raw_schema: RawSchema
    column_types: dict[str, str]  # the replica's columns, in order, with their Salesforce types
    newest: datetime | None  # the highest cursor the extract held (None: it was empty)
    merged: Replica
    stats: MergeStats
    hidden: tuple[str, ...] = ()
    changes: ColumnChanges | None = None  # how the replica's columns changed this run (None: they did not)
    change_note: str | None = None        # ``changes`` in words, for the log and the run summary
    base: _Resumed | None = None          # the replica the delta was merged into, after ``changes``

    @property
    def columns(self) -> list[str]:
        return list(self.column_types)


def _visible_types(raw_schema: RawSchema, spec: ObjectSpec) -> dict[str, str]:
    """Column -> Salesforce type of the registry's fields describe shows now (IsDeleted only when registered)."""
    return {c.name: c.type for c in raw_schema.columns if c.name != DELETED_FLAG or DELETED_FLAG in spec.fields}


def _land(target: _SyncTarget, since: datetime | None, base: _Resumed | None) -> _Landed:
    """Extract the changes since ``since`` (everything when None) and merge them into ``base``, first bringing its
    columns in line with the registry and describe (``_evolve``)."""
    spec = target.spec
    # a delta is small: skip auto's COUNT() request and page it over REST (unless bulk2 is forced)
    api = target.api or ("rest" if since and spec.api == "auto" else spec.api)
    extracted = _extract_delta(target, _delta_item(target, since, api))
    raw_schema = read_raw_schema(Path(extracted.raw_schema))
    visible = _visible_types(raw_schema, spec)
    if target.cursor not in visible:  # dropped by drop_missing_fields: no delta can be taken on it
        msg = (f"{target.object_name}.{target.cursor}: the cursor field is not in the org's describe (deleted, or the "
               "integration user cannot see it); grant field access, or set sync_mode 'full' for this object")
        raise ConfigError(msg)
    rows = scan_dataset(Path(extracted.raw_csv), raw_schema)
    if since is None or base is None:  # straight into a new base, never whole in memory
        paths = build_sync_paths(target.object_name, data_root=target.data_root)
        backfilled = write_backfill(paths.replica, _with_deleted_flag(rows), extracted.rows, columns=list(visible),
                                    primary_key=spec.primary_key, cursor_field=target.cursor, run_id=target.run_id,
                                    column_types=visible, scratch=target.scratch)
        return _Landed(extracted, raw_schema, visible, backfilled.newest, backfilled.replica, backfilled.stats)
    delta = _with_deleted_flag(rows.collect())
    changes = plan_column_changes(base.column_types, visible, spec.fields, primary_key=spec.primary_key,
                                  previously_hidden=base.hidden)
    note = None
    if changes:
        note = changes.describe(base.column_types)
        base = _evolve(target, base, changes, note)
    hidden_schema = {c: polars_dtype_for(base.column_types[c]) for c in base.hidden}
    merged, stats = base.replica.merge(with_null_columns(delta, hidden_schema), cursor_field=target.cursor)
    newest = next_watermark(delta, target.cursor, None)
    return _Landed(extracted, raw_schema, base.column_types, newest, merged, stats, base.hidden, changes or None, note,
                   base)


def _extract_delta(target: _SyncTarget, item: ExtractPlanItem) -> ExtractResult:
    """The delta's extract through queryAll, so that soft deletes arrive with ``IsDeleted``; an object that refuses
    queryAll is read with query instead, for the rest of the sync too, and the sync says once that its deletions
    reach the replica only when the counts disagree (reconciliation by Id), never through the delta."""
    def extract() -> ExtractResult:
        return extract_object(item, run_id=target.run_id, connection=target.conn, options=target.delta_options,
                              data_root=target.data_root, bulk_threshold_rows=target.spec.bulk_threshold_rows)

    try:
        return extract()
    except QueryAllRefused as refused:
        target.learned.query_all_refused = True
        log_event("sync_query_all_refused", level=30, object=target.object_name, run_id=target.run_id,
                  reason=" ".join(str(refused).split()),
                  action="read with query: deletions are not in the delta; the replica drops deleted records when "
                         "the counts disagree (reconciliation by Id), or at the periodic check")
        return extract()


def _side_query_api(spec: ObjectSpec, rows: int) -> ApiChoice:
    """The API of a query beside the delta (a narrow pull, the live Ids): the registry's, or for ``auto`` Bulk 2.0
    from ``bulk_threshold_rows`` rows, known from the replica or the count without a COUNT() of its own."""
    if spec.api != "auto":
        return spec.api
    return "bulk2" if rows >= spec.bulk_threshold_rows else "rest"


def _narrow_pull(target: _SyncTarget, columns: tuple[str, ...], replica_rows: int) -> pl.LazyFrame:
    """``Id`` + ``columns`` of every live record: one query, over Bulk 2.0 when the replica is big (``auto``)."""
    spec, name = target.spec, target.object_name
    wanted = (spec.primary_key, *columns)
    api = _side_query_api(spec, replica_rows)
    item = ExtractPlanItem(name, build_soql(name, wanted), wanted, api, True, cursor=target.cursor)
    # a page of a few columns is a fraction of a full row's size: fewer, bigger Bulk result pages, fewer requests
    page = min(NARROW_PAGE_MAX, target.options.bulk_page_size * max(1, len(spec.fields) // len(wanted)))
    return _side_query(target, item, replace(target.options, bulk_page_size=page,
                                             expected_rows=replica_rows))


def _with_deleted_flag(delta: FrameT) -> FrameT:
    """An object without IsDeleted has no soft deletes: every delta record is live (deletes are found by
    reconciliation)."""
    has_flag = DELETED_FLAG in delta.collect_schema().names()
    return delta if has_flag else delta.with_columns(pl.lit(False).alias(DELETED_FLAG))


def _evolve(target: _SyncTarget, base: _Resumed, changes: ColumnChanges, note: str) -> _Resumed:
    """The replica with the registry's and describe's columns: dropped, kept hidden, or filled for every live record
    by one narrow pull (``Id`` + the new or retyped columns; over Bulk 2.0 for a big object), not a backfill. The
    base is rewritten streaming, range by range for a big one (``evolve_replica``), never held whole."""
    name = target.object_name
    fill = _narrow_pull(target, changes.to_fill, base.replica.rows) if changes.to_fill else None
    types = dict(changes.types)
    replica = evolve_replica(base.replica, {c: polars_dtype_for(t) for c, t in types.items()}, fill,
                             run_id=target.run_id, column_types=types, scratch=target.scratch)
    pulled = fill.select(pl.len()).collect().item() if fill is not None else 0
    log_event("sync_columns_changed", level=30, object=name, run_id=target.run_id, changes=note,
              action=(f"filled {', '.join(changes.to_fill)} for {pulled} live records by one narrow query"
                      if fill is not None else "replica columns changed, no records fetched"))
    return _Resumed(replica, types, changes.hidden)


# ------------------------------------------------------------------------------------- the replica at rest


def _recorded_types(state: SyncState, paths: SyncPaths) -> dict[str, str] | None:
    """Column -> Salesforce type the state says the replica was written with (version 1: the sidecar's)."""
    types = state.column_types
    if types is None:
        try:
            types = {c.name: c.type for c in read_raw_schema(paths.replica_schema).columns}
        except (OSError, ValueError):
            return None
    columns = state.columns
    return {c: types[c] for c in columns} if columns and all(c in types for c in columns) else None


def _replica_problem(stored: StoredReplica, types: dict[str, str] | None, rows: int | None,
                     primary_key: str, base: Path) -> str | None:
    """Why this replica cannot be resumed, or None, given the column types and rows it was written with: the
    files' schemas and row counts against their stamps (the base's keys: in the merge, ``DamagedBase``)."""
    if types is None:
        return "neither the replica nor the state records its columns and types"
    try:
        expected = {c: polars_dtype_for(t) for c, t in types.items()}
    except ValueError as err:
        return str(err)
    base_rows = stored.base_stamp.rows if stored.overlay is not None and stored.base_stamp else rows
    problem = find_replica_mismatch(stored.base_schema, stored.base_rows, expected=expected, expected_rows=base_rows)
    if problem is None and stored.overlay is not None:
        problem = _overlay_problem(stored, expected, rows, primary_key, base)
    return problem  # the base's keys are checked in the merge's own read of them (Replica.merge)


def _overlay_problem(stored: StoredReplica, expected: dict[str, pl.DataType], rows: int | None, primary_key: str,
                     base: Path) -> str | None:
    """Why the overlay does not match its stamp (columns, the live records it makes, a repeated key), or None."""
    assert stored.overlay is not None
    live = open_replica(base, stored, primary_key=primary_key, schema=expected).rows
    overlay = stored.overlay.drop(FLAGS)
    problem = find_replica_mismatch(overlay.schema, live, expected=expected, expected_rows=rows)
    written = stored.overlay_stamp.overlay_rows if stored.overlay_stamp else None
    if problem is None and overlay.height != written:
        problem = f"{overlay.height} rows, its stamp recorded {written}"
    if problem is None and overlay.get_column(primary_key).n_unique() != overlay.height:
        problem = f"duplicate {primary_key} values"
    return f"the overlay: {problem}" if problem else None


def _resume_watermark(state: SyncState, stamp: ReplicaStamp | None, *, object_name: str,
                      run_id: str) -> datetime | None:
    """The older of the state's and the stamp's watermarks: never later than what the replica's rows are complete to.

    They differ after a crash between the replica and the state writes, a replica restored from a backup, or an
    edited state file; the older one repeats some delta (harmless) and skips nothing.
    """
    if stamp is None:
        return state.watermark
    resume = min(state.watermark, stamp.watermark) if state.watermark and stamp.watermark else None
    if stamp.watermark != state.watermark or stamp.run_id != state.last_run_id:
        log_event("sync_replica_state_disagree", level=30, object=object_name, run_id=run_id,
                  replica_run_id=stamp.run_id, state_run_id=state.last_run_id,
                  replica_watermark=_utc_text(stamp.watermark), state_watermark=_utc_text(state.watermark),
                  resume_from=_utc_text(resume))
    return resume


@dataclass(frozen=True)
class _Start:
    """Where a sync starts: the watermark and replica to resume (both None: backfill)."""

    watermark: datetime | None = None
    resumed: _Resumed | None = None
    backfill_reason: str | None = None  # why there is nothing to resume from (set whenever watermark is None)


def _load_replica(state: SyncState, paths: SyncPaths, spec: ObjectSpec, *, object_name: str, run_id: str) -> _Start:
    """The watermark and replica to resume from; an empty ``_Start`` means rebuild, logged with the reason.

    The replica is never written back as it was found: a missing column would fail every run, a changed dtype
    would be merged into and break Phase 1. Its rows are not read here: only its files' metadata and the overlay
    (the base's keys are checked where the merge reads them).
    """
    try:
        stored = read_stored(paths.replica)
        # the replica's own stamp, or (no stamp: an older version wrote it) what the state recorded
        stamp = stored.stamp
        types = stamp.column_types if stamp else _recorded_types(state, paths)
        rows = stamp.rows if stamp else state.replica_rows
        problem = _replica_problem(stored, types, rows, spec.primary_key, paths.replica)
    except Exception as err:  # noqa: BLE001 - any unreadable replica means the same thing: rebuild it
        log_event("sync_replica_corrupt", level=30, object=object_name, run_id=run_id, file=str(paths.replica),
                  error=type(err).__name__, action="full backfill")
        return _Start(backfill_reason=f"the replica file is unreadable ({type(err).__name__})")
    if problem is not None:
        log_event("sync_replica_mismatch", level=30, object=object_name, run_id=run_id, file=str(paths.replica),
                  reason=problem, action="full backfill (the replica is rebuilt, never written back)")
        return _Start(backfill_reason=f"the replica does not match its stamp ({problem})")
    watermark = _resume_watermark(state, stamp, object_name=object_name, run_id=run_id)
    if not watermark or types is None:
        return _Start(backfill_reason="no usable watermark")
    hidden = tuple(c for c in state.hidden_columns if c in types)
    replica = open_replica(paths.replica, stored, primary_key=spec.primary_key,
                           schema={c: polars_dtype_for(t) for c, t in types.items()})
    return _Start(watermark, _Resumed(replica, types, hidden))


def _backfill_reason(state: SyncState | None, paths: SyncPaths, target: _SyncTarget, source: str,
                     full_refresh: bool) -> str | None:
    """Why this sync cannot resume from the saved state (None: it can, if the replica checks out)."""
    if full_refresh:
        return "full_refresh was asked for"
    if state is None:
        return ("the sync state file is unreadable (see sync_state_corrupt)" if paths.state.is_file()
                else "first run: no sync state yet")
    if state.source not in (source, target.conn.legacy_org_key):  # another org's replica is not resumable
        return f"the state is from another source ({state.source}; this run reads {source})"
    spec = target.spec
    for role, column in (("primary key", spec.primary_key), ("cursor field", target.cursor)):
        if column not in state.columns:  # other registry changes are applied to the replica (_evolve)
            return f"the registry's {role} {column} is not a column of the replica"
    if not paths.replica.is_file():
        return "the replica file is missing"
    if state.watermark is None:
        return "the state has no watermark"
    return None


def _starting_point(state: SyncState | None, paths: SyncPaths, target: _SyncTarget, source: str,
                    full_refresh: bool) -> _Start:
    """Where to resume, or an empty ``_Start`` for a backfill (first run, new org, changed fields, forced, or a
    replica that cannot be trusted)."""
    reason = _backfill_reason(state, paths, target, source, full_refresh)
    if reason is not None or state is None:
        return _Start(backfill_reason=reason)
    return _load_replica(state, paths, target.spec, object_name=target.object_name, run_id=target.run_id)


def _write_replica(paths: SyncPaths, merged: Replica, landed: _Landed, run_id: str, mode: str,
                   watermark: datetime | None) -> None:
    """The replica (its overlay, or a new base; stamped), then its sidecar: a sidecar never describes a replica that
    is not in place yet."""
    rows = merged.rows
    write_replica(paths.replica, merged, ReplicaStamp(run_id, rows, watermark, landed.column_types))
    schema = landed.raw_schema
    write_raw_schema(paths.replica_schema, RawSchema(
        object=schema.object, columns=tuple(RawColumn(c, t) for c, t in landed.column_types.items()),
        row_count=rows, api_path=landed.extracted.api_path, source=landed.extracted.source,
        soql=build_soql(schema.object, landed.columns), run_id=run_id, extracted_at=schema.extracted_at,
        extra={"replica": True, "mode": mode}))


# ------------------------------------------------------------------------------------------ reconciliation


@dataclass(frozen=True)
class OrgCount:
    """``SELECT COUNT()`` of live records (created before ``created_before`` when set) and the org's clock."""

    live: int
    created_before: datetime | None
    org_now: datetime | None
    clock_offset_seconds: float  # org_now minus our clock when the answer came (0 when the org sent no Date)


def _count_live(call: RequestRunner, object_name: str, created_before: datetime | None,
                window_field: str, floor_seconds: float) -> OrgCount:
    """One COUNT() request; its HTTP ``Date`` header is the org's clock, at no extra API cost. A COUNT() that times
    out (a big object) is summed over windows of ``window_field`` (CreatedDate when the object has it: it never
    moves, so no record is counted in two windows)."""
    soql = f"SELECT COUNT() FROM {object_name}"
    if created_before is not None:
        soql += f" WHERE {CREATED_FIELD} < {soql_datetime(created_before)}"

    def count(query: str) -> tuple[int, Any]:
        response = call(lambda: call.conn.request("GET", "query/", params={"q": query}), "the row count",
                        split_timeouts=True)
        return int(response.json()["totalSize"]), response

    try:
        live, response = count(soql)
    except QueryTimedOut:
        counts = read_in_windows(lambda low, high: count(window_soql(soql, window_field, low, high)), EARLIEST_CURSOR,
                                 created_before or datetime.now(timezone.utc) + timedelta(days=1),
                                 what=f"{object_name}'s row count", cursor=window_field, floor_seconds=floor_seconds)
        live, response = sum(n for n, _ in counts), counts[-1][1]
    local_now = datetime.now(timezone.utc)
    try:
        org_now = parsedate_to_datetime(response.headers["Date"]).astimezone(timezone.utc)
    except (KeyError, TypeError, ValueError):
        org_now = None
    offset = (org_now - local_now).total_seconds() if org_now else 0.0
    return OrgCount(live, created_before, org_now, offset)


def _count_bound(landed: _Landed, delta_started: datetime, spec: ObjectSpec,
                 clock_offset_seconds: float) -> datetime | None:
    """The creation-time bound for the COUNT() comparison, or None when the replica has no CreatedDate column.

    The delta's start on the org's clock (ours plus the offset measured last run) minus the overlap, floored to a
    second: records created after it (inserts racing the delta query) are left out of both counts, so they can
    neither fake nor hide a hard delete.
    """
    if CREATED_FIELD not in landed.columns or landed.merged.schema.get(CREATED_FIELD) != DATETIME_DTYPE:
        return None
    org_start = delta_started + timedelta(seconds=clock_offset_seconds)
    return (org_start - timedelta(minutes=spec.incremental_overlap_minutes)).replace(microsecond=0)


def _side_query(target: _SyncTarget, item: ExtractPlanItem, options: ExtractOptions) -> pl.LazyFrame:
    """A side query (a narrow pull, the live Ids, records by Id) extracted through the normal path, kept as Parquet
    in the sync's scratch folder: a 20M-record pull is read a bucket at a time, never held whole."""
    with tempfile.TemporaryDirectory(prefix="side-", dir=target.scratch) as tmp:
        result = extract_object(item, run_id=target.run_id, connection=target.conn, options=options, data_root=tmp,
                                bulk_threshold_rows=target.spec.bulk_threshold_rows)
        kept = target.scratch / f"{Path(tmp).name}.parquet"
        scan_dataset(Path(result.raw_csv)).sink_parquet(kept, compression="lz4")
    report_progress(target.object_name, "replica", note=f"{result.rows:,} rows read by a side query")
    return pl.scan_parquet(kept)


def _live_keys(target: _SyncTarget, count: OrgCount) -> pl.LazyFrame:
    """Every live Id (and CreatedDate, when the count was bounded by it), over Bulk 2.0 for big objects."""
    spec, name = target.spec, target.object_name
    api = _side_query_api(spec, count.live)
    columns = (spec.primary_key,) + ((CREATED_FIELD,) if count.created_before else ())
    item = ExtractPlanItem(name, build_soql(name, columns), columns, api, True, cursor=target.cursor)
    return _side_query(target, item, target.options)


def _records_by_id(target: _SyncTarget, columns: list[str], ids: list[str]) -> pl.DataFrame | None:
    """The given columns (plus IsDeleted) of the given records, a few hundred Ids per REST query."""
    wanted = [*columns, DELETED_FLAG] if target.has_deleted_flag and DELETED_FLAG not in columns else list(columns)
    frames = []
    for start in range(0, len(ids), RECONCILE_FETCH_BATCH):
        batch = ", ".join(f"'{i}'" for i in ids[start:start + RECONCILE_FETCH_BATCH])
        soql = f"{build_soql(target.object_name, wanted)} WHERE {target.spec.primary_key} IN ({batch})"
        item = ExtractPlanItem(target.object_name, soql, tuple(wanted), "rest", True)
        frames.append(_side_query(target, item, target.delta_options).collect())  # queryAll unless refused
    return pl.concat(frames, how="vertical") if frames else None


@dataclass(frozen=True)
class Reconciled:
    """The replica after comparing Ids with the org, what that changed, or that a backfill is the cheaper fix."""

    replica: Replica
    hard_deletes: int
    recovered: int
    needs_backfill: bool = False


def _reconcile_ids(target: _SyncTarget, landed: _Landed, *, count: OrgCount, reason: str) -> Reconciled:
    """Compare the org's Ids with the replica's: drop the vanished, fetch and merge the missing."""
    log = {"object": target.object_name, "run_id": target.run_id, "reason": reason}
    vanished, missing = landed.merged.compare_keys(_live_keys(target, count), created_field=CREATED_FIELD,
                                                   created_before=count.created_before, scratch=target.scratch)
    kept = landed.merged.remove(vanished)
    limit = max(RECONCILE_FETCH_MIN, int(count.live * RECONCILE_FETCH_SHARE))
    if len(missing) > limit:
        log_event("sync_reconciled", level=30, **log, live_rows=count.live, missing=len(missing),
                  action=f"full backfill (more than {limit} records to fetch by Id)")
        return Reconciled(kept, vanished.len(), 0, needs_backfill=True)
    recovered = 0
    fetched = _records_by_id(target, [c for c in landed.columns if c not in landed.hidden], missing)
    if fetched is not None and fetched.height:
        fetched = with_null_columns(fetched, {c: kept.schema[c] for c in landed.hidden})
        kept, stats = kept.merge(_with_deleted_flag(fetched), cursor_field=target.cursor)
        recovered = stats.inserts
    # recovered records are ones every delta missed: worth a warning; hard deletes are routine
    log_event("sync_reconciled", level=30 if recovered else 20, **log, live_rows=count.live,
              replica_rows=kept.rows, hard_deletes=vanished.len(), recovered=recovered)
    return Reconciled(kept, vanished.len(), recovered)


def _reconcile_reason(count: OrgCount, merged: Replica, *, due: bool, forced: str | None) -> str | None:
    """Why the Ids must be compared this run, or None: the counts agree and no periodic check is due.

    Without a creation bound, more records in the org than in the replica is what inserts racing the delta look
    like, so only fewer (hard deletes) triggers; the periodic check finds records committed behind the watermark.
    """
    if forced:
        return forced
    if count.created_before is not None:
        expected = merged.count_created_before(CREATED_FIELD, count.created_before)
        if count.live != expected:
            return f"count differs: org {count.live}, replica {expected} (created before {count.created_before})"
    elif count.live < merged.rows:
        return f"the org has fewer records ({count.live}) than the replica ({merged.rows})"
    return "periodic check (reconcile_every_runs)" if due else None


# ------------------------------------------------------------------------------------------ one object


@dataclass(frozen=True)
class _Outcome:
    """What one sync ends with, before it is saved."""

    landed: _Landed
    replica: Replica
    watermark: datetime | None  # the watermark the delta started from (None: backfill)
    hard_deletes: int = 0
    recovered: int = 0
    reconciled: bool = False
    refreshed: int = 0  # formula / relationship values the refresh changed


def _reset_future_watermark(target: _SyncTarget, count: OrgCount, watermark: datetime | None,
                            landed: _Landed) -> tuple[datetime | None, _Landed, str | None]:
    """A watermark later than the org's clock (a damaged or foreign state) gives empty deltas forever: reset it to
    the newest change the replica holds and take the delta again. Returns (watermark, landed, forced reason)."""
    if count.org_now is None or not is_watermark_ahead(watermark, count.org_now) or landed.base is None:
        return watermark, landed, None
    reset_to = fallback_watermark(landed.base.replica.scan(), target.cursor, count.org_now)
    log_event("sync_watermark_ahead", level=30, object=target.object_name, run_id=target.run_id,
              watermark=_utc_text(watermark), org_now=_utc_text(count.org_now), reset_to=_utc_text(reset_to),
              action="delta again from the reset point, then Id-level reconciliation" if reset_to else "backfill")
    landed = _land(target, reset_to, landed.base)
    # after a backfill there is nothing to reconcile; after a reset delta the Ids tell what else was missed
    return reset_to, landed, "the saved watermark was ahead of the org's clock" if reset_to else None


def _reconcile_if_needed(target: _SyncTarget, count: OrgCount, landed: _Landed, watermark: datetime | None, *,
                         due: bool, forced: str | None) -> _Outcome:
    """Compare Ids with the org when the counts disagree, a check is due or forced; back-fill when that is cheaper."""
    reason = _reconcile_reason(count, landed.merged, due=due, forced=forced)
    if reason is None:
        return _Outcome(landed, landed.merged, watermark)
    fixed = _reconcile_ids(target, landed, count=count, reason=reason)
    if fixed.needs_backfill:
        backfill = _land(target, None, None)
        return _Outcome(backfill, backfill.merged, None, reconciled=True)
    return _Outcome(landed, fixed.replica, watermark, fixed.hard_deletes, fixed.recovered, reconciled=True)


def _refresh_columns(target: _SyncTarget, landed: _Landed) -> tuple[str, ...]:
    """The replica's columns whose values change while their record's cursor stays: formula fields (``calculated``
    in describe) and fields read through a relationship (``Account.Name``: the parent's change moves the parent's
    cursor, not this record's)."""
    fields = describe_object(target.conn, target.object_name, target.options, target.run_id)["fields"]
    calculated = {f["name"] for f in fields if f.get("calculated")}
    return tuple(c for c in landed.columns if c not in landed.hidden and (c in calculated or "." in c))


def _refresh_formulas(target: _SyncTarget, outcome: _Outcome, *, due: bool) -> tuple[_Outcome, bool]:
    """Every ``formula_refresh_every_runs`` incremental runs, re-read the formula and relationship columns of every
    record (one narrow query) and count the values that changed. Returns the outcome and whether it ran."""
    if not due or outcome.watermark is None:
        return outcome, outcome.watermark is None  # a backfill has just read them all
    columns = _refresh_columns(target, outcome.landed)
    if not columns:
        return outcome, True
    try:
        fill = _narrow_pull(target, columns, outcome.replica.rows)
    except PipelineError as err:  # a refresh only freshens values: the delta is saved, the next run tries again
        log_event("sync_formulas_refresh_failed", level=30, object=target.object_name, run_id=target.run_id,
                  columns=",".join(columns), error=" ".join(str(err).split()),
                  action="the delta is saved; the next run retries")
        return outcome, False
    refreshed, changed = outcome.replica.refresh(fill, scratch=target.scratch)
    log_event("sync_formulas_refreshed", object=target.object_name, run_id=target.run_id, columns=",".join(columns),
              records=fill.select(pl.len()).collect().item(), changed_values=changed)
    return replace(outcome, replica=refreshed, refreshed=changed), True


def _save(paths: SyncPaths, target: _SyncTarget, outcome: _Outcome, *, source: str, runs_since_reconcile: int,
          runs_since_refresh: int, count: OrgCount) -> tuple[SyncMode, MergeStats]:
    """Replica first, then the state: the watermark moves only once the replica is in place, and only by what the
    delta saw (records fetched by Id never move it)."""
    landed, merged = outcome.landed, outcome.replica
    mode: SyncMode = "incremental" if outcome.watermark else "backfill"
    new_watermark = later_watermark(landed.newest, outcome.watermark)  # an empty delta keeps the watermark
    _write_replica(paths, merged, landed, target.run_id, mode, new_watermark)
    write_sync_state(paths.state, SyncState(
        object=target.object_name, source=source, fields=tuple(target.spec.fields), columns=tuple(landed.columns),
        watermark=new_watermark, column_types=landed.column_types, hidden_columns=landed.hidden,
        runs_since_reconcile=0 if outcome.reconciled or not outcome.watermark else runs_since_reconcile,
        replica_rows=merged.rows,
        clock_offset_seconds=round(count.clock_offset_seconds, 3), last_run_id=target.run_id,
        updated_at=now_utc_seconds(), runs_since_formula_refresh=runs_since_refresh))
    stats = replace(landed.stats, hard_deletes=outcome.hard_deletes, recovered=outcome.recovered,
                    replica_rows=merged.rows, refreshed=outcome.refreshed,
                    deletes_untracked=target.learned.query_all_refused)
    return mode, stats


SyncMode = Literal["backfill", "incremental"]


@dataclass(frozen=True)
class SyncResult:
    """One sync: the delta's (or backfill's) extract, how it ran, the replica it left and the merge counts."""

    extracted: ExtractResult
    mode: SyncMode
    dataset: str  # the replica: what Phase 1 and QA read
    sync: MergeStats
    schema_changes: str | None = None  # how the replica's columns changed this run, e.g. ``+Foo__c, -Bar__c``

    def as_dict(self) -> dict[str, Any]:
        """The extract's dict plus ``mode``, ``dataset``, ``sync`` and ``schema_changes`` (what
        ``sync_salesforce_object`` returns)."""
        return {**self.extracted.as_dict(), "mode": self.mode, "dataset": self.dataset, "sync": self.sync.as_dict(),
                "schema_changes": self.schema_changes}


def _rebuilt(target: _SyncTarget, err: DamagedBase) -> _Landed:
    """A base found damaged (by the merge or a compaction) is never merged into: the replica is rebuilt."""
    log_event("sync_replica_mismatch", level=30, object=target.object_name, run_id=target.run_id, reason=str(err),
              action="full backfill (the replica is rebuilt, never written back)")
    return _land(target, None, None)


def _sync_target(object_name: str, conn: SalesforceConnection, options: ExtractOptions, run_id: str,
                 data_root: str | os.PathLike[str] | None, api: ApiChoice | None, scratch: Path) -> _SyncTarget:
    """The object's entry resolved on this run's describe (``"*"``, compound fields), its cursor, and whether the
    object has IsDeleted and CreatedDate."""
    spec = resolve_fields(SALESFORCE_OBJECTS[object_name], conn, object_name, options, run_id)
    if spec.cursor is None:
        msg = (f"{object_name}: incremental sync needs a cursor; list one of {', '.join(CURSOR_CANDIDATES)} in its "
               "fields in configs/salesforce_objects.py, or set sync_mode 'full'")
        raise ConfigError(msg)
    described = {f["name"] for f in describe_object(conn, object_name, options, run_id)["fields"]}
    return _SyncTarget(object_name, spec, conn, options, run_id, data_root, api, spec.cursor, scratch,
                       has_deleted_flag=DELETED_FLAG in described, has_created_date=CREATED_FIELD in described)


def sync_object(
    object_name: str,
    *,
    run_id: str,
    full_refresh: bool = False,
    connection: SalesforceConnection | None = None,
    options: ExtractOptions | None = None,
    data_root: str | os.PathLike[str] | None = None,
    api: ApiChoice | None = None,
) -> SyncResult:
    """One incremental run for ``object_name``: the delta's extract, the mode, the merge counts and the replica."""
    conn = connection or get_connection()
    options = replace(options or ExtractOptions(), include_deleted=False)  # delta_options alone turns it on
    paths = build_sync_paths(object_name, data_root=data_root)
    started = time.monotonic()
    source = conn.org_key
    with tempfile.TemporaryDirectory(prefix="sf-sync-") as scratch, \
            exclusive_lock(paths.state.with_suffix(".lock"), what=f"sync of {object_name}", object=object_name,
                           run_id=run_id):
        target = _sync_target(object_name, conn, options, run_id, data_root, api, Path(scratch))
        spec = target.spec
        for kept in (paths.state, paths.replica, overlay_path_for(paths.replica), paths.replica_schema):
            storage.fetch(kept)  # an object-store data root: what the last run, on whichever machine, published
        state = read_sync_state(paths.state, object_name)
        start = _starting_point(state, paths, target, source, full_refresh)
        watermark = start.watermark
        if watermark is None:  # routine on a first run or when asked for; otherwise worth a look
            routine = state is None and not paths.state.is_file() or full_refresh
            log_event("sync_backfill", level=logging.INFO if routine else logging.WARNING, object=object_name,
                      run_id=run_id, reason=start.backfill_reason)
        delta_started = datetime.now(timezone.utc)
        try:
            landed = _land(target, watermark, start.resumed)
        except DamagedBase as err:  # found in the delta's records of the base
            watermark, landed = None, _rebuilt(target, err)
        schema_changes = landed.change_note
        report_progress(object_name, "replica", rows=landed.merged.rows, note="merging the delta")
        offset = state.clock_offset_seconds if state else 0.0
        count = _count_live(RequestRunner(conn, object_name, target.options, run_id), object_name,
                            _count_bound(landed, delta_started, spec, offset),
                            CREATED_FIELD if target.has_created_date else target.cursor,
                            target.options.query_window_floor_seconds)
        watermark, landed, forced = _reset_future_watermark(target, count, watermark, landed)
        runs_since = state.runs_since_reconcile + 1 if watermark and state else 0
        outcome = _reconcile_if_needed(target, count, landed, watermark, due=runs_since >= spec.reconcile_every_runs,
                                       forced=forced)
        since_refresh = (state.runs_since_formula_refresh + 1) if state else 0
        every = spec.formula_refresh_every_runs
        outcome, refreshed = _refresh_formulas(target, outcome, due=every > 0 and since_refresh >= every)
        try:
            mode, stats = _save(paths, target, outcome, source=source, runs_since_reconcile=runs_since,
                                runs_since_refresh=0 if refreshed else since_refresh, count=count)
        except DamagedBase as err:  # found by a compaction, which checks every key of the base it writes
            landed = _rebuilt(target, err)
            outcome, schema_changes = _Outcome(landed, landed.merged, None), landed.change_note
            mode, stats = _save(paths, target, outcome, source=source, runs_since_reconcile=0, runs_since_refresh=0,
                                count=count)
    report_progress(object_name, "replica", rows=stats.replica_rows, status="done", note=mode)
    log_event("sync_done", object=object_name, run_id=run_id, mode=mode, seconds=round(time.monotonic() - started, 3),
              schema_changes=schema_changes, **stats.as_dict())
    return SyncResult(outcome.landed.extracted, mode, str(paths.replica), stats, schema_changes)


@task(task_run_name="sync-{object_name}", **LANDING_TASK_RETRIES)
def sync_salesforce_object(object_name: str, run_id: str, full_refresh: bool = False, data_root: str | None = None,
                           api: str | None = None, drop_missing_fields: bool = False) -> dict[str, Any]:
    """Prefect task: incremental sync of one object (delta CSV in data/raw, replica in data/replica).
    The flows land objects with ``tasks.land.land_object`` instead; this stays for direct use."""
    return sync_object(object_name, run_id=run_id, full_refresh=full_refresh, data_root=data_root,
                       api=api_choice(api), options=ExtractOptions(drop_missing_fields=drop_missing_fields)).as_dict()


__all__ = ["MergeStats", "SyncResult", "SyncState", "read_sync_state", "sync_object", "sync_salesforce_object",
           "write_sync_state"]
