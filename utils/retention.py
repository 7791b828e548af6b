"""Raw-extract retention: at one run every 15 minutes, data/raw would otherwise grow without end."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from utils import storage
from utils.paths import RAW_NAME_RE, schema_sidecar_for
from utils.raw_files import list_raw_csvs


def _timestamp_of(raw_csv: Path) -> datetime:
    match = RAW_NAME_RE.match(raw_csv.name)
    assert match is not None
    return datetime.strptime(match["ts"], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)


def select_expired(
    raw_csvs: Sequence[Path], *, keep_count: int, max_age_days: float | None, now: datetime,
    protect: Sequence[Path] = (),
) -> list[Path]:
    """Which raw files to delete: all but the newest ``keep_count``, plus any older than ``max_age_days``.

    ``raw_csvs`` is oldest -> newest. Files in ``protect`` (this run's inputs) are never selected.
    """
    protected = {Path(p) for p in protect}
    expired = list(raw_csvs[: max(len(raw_csvs) - keep_count, 0)])
    if max_age_days is not None:
        cutoff = now - timedelta(days=max_age_days)
        expired += [p for p in raw_csvs if _timestamp_of(p) < cutoff and p not in expired]
    return [p for p in expired if p not in protected]


def apply_raw_retention(
    object_name: str, *, keep_count: int, max_age_days: float | None = None,
    data_root: str | os.PathLike[str] | None = None, protect: Sequence[Path] = (), now: datetime | None = None,
) -> list[Path]:
    """Delete expired raw CSVs of one object (and their schema sidecars); returns the CSVs removed."""
    expired = select_expired(list_raw_csvs(object_name, data_root), keep_count=keep_count,
                             max_age_days=max_age_days, now=now or datetime.now(timezone.utc), protect=protect)
    for raw in expired:
        for path in (raw, schema_sidecar_for(raw)):
            storage.remove_file(path)
    return expired
