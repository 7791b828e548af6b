"""What an orchestrator run reports: how each branch ended, and one typed row per object (rows, API path,
durations, QA result, files written), turned into the run summary dict the JSON file and callers read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from prefect.states import State

from configs.salesforce_objects import ApiPath
from flows.common import StepOutcome, one_line
from tasks.land import LandingMode, LandingResult
from utils import storage

SYNC_COLUMNS = ("inserts", "updates", "deletes", "hard_deletes", "recovered", "unchanged", "deleted_absent",
                "replica_rows")


@dataclass(frozen=True)
class BranchOutcome:
    """How a branch subflow (Phase 1 or QA) ended; a failed branch still hands over its summary if it made one."""

    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def from_state(cls, state: State) -> BranchOutcome:
        if state.is_completed():
            return cls(True, state.result())
        err = state.result(raise_on_failure=False)
        return cls(False, getattr(err, "summary", None) or None, one_line(err))

    def part(self, key: str) -> dict[str, Any]:
        """One part of the branch summary (``objects``, ``seconds``); empty when there is none."""
        return (self.result or {}).get(key, {})


@dataclass(frozen=True)
class SummaryRow:
    """One object's row; the field order is the key order of the JSON file under ``runs/``."""

    object: str
    status: Literal["ok", "failed"]
    mode: LandingMode | None
    rows: int | None
    api: ApiPath | None
    inserts: int | None  # inserts .. replica_rows: the replica merge (SYNC_COLUMNS), None after a full extract
    updates: int | None
    deletes: int | None
    hard_deletes: int | None
    recovered: int | None
    unchanged: int | None       # delta records identical to the replica's (rows = inserts + updates + unchanged
    deleted_absent: int | None  # + deletes + deleted_absent, each delta record counted once)
    replica_rows: int | None
    dataset: str | None
    extract_s: float
    process_s: float | None
    load_s: float | None
    qa_s: float | None  # from the object's first QA task starting to its last one ending
    qa: str
    raw_csv: str | None
    summary_json: str | None
    error: str | None
    schema_changes: str | None = None  # the replica's columns changed this run: ``+Foo__c, -Bar__c, ~Baz__c (hidden)``
    refreshed: int | None = None  # formula / relationship values the periodic refresh found changed
    # the object refused queryAll: its delta could not show deletions (reconciliation by Id removes them)
    deletes_untracked: bool | None = None


@dataclass(frozen=True)
class RunSummary:
    """The whole run; ``as_dict()`` is what the flow returns and ``runs/<timestamp>_<run id>.json`` holds."""

    run_id: str
    source: dict[str, str]
    started_at: str
    seconds: float
    objects: tuple[SummaryRow, ...]
    phase1_ok: bool
    qa_ok: bool
    qa_error: str | None

    @property
    def failed_objects(self) -> list[str]:
        return [row.object for row in self.objects if row.status != "ok"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"objects": [asdict(row) for row in self.objects]}


def _qa_status(qa_objects: dict[str, Any], name: str) -> str:
    checks = (qa_objects.get(name) or {}).get("results", [])
    if not checks:
        return "n/a"
    failed = [f"{c['check']}({c['severity']})" for c in checks if not c.get("passed") and not c.get("skipped")]
    skipped = [c["check"] for c in checks if c.get("skipped")]
    ran = len(checks) - len(skipped)
    text = f"{ran - len(failed)}/{ran} passed" + (f", {len(skipped)} skipped" if skipped else "")
    return text + (": " + ", ".join(failed) if failed else "")


def _object_errors(ext: StepOutcome[LandingResult], phase1_steps: dict[str, Any], qa_entry: dict[str, Any],
                   phase1: BranchOutcome) -> list[str | None]:
    """Why one object's row is failed: its extract, process or load failed, a QA task crashed, or Phase 1 died
    before reaching it. Empty when every step it ran succeeded (a QA finding is not an error here)."""
    errors = [ext.error] if not ext.ok else []
    for label in ("process", "load"):
        step = phase1_steps.get(label)
        if isinstance(step, dict) and "error" in step:
            errors.append(f"{label}: {step['error']}")
    errors += [f"qa: {crash}" for crash in qa_entry.get("crashed", [])]
    if ext.ok and not phase1.ok and not phase1_steps:
        errors.append(f"phase1: {phase1.error}")
    return errors


def _summary_row(name: str, ext: StepOutcome[LandingResult], phase1: BranchOutcome, qa: BranchOutcome) -> SummaryRow:
    steps, seconds = phase1.part("objects").get(name, {}), phase1.part("seconds").get(name, {})
    load = steps.get("load")
    landed = ext.value if ext.ok else None
    errors = _object_errors(ext, steps, qa.part("objects").get(name) or {}, phase1)
    return SummaryRow(
        object=name,
        status="ok" if not errors else "failed",
        mode=landed.mode if landed else None,
        rows=landed.rows if landed else None,
        api=landed.api_path if landed else None,
        **{k: getattr(landed.sync if landed else None, k, None) for k in SYNC_COLUMNS},
        dataset=storage.location(landed.dataset) if landed else None,
        extract_s=round(ext.seconds, 2),
        process_s=seconds.get("process"),
        load_s=seconds.get("load"),
        qa_s=(qa.part("objects").get(name) or {}).get("seconds"),
        qa=_qa_status(qa.part("objects"), name) if ext.ok else "skipped (no extract)",
        raw_csv=storage.location(landed.raw_csv) if landed and landed.raw_csv else None,
        summary_json=storage.location(load) if isinstance(load, str) else None,
        error="; ".join(e for e in errors if e) or None,
        schema_changes=landed.schema_changes if landed else None,
        refreshed=landed.sync.refreshed if landed and landed.sync else None,
        deletes_untracked=landed.sync.deletes_untracked if landed and landed.sync else None,
    )


def build_run_summary(run_id: str, source: dict[str, str], extracts: dict[str, StepOutcome[LandingResult]],
                      phase1: BranchOutcome, qa: BranchOutcome, started_at: str, seconds: float) -> RunSummary:
    """One row per object, in plan order.

    A row is ``ok`` only if every step it ran succeeded: a failed extract, process or load, or a crashed QA
    task, makes it ``failed`` with the reason in ``error`` (a QA finding stays in ``qa``).
    """
    return RunSummary(run_id, source, started_at, round(seconds, 2),
                      tuple(_summary_row(name, ext, phase1, qa) for name, ext in extracts.items()),
                      phase1.ok, qa.ok, None if qa.ok else qa.error)
