"""Benchmark tasks/process against a bare Polars group_by on a 1M-row Opportunity-like raw extract.

Run from the repo root: ``.venv/bin/python benchmarks/bench_process.py [--rows 1000000] [--repeat 3]``.
Every measurement runs in a fresh child process so its peak RSS (VmHWM) is its own; times exclude imports.
Target: process / bare-Polars median time <= 1.25.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work"
sys.path.insert(0, str(REPO))

COLUMNS = [
    ("Id", "id"), ("Name", "string"), ("StageName", "picklist"), ("Amount", "currency"),
    ("Probability", "percent"), ("CloseDate", "date"), ("IsClosed", "boolean"), ("IsWon", "boolean"),
    ("ForecastCategory", "picklist"), ("LeadSource", "picklist"), ("AccountId", "reference"),
    ("Account.Name", "string"), ("OwnerId", "reference"), ("Owner.Name", "string"),
    ("CreatedDate", "datetime"), ("SystemModstamp", "datetime"),
]


def raw_csv_path(rows: int) -> Path:
    return WORK / f"Opportunity_20240101-000000_BENCH{rows}.csv"


def generate(rows: int) -> Path:
    """Write the raw CSV (every value quoted, null = ``""``, like the extract) and its sidecar, once."""
    import numpy as np
    import polars as pl

    from utils.atomic import atomic_path
    from utils.paths import schema_sidecar_for
    from utils.raw_schema import RawColumn, RawSchema, write_raw_schema

    target = raw_csv_path(rows)
    if target.exists() and schema_sidecar_for(target).exists():
        return target
    rng = np.random.default_rng(42)
    stages = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
              "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"]
    created = np.datetime64("2020-01-01T00:00:00.000") + rng.integers(0, 4 * 365 * 86_400_000, rows).astype(
        "timedelta64[ms]")
    frame = pl.DataFrame({
        "Id": [f"006{i:015d}" for i in range(rows)],
        "Name": [f"Deal, \"{i % 977}\" — Ω" for i in range(rows)],
        "StageName": pl.Series(rng.choice(stages, rows)),
        "Amount": pl.Series(np.round(rng.uniform(0, 500_000, rows), 2)),
        "Probability": pl.Series(rng.integers(0, 11, rows) * 10.0),
        "CloseDate": pl.Series(created.astype("datetime64[D]")).cast(pl.Date),
        "IsClosed": pl.Series(rng.random(rows) < 0.3),
        "IsWon": pl.Series(rng.random(rows) < 0.15),
        "ForecastCategory": pl.Series(rng.choice(["Pipeline", "BestCase", "Commit", "Closed", "Omitted"], rows)),
        "LeadSource": pl.Series(rng.choice(["Web", "Phone Inquiry", "Partner Referral", "Other"], rows)),
        "AccountId": [f"001{i % 50_000:015d}" for i in range(rows)],
        "Account.Name": [f"Account {i % 50_000}" for i in range(rows)],
        "OwnerId": [f"005{i % 200:015d}" for i in range(rows)],
        "Owner.Name": [f"Owner {i % 200}" for i in range(rows)],
        "CreatedDate": pl.Series(created).cast(pl.Datetime("ms", "UTC")),
        "SystemModstamp": pl.Series(created).cast(pl.Datetime("ms", "UTC")),
    })
    # ~5% nulls in Amount and StageName, as real orgs have.
    frame = frame.with_columns(
        pl.when(pl.Series(rng.random(rows) < 0.05)).then(None).otherwise(pl.col("Amount")).alias("Amount"),
        pl.when(pl.Series(rng.random(rows) < 0.05)).then(None).otherwise(pl.col("StageName")).alias("StageName"),
    )
    as_text = frame.select(
        pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        pl.col(pl.Date).dt.strftime("%Y-%m-%d"),
        pl.col(pl.Boolean).cast(pl.Utf8),
        pl.col(pl.Float64).cast(pl.Utf8),
        pl.col(pl.Utf8),
    ).select([c for c, _ in COLUMNS]).fill_null("")
    with atomic_path(target) as tmp:
        as_text.write_csv(tmp, quote_style="always")
    write_raw_schema(schema_sidecar_for(target), RawSchema(
        object="Opportunity", columns=tuple(RawColumn(n, t) for n, t in COLUMNS), row_count=rows,
        api_path="bulk2", source="emulator", run_id=f"BENCH{rows}",
    ))
    return target


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> float:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5) so the peak is the work's, not the imports'."""
    # Where this is not Linux or not permitted, the peak simply includes the imports.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _peak_rss_mb()


def run_variant(variant: str, raw: Path, data_root: Path) -> dict:
    """One timed run in this (child) process."""
    import polars as pl

    from configs.salesforce_objects import SALESFORCE_OBJECTS
    from tasks.process import build_summary, process_object_file, summary_csv_path
    from utils.paths import schema_sidecar_for
    from utils.raw_frame import scan_raw_csv
    from utils.raw_schema import read_raw_schema
    from utils.sf_types import csv_read_dtype_for

    schema = read_raw_schema(schema_sidecar_for(raw))
    spec = SALESFORCE_OBJECTS["Opportunity"]
    rss_after_imports = _reset_peak_rss()
    start = time.perf_counter()
    if variant == "process":
        process_object_file("Opportunity", raw, data_root=data_root)
    elif variant == "process-in-memory":  # same plan, default engine + write_csv, for the memory comparison
        summary = build_summary(scan_raw_csv(raw, schema), spec, schema, object_name="Opportunity")
        summary.collect().write_csv(summary_csv_path("Opportunity", data_root=data_root))
    elif variant == "bare-polars":
        read_schema = {c.name: csv_read_dtype_for(c.type) for c in schema.columns}
        amount = pl.col("Amount")
        (
            pl.scan_csv(raw, schema=read_schema, null_values=[""])
            .group_by("StageName")
            .agg(pl.col("Id").count().alias("Id_count"), amount.sum().alias("Amount_sum"),
                 amount.mean().alias("Amount_mean"), amount.median().alias("Amount_median"),
                 amount.min().alias("Amount_min"), amount.max().alias("Amount_max"),
                 amount.std().alias("Amount_std"), pl.col("Probability").mean().alias("Probability_mean"))
            .collect()
        )
    elif variant == "pandas":
        import pandas as pd

        df = pd.read_csv(raw, usecols=["Id", "StageName", "Amount", "Probability"], dtype={"StageName": "string"})
        df.groupby("StageName", dropna=False).agg(
            Id_count=("Id", "count"), Amount_sum=("Amount", "sum"), Amount_mean=("Amount", "mean"),
            Amount_median=("Amount", "median"), Amount_min=("Amount", "min"), Amount_max=("Amount", "max"),
            Amount_std=("Amount", "std"), Probability_mean=("Probability", "mean"),
        )
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    seconds = time.perf_counter() - start
    peak = _peak_rss_mb()
    return {"seconds": seconds, "peak_rss_mb": peak, "peak_over_imports_mb": peak - rss_after_imports}


def _run_child(variant: str, raw: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--raw", str(raw)],
        check=True, capture_output=True, text=True, cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(variants: list[str], raw: Path, repeat: int) -> dict[str, dict]:
    """Round-robin over the variants (so load from other processes hits them alike); median per variant."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(repeat):
        for variant in variants:
            runs[variant].append(_run_child(variant, raw))
    return {
        v: {
            "median_s": statistics.median(r["seconds"] for r in rs),
            "runs_s": [round(r["seconds"], 3) for r in rs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "peak_over_imports_mb": max(r["peak_over_imports_mb"] for r in rs),
        }
        for v, rs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--raw", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, Path(args.raw), WORK / "data")))
        return
    from utils.atomic import write_text_atomic

    started = time.perf_counter()
    raw = generate(args.rows)
    print(f"raw extract: {raw} ({raw.stat().st_size / 1e6:.0f} MB, {args.rows} rows; "
          f"ready in {time.perf_counter() - started:.1f} s)")
    variants = ["bare-polars", "process", "process-in-memory"]
    try:
        import pandas  # noqa: F401

        variants.append("pandas")
    except ImportError:
        print("pandas is not installed: skipping the pandas comparison")
    _run_child("bare-polars", raw)  # warm the page cache so the first variant is not penalised
    results = measure(variants, raw, args.repeat)
    base = results["bare-polars"]["median_s"]
    print(f"{'variant':<20}{'median s':>10}{'ratio':>8}{'peak RSS MB':>13}{'of which work':>15}  runs")
    for name, r in results.items():
        print(f"{name:<20}{r['median_s']:>10.3f}{r['median_s'] / base:>8.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_over_imports_mb']:>15.0f}  {r['runs_s']}")
    ratio = results["process"]["median_s"] / base
    print(f"process / bare-polars = {ratio:.2f} (target <= 1.25): {'OK' if ratio <= 1.25 else 'TOO SLOW'}")
    report = WORK / "bench_process.json"
    write_text_atomic(report, json.dumps({"rows": args.rows, "ratio": ratio, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
