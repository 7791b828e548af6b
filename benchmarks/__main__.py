"""``python -m benchmarks [--quick] [--only extract,qa,...]``: run the benchmarks, print tables, write JSON.

A full run writes ``benchmarks/results/latest.json`` (commit it); ``--quick`` / ``--only`` runs write
``benchmarks/.work/results-partial.json`` unless ``--out`` says otherwise, so a smoke check never replaces the
committed numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_e2e,
    bench_extract,
    bench_fanout,
    bench_process,
    bench_qa,
    bench_replica_ops,
    bench_scale,
    bench_schema,
    report,
)
from benchmarks.harness import REPO, WORK, load_average, machine_info

STAGES = ("extract", "process", "qa", "e2e", "schema", "scale")
# run only when --only names them, beyond a full run's budget: fanout (issue #19) takes ~10 minutes a round (a
# Prefect server, workers, a process per object run); replica_ops (issues #17, #18) ~7 minutes (a 20M-record base
# built, then 3 rounds of 3 operations of 25-65 s each)
OPT_IN_STAGES = ("fanout", "replica_ops")
LATEST = REPO / "benchmarks" / "results" / "latest.json"
PARTIAL = WORK / "results-partial.json"


@dataclass(frozen=True)
class Plan:
    """Sizes and repeats of one benchmark mode."""

    repeat: int
    extract_sizes: tuple[int, ...]      # REST, Bulk and plain download, interleaved (REST at the smallest)
    extract_rest_sizes: tuple[int, ...]  # REST at bigger sizes, fewer runs (it is slow)
    rest_repeat_large: int
    extract_rss_sizes: tuple[int, ...]   # Bulk + plain download only, to show flat memory
    process_sizes: tuple[int, ...]
    qa_rows: int
    e2e_scales: tuple[tuple[str, dict[str, int] | None, int], ...]
    schema_rows: int                     # one org: backfill, added field, formula refresh
    scale_sizes: tuple[int, ...]         # one org each: backfill, then rounds of 1,000 changes + an incremental run
    fanout_counts: tuple[int, ...]       # generated objects: orchestrator vs fan-out on 1 and 2 workers (opt-in)
    replica_ops_rows: int                # synthetic base: schema change, refresh, key comparison (opt-in)


FULL = Plan(repeat=3, extract_sizes=(100_000, 1_000_000), extract_rest_sizes=(1_000_000,), rest_repeat_large=1,
            extract_rss_sizes=(5_000_000,), process_sizes=(1_000_000, 5_000_000), qa_rows=1_000_000,
            e2e_scales=(("default", None, 3), ("Opportunity 1M", {"Opportunity": 1_000_000}, 1)),
            schema_rows=1_000_000, scale_sizes=bench_scale.SIZES, fanout_counts=bench_fanout.COUNTS,
            replica_ops_rows=bench_replica_ops.ROWS)
QUICK = Plan(repeat=1, extract_sizes=(20_000,), extract_rest_sizes=(), rest_repeat_large=1,
             extract_rss_sizes=(100_000,), process_sizes=(100_000,), qa_rows=100_000,
             e2e_scales=(("default", None, 1),), schema_rows=100_000, scale_sizes=bench_scale.QUICK_SIZES,
             fanout_counts=bench_fanout.QUICK_COUNTS, replica_ops_rows=bench_replica_ops.QUICK_ROWS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (< 2 min smoke check)")
    parser.add_argument("--only", default=",".join(STAGES),
                        help=f"comma-separated stages ({', '.join(STAGES)}; opt-in: {', '.join(OPT_IN_STAGES)})")
    parser.add_argument("--repeat", type=int, help="runs per variant (default 3, --quick 1)")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES) - set(OPT_IN_STAGES))
    if unknown:
        parser.error(f"--only: unknown stage(s) {', '.join(unknown)}; use {', '.join(STAGES + OPT_IN_STAGES)}")
    return args


def run_stages(plan: Plan, stages: list[str], repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "extract" in stages:
        results["extract"] = bench_extract.run_stage(
            sizes=list(plan.extract_sizes), rest_sizes=list(plan.extract_rest_sizes),
            rss_sizes=list(plan.extract_rss_sizes), repeat=repeat, rest_repeat_large=plan.rest_repeat_large)
    if "process" in stages:
        results["process"] = bench_process.run_stage(sizes=list(plan.process_sizes), repeat=repeat)
    if "qa" in stages:
        results["qa"] = bench_qa.run_stage(rows=plan.qa_rows, repeat=repeat)
    if "e2e" in stages:
        scales = [(label, rows, min(n, repeat) if repeat < 3 else n) for label, rows, n in plan.e2e_scales]
        results["e2e"] = bench_e2e.run_stage(scales=scales)
    if "schema" in stages:  # rounds of backfill, incremental, added field, refresh on one org (medians)
        results["schema"] = bench_schema.run_stage(rows=plan.schema_rows, repeat=repeat)
    if "scale" in stages:  # issue #18: the same 1,000-row delta on growing replicas, per-stage peak RSS
        results["scale"] = bench_scale.run_stage(sizes=plan.scale_sizes, rounds=repeat)
    if "fanout" in stages:  # issue #19: rounds of orchestrator, fan-out on 1 and 2 workers, plain (medians)
        results["fanout"] = bench_fanout.run_stage(counts=plan.fanout_counts, rounds=repeat)
    if "replica_ops" in stages:  # issues #17, #18: whole-pull joins and comparisons on a big base, peak RSS
        results["replica_ops"] = bench_replica_ops.run_stage(rows=plan.replica_ops_rows, repeat=repeat)
    return results


def print_tables(results: dict[str, Any], verdicts: list[dict[str, Any]]) -> None:
    printers = {"extract": report.extract_table, "process": report.process_table, "qa": report.qa_table,
                "e2e": report.e2e_table, "schema": bench_schema.table,
                "scale": bench_scale.table, "fanout": bench_fanout.table, "replica_ops": bench_replica_ops.table}
    for stage, section in results.items():
        print("\n" + printers[stage](section))
    print("\n" + report.targets_table(verdicts))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    repeat = args.repeat or plan.repeat
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    WORK.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    started = time.perf_counter()
    print(f"benchmarks ({'quick' if args.quick else 'full'}, {repeat} run(s) per variant, stages: "
          f"{', '.join(args.stages)}) on {machine['cores']} cores, load {machine['load_average_at_start']}")
    results = run_stages(plan, args.stages, repeat)
    verdicts = report.evaluate_targets(results)
    if "schema" in results:
        verdicts += bench_schema.verdicts(results["schema"])
    if "scale" in results:
        verdicts += bench_scale.verdicts(results["scale"])
    if "replica_ops" in results:
        verdicts += bench_replica_ops.verdicts(results["replica_ops"])
    print_tables(results, verdicts)
    machine["load_average_at_end"] = load_average()
    document = {"mode": "quick" if args.quick else "full", "repeat": repeat, "stages": args.stages,
                "total_seconds": round(time.perf_counter() - started, 1), "machine": machine,
                "targets": verdicts, "results": results}
    complete = not args.quick and args.stages == list(STAGES) and args.repeat in (None, 3)
    out = args.out or (LATEST if complete else PARTIAL)
    report.write_results(out, document)
    shutil.rmtree(WORK / "process-out", ignore_errors=True)
    shutil.rmtree(WORK / "qa-out", ignore_errors=True)
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} "
          f"in {document['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
