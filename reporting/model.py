"""What the report shows, as typed values, and the pure parsers that build them from the pipeline's outputs
(the run summary, the QA summary, profile.json, schema_report.json, rowcount.txt)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tasks.quality_checks import CheckResult, rowcount_drift
from tasks.quality_parallel import RowcountEntry

ROWCOUNT_POINTS_SHOWN = 60  # the newest runs in the history chart (the file keeps up to 500)


# ------------------------------------------------------------------------------------- the run summary


@dataclass(frozen=True)
class ObjectRun:
    """One object's row of the run summary as the report reads it: the fields it shows. Read by name, so rows
    from older ``runs/*.json`` files (or with fields added since) read too; a field they lack is None."""

    object: str
    status: str
    mode: str | None = None
    rows: int | None = None
    api: str | None = None
    inserts: int | None = None
    updates: int | None = None
    deletes: int | None = None
    hard_deletes: int | None = None
    recovered: int | None = None
    unchanged: int | None = None
    deleted_absent: int | None = None
    replica_rows: int | None = None
    dataset: str | None = None
    extract_s: float | None = None
    process_s: float | None = None
    load_s: float | None = None
    qa_s: float | None = None
    qa: str = ""
    error: str | None = None


@dataclass(frozen=True)
class RunFacts:
    """The run summary (``RunSummary.as_dict()``, the JSON under ``runs/``) as the report reads it."""

    run_id: str
    started_at: str
    seconds: float | None
    source: Mapping[str, str]
    objects: tuple[ObjectRun, ...]
    phase1_ok: bool
    qa_ok: bool
    qa_error: str | None

    @property
    def failed_objects(self) -> list[str]:
        return [row.object for row in self.objects if row.status != "ok"]


# ---------------------------------------------------------------------------------------- the QA files


@dataclass(frozen=True)
class ColumnProfile:
    """One column of ``profile.json``: ``low``/``high`` are min/max (earliest/latest for dates)."""

    name: str
    sf_type: str
    polars_type: str
    nulls: int
    null_rate: float | None
    distinct: int
    low: Any = None
    high: Any = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class Profile:
    dataset: str | None
    rows: int
    columns: tuple[ColumnProfile, ...]


@dataclass(frozen=True)
class SchemaColumn:
    name: str
    sf_type: str
    polars_type: str | None


@dataclass(frozen=True)
class SchemaReport:
    """``schema_report.json`` reduced to what a reader needs: the columns and every difference found."""

    columns: tuple[SchemaColumn, ...]
    differences: tuple[tuple[str, tuple[str, ...]], ...]  # (what differs, the columns or values concerned)
    severity: str  # of the schema check: "info" when nothing differs


@dataclass(frozen=True)
class Histogram:
    """Row counts of one numeric column over equal-width bins; ``edges`` has one more value than ``counts``."""

    column: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int  # null, NaN or infinite: counted, not drawn


@dataclass(frozen=True)
class DriftPoint:
    """One run in the row-count history, with the band the drift check allowed it (None for the first)."""

    entry: RowcountEntry
    low: float | None
    high: float | None
    within: bool
    change_pct: float | None


# ------------------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ObjectReport:
    """Everything the report says about one object; ``notes`` are files that were missing or unreadable."""

    name: str
    row: ObjectRun | None
    checked_this_run: bool
    checks: tuple[CheckResult, ...]
    history: tuple[DriftPoint, ...]
    tolerance_pct: float
    profile: Profile | None
    schema: SchemaReport | None
    histograms: tuple[Histogram, ...]
    required: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunReport:
    """The whole page: the run, whether QA handed over a summary, and one section per object."""

    run: RunFacts
    qa_summary_present: bool
    objects: tuple[ObjectReport, ...]
    generated_at: str


class HasAsDict(Protocol):
    """A ``flows.run_summary.RunSummary``, typed by shape: reporting does not import the flows that call it."""

    def as_dict(self) -> dict[str, Any]: ...


def _object_run(row: Mapping[str, Any]) -> ObjectRun:
    known = {f.name for f in dataclasses.fields(ObjectRun)}
    try:
        return ObjectRun(**{k: v for k, v in row.items() if k in known})
    except TypeError as err:
        msg = f"a run summary row lacks 'object' or 'status' ({sorted(row)}): pass RunSummary.as_dict()"
        raise ValueError(msg) from err


def parse_run_summary(data: HasAsDict | Mapping[str, Any]) -> RunFacts:
    """The report's view of a run summary, from a ``RunSummary`` or its ``as_dict()``."""
    summary: Mapping[str, Any] = data if isinstance(data, Mapping) else data.as_dict()
    missing = [k for k in ("run_id", "started_at", "objects") if k not in summary]
    if missing:
        msg = f"the run summary lacks {', '.join(missing)}: pass RunSummary.as_dict() (what runs/*.json holds)"
        raise ValueError(msg)
    return RunFacts(
        run_id=summary["run_id"], started_at=summary["started_at"], seconds=summary.get("seconds"),
        source=summary.get("source") or {}, objects=tuple(_object_run(r) for r in summary["objects"]),
        phase1_ok=bool(summary.get("phase1_ok", True)), qa_ok=bool(summary.get("qa_ok", True)),
        qa_error=summary.get("qa_error"))


def parse_qa_checks(qa_summary: Mapping[str, Any] | None) -> dict[str, tuple[CheckResult, ...]]:
    """Object -> its check results, from the QA flow's summary (empty when QA produced none)."""
    objects = (qa_summary or {}).get("objects", {})
    return {name: tuple(CheckResult.from_dict(r) for r in entry.get("results", [])) for name, entry in objects.items()}


def parse_profile(document: Mapping[str, Any]) -> Profile:
    """``profile.json``; dates have earliest/latest where numbers and text have min/max."""
    columns = []
    for name, c in document["columns"].items():
        columns.append(ColumnProfile(
            name=name, sf_type=c.get("sf_type", ""), polars_type=c.get("polars_type", ""), nulls=int(c["nulls"]),
            null_rate=c.get("null_rate"), distinct=int(c["distinct"]),
            low=c.get("min", c.get("earliest")), high=c.get("max", c.get("latest")),
            mean=c.get("mean"), std=c.get("std")))
    return Profile(document.get("raw_csv"), int(document["rows"]), tuple(columns))


def parse_schema_report(document: Mapping[str, Any]) -> SchemaReport:
    """The differences are the schema check's own findings (its ``observed``), so the report and the check agree;
    a dataset that could not be read at all has its error instead."""
    columns = tuple(SchemaColumn(c["name"], c["sf_type"], c.get("polars_type")) for c in document.get("columns", []))
    result = next((r for r in document.get("results", []) if r.get("check") == "schema_conformance"),
                  document.get("result"))
    found: dict[str, list[str]] = dict((result or {}).get("observed") or {})
    for key, label in (("error", "the dataset cannot be read"), ("read_error", "the reader failed")):
        if document.get(key) and not found:
            found[label] = [str(document[key])]
    severity = (result or {}).get("severity", "error" if found else "info")
    differences = tuple((label, tuple(str(i) for i in items)) for label, items in found.items())
    return SchemaReport(columns, differences, severity)


def drift_points(object_name: str, history: list[RowcountEntry], tolerance_pct: float) -> tuple[DriftPoint, ...]:
    """The newest runs of the history, each judged against the run before it by the drift check itself."""
    points = []
    start = max(len(history) - ROWCOUNT_POINTS_SHOWN, 0)
    for i in range(start, len(history)):
        entry, previous = history[i], history[i - 1].rows if i else None
        verdict = rowcount_drift(object_name, current=entry.rows, previous=previous, tolerance_pct=tolerance_pct)
        low, high = (None, None) if previous is None else (  # the tolerance drawn; the verdict is the check's
            max(previous * (1 - tolerance_pct / 100), 0.0), previous * (1 + tolerance_pct / 100))
        change = verdict.observed.get("change_pct") if isinstance(verdict.observed, dict) else None
        points.append(DriftPoint(entry, low, high, verdict.passed, change))
    return tuple(points)
