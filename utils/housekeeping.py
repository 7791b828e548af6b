"""Keep the data root tidy between runs: stale temp files, raw retention, orphan sidecars, old run summaries."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from utils.atomic import clean_stale_temp_files
from utils.errors import ConfigError
from utils.logs import kv
from utils.paths import resolve_data_root
from utils.retention import apply_raw_retention

RUN_SUMMARIES_KEPT = 500          # about five days at one run every 15 minutes
ORPHAN_SIDECAR_AGE_SECONDS = 3600  # a sidecar lands just before its CSV: only an old lone one is an orphan


def ensure_data_root(data_root: str | os.PathLike[str] | None) -> Path:
    """Create the data root if needed; one clear error when it cannot be used, before any API call."""
    root = resolve_data_root(data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        msg = (f"data root {root} cannot be used ({err.strerror or err}); point SF_PIPELINE_DATA_DIR "
               "(or the data_root parameter) at a writable directory")
        raise ConfigError(msg) from None
    return root


def sweep_temp_files(data_root: str | os.PathLike[str] | None, run_id: str, logger: Any) -> None:
    """Delete temp files whose writer died (a crashed or killed earlier run)."""
    removed = clean_stale_temp_files(resolve_data_root(data_root))
    if removed:
        logger.info(kv("temp_files_cleaned", run_id=run_id, count=len(removed)))


def _orphan_sidecars(raw_dir: Path, now: float) -> list[Path]:
    found = []
    for sidecar in raw_dir.glob("*.schema.json"):
        csv = sidecar.with_name(sidecar.name[: -len(".schema.json")] + ".csv")
        with contextlib.suppress(FileNotFoundError):
            if not csv.exists() and now - sidecar.stat().st_mtime > ORPHAN_SIDECAR_AGE_SECONDS:
                found.append(sidecar)
    return found


def apply_retention(
    raw_files: Mapping[str, str | None], *, keep_counts: Mapping[str, int], max_age_days: float | None,
    data_root: str | os.PathLike[str] | None, run_id: str, logger: Any,
) -> None:
    """Raw retention per object (never this run's files), then orphan sidecars and old run summaries."""
    root = resolve_data_root(data_root)
    for name, raw in raw_files.items():
        removed = apply_raw_retention(name, keep_count=keep_counts[name], max_age_days=max_age_days,
                                      data_root=root, protect=[Path(raw)] if raw else [])
        if removed:
            logger.info(kv("raw_retention", run_id=run_id, object=name, removed=len(removed),
                           keep=keep_counts[name]))
    if (root / "raw").is_dir():
        for orphan in _orphan_sidecars(root / "raw", time.time()):
            with contextlib.suppress(FileNotFoundError):
                orphan.unlink()
    runs = sorted((root / "runs").glob("*.json")) if (root / "runs").is_dir() else []
    for old in runs[: max(len(runs) - RUN_SUMMARIES_KEPT, 0)]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
