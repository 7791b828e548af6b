"""Read what the report needs from disk: each object's QA files, and the distribution of its numeric metric
columns computed from the QA snapshot (Polars, lazily: only that column is read and only the bin counts kept).

profile.json has min/max/mean/std but no distribution, so the histograms come from ``snapshot.parquet``, the
typed rows QA checked. A missing or unreadable file is a note in the report, never a failed report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polars as pl

from configs.salesforce_objects import ObjectSpec, spec_for
from reporting.model import (
    Histogram,
    ObjectReport,
    ObjectRun,
    drift_points,
    parse_profile,
    parse_schema_report,
)
from tasks.quality_checks import CheckResult
from tasks.quality_parallel import parse_rowcount_history
from utils.paths import build_qa_paths

HISTOGRAM_BINS = 20
T = TypeVar("T")


def _read_optional(path: Path, parse: Callable[[str], T], what: str) -> tuple[T | None, str | None]:
    """``(value, None)``, or ``(None, why not)`` when the file is missing or does not parse."""
    try:
        return parse(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, f"no {what} ({path.name})"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"{path.name} cannot be read ({type(err).__name__}: {err}); QA rewrites it on its next run"


def numeric_metric_columns(spec: ObjectSpec, snapshot: Path) -> list[str]:
    """The registry's metric columns that are numbers in the snapshot (a count of Ids or a date is not)."""
    schema = pl.read_parquet_schema(snapshot)
    return [c for c in spec.metrics if c in schema and schema[c].is_numeric()]


def histogram_of(snapshot: Path, column: str, *, bins: int = HISTOGRAM_BINS) -> Histogram:
    """Equal-width bins from min to max of ``column``; nulls, NaN and infinities are counted apart, not drawn."""
    values = pl.scan_parquet(snapshot).select(pl.col(column).cast(pl.Float64).alias("v"))
    drawn = pl.col("v").filter(pl.col("v").is_finite())
    lo, hi, finite, rows = values.select(drawn.min(), drawn.max().alias("hi"), drawn.len().alias("finite"),
                                         pl.len().alias("rows")).collect().row(0)
    if not finite:
        return Histogram(column, (), (), int(rows))
    used = bins if hi > lo else 1  # one value: one bar
    width = (hi - lo) / used if hi > lo else 1.0
    bin_of = ((pl.col("v") - lo) / width).floor().cast(pl.Int64).clip(0, used - 1).alias("bin")  # max -> last bin
    counted = values.filter(pl.col("v").is_finite()).group_by(bin_of).len().collect(engine="streaming")
    counts = [0] * used
    for index, count in counted.iter_rows():
        counts[index] = int(count)
    edges = (*(lo + i * width for i in range(used)), float(hi))
    return Histogram(column, edges, tuple(counts), int(rows) - int(finite))


def read_histograms(spec: ObjectSpec, snapshot: Path) -> tuple[tuple[Histogram, ...], str | None]:
    """One histogram per numeric metric column; ``(), why`` when the snapshot is missing or unreadable."""
    try:
        return tuple(histogram_of(snapshot, c) for c in numeric_metric_columns(spec, snapshot)), None
    except FileNotFoundError:
        return (), f"no QA snapshot ({snapshot.name}): no distributions"
    except (OSError, pl.exceptions.PolarsError) as err:
        return (), f"{snapshot.name} cannot be read ({type(err).__name__}: {err}); no distributions"


def read_object_report(name: str, row: ObjectRun | None, checks: tuple[CheckResult, ...] | None, *,
                       data_root: str | os.PathLike[str] | None) -> ObjectReport:
    """One object's section: its run summary row, this run's checks (None: QA did not report on it) and files."""
    spec, qa = spec_for(name), build_qa_paths(name, data_root=data_root)
    history, history_note = _read_optional(qa.rowcount, parse_rowcount_history, "row-count history")
    profile, profile_note = _read_optional(qa.profile, lambda text: parse_profile(json.loads(text)), "profile")
    schema, schema_note = _read_optional(qa.schema_report, lambda text: parse_schema_report(json.loads(text)),
                                         "schema report")
    histograms, histogram_note = read_histograms(spec, qa.snapshot)
    notes = [n for n in (history_note, profile_note, schema_note, histogram_note) if n]
    return ObjectReport(
        name=name, row=row, checked_this_run=checks is not None, checks=checks or (),
        history=drift_points(name, history or [], spec.rowcount_drift_tolerance_pct),
        tolerance_pct=spec.rowcount_drift_tolerance_pct, profile=profile, schema=schema, histograms=histograms,
        required=tuple(spec.qa_required_columns()), notes=tuple(notes))
