"""Write a run's HTML report: ``reports/<timestamp>_<RUNID>.html`` and ``reports/latest.html``, both atomically,
then keep the newest reports under the raw retention policy. The entry point the orchestrator calls."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from configs.salesforce_objects import SALESFORCE_OBJECTS
from reporting.html_report import render_report
from reporting.model import HasAsDict, RunReport, parse_qa_checks, parse_run_summary
from reporting.read import read_object_report
from utils import storage
from utils.atomic import write_text_atomic
from utils.locks import exclusive_lock
from utils.paths import REPORT_NAME_RE, build_report_paths
from utils.timefmt import utc_seconds


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_run_report`` wrote and removed; ``latest`` is left alone when a newer run's report exists."""

    report: Path
    latest: Path
    latest_updated: bool
    size_bytes: int
    removed: tuple[Path, ...]


def default_keep_count() -> int:
    """Reports kept by default: as many as the registry keeps raw extracts of its most-kept object."""
    return max(spec.raw_retention_count for spec in SALESFORCE_OBJECTS.values())


def build_run_report(run_summary: HasAsDict | Mapping[str, Any], qa_summary: Mapping[str, Any] | None, *,
                     data_root: str | os.PathLike[str] | None = None, now: datetime | None = None) -> RunReport:
    """Gather the report's values: the run summary, this run's checks and each object's QA files."""
    run = parse_run_summary(run_summary)
    checks = parse_qa_checks(qa_summary)
    rows = {row.object: row for row in run.objects}
    names = list(dict.fromkeys([*rows, *checks]))  # plan order, then any object only QA reported on
    objects = tuple(read_object_report(name, rows.get(name), checks.get(name), data_root=data_root)
                    for name in names)
    return RunReport(run, qa_summary is not None, objects, utc_seconds(now or datetime.now(timezone.utc)))


def write_run_report(run_summary: HasAsDict | Mapping[str, Any], qa_summary: Mapping[str, Any] | None, *,
                     data_root: str | os.PathLike[str] | None = None, keep_count: int | None = None,
                     max_age_days: float | None = None) -> ReportFiles:
    """Render and write this run's report and ``latest.html``, then prune older reports.

    ``run_summary``: the ``RunSummary`` or its ``as_dict()``; ``qa_summary``: the QA flow's summary dict, None
    when QA produced none. ``keep_count`` defaults to ``default_keep_count()``; ``max_age_days`` also drops older
    reports (the orchestrator's ``raw_retention_days``). Raises OSError when the report cannot be written.
    """
    report = build_run_report(run_summary, qa_summary, data_root=data_root)
    paths = build_report_paths(report.run.started_at, report.run.run_id, data_root=data_root)
    page = render_report(report)
    with exclusive_lock(paths.lock, what="run reports", run_id=report.run.run_id):  # overlapping runs
        write_text_atomic(paths.report, page)
        newest = _is_newest(paths.report)
        if newest:  # a copy, not a link: it opens anywhere and outlives the pruning of its original
            write_text_atomic(paths.latest, page)
        removed = prune_reports(paths.directory, keep_count=default_keep_count() if keep_count is None else keep_count,
                                max_age_days=max_age_days, protect=(paths.report,))
    return ReportFiles(paths.report, paths.latest, newest, len(page.encode("utf-8")), tuple(removed))


def _is_newest(report: Path) -> bool:
    """Whether no run that started later has a report (a run that ends after a later one must not take latest)."""
    return not any(REPORT_NAME_RE.match(p.name) and p.name > report.name
                   for p in storage.list_files(report.parent, "*.html"))


def _report_moment(report: Path) -> datetime:
    return datetime.strptime(report.name.split("_", 1)[0], "%Y-%m-%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def select_expired_reports(reports: Sequence[Path], *, keep_count: int, max_age_days: float | None,
                           now: datetime, protect: Sequence[Path] = ()) -> list[Path]:
    """All but the newest ``keep_count`` reports (names sort by time), plus any older than ``max_age_days``."""
    ordered = sorted(reports, key=lambda p: p.name)
    expired = ordered[: max(len(ordered) - keep_count, 0)]
    if max_age_days is not None:
        cutoff = now - timedelta(days=max_age_days)
        expired += [p for p in ordered if _report_moment(p) < cutoff and p not in expired]
    return [p for p in expired if p not in set(protect)]


def prune_reports(directory: Path, *, keep_count: int, max_age_days: float | None = None,
                  now: datetime | None = None, protect: Sequence[Path] = ()) -> list[Path]:
    """Delete expired run reports under ``directory``; ``latest.html`` and other files are never touched."""
    if keep_count < 1:
        msg = f"keep_count must be at least 1, not {keep_count}: the newest report is always kept"
        raise ValueError(msg)
    reports = [p for p in storage.list_files(directory, "*.html") if REPORT_NAME_RE.match(p.name)]
    expired = select_expired_reports(reports, keep_count=keep_count, max_age_days=max_age_days,
                                     now=now or datetime.now(timezone.utc), protect=protect)
    for path in expired:
        storage.remove_file(path)  # a concurrent run may have pruned it first
    return expired
