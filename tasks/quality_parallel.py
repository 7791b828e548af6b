"""QA I/O around the pure checks: read the raw extract, write the QA reports, and the Prefect task wrappers.

The raw CSV is parsed once: the gate's typed parse streams into ``snapshot.parquet`` (the Parquet snapshot),
and every later check reads that columnar file instead of parsing the CSV again (QA ~2x faster on 1M rows).
Every task returns a plain ``QaReport`` (results + files written) and never raises for a data problem, so a
failed gate or check is a result, not a crashed run. Every file is written through ``utils.atomic``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from configs.salesforce_objects import ObjectSpec, spec_for
from tasks.quality_checks import (
    CheckResult,
    compare_schema,
    completeness_required,
    evaluate_validator,
    find_key_repeats,
    load_validator,
    non_empty,
    profile_frame,
    readable,
    rowcount_drift,
    rowcount_sidecar,
    schema_conformance,
    skipped_result,
    uniqueness_primary_key,
    validator_check_name,
)
from utils import storage
from utils.atomic import atomic_path, write_text_atomic
from utils.errors import ConfigError
from utils.locks import exclusive_lock
from utils.logs import log_event
from utils.paths import QaPaths, build_qa_paths, display_path, schema_sidecar_for
from utils.raw_files import run_id_of
from utils.raw_frame import DATE_FORMAT, DATETIME_FORMAT, scan_dataset
from utils.raw_schema import RawSchema, read_raw_schema
from utils.replica_layers import scan_replica
from utils.timefmt import utc_seconds

ROWCOUNT_HISTORY_LIMIT = 500  # lines kept in rowcount.txt; enough for months of 15-minute runs


@dataclass(frozen=True)
class QaReport:
    """What one QA task produced: its check results and the files it wrote."""

    results: tuple[CheckResult, ...]
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateOutcome:
    """The gates' verdict on one raw extract; ``blocked_reason`` set means downstream checks are skipped."""

    object_name: str
    raw_csv: str | None
    report: QaReport
    row_count: int | None = None
    blocked_reason: str | None = None
    typed_rows: str | None = None  # the Parquet snapshot the gate wrote; set whenever the gate passed

    def opened(self) -> OpenGate:
        """What an unblocked gate always has; the checks after the gate only read it when it did not block."""
        if self.blocked_reason is not None or self.raw_csv is None or self.row_count is None \
                or self.typed_rows is None:
            msg = f"QA gate of {self.object_name} blocked or incomplete: {self.blocked_reason or self}"
            raise RuntimeError(msg)
        return OpenGate(self.raw_csv, self.row_count, self.typed_rows)


@dataclass(frozen=True)
class OpenGate:
    """An unblocked gate: the dataset it read, its row count and the typed Parquet snapshot it wrote."""

    dataset: str
    row_count: int
    typed_rows: str


def typed_rows_of(gate: GateOutcome) -> pl.LazyFrame:
    """The gate's typed Parquet copy of the extract, which the checks after the gate read."""
    return pl.scan_parquet(gate.opened().typed_rows)


# ------------------------------------------------------------------------------------------------ gates


def read_dataset_columns(dataset: Path) -> list[str]:
    """The header row of a raw CSV (empty list for an empty file); the record columns of a replica."""
    if Path(dataset).suffix == ".parquet":
        return scan_replica(Path(dataset)).collect_schema().names()
    # utf-8-sig: a byte-order mark (Excel, some exports) is not part of the first column's name; Polars agrees
    with open(dataset, newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def _snapshot_and_count(raw_csv: Path, schema: RawSchema, snapshot: Path) -> tuple[int | None, list[str], str | None]:
    """Parse every value with its described type into ``snapshot`` (zstd Parquet) and count the rows.

    Returns (rows, [], None), or on a parse failure (None, the columns that do not parse, the reader's error).
    A failed parse writes no snapshot and the checks after the gate are skipped; the QA flow then deletes the
    previous run's snapshot (one of ``QaPaths.rewritable``), so none is left looking current.
    """
    frame = scan_dataset(raw_csv, schema)
    try:
        with atomic_path(snapshot) as tmp:
            frame.sink_parquet(tmp, compression="zstd")
        return int(pl.scan_parquet(snapshot).select(pl.len()).collect().item()), [], None
    except pl.exceptions.PolarsError as err:
        read_error = str(err).splitlines()[0]
    return None, [c for c in schema.column_names if not _column_parses(frame, c)], read_error


def _column_parses(frame: pl.LazyFrame, column: str) -> bool:
    # Projection pushdown reads only this column, which isolates the one that fails.
    try:
        frame.select(pl.col(column).null_count()).collect()
    except pl.exceptions.PolarsError:
        return False
    return True


def inspect_raw_extract(
    object_name: str, raw_csv: str | Path | None, spec: ObjectSpec, qc: QaPaths
) -> GateOutcome:
    """Schema, row-count and non-empty gates; writes ``schema_report.json`` whenever there is a file to inspect,
    and the Parquet snapshot when every value parses."""
    if raw_csv is None:
        reason = f"{object_name}: no raw CSV found; run the extract first"
        result = skipped_result(object_name, "schema_conformance", reason, severity="warning")
        return GateOutcome(object_name, None, QaReport((result,)), blocked_reason=reason)
    raw = Path(raw_csv)
    report: dict[str, Any] = {"object": object_name, "raw_csv": storage.location(raw)}
    try:
        schema = read_raw_schema(schema_sidecar_for(raw))
        header = read_dataset_columns(raw)
    except (OSError, ValueError) as err:
        message = f"{object_name}: cannot read the raw extract: {err}"
        result = CheckResult(object_name, "schema_conformance", False, "error", message=message)
        report.update(error=message, result=result.to_dict())
        write_text_atomic(qc.schema_report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return GateOutcome(object_name, str(raw), QaReport((result,), (str(qc.schema_report),)),
                           blocked_reason=message)
    sidecar = [(c.name, c.type) for c in schema.columns]
    comparison = compare_schema(spec, header=header, sidecar_columns=sidecar)
    row_count, read_error = None, None
    if header == schema.column_names and not comparison["unknown_types"]:
        row_count, bad_columns, read_error = _snapshot_and_count(raw, schema, qc.snapshot)
        comparison["unparseable_columns"] = bad_columns
    results = [schema_conformance(object_name, comparison)]
    if read_error and not comparison["unparseable_columns"]:
        message = f"{object_name}: the raw CSV cannot be read ({read_error}); re-run the extract"
        results = [CheckResult(object_name, "schema_conformance", False, "error", message=message)]
    files = [str(qc.schema_report)]
    if row_count is not None:
        results.append(rowcount_sidecar(object_name, dataset=raw.name, rows=row_count, expected=schema.row_count))
        results.append(non_empty(object_name, row_count))
        results.append(CheckResult(object_name, "snapshot", True, "info", observed={"rows": row_count},
                                   message=f"{object_name}: parquet snapshot written ({row_count} rows)"))
        files.append(str(qc.snapshot))
    report.update(comparison, row_count=row_count, read_error=read_error, results=[r.to_dict() for r in results])
    write_text_atomic(qc.schema_report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    failed = [r for r in results if not r.passed and (r.severity == "error" or r.check == "non_empty")]
    blocked = f"gate failed: {failed[0].message}" if failed else None
    return GateOutcome(object_name, str(raw), QaReport(tuple(results), tuple(files)), row_count=row_count,
                       blocked_reason=blocked, typed_rows=str(qc.snapshot) if row_count is not None else None)


# ------------------------------------------------------------------------------------------ file writers


# Same conventions as the raw extract: every value quoted, null = "", `...000Z` datetimes.
_RAW_CSV_OPTIONS: dict[str, Any] = {"quote_style": "always", "null_value": "", "date_format": DATE_FORMAT,
                                    "datetime_format": DATETIME_FORMAT}
# Rows per slice when dedup.csv leaves rows out: a streaming sink with a filter on the row number held ~1 GB
# (Polars 2.1, 5M-44M rows); a slice of the dataset held in memory is ~200 MB.
DEDUP_SLICE_ROWS = 1_000_000
_SLICE_ROW = "__qa_slice_row"


def write_dedup(object_name: str, frame: pl.LazyFrame, spec: ObjectSpec, qc: QaPaths) -> QaReport:
    """Uniqueness check plus ``dedup.csv``: the latest row per key, in the raw CSV conventions."""
    cursor_field = spec.cursor_in(frame.collect_schema().names())
    repeats = find_key_repeats(frame, primary_key=spec.primary_key, cursor_field=cursor_field)  # once for both
    result = uniqueness_primary_key(object_name, frame, primary_key=spec.primary_key, repeats=repeats)
    with atomic_path(qc.dedup, upload_while_written=True) as tmp:
        if repeats.dropped:
            write_csv_without_rows(frame, repeats.dropped_rows, tmp)
        else:  # nothing to drop: the dataset as it is, streamed
            frame.sink_csv(tmp, check_extension=False, engine="streaming", **_RAW_CSV_OPTIONS)
    return QaReport((result,), (str(qc.dedup),))


def write_csv_without_rows(frame: pl.LazyFrame, dropped_rows: pl.Series, target: Path) -> Path:
    """``frame`` minus the rows numbered ``dropped_rows`` (0-based, as ``deduplicate_latest`` drops them) as one
    CSV in the raw conventions, written slice by slice of ``DEDUP_SLICE_ROWS`` rows."""
    rows = int(frame.select(pl.len()).collect(engine="streaming").item())
    with open(target, "wb") as fh:
        for start in range(0, max(rows, 1), DEDUP_SLICE_ROWS):  # an empty frame still gets its header
            end = start + DEDUP_SLICE_ROWS
            local = (dropped_rows.filter((dropped_rows >= start) & (dropped_rows < end)) - start).implode()
            part = (frame.slice(start, DEDUP_SLICE_ROWS).with_row_index(_SLICE_ROW)
                    .filter(~pl.col(_SLICE_ROW).is_in(local)).drop(_SLICE_ROW).collect(engine="streaming"))
            part.write_csv(fh, include_header=start == 0, **_RAW_CSV_OPTIONS)
    return target


def write_profile(object_name: str, frame: pl.LazyFrame, raw_csv: Path, qc: QaPaths) -> QaReport:
    """``profile.json`` with per-column statistics of ``frame`` (the typed rows of ``raw_csv``)."""
    schema = read_raw_schema(schema_sidecar_for(raw_csv))
    profile = profile_frame(frame, {c.name: c.type for c in schema.columns})
    document = {"object": object_name, "raw_csv": storage.location(raw_csv), **profile}
    write_text_atomic(qc.profile, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    result = CheckResult(object_name, "profile", True, "info", observed={"rows": profile["rows"]},
                         message=f"{object_name}: profiled {len(profile['columns'])} columns, {profile['rows']} rows")
    return QaReport((result,), (str(qc.profile),))


def check_completeness(object_name: str, frame: pl.LazyFrame, spec: ObjectSpec) -> QaReport:
    return QaReport((completeness_required(object_name, frame, required=spec.required,
                                           primary_key=spec.primary_key),))


def run_custom_validator(object_name: str, dotted: str, frame: pl.LazyFrame, spec: ObjectSpec) -> QaReport:
    """Load and run one registry validator; a broken validator is an error result naming it."""
    try:
        validator = load_validator(object_name, dotted)
        result = evaluate_validator(object_name, dotted, validator, frame,
                                    primary_key=spec.primary_key)
    except ConfigError as err:
        result = CheckResult(object_name, validator_check_name(dotted), False, "error", message=str(err))
    except Exception as err:  # noqa: BLE001 - a bug in user code must not hide the other checks' results
        message = f"{object_name}: validator {dotted!r} raised {type(err).__name__}: {err}; fix the validator"
        result = CheckResult(object_name, validator_check_name(dotted), False, "error", message=message)
    return QaReport((result,))


# ------------------------------------------------------------------------------------- rowcount history


@dataclass(frozen=True)
class RowcountEntry:
    recorded_at: str
    run_id: str
    rows: int


_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def parse_rowcount_history(text: str) -> list[RowcountEntry]:
    """Lines ``<UTC timestamp> <run_id> <rows>``; ``#`` comments ignored; anything else raises ValueError."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or not _TIMESTAMP_RE.match(parts[0]) or not parts[2].isdigit():
            msg = f"line {number} is not '<timestamp> <run_id> <rows>': {line[:80]!r}"
            raise ValueError(msg)
        entries.append(RowcountEntry(parts[0], parts[1], int(parts[2])))
    return entries


def read_rowcount_counts(path: Path) -> list[int]:
    """The row counts recorded in ``rowcount.txt``, oldest first; empty when there is none or it is unreadable
    (a corrupt history is reported, and replaced, by the rowcount check)."""
    try:
        storage.fetch(path)
        return [e.rows for e in parse_rowcount_history(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError):
        return []


def format_rowcount_history(object_name: str, entries: list[RowcountEntry]) -> str:
    lines = [f"# row counts of {object_name}'s raw extracts, oldest first: <recorded_at UTC> <run_id> <rows>"]
    lines += [f"{e.recorded_at} {e.run_id} {e.rows}" for e in entries]
    return "\n".join(lines) + "\n"


def update_rowcount_history(
    path: Path, *, object_name: str, run_id: str, rows: int, now: datetime | None = None
) -> tuple[RowcountEntry | None, str]:
    """Append this run's count (replacing an earlier entry of the same run) and return the baseline + a note.

    Read, append, write a temp file, rename, under an exclusive lock: overlapping runs each keep their line.
    """
    with exclusive_lock(path.with_name(f"{path.name}.lock"), what=f"row-count history of {object_name}"):
        note = ""
        storage.fetch(path)  # an object-store data root: the history other runs and machines appended to
        try:
            entries = parse_rowcount_history(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            entries = []
        except (ValueError, UnicodeDecodeError) as err:
            entries, note = [], f"previous {path.name} was corrupt ({err}) and has been replaced"
        run_id = re.sub(r"\s+", "_", run_id) or "unknown"
        others = [e for e in entries if e.run_id != run_id]  # a rerun of the same run compares with the run before
        stamp = utc_seconds(now or datetime.now(timezone.utc))
        history = [*others, RowcountEntry(stamp, run_id, rows)][-ROWCOUNT_HISTORY_LIMIT:]
        write_text_atomic(path, format_rowcount_history(object_name, history))
    return (others[-1] if others else None), note


def record_rowcount(object_name: str, rows: int, run_id: str, spec: ObjectSpec, qc: QaPaths) -> QaReport:
    """Row-count drift against the previous run, recorded in ``rowcount.txt``."""
    previous, note = update_rowcount_history(qc.rowcount, object_name=object_name, run_id=run_id, rows=rows)
    result = rowcount_drift(object_name, current=rows, previous=previous.rows if previous else None,
                            tolerance_pct=spec.rowcount_drift_tolerance_pct, note=note)
    return QaReport((result,), (str(qc.rowcount),))


# -------------------------------------------------------------------------------------- Prefect wrappers



def _skipped(gate: GateOutcome, *checks: str) -> QaReport | None:
    if gate.blocked_reason is None:
        return None
    return QaReport(tuple(skipped_result(gate.object_name, c, gate.blocked_reason) for c in checks))


def logged(report: QaReport, data_root: str | None = None) -> QaReport:
    """``report``, after logging each check's outcome and each file written: on the task's own page in the UI."""
    for r in report.results:
        log_event("qa_check", level=logging.WARNING if r.status.startswith("FAIL") else logging.INFO,
                  object=r.object_name, check=r.check, status=r.status, observed=readable(r.observed) or None,
                  threshold=readable(r.threshold) or None, message=r.message)
    if report.files:
        log_event("qa_files", files=",".join(display_path(f, data_root) for f in report.files))
    return report


@task(task_run_name="qa-gate-{object_name}")
def qa_gate(object_name: str, raw_csv: str | None, data_root: str) -> GateOutcome:
    gate = inspect_raw_extract(object_name, raw_csv, spec_for(object_name),
                               build_qa_paths(object_name, data_root=data_root))
    logged(gate.report, data_root)
    return gate


@task(task_run_name="qa-completeness-{object_name}")
def qa_completeness(object_name: str, gate: GateOutcome) -> QaReport:
    return logged(_skipped(gate, "completeness_required") or check_completeness(
        object_name, typed_rows_of(gate), spec_for(object_name)))


@task(task_run_name="qa-dedup-{object_name}")
def qa_dedup(object_name: str, gate: GateOutcome, data_root: str) -> QaReport:
    return logged(_skipped(gate, "uniqueness_primary_key") or write_dedup(
        object_name, typed_rows_of(gate), spec_for(object_name), build_qa_paths(object_name, data_root=data_root)),
        data_root)


@task(task_run_name="qa-profile-{object_name}")
def qa_profile(object_name: str, gate: GateOutcome, data_root: str) -> QaReport:
    return logged(_skipped(gate, "profile") or write_profile(
        object_name, typed_rows_of(gate), Path(gate.opened().dataset),
        build_qa_paths(object_name, data_root=data_root)), data_root)


@task(task_run_name="qa-rowcount-{object_name}")
def qa_rowcount(object_name: str, gate: GateOutcome, run_id: str | None, data_root: str) -> QaReport:
    return logged(_skipped(gate, "rowcount_drift") or record_rowcount(
        object_name, gate.opened().row_count, run_id or run_id_of(gate.opened().dataset) or "unknown",
        spec_for(object_name), build_qa_paths(object_name, data_root=data_root)), data_root)


@task(task_run_name="qa-validator-{object_name}-{validator}")
def qa_validator(object_name: str, validator: str, gate: GateOutcome) -> QaReport:
    return logged(_skipped(gate, validator_check_name(validator)) or run_custom_validator(
        object_name, validator, typed_rows_of(gate), spec_for(object_name)))
