"""Process: ``process_object_file`` vs a bare Polars lazy scan (the engine's limit), DuckDB and pandas.

All four compute the Opportunity registry summary (group by StageName; Id count; Amount sum, mean, median, min,
max, std; Probability mean) from the same real raw extract, and must agree before any time is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.bench_extract import ensure_raw_extract
from benchmarks.harness import WORK, Case, measure_interleaved, ratio

if TYPE_CHECKING:  # annotations only: importing it loads Polars into the pandas child, inflating its peak RSS
    from utils.raw_schema import RawSchema

OBJECT = "Opportunity"
VARIANTS = ("bare_polars", "process", "duckdb", "pandas")
METRICS = ("Id_count", "Amount_sum", "Amount_mean", "Amount_median", "Amount_min", "Amount_max", "Amount_std",
           "Probability_mean")
NULL_GROUP = "<null>"


# --- pure: comparing the summaries ----------------------------------------------------------------------------


def normalize_summary(rows: Sequence[Sequence[Any]]) -> dict[str, list[float | None]]:
    """``[(StageName, *METRICS), ...]`` -> StageName (null as ``<null>``) -> metric values (NaN as None)."""
    out: dict[str, list[float | None]] = {}
    for stage, *values in rows:
        key = NULL_GROUP if stage is None or (isinstance(stage, float) and math.isnan(stage)) else str(stage)
        out[key] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]
    return out


def compare_summaries(expected: Mapping[str, Sequence[float | None]], got: Mapping[str, Sequence[float | None]],
                      *, rel_tol: float = 1e-9) -> list[str]:
    """Every difference between two normalized summaries, as ``group.metric: expected X, got Y`` lines."""
    problems = [f"group {g!r}: missing" for g in expected if g not in got]
    problems += [f"group {g!r}: unexpected" for g in got if g not in expected]
    for group in expected.keys() & got.keys():
        for name, want, have in zip(METRICS, expected[group], got[group], strict=True):
            same = (want is None and have is None) or (
                want is not None and have is not None and math.isclose(want, have, rel_tol=rel_tol, abs_tol=1e-9))
            if not same:
                problems.append(f"{group}.{name}: expected {want}, got {have}")
    return sorted(problems)


# --- inside a child -------------------------------------------------------------------------------------------


def _read_schema(raw_csv: str) -> RawSchema:
    from utils.paths import schema_sidecar_for
    from utils.raw_schema import read_raw_schema

    return read_raw_schema(schema_sidecar_for(Path(raw_csv)))


def setup_process(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The pipeline's own step: sidecar-typed lazy scan, registry aggregation, streamed summary.csv."""
    import polars as pl

    from tasks.process import process_object_file

    def work() -> dict[str, Any]:
        target = process_object_file(OBJECT, params["raw_csv"], data_root=params["data_root"])
        return {"summary": pl.read_csv(target, infer_schema_length=0).select(
            pl.col("StageName"), pl.exclude("StageName").cast(pl.Float64)).rows()}

    return work


def setup_bare_polars(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The engine's limit: one lazy scan with the sidecar's read types and the same aggregation, nothing else."""
    import polars as pl

    from utils.sf_types import csv_read_dtype_for

    schema = _read_schema(params["raw_csv"])
    read_schema = {c.name: csv_read_dtype_for(c.type) for c in schema.columns}
    amount = pl.col("Amount")

    def work() -> dict[str, Any]:
        summary = (
            pl.scan_csv(params["raw_csv"], schema=read_schema, null_values=[""])
            .group_by("StageName")
            .agg(pl.col("Id").count(), amount.sum(), amount.mean().alias("m"), amount.median().alias("md"),
                 amount.min().alias("mn"), amount.max().alias("mx"), amount.std().alias("sd"),
                 pl.col("Probability").mean())
            .collect()
        )
        return {"summary": summary.rows()}

    return work


def setup_duckdb(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """What a SQL user would write: DuckDB's read_csv with explicit column types, one GROUP BY."""
    import duckdb

    schema = _read_schema(params["raw_csv"])
    numeric = {"currency": "DOUBLE", "percent": "DOUBLE", "double": "DOUBLE", "int": "BIGINT"}
    columns = ", ".join(f"'{c.name}': '{numeric.get(c.type, 'VARCHAR')}'" for c in schema.columns)
    sql = f"""
        SELECT StageName, count(Id), sum(Amount), avg(Amount), median(Amount), min(Amount), max(Amount),
               stddev_samp(Amount), avg(Probability)
        FROM read_csv(?, header = true, columns = {{{columns}}}, quote = '"', escape = '"', nullstr = '')
        GROUP BY StageName
    """
    connection = duckdb.connect()

    def work() -> dict[str, Any]:
        return {"summary": connection.execute(sql, [params["raw_csv"]]).fetchall()}

    return work


def setup_pandas(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """What a pandas user would write: read_csv of the needed columns, groupby().agg()."""
    import pandas as pd

    def work() -> dict[str, Any]:
        frame = pd.read_csv(params["raw_csv"], usecols=["Id", "StageName", "Amount", "Probability"],
                            dtype={"Id": "string", "StageName": "string"})
        amount = frame.groupby("StageName", dropna=False)["Amount"]
        summary = pd.DataFrame({
            "Id_count": frame.groupby("StageName", dropna=False)["Id"].count(),
            "Amount_sum": amount.sum(min_count=1),  # SQL semantics: a group without amounts sums to null
            "Amount_mean": amount.mean(), "Amount_median": amount.median(), "Amount_min": amount.min(),
            "Amount_max": amount.max(), "Amount_std": amount.std(),
            "Probability_mean": frame.groupby("StageName", dropna=False)["Probability"].mean(),
        })
        rows = [(None if pd.isna(k) else k, *v) for k, v in zip(summary.index, summary.itertuples(index=False),
                                                                   strict=True)]
        return {"summary": rows}

    return work


# --- in the parent --------------------------------------------------------------------------------------------


def _cases(raw_csv: Path, variants: Sequence[str]) -> list[Case]:
    out_root = str(WORK / "process-out")
    return [Case(v, f"benchmarks.bench_process:setup_{v}", {"raw_csv": str(raw_csv), "data_root": out_root})
            for v in variants]


def available_variants() -> list[str]:
    """Every variant whose library is installed (pandas and duckdb come from requirements-bench.lock)."""
    import importlib.util

    return [v for v in VARIANTS if v not in ("pandas", "duckdb") or importlib.util.find_spec(v) is not None]


def check_agreement(results: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each variant's summary against the pipeline's; an empty list means they agree."""
    reference = normalize_summary(results["process"]["raw"][-1]["summary"])
    return {name: compare_summaries(reference, normalize_summary(r["raw"][-1]["summary"]))
            for name, r in results.items() if name != "process"}


def run_stage(*, sizes: Sequence[int], repeat: int, log=print) -> dict[str, Any]:
    """Every process comparison; returns the JSON-able section of latest.json."""
    variants = available_variants()
    missing = sorted(set(VARIANTS) - set(variants))
    if missing:
        log(f"process: {', '.join(missing)} not installed (pip install -r requirements-bench.lock): skipped")
    by_size: dict[str, Any] = {}
    for rows in sizes:
        raw = ensure_raw_extract(rows, log=log)
        log(f"process: {rows:,}-row raw extract ({raw.stat().st_size / 1e6:,.0f} MB): {', '.join(variants)}")
        results = measure_interleaved(_cases(raw, variants), repeat, log=log)
        disagreements = check_agreement(results)
        base = results["bare_polars"]["median_s"]
        for name, result in results.items():
            result["ratio_to_bare_polars"] = ratio(result["median_s"], base)
            result["agrees_with_process"] = not disagreements.get(name)
            result["disagreements"] = disagreements.get(name, [])[:10]
            result["summary_groups"] = len(result["raw"][-1]["summary"])
            for run in result["raw"]:
                run.pop("summary", None)
        by_size[str(rows)] = {"rows": _rows_of(raw), "file_mb": round(raw.stat().st_size / 1e6, 1),
                              "variants": results}
    return {"by_size": by_size}


def _rows_of(raw_csv: Path) -> int:
    return _read_schema(str(raw_csv)).row_count
