"""Phase 1 processing: aggregate one raw extract into ``processed/<object>/summary.csv`` with Polars.

Aggregation semantics (documented once, tested in tests/unit/test_process.py):

- ``count`` = non-null values; ``null_count`` = null values; ``n_unique`` = distinct NON-null values (like SQL
  ``COUNT(DISTINCT x)``; Polars' own ``n_unique`` would count null as a value). All three are Int64.
- ``sum`` over a group without any non-null value is null (SQL semantics), not 0: "no amounts" is not
  "zero amount".
- Booleans: ``sum`` = number of trues (Int64), ``mean`` = share of trues (Float64); ``median``/``std`` are
  refused.
- ``sum``/``mean``/``median``/``std`` on text, date or datetime columns are refused with a ConfigError before
  anything runs; ``min``/``max``/``count``/``n_unique``/``null_count`` work on every type (text compares
  bytewise).
- ``mean``/``median``/``std`` are Float64; ``std`` is the sample standard deviation (ddof=1), null for fewer
  than 2 values.
- Rows are sorted by the group_by columns, nulls first (false < true, text bytewise): deterministic output.
- No group_by: exactly one row over the whole table, even for a headers-only extract (count 0, others null).
- With group_by and a headers-only extract: zero rows, but exactly the summary's columns and dtypes.

Beside the CSV goes ``summary.schema.json`` (column -> dtype name) so the JSON load never infers a type.
Temporal values are written as ``YYYY-MM-DD`` and ``YYYY-MM-DDTHH:MM:SS.fffZ``; null is an empty cell (the raw
reader already maps empty text to null, so a summary never holds an empty string).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import polars as pl
from prefect import task

from configs.salesforce_objects import ObjectSpec, spec_for
from utils.aggregations import find_misfit_metrics
from utils.atomic import atomic_path, write_text_atomic
from utils.errors import ConfigError
from utils.logs import log_event
from utils.paths import build_summary_paths, display_path, schema_sidecar_for
from utils.raw_frame import DATE_FORMAT, DATETIME_FORMAT, scan_dataset
from utils.raw_schema import RawSchema, read_raw_schema
from utils.sf_types import DATETIME_DTYPE

# The only dtypes a summary can hold, by the names written to summary.schema.json.
DTYPE_BY_NAME: dict[str, pl.DataType] = {
    "Int64": pl.Int64(),
    "Float64": pl.Float64(),
    "Boolean": pl.Boolean(),
    "String": pl.Utf8(),
    "Date": pl.Date(),
    "Datetime[ms, UTC]": DATETIME_DTYPE,
}

_COUNTING = ("count", "n_unique", "null_count")
_FLOAT_RESULTS = ("mean", "median", "std")

# --- pure core ----------------------------------------------------------------------------------------------


def _metric_dtype(aggregation: str, dtype: pl.DataType) -> pl.DataType:
    if aggregation in _COUNTING:
        return pl.Int64()
    if aggregation in _FLOAT_RESULTS:
        return pl.Float64()
    if aggregation == "sum":
        return pl.Float64() if dtype == pl.Float64() else pl.Int64()  # bool/int sums are whole numbers
    return dtype  # min / max keep the column's type


def check_summary_spec(spec: ObjectSpec, raw_schema: RawSchema, *, object_name: str) -> None:
    """Raise one ConfigError listing every group_by/metric missing from the extract or misfitting its type."""
    dtypes = raw_schema.polars_schema()
    problems: list[str] = []
    for column in spec.group_by:
        if column not in dtypes:
            problems.append(f"{object_name}.group_by: column '{column}' is not in the raw extract; "
                            "add it to the SOQL/fields or remove it from group_by")
    for column in spec.metrics:
        if column not in dtypes:
            problems.append(f"{object_name}.metrics: column '{column}' is not in the raw extract; "
                            "add it to the SOQL/fields or remove the metric")
    sf_types = {c.name: c.type for c in raw_schema.columns}
    problems.extend(find_misfit_metrics(object_name, spec.metrics, sf_types))
    if problems:
        msg = "cannot summarise " + "; ".join(problems)
        raise ConfigError(msg)


def metric_columns(spec: ObjectSpec) -> list[tuple[str, str, str]]:
    """``(column, aggregation, summary column name)`` for every metric, in registry order."""
    return spec.metric_columns()


def summary_schema(spec: ObjectSpec, raw_schema: RawSchema) -> dict[str, pl.DataType]:
    """The summary's exact columns and dtypes, in order, computed without data."""
    dtypes = raw_schema.polars_schema()
    schema: dict[str, pl.DataType] = {column: dtypes[column] for column in spec.group_by}
    for column, aggregation, name in metric_columns(spec):
        schema[name] = _metric_dtype(aggregation, dtypes[column])
    return schema


def metric_expr(column: str, aggregation: str) -> pl.Expr:
    """One aggregation of one column, with the semantics listed in the module docstring (not yet cast)."""
    col = pl.col(column)
    if aggregation == "count":
        return col.count()
    if aggregation == "null_count":
        return col.null_count()
    if aggregation == "n_unique":
        # Polars counts null as a distinct value; subtract it so n_unique matches SQL COUNT(DISTINCT).
        return col.n_unique().cast(pl.Int64) - (col.null_count() > 0).cast(pl.Int64)
    if aggregation == "sum":
        return pl.when(col.count() > 0).then(col.sum())
    if aggregation == "std":
        return col.std(ddof=1)
    if aggregation in ("mean", "median", "min", "max"):
        return getattr(col, aggregation)()
    msg = f"unknown aggregation {aggregation!r}"
    raise ConfigError(msg)


# Aggregations that need every value of a group at once; the others merge chunk by chunk while streaming.
_HOLISTIC = frozenset({"median"})
# A median holds its group's values (~55 bytes a row in a Polars group_by). Groups are read back in batches of
# about this many rows, so memory follows the largest group, not the table.
HOLD_BATCH_ROWS = 2_000_000
_GROUP_ROWS = "__summary_group_rows"


def _aggregate(lf: pl.LazyFrame, group_by: list[str], aggs: list[pl.Expr]) -> pl.LazyFrame:
    if not group_by:
        return lf.select(aggs)
    return lf.group_by(group_by).agg(aggs) if aggs else lf.select(group_by).unique()


def batch_groups(groups: pl.DataFrame, *, rows_column: str, batch_rows: int) -> list[pl.DataFrame]:
    """Consecutive groups whose rows start within the same ``batch_rows`` window: at most ``batch_rows`` plus one
    group's rows per batch (a group bigger than that is a batch on its own)."""
    start = pl.col(rows_column).cum_sum() - pl.col(rows_column)
    return groups.with_columns((start // batch_rows).alias("__batch")).partition_by("__batch", include_key=False)


def _hold_in_batches(lf: pl.LazyFrame, groups: pl.DataFrame, group_by: list[str],
                     dtypes: Mapping[str, pl.DataType], aggs: list[pl.Expr]) -> pl.DataFrame:
    """``aggs`` (medians) per group, reading one batch of groups at a time; text keys held as categorical codes."""
    text_keys = [k for k in group_by if dtypes[k] == pl.Utf8()]
    batches = batch_groups(groups, rows_column=_GROUP_ROWS, batch_rows=HOLD_BATCH_ROWS)
    parts = []
    for batch in batches:
        rows = lf if len(batches) == 1 else lf.join(batch.select(group_by).lazy(), on=group_by, how="semi",
                                                    nulls_equal=True)
        held = rows.with_columns(pl.col(k).cast(pl.Categorical) for k in text_keys)
        parts.append(_aggregate(held, group_by, aggs).with_columns(pl.col(k).cast(pl.Utf8) for k in text_keys)
                     .collect(engine="streaming"))
    return pl.concat(parts)


def _summarise_with_medians(lf: pl.LazyFrame, group_by: list[str], dtypes: Mapping[str, pl.DataType],
                            streamed: list[pl.Expr], held: list[pl.Expr]) -> pl.LazyFrame:
    """Streamed metrics (plus each group's row count) in one pass, then the held ones batch by batch, joined."""
    summary = _aggregate(lf, group_by, [*streamed, pl.len().alias(_GROUP_ROWS)]).collect(engine="streaming")
    if not group_by:  # one group, the whole table: held at once
        return pl.concat([summary, lf.select(held).collect(engine="streaming")], how="horizontal").lazy()
    if summary.is_empty():
        return summary.with_columns(pl.lit(None).alias(e.meta.output_name()) for e in held).lazy()  # cast below
    medians = _hold_in_batches(lf, summary.select(*group_by, _GROUP_ROWS), group_by, dtypes, held)
    return summary.join(medians, on=group_by, how="left", nulls_equal=True).lazy()


def build_summary(
    lf: pl.LazyFrame, spec: ObjectSpec, raw_schema: RawSchema, *, object_name: str
) -> pl.LazyFrame:
    """Group ``lf`` by ``spec.group_by`` and compute ``spec.metrics``, checked against the schema first.

    Without a median the aggregation streams in bounded memory and nothing is read until the result is. A median
    needs its group's values: then the streamed metrics and each group's row count are read now, and the medians
    per batch of groups (``HOLD_BATCH_ROWS``), so memory follows the largest group rather than the table.
    """
    check_summary_spec(spec, raw_schema, object_name=object_name)
    schema = summary_schema(spec, raw_schema)
    group_by = list(spec.group_by)
    streamed: list[pl.Expr] = []
    held: list[pl.Expr] = []
    for column, aggregation, name in metric_columns(spec):
        expr = metric_expr(column, aggregation).cast(schema[name]).alias(name)
        (held if aggregation in _HOLISTIC else streamed).append(expr)
    if held:
        summary = _summarise_with_medians(lf, group_by, raw_schema.polars_schema(), streamed, held)
    else:
        summary = _aggregate(lf, group_by, streamed)
    if group_by:
        summary = summary.sort(group_by, nulls_last=False)
    # Re-select to pin the column order and dtypes even when the extract is empty.
    return summary.select(pl.col(c).cast(t) for c, t in schema.items())


# --- summary schema sidecar ---------------------------------------------------------------------------------


def dtype_name(dtype: pl.DataType) -> str:
    for name, known in DTYPE_BY_NAME.items():
        if dtype == known:
            return name
    msg = f"summary dtype {dtype} has no name in tasks/process.py DTYPE_BY_NAME; add it there"
    raise TypeError(msg)


def summary_schema_path_for(summary_csv: str | os.PathLike[str]) -> Path:
    return schema_sidecar_for(Path(summary_csv))


def write_summary_schema(path: Path, object_name: str, schema: Mapping[str, pl.DataType]) -> Path:
    payload = {"object": object_name, "columns": {c: dtype_name(t) for c, t in schema.items()}}
    return write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def read_summary_schema(path: str | os.PathLike[str]) -> dict[str, pl.DataType]:
    """Column -> dtype of a summary, in order; a missing or corrupt file says to re-run processing."""
    try:
        columns = json.loads(Path(path).read_text(encoding="utf-8"))["columns"]
        return {str(c): DTYPE_BY_NAME[name] for c, name in columns.items()}
    except FileNotFoundError as err:
        msg = f"summary schema {path} is missing: re-run processing for this object"
        raise FileNotFoundError(msg) from err
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        msg = f"summary schema {path} is corrupt ({err!r}): delete it and re-run processing for this object"
        raise ValueError(msg) from err


# --- I/O ----------------------------------------------------------------------------------------------------



def summary_csv_path(object_name: str, *, data_root: str | os.PathLike[str] | None = None) -> Path:
    # The processed path does not depend on the run; utils/paths owns the layout.
    return build_summary_paths(object_name, data_root=data_root).summary_csv


def sink_summary_csv(summary: pl.LazyFrame, target: Path) -> Path:
    """Stream ``summary`` into ``target`` atomically, temporal values in the raw extract's formats."""
    with atomic_path(target) as tmp:
        summary.sink_csv(tmp, check_extension=False, date_format=DATE_FORMAT, datetime_format=DATETIME_FORMAT,
                         engine="streaming")
    return target


def process_object_file(
    object_name: str, raw_csv: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
) -> Path:
    """Aggregate one raw extract into ``processed/<object>/summary.csv`` (+ schema file); return its path."""
    spec = spec_for(object_name)
    raw_csv = Path(raw_csv)
    raw_schema = read_raw_schema(schema_sidecar_for(raw_csv))
    if raw_schema.object != object_name:
        msg = f"{raw_csv.name} holds {raw_schema.object!r} rows, not {object_name!r}: pass its own raw file"
        raise ConfigError(msg)
    summary = build_summary(scan_dataset(raw_csv, raw_schema), spec, raw_schema, object_name=object_name)
    target = summary_csv_path(object_name, data_root=data_root)
    sink_summary_csv(summary, target)
    write_summary_schema(summary_schema_path_for(target), object_name, summary_schema(spec, raw_schema))
    return target


def summary_groups(summary_csv: str | os.PathLike[str]) -> int:
    """Rows of a summary CSV: one per group (small by construction; read for the task's log line)."""
    return int(pl.scan_csv(Path(summary_csv), infer_schema=False).select(pl.len()).collect().item())


# --- Prefect task -------------------------------------------------------------------------------------------


@task(name="process_object_data", task_run_name="process-{object_name}")
def process_object_data(
    object_name: str, raw_csv: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None
) -> str:
    """Prefect task: summarise one object's raw extract; returns the summary.csv path as str."""
    started = time.monotonic()
    target = process_object_file(object_name, raw_csv, data_root=data_root)
    rows_read = read_raw_schema(schema_sidecar_for(Path(raw_csv))).row_count
    log_event("process_done", object=object_name, rows_read=rows_read, groups=summary_groups(target),
              file=display_path(target, data_root),
              seconds=round(time.monotonic() - started, 3))
    return str(target)
