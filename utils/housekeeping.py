"""Keep the data root tidy between runs: stale temp files, raw retention, orphan sidecars, old run summaries."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from utils import storage
from utils.atomic import clean_stale_temp_files
from utils.errors import ConfigError
from utils.logs import kv
from utils.paths import resolve_data_root
from utils.retention import apply_raw_retention

RUN_SUMMARIES_KEPT = 500          # about five days at one run every 15 minutes
ORPHAN_SIDECAR_AGE_SECONDS = 3600  # a sidecar lands just before its CSV: only an old lone one is an orphan


def ensure_data_root(data_root: str | os.PathLike[str] | None) -> Path:
    """Create the data root if needed; one clear error when it cannot be used, before any API call (on an
    object store: reachable, credentials accepted, bucket writable)."""
    try:
        root = resolve_data_root(data_root)
        mirror = storage.mirror_of(root)
        if mirror is not None:
            storage.check_data_root(mirror.url)
    except storage.StorageError as err:  # a config error: one line, no traceback, before any Salesforce call
        raise ConfigError(str(err)) from None
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
    """Delete temp files whose writer died (a crashed or killed earlier run), and on S3 abort the multipart
    uploads such a writer left."""
    root = resolve_data_root(data_root)
    removed = clean_stale_temp_files(root)
    if removed:
        logger.info(kv("temp_files_cleaned", run_id=run_id, count=len(removed)))
    aborted = storage.abort_stale_uploads(root)
    if aborted:
        logger.info(kv("stale_uploads_aborted", run_id=run_id, count=aborted))


def _orphan_sidecars(raw_dir: Path, now: float) -> list[Path]:
    found = []
    listed = storage.list_files(raw_dir)
    names = {p.name for p in listed}
    for sidecar in (p for p in listed if p.name.endswith(".schema.json")):
        csv = sidecar.name[: -len(".schema.json")] + ".csv"
        with contextlib.suppress(FileNotFoundError):
            if csv not in names and now - storage.modified_at(sidecar) > ORPHAN_SIDECAR_AGE_SECONDS:
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
    for orphan in _orphan_sidecars(root / "raw", time.time()):
        storage.remove_file(orphan)
    runs = sorted(storage.list_files(root / "runs", "*.json"))
    for old in runs[: max(len(runs) - RUN_SUMMARIES_KEPT, 0)]:
        storage.remove_file(old)
