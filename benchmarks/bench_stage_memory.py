"""Seconds and peak RSS of Phase 1 and of each QA task body on one Opportunity dataset, each in a fresh process.

Run: .venv/bin/python -m benchmarks.bench_stage_memory /tmp/opp/Opportunity.parquet [--digest]
(a replica-shaped ``.parquet`` dataset with its ``.schema.json`` sidecar; any size). The gate runs first, as in
the flow, and writes the Parquet snapshot that the checks after it read. ``measure`` is the reusable entry point.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Case, run_child

OBJECT = "Opportunity"
RUN_ID = "BENCHMEM"
STAGES = ("process", "gate", "completeness", "dedup", "profile", "rowcount", "validator")


# --- inside a child -------------------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()[:16]


def _results(report: Any) -> dict[str, Any]:
    return {r.check: {"passed": r.passed, "observed": r.observed, "samples": list(r.sample_ids)}
            for r in report.results}


def setup_stage(params: dict[str, Any]) -> tuple[Callable[[], dict[str, Any]], Callable[[dict], dict[str, Any]]]:
    """One stage's body (imports and paths untimed); ``after`` digests the file it wrote when asked."""
    import polars as pl

    from tasks import quality_parallel as qp
    from tasks.process import process_object_file
    from utils.paths import build_qa_paths

    stage, dataset, root = params["stage"], Path(params["dataset"]), params["data_root"]
    spec, qc = qp.spec_for(OBJECT), build_qa_paths(OBJECT, data_root=root)
    qc.directory.mkdir(parents=True, exist_ok=True)

    def typed() -> pl.LazyFrame:
        return pl.scan_parquet(qc.snapshot)

    bodies: dict[str, Callable[[], Any]] = {
        "process": lambda: process_object_file(OBJECT, dataset, data_root=root),
        "gate": lambda: qp.inspect_raw_extract(OBJECT, dataset, spec, qc).report,
        "completeness": lambda: qp.check_completeness(OBJECT, typed(), spec),
        "dedup": lambda: qp.write_dedup(OBJECT, typed(), spec, qc),
        "profile": lambda: qp.write_profile(OBJECT, typed(), dataset, qc),
        "rowcount": lambda: qp.record_rowcount(OBJECT, params.get("rows", 0), RUN_ID, spec, qc),
        "validator": lambda: qp.run_custom_validator(OBJECT, spec.validators[0], typed(), spec),
    }
    written = {"process": None, "gate": qc.snapshot, "dedup": qc.dedup, "profile": qc.profile}

    def work() -> dict[str, Any]:
        outcome = bodies[stage]()
        if isinstance(outcome, Path):  # Phase 1 returns the summary's path
            written["process"] = outcome
            return {}
        return {"results": _results(outcome)}

    def after(_facts: dict[str, Any]) -> dict[str, Any]:
        path = written.get(stage)
        return {"digest": _digest(path)} if params.get("digest") and path is not None else {}

    return work, after


# --- the parent -----------------------------------------------------------------------------------------------


def measure(dataset_path: str | Path, *, stages: tuple[str, ...] = STAGES, digest: bool = False,
            log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Per stage: ``seconds``, ``peak_rss_mb`` (the child's VmHWM), ``rss_before_work_mb`` and its results."""
    import polars as pl

    rows = int(pl.scan_parquet(dataset_path).select(pl.len()).collect().item())
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stage-mem-") as root:
        for stage in ("gate", *[s for s in stages if s != "gate"]):  # the checks read the gate's snapshot
            params = {"stage": stage, "dataset": str(dataset_path), "data_root": root, "rows": rows,
                      "digest": digest}
            result = run_child(Case(stage, "benchmarks.bench_stage_memory:setup_stage", params))
            if stage in stages:
                out[stage] = result
            if log:
                log(f"  {stage:<13} {result['seconds']:8.2f} s  peak {result['peak_rss_mb']:7.0f} MB")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--stages", nargs="*", default=list(STAGES), choices=STAGES)
    parser.add_argument("--digest", action="store_true", help="hash each file a stage wrote (untimed)")
    parser.add_argument("--out", help="write the JSON here too")
    args = parser.parse_args(argv)
    result = measure(args.dataset, stages=tuple(args.stages), digest=args.digest, log=print)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
