"""Run the orchestrator N times (default 3) and print a short summary per run.

With no Salesforce credentials in .env this runs on the embedded emulator: that is what `make run` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings

# keep the console readable (warnings and errors only) while every INFO line still reaches the Prefect UI; see README
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

from flows.common import one_line
from flows.run_artifacts import changes_text
from flows.run_summary import SummaryRow
from flows.sf_etl_orchestrator_flow import PipelineRunError, sf_etl_orchestrator_flow
from utils.local_ui import flow_run_link, prefect_ui_server
from utils.logs import kv
from utils.prefect_home import prepare_prefect_database
from utils.progress import progress_display
from utils.source import pipeline_source


def _print_run(n: int, total: int, summary: dict, ok: bool, seconds: float) -> None:
    source = summary.get("source", {}).get("kind", "?")
    print(f"\nrun {n}/{total}  id={summary.get('run_id')}  source={source}  "
          f"{'OK' if ok else 'FAILED'}  {seconds:.1f}s")
    print(f"  {'object':<13}{'mode':<12}{'rows':>9}{'replica':>9}  {'+ins ~upd =same -del':<26}{'api':<6}"
          f"{'extract':>8}  qa")
    for row in summary.get("objects", []):
        rows = "-" if row["rows"] is None else f"{row['rows']:,}"
        replica = "-" if row.get("replica_rows") is None else f"{row['replica_rows']:,}"
        changes = changes_text(SummaryRow(**row)) or "-"  # adds up to rows; hard deletes and recoveries follow
        extract = f"{row['extract_s']:.1f}s"
        print(f"  {row['object']:<13}{row.get('mode') or '-':<12}{rows:>9}{replica:>9}  {changes:<26}"
              f"{row['api'] or '-':<6}{extract:>8}  {row['qa']}")
        if row.get("schema_changes"):
            print(f"      columns: {row['schema_changes']}")
        if row.get("error"):
            print(f"      error: {row['error']}")
    if summary.get("qa_error"):
        print(f"  QA: {summary['qa_error']}")


def _positive_seconds(text: str) -> float:
    seconds = float(text)
    if not (0 < seconds < float("inf")):
        msg = f"must be a positive number of seconds, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _run_all(args: argparse.Namespace, ui_url: str | None) -> int:
    """Run the orchestrator ``args.runs`` times on one source and print each run's table; returns the failures."""
    failures = 0
    # one source for all runs: the emulator (when used) starts once
    with pipeline_source(logging.getLogger("sf_pipeline")) as source:
        print(f"source: {source.kind} ({source.instance_url})")
        print(f"Prefect UI: {ui_url}" if ui_url else "Prefect UI: none (`make ui` starts one; runs then show there)")
        for n in range(1, args.runs + 1):
            t0 = time.monotonic()
            print(f"\nrun {n}/{args.runs}: extracting, then Phase 1 (Polars -> JSON) and Phase 2 (QA) in parallel ...",
                  flush=True)
            # a live table on a terminal, plain `progress ...` lines otherwise; gone before the run's table prints
            with progress_display(interval_seconds=args.progress_seconds):
                state = sf_etl_orchestrator_flow(objects=args.objects or None,
                                                 fail_on_qa_error=args.fail_on_qa_error, return_state=True)
            result = state.result(raise_on_failure=False)
            if isinstance(result, PipelineRunError):
                summary, ok = result.summary, False
            elif isinstance(result, dict):
                summary, ok = result, True
            else:
                print(f"\nrun {n}/{args.runs} FAILED before producing a summary: {one_line(result)}")
                failures += 1
                continue
            failures += not ok
            _print_run(n, args.runs, summary, ok, time.monotonic() - t0)
            if ui_url:
                print(f"  in the Prefect UI: {flow_run_link(ui_url, state.state_details.flow_run_id)}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="how many runs (default 3)")
    parser.add_argument("--objects", nargs="*", help="registry objects to run (default: all)")
    parser.add_argument("--fail-on-qa-error", action="store_true", help="strict QA: error-severity checks fail")
    parser.add_argument("--progress-seconds", type=_positive_seconds, default=5.0,
                        help="when stdout is not a terminal: seconds between plain progress lines (default 5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # Prefect 2's SQLite migrations warn about index reflection on every fresh start; it is harmless noise
    warnings.filterwarnings("ignore", message="Skipped unsupported reflection")
    started = time.monotonic()
    with prefect_ui_server() as ui_url:  # `make ui` running: the runs report to it
        prepare_prefect_database()  # before any flow: runs started together must not all create the database
        failures = _run_all(args, ui_url)
    print("\n" + kv("done", runs=args.runs, failed=failures, seconds=round(time.monotonic() - started, 1)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
