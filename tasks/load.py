"""Phase 1 load: turn ``processed/<object>/summary.csv`` into ``output/<object>/summary.json`` records.

Types come from ``summary.schema.json`` beside the CSV (written by tasks/process.py), never from inference;
values become JSON only through utils/jsonio.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from tasks.process import read_summary_schema, summary_groups, summary_schema_path_for
from utils.jsonio import write_json_atomic
from utils.logs import log_event
from utils.paths import build_summary_paths, display_path
from utils.raw_frame import parse_temporal
from utils.sf_types import read_dtype


def _read_header(summary_csv: Path) -> list[str]:
    return pl.read_csv(summary_csv, n_rows=0, infer_schema=False).columns


def read_summary_csv(summary_csv: str | os.PathLike[str]) -> pl.DataFrame:
    """The summary with the dtypes of its schema file; a header that disagrees with the schema is an error."""
    summary_csv = Path(summary_csv)
    schema = read_summary_schema(summary_schema_path_for(summary_csv))
    header = _read_header(summary_csv)
    if header != list(schema):
        msg = (f"{summary_csv} has columns {header} but {summary_schema_path_for(summary_csv).name} lists "
               f"{list(schema)}: re-run processing for this object")
        raise ValueError(msg)
    # Temporal columns are read as text and parsed with the exact formats process.py wrote them in.
    read_schema = {c: read_dtype(t) for c, t in schema.items()}
    frame = pl.read_csv(summary_csv, schema=read_schema, null_values=[""], has_header=True, encoding="utf8")
    temporal = parse_temporal(schema)
    return frame.with_columns(temporal) if temporal else frame


def summary_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, keys in column order, values as Python scalars (date, aware datetime, int, ...)."""
    return frame.rows(named=True)


def output_json_path(object_name: str, *, data_root: str | os.PathLike[str] | None = None) -> Path:
    # The output path does not depend on the run; utils/paths owns the layout.
    return build_summary_paths(object_name, data_root=data_root).output_json


def load_summary_file(
    object_name: str, summary_csv: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``output/<object>/summary.json`` from one summary CSV; return its path."""
    if not Path(summary_csv).is_file():
        msg = f"{object_name}: summary {summary_csv} does not exist; run processing for this object first"
        raise FileNotFoundError(msg)
    records = summary_records(read_summary_csv(summary_csv))
    return write_json_atomic(output_json_path(object_name, data_root=data_root), records)


# --- Prefect task -------------------------------------------------------------------------------------------


@task(name="load_csv_to_json", task_run_name="load-{object_name}")
def load_csv_to_json(
    object_name: str, summary_csv: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
) -> str:
    """Prefect task: load one object's summary CSV into summary.json; returns its path as str."""
    started = time.monotonic()
    target = load_summary_file(object_name, summary_csv, data_root=data_root)
    log_event("load_done", object=object_name, groups=summary_groups(summary_csv),
              file=display_path(target, data_root), seconds=round(time.monotonic() - started, 3))
    return str(target)
