"""Where every file of the pipeline lives. Pure builders: names in, Paths out, no file-system side effects.

Layout under the data root (``./data`` unless ``SF_PIPELINE_DATA_DIR`` is set)::

    raw/<object>_YYYYMMDD-HHMMSS_<RUNID>.csv            (+ .schema.json sidecar beside it)
    processed/<object>/summary.csv                      (+ summary.schema.json: its column types)
    processed/qa/<object>/{dedup.csv, profile.json, schema_report.json, snapshot.parquet, rowcount.txt}
    output/<object>/summary.json
    replica/<object>.parquet, state/<object>.json          (incremental objects)
    runs/<timestamp>_<RUNID>.json, reports/<timestamp>_<RUNID>.html (+ latest.html)
    runs/parts/<RUNID>/<object>.json                     (a fan-out's object runs, until it merged them)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from utils import storage

DATA_DIR_ENV = "SF_PIPELINE_DATA_DIR"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9]+$")
_OBJECT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RAW_NAME_RE = re.compile(r"^(?P<object>[A-Za-z][A-Za-z0-9_]*)_(?P<ts>\d{8}-\d{6})_(?P<run_id>[A-Za-z0-9]+)\.csv$")


@dataclass(frozen=True)
class ObjectPaths:
    """The files one run writes for one object: its raw extract and Phase 1's summary outputs."""

    raw_csv: Path
    raw_schema: Path
    processed_summary: Path
    output_json: Path


@dataclass(frozen=True)
class QaPaths:
    """The files the QA branch writes for one object (stable names: each run replaces them)."""

    directory: Path
    dedup: Path
    profile: Path
    schema_report: Path
    snapshot: Path
    rowcount: Path

    @property
    def rewritable(self) -> tuple[Path, ...]:
        """The outputs each QA run rewrites from the dataset it checks: every file here but ``rowcount.txt``
        (a history across runs). Derived, so an output added later is also removed when a run leaves it stale."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in _QC_NOT_REWRITTEN)


_QC_NOT_REWRITTEN = frozenset({"directory", "rowcount"})


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """Explicit argument, else ``$SF_PIPELINE_DATA_DIR``, else ``./data`` (absolute, not created). An object-store
    URL (``s3://bucket/prefix``, ``gs://``, ``az://``) resolves to its local scratch mirror (utils/storage.py)."""
    from utils.settings import setting  # the environment, then .env

    chosen = data_root if data_root is not None else setting(DATA_DIR_ENV) or "data"
    if storage.is_remote(chosen):
        return storage.mirror_root(os.fspath(chosen))
    return storage.local_path_of(chosen).expanduser().absolute()


def _check_object(object_name: str) -> None:
    if not _OBJECT_RE.match(object_name):
        msg = f"invalid Salesforce object name {object_name!r}: use the API name, e.g. 'Account' or 'Invoice__c'"
        raise ValueError(msg)


def format_timestamp(moment: datetime) -> str:
    """``YYYYMMDD-HHMMSS`` in UTC; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")


def raw_csv_name(object_name: str, run_id: str, moment: datetime) -> str:
    _check_object(object_name)
    if not _RUN_ID_RE.match(run_id):
        msg = f"invalid run id {run_id!r}: letters and digits only"
        raise ValueError(msg)
    return f"{object_name}_{format_timestamp(moment)}_{run_id}.csv"


def schema_sidecar_for(data_file: Path) -> Path:
    """The schema file beside a data file: a raw CSV or replica (describe-derived), or a summary CSV (its dtypes)."""
    data_file = Path(data_file)
    return data_file.with_name(data_file.name[: -len(data_file.suffix)] + ".schema.json")


@dataclass(frozen=True)
class SyncPaths:
    """Incremental sync: the local replica of an object and its watermark state."""

    replica: Path
    replica_schema: Path
    state: Path


def build_sync_paths(object_name: str, *, data_root: str | os.PathLike[str] | None = None) -> SyncPaths:
    _check_object(object_name)
    root = resolve_data_root(data_root)
    replica = root / "replica" / f"{object_name}.parquet"
    return SyncPaths(replica=replica, replica_schema=schema_sidecar_for(replica),
                     state=root / "state" / f"{object_name}.json")


def build_paths(
    object_name: str,
    run_id: str,
    *,
    moment: datetime | None = None,
    data_root: str | os.PathLike[str] | None = None,
) -> ObjectPaths:
    """Paths of one object's raw extract, summary CSV and JSON output for run ``run_id``."""
    root = resolve_data_root(data_root)
    raw = root / "raw" / raw_csv_name(object_name, run_id, moment or datetime.now(timezone.utc))
    summary = build_summary_paths(object_name, data_root=root)
    return ObjectPaths(raw_csv=raw, raw_schema=schema_sidecar_for(raw), processed_summary=summary.summary_csv,
                       output_json=summary.output_json)


class SummaryPaths(NamedTuple):
    """Phase 1's files for one object (stable names: each run replaces them). A tuple so ``[0]``/``[1]``
    (summary CSV, output JSON) keep working; prefer the names."""

    summary_csv: Path
    output_json: Path
    summary_schema: Path  # column -> dtype of summary.csv, read by the load

    @property
    def process_outputs(self) -> tuple[Path, ...]:
        """What processing writes: stale once processing of a new dataset fails."""
        return self.summary_csv, self.summary_schema

    @property
    def load_outputs(self) -> tuple[Path, ...]:
        """What the load writes: stale once processing or the load fails."""
        return (self.output_json,)


def build_summary_paths(object_name: str, *, data_root: str | os.PathLike[str] | None = None) -> SummaryPaths:
    """Summary CSV, its schema sidecar and the output JSON of an object: they do not depend on the run."""
    _check_object(object_name)
    root = resolve_data_root(data_root)
    summary_csv = root / "processed" / object_name / "summary.csv"
    return SummaryPaths(summary_csv=summary_csv, output_json=root / "output" / object_name / "summary.json",
                        summary_schema=schema_sidecar_for(summary_csv))


def build_run_summary_path(started_at: str, run_id: str, *,
                           data_root: str | os.PathLike[str] | None = None) -> Path:
    """``runs/<started_at without colons>_<RUNID>.json``: one run's summary (sorts by time in a listing)."""
    return resolve_data_root(data_root) / "runs" / f"{started_at.replace(':', '')}_{run_id}.json"


def build_run_part_path(run_id: str, object_name: str, *, data_root: str | os.PathLike[str] | None = None) -> Path:
    """``runs/parts/<RUNID>/<object>.json``: one object's part of a fan-out run, written by its ``sf-etl-object``
    flow run (on any worker) for the fan-out to merge into the run's summary."""
    _check_object(object_name)
    if not _RUN_ID_RE.match(run_id):
        msg = f"invalid run id {run_id!r}: letters and digits only"
        raise ValueError(msg)
    return resolve_data_root(data_root) / "runs" / "parts" / run_id / f"{object_name}.json"


def build_qa_paths(object_name: str, *, data_root: str | os.PathLike[str] | None = None) -> QaPaths:
    """Paths of one object's QA reports."""
    _check_object(object_name)
    qa = resolve_data_root(data_root) / "processed" / "qa" / object_name
    return QaPaths(
        directory=qa,
        dedup=qa / "dedup.csv",
        profile=qa / "profile.json",
        schema_report=qa / "schema_report.json",
        snapshot=qa / "snapshot.parquet",
        rowcount=qa / "rowcount.txt",
    )


build_qc_paths = build_qa_paths  # the seed's name (README, user code)


def display_path(path: str | os.PathLike[str] | None, data_root: str | os.PathLike[str] | None = None) -> str:
    """``path`` relative to the data root, as logs and the Prefect UI show it; a path outside stays absolute."""
    if not path:
        return ""
    root = resolve_data_root(data_root)
    mirror = storage.mirror_of(root)
    if mirror is not None and os.fspath(path).startswith(mirror.url + "/"):  # a file's store URL
        return os.fspath(path)[len(mirror.url) + 1:]
    p = Path(path)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


REPORT_NAME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}Z_[A-Za-z0-9]+\.html$")  # a run's report, not latest.html


@dataclass(frozen=True)
class ReportPaths:
    """One run's HTML report, ``latest.html`` beside it (a copy of the newest report), and the lock writers of
    either hold."""

    directory: Path
    report: Path
    latest: Path
    lock: Path


def build_report_paths(started_at: str, run_id: str, *,
                       data_root: str | os.PathLike[str] | None = None) -> ReportPaths:
    """``reports/<started_at without colons>_<RUNID>.html``: named like the run's summary under ``runs/``."""
    root = resolve_data_root(data_root)
    stem = build_run_summary_path(started_at, run_id, data_root=root).stem
    directory = root / "reports"
    return ReportPaths(directory=directory, report=directory / f"{stem}.html", latest=directory / "latest.html",
                       lock=directory / "latest.html.lock")
