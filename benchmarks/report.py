"""Turn the stages' results into verdicts against our targets, printable tables and the latest.json document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import ratio

# --- pure: formatting -----------------------------------------------------------------------------------------


def format_value(value: Any, digits: int = 2) -> str:
    """Numbers with thousands separators and ``digits`` decimals (whole numbers without), None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned, a dashed rule under the header."""
    cells = [[str(h) for h in headers]] + [[format_value(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                 strict=True)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])])


# --- pure: targets --------------------------------------------------------------------------------------------


def _verdict(target: str, measured: float | None, limit: float, *, at_most: bool, unit: str = "") -> dict[str, Any]:
    ok = None if measured is None else (measured <= limit if at_most else measured >= limit)
    return {"target": target, "measured": None if measured is None else round(measured, 3),
            "comparison": "<=" if at_most else ">=", "limit": limit, "unit": unit, "ok": ok}


def evaluate_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of benchmarks/README.md with the measured value and whether it is met (None: not measured)."""
    out: list[dict[str, Any]] = []
    process = (results.get("process") or {}).get("by_size", {})
    for size, entry in sorted(process.items(), key=lambda kv: int(kv[0])):
        v = entry["variants"]
        p = v["process"]["median_s"]
        out.append(_verdict(f"process {size} rows: time / bare Polars", ratio(p, v["bare_polars"]["median_s"]), 1.25,
                            at_most=True, unit="x"))
        if "pandas" in v:
            out.append(_verdict(f"process {size} rows: pandas time / process time", ratio(v["pandas"]["median_s"], p),
                                3.0, at_most=False, unit="x"))
        if "duckdb" in v:
            out.append(_verdict(f"process {size} rows: DuckDB time / process time", ratio(v["duckdb"]["median_s"], p),
                                1.0, at_most=False, unit="x"))
    if process:
        largest = max(process, key=int)
        out.append(_verdict(f"process {largest} rows: peak RSS", process[largest]["variants"]["process"]["peak_rss_mb"],
                            500, at_most=True, unit="MB"))
    extract = (results.get("extract") or {}).get("summary", {})
    shares = extract.get("bulk_share_of_plain_download") or {}
    for size, share in sorted(shares.items(), key=lambda kv: int(kv[0])):
        out.append(_verdict(f"extract {size} rows: Bulk 2.0 throughput / plain download", share, 0.70,
                            at_most=False, unit="x"))
    if extract.get("bulk_rss_largest_over_smallest") is not None:
        rss = extract["bulk_peak_rss_mb"]
        sizes = sorted(rss, key=int)
        out.append(_verdict(f"extract Bulk peak RSS {sizes[-1]} / {sizes[0]} rows",
                            extract["bulk_rss_largest_over_smallest"], 1.2, at_most=True, unit="x"))
    qa = results.get("qa")
    if qa:
        out.append(_verdict(f"QA branch {qa['rows']} rows: sum of tasks / flow wall time", qa["speedup_flow_vs_sum"],
                            1.3, at_most=False, unit="x"))
    e2e = (results.get("e2e") or {}).get("default")
    if e2e:
        out.append(_verdict("orchestrator default scale: Prefect overhead share of wall time",
                            e2e["prefect_overhead_share"], 0.25, at_most=True))
    for label, scale in (results.get("e2e") or {}).items():
        if scale.get("s3_vs_local") is not None and label != "default":  # the target's size: 1M rows
            out.append(_verdict(f"orchestrator {label}: data root on loopback S3 / local, wall time",
                                scale["s3_vs_local"], 1.3, at_most=True, unit="x"))
    emulator = (results.get("extract") or {}).get("by_size", {})
    rest_raw = [r["emulator_rest_raw"]["rows_per_s"] for r in emulator.values() if "emulator_rest_raw" in r]
    if rest_raw:
        out.append(_verdict("emulator: REST paging, records/s (raw client)", rest_raw[0], 50_000, at_most=False,
                            unit="rec/s"))
    downloads = {s: r["plain_download"]["mb_per_s"] for s, r in emulator.items() if "plain_download" in r}
    if downloads:
        largest = max(downloads, key=int)
        out.append(_verdict(f"emulator: Bulk results {largest} rows, MB/s (raw client)", downloads[largest], 150,
                            at_most=False, unit="MB/s"))
    return out


# --- tables per stage -----------------------------------------------------------------------------------------


def extract_table(section: Mapping[str, Any]) -> str:
    rows = []
    for size, variants in sorted(section["by_size"].items(), key=lambda kv: int(kv[0])):
        for name, r in variants.items():
            rows.append([f"{int(size):,} {name}", r["n"], r["median_s"], r["rows_per_s"], r["mb_per_s"],
                         r["peak_rss_mb"]])
    return format_table(["extract (Opportunity)", "runs", "median s", "rows/s", "MB/s", "peak RSS MB"], rows)


def process_table(section: Mapping[str, Any]) -> str:
    rows = []
    for size, entry in sorted(section["by_size"].items(), key=lambda kv: int(kv[0])):
        for name, r in entry["variants"].items():
            rows.append([f"{int(size):,} {name}", r["n"], r["median_s"], r["ratio_to_bare_polars"], r["peak_rss_mb"],
                         r["agrees_with_process"]])
    return format_table(["process", "runs", "median s", "x bare polars", "peak RSS MB", "same summary"], rows)


def qa_table(section: Mapping[str, Any]) -> str:
    rows = [[f"task {name}", s] for name, s in section["task_medians_s"].items()]
    rows += [["sum of QA tasks (one by one)", section["qa_tasks_sum_s"]],
             ["QA tasks in plain threads (wall)", section["qa_threads_wall_s"]],
             ["object_parallel_flow (wall)", section["qa_flow_wall_s"]],
             ["speed-up flow vs sum", section["speedup_flow_vs_sum"]],
             ["speed-up threads vs sum", section["speedup_threads_vs_sum"]]]
    return format_table([f"load + QA ({section['rows']:,} rows)", "median s"], rows)


def e2e_table(section: Mapping[str, Any]) -> str:
    rows = [[label, len(e["runs_s"]), e["wall_s"], e["plain_functions_wall_s"], e["prefect_overhead_share"],
             e.get("engine_floor_wall_s"), e["idle_share_between_task_bodies"], e["prefect_startup_s"],
             e["peak_rss_mb"], e.get("s3_wall_s"), e.get("s3_vs_local")]
            for label, e in section.items()]
    return format_table(["orchestrator", "runs", "wall s", "plain fn s", "overhead", "empty-shape s", "idle share",
                         "startup s", "peak RSS MB", "on S3 s", "S3/local"], rows)


def targets_table(verdicts: Sequence[Mapping[str, Any]]) -> str:
    rows = [[v["target"], v["measured"], f"{v['comparison']} {format_value(v['limit'])}",
             {True: "met", False: "MISSED", None: "n/a"}[v["ok"]]] for v in verdicts]
    return format_table(["target", "measured", "limit", "verdict"], rows)


def write_results(path: Path, document: Mapping[str, Any]) -> Path:
    from utils.atomic import write_text_atomic

    return write_text_atomic(path, json.dumps(document, indent=2, default=str) + "\n")
