"""Land one planned object, the one way both flows do it: an incremental sync into its replica, or a full extract
to a raw CSV, chosen from the registry; the outcome is a typed, frozen ``LandingResult``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from prefect import task
from prefect.runtime import task_run

from configs.salesforce_objects import ApiChoice, ApiPath
from tasks.extract import LANDING_TASK_RETRIES, ExtractOptions, ExtractResult, extract_object
from tasks.extract_plan import ExtractPlanItem
from tasks.replica import MergeStats
from tasks.sync import SyncResult, sync_object
from utils import storage

LandingMode = Literal["backfill", "incremental", "full"]

__all__ = ["LandingMode", "LandingResult", "land_object", "landing_step", "uses_incremental_sync"]


@dataclass(frozen=True)
class LandingResult:
    """One landed object. ``dataset`` is what Phase 1 and QA read: the replica after a sync, else the raw CSV."""

    object_name: str
    dataset: str
    raw_csv: str      # this run's extract (the delta, after a sync): what raw retention counts
    raw_schema: str   # the raw CSV's schema sidecar
    rows: int
    api_path: ApiPath
    seconds: float
    source: str
    run_id: str
    mode: LandingMode
    sync: MergeStats | None = None  # replica merge counts; None after a full extract
    dropped_fields: tuple[str, ...] = ()
    schema_changes: str | None = None  # how the replica's columns changed (a field added, dropped, hidden, retyped)

    @classmethod
    def from_extract(cls, extracted: ExtractResult) -> LandingResult:
        return cls(extracted.object_name, extracted.raw_csv, extracted.raw_csv, extracted.raw_schema, extracted.rows,
                   extracted.api_path, extracted.seconds, extracted.source, extracted.run_id, "full",
                   dropped_fields=tuple(extracted.dropped_fields))

    @classmethod
    def from_sync(cls, synced: SyncResult) -> LandingResult:
        e = synced.extracted
        return cls(e.object_name, synced.dataset, e.raw_csv, e.raw_schema, e.rows, e.api_path, e.seconds, e.source,
                   e.run_id, synced.mode, synced.sync, tuple(e.dropped_fields), synced.schema_changes)

    def as_dict(self) -> dict[str, Any]:
        """The dict the thin tasks return (``extract_salesforce_to_csv``; ``sync_salesforce_object`` adds
        ``mode``, ``dataset`` and ``sync``): Phase 1's return value carries it unchanged."""
        extracted = {"object_name": self.object_name, "raw_csv": self.raw_csv, "raw_schema": self.raw_schema,
                     "rows": self.rows, "api_path": self.api_path, "seconds": self.seconds, "source": self.source,
                     "run_id": self.run_id, "dropped_fields": self.dropped_fields}
        if self.sync is None:
            return extracted
        return {**extracted, "mode": self.mode, "dataset": self.dataset, "sync": self.sync.as_dict(),
                "schema_changes": self.schema_changes}


def uses_incremental_sync(item: ExtractPlanItem) -> bool:
    """Registry objects sync incrementally unless set to full or queried with custom SOQL.

    ``full_refresh`` does not switch to a full extract: it makes the sync start again with a backfill.
    """
    import configs.salesforce_objects as registry  # read at call time: tests swap the mapping

    return registry.SALESFORCE_OBJECTS[item.object_name].effective_sync_mode == "incremental" and not item.custom_soql


def landing_step(item: ExtractPlanItem) -> Literal["sync", "extract"]:
    """What landing the object is called in the UI and the logs: ``sync`` (delta + replica) or ``extract``."""
    return "sync" if uses_incremental_sync(item) else "extract"


def _landing_run_name() -> str:
    """``sync-Account`` or ``extract-Account`` for a direct call (the flows name the run at creation instead)."""
    item = task_run.parameters["item"]
    return f"{landing_step(item)}-{item.object_name}"


@task(task_run_name=_landing_run_name, **LANDING_TASK_RETRIES)
def land_object(item: ExtractPlanItem, run_id: str, *, full_refresh: bool = False, data_root: str | None = None,
                api: ApiChoice | None = None, drop_missing_fields: bool = False) -> LandingResult:
    """Prefect task: land one planned object by incremental sync (delta + replica) or full extract (raw CSV)."""
    from configs.salesforce_objects import spec_for

    options = ExtractOptions(drop_missing_fields=drop_missing_fields)
    if uses_incremental_sync(item):
        landed = LandingResult.from_sync(sync_object(item.object_name, run_id=run_id, full_refresh=full_refresh,
                                                     data_root=data_root, api=api, options=options))
    else:
        landed = LandingResult.from_extract(extract_object(
            item, run_id=run_id, options=options, data_root=data_root,
            bulk_threshold_rows=spec_for(item.object_name).bulk_threshold_rows))
    storage.wait_for_own_uploads()  # an object-store root: what Phase 1 and QA derive files from is there first
    return landed
