"""What the Prefect UI's Artifacts tab shows for a run, as pure renderers: a run summary that fits a 1,000 px pane,
the QA checks with their observed values as text, and where the run's files are (relative to the data root).

The orchestrator publishes all three on its own run; the QA flow publishes its QA table when it runs alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.run_summary import RunSummary, SummaryRow
from tasks.quality_checks import CheckResult, readable
from utils.logs import kv
from utils.paths import display_path
from utils.prefect_sync import blocking

RUN_SUMMARY_KEY = "sf-etl-run-summary"
QA_SUMMARY_KEY = "qa-summary"
FILES_KEY = "sf-etl-files"
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
ERROR_WIDTH = 90  # characters of an error kept in the table; the full text is in the run's JSON summary and logs


def changes_text(row: SummaryRow) -> str:
    """``+1,980 ~3 =12 -20`` (inserted, updated, unchanged, soft-deleted): together they are the delta's records, so
    they add up to ``rows``; hard deletes and records recovered by reconciliation follow when there are any, and
    that the delta cannot show deletions (an object that refused queryAll)."""
    if row.inserts is None:
        return "full extract" if row.mode == "full" else ""
    soft = (row.deletes or 0) + (row.deleted_absent or 0)
    text = f"+{row.inserts:,} ~{row.updates or 0:,} ={row.unchanged or 0:,} -{soft:,}"
    if row.hard_deletes:
        text += f", {row.hard_deletes:,} hard-deleted"
    if row.recovered:
        text += f", {row.recovered:,} recovered"
    if row.refreshed:
        text += f", {row.refreshed:,} formula values refreshed"
    if row.deletes_untracked:  # the object refused queryAll: deletions arrive by reconciliation, not the delta
        text += ", deletes by reconciliation only"
    return text


def _seconds(*values: float | None) -> str:
    return " / ".join("-" if v is None else f"{v:.1f}" for v in values)


def _cut(text: str | None, width: int = ERROR_WIDTH) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def compact_summary_rows(summary: RunSummary) -> list[dict[str, str]]:
    """One short row per object: no paths, numbers rounded alike, seconds as extract / process / QA."""
    return [{
        "object": row.object,
        "status": row.status,
        "mode": (row.mode or "-") + (f" (columns {_cut(row.schema_changes, 40)})" if row.schema_changes else ""),
        "rows": "-" if row.rows is None else f"{row.rows:,}",
        "+ins ~upd =same -del": changes_text(row),
        "qa": _qa_cell(row.qa),
        "seconds (extract / process / qa)": _seconds(row.extract_s, row.process_s, row.qa_s),
        "error": _cut(row.error),
    } for row in summary.objects]


def _qa_cell(qa: str) -> str:
    """``7/7`` or ``6/7: dedup(error)`` from the run summary's ``7/7 passed, ...`` text."""
    return qa.replace(" passed", "")


def sparkline(values: Sequence[int]) -> str:
    """Row counts as one line of Unicode blocks (markdown renders them); flat history is a flat line."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / span * top) if span else top // 2] for v in values)


def check_status(result: Mapping[str, Any]) -> str:
    """A check result's status (``CheckResult.status``) from its JSON form."""
    return CheckResult.from_dict(result).status


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def qa_markdown(qa_summary: Mapping[str, Any], *, history: Mapping[str, Sequence[int]] | None = None,
                report: str | None = None) -> str:
    """Every QA check of every object, one table row each, observed values and thresholds as text; with
    ``history`` (row counts per object, oldest first), a sparkline of each object's row counts above it."""
    lines = ["# QA summary", ""]
    if report:
        lines += [f"Full report with charts: `{report}`", ""]
    trends = {name: counts for name, counts in (history or {}).items() if counts}
    if trends:
        lines += ["| object | row counts, oldest to newest | latest |", "|---|---|---|"]
        lines += [f"| {name} | {sparkline(counts)} | {counts[-1]:,} |" for name, counts in trends.items()]
        lines.append("")
    lines += ["| object | check | status | observed (threshold) | message |", "|---|---|---|---|---|"]
    for name, entry in qa_summary["objects"].items():
        for r in entry["results"]:
            observed, threshold = readable(r["observed"]), readable(r.get("threshold"))
            cells = [name, r["check"], check_status(r), f"{observed} ({threshold})" if threshold else observed,
                     r["message"]]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def files_markdown(summary: RunSummary, root: Path, *, run_summary_file: Path, qa_files: Mapping[str, Sequence[str]],
                   report: Path | None = None) -> str:
    """Where this run's outputs are, relative to the data root: per object its dataset, summary and QA files."""
    lines = [f"# Files of run {summary.run_id}", "", f"Data root: `{root}`", "",
             f"- run summary: `{display_path(run_summary_file, root)}`"]
    if report is not None:
        lines.append(f"- QA report (HTML, charts): `{display_path(report, root)}`")
    lines += ["", "| object | dataset | summary.json | QA files |", "|---|---|---|---|"]
    for row in summary.objects:
        qa = ", ".join(f"`{display_path(f, root)}`" for f in qa_files.get(row.object, ()))
        cells = [row.object, f"`{display_path(row.dataset, root)}`" if row.dataset else "-",
                 f"`{display_path(row.summary_json, root)}`" if row.summary_json else "-", qa or "-"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


# --- publishing (I/O): a view of the run, so a failure is logged and never fails the run ----------------------


def publish_markdown(key: str, markdown: str, description: str) -> None:
    try:
        blocking(create_markdown_artifact(markdown, key=key, description=description))
    except Exception as err:  # noqa: BLE001 - advisory by design: reporting must not change the run's outcome
        get_run_logger().warning(kv("artifact_failed", key=key, error=f"{type(err).__name__}: {err}"))


def publish_table(key: str, rows: list[dict[str, str]], description: str) -> None:
    try:
        blocking(create_table_artifact(rows, key=key, description=description))
    except Exception as err:  # noqa: BLE001 - advisory by design: reporting must not change the run's outcome
        get_run_logger().warning(kv("artifact_failed", key=key, error=f"{type(err).__name__}: {err}"))
