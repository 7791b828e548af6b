"""Find the raw extracts of an object on disk, oldest to newest."""

from __future__ import annotations

import os
from pathlib import Path

from utils import storage
from utils.paths import RAW_NAME_RE, build_sync_paths, resolve_data_root, schema_sidecar_for
from utils.replica_layers import overlay_path_for


def _raw_sort_key(path: Path) -> tuple[str, str]:
    match = RAW_NAME_RE.match(path.name)
    assert match is not None  # only matching names reach the sort
    return match["ts"], match["run_id"]


def list_raw_csvs(object_name: str, data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Raw CSVs of ``object_name`` under ``<data_root>/raw``, oldest -> newest (timestamp, then run id); on an
    object store, its listing (the files are not downloaded: ``storage.fetch`` one to read it)."""
    raw_dir = resolve_data_root(data_root) / "raw"
    found = []
    for path in storage.list_files(raw_dir, f"{object_name}_*.csv"):
        match = RAW_NAME_RE.match(path.name)
        # The glob also matches e.g. "Account_History_..." for "Account"; the regex settles whose file it is.
        # Temp files of atomic writes start with "." and never match RAW_NAME_RE.
        if match and match["object"] == object_name:
            found.append(path)
    return sorted(found, key=_raw_sort_key)


def find_latest_raw_csv(object_name: str, data_root: str | os.PathLike[str] | None = None) -> Path | None:
    """The newest raw CSV of ``object_name``, or None when there is none."""
    found = list_raw_csvs(object_name, data_root)
    return found[-1] if found else None


def run_id_of(raw_csv: str | os.PathLike[str]) -> str | None:
    """The run id in a raw CSV's name, or None when the name does not follow the raw naming scheme."""
    match = RAW_NAME_RE.match(Path(raw_csv).name)
    return match["run_id"] if match else None


def find_latest_dataset(object_name: str, data_root: str | os.PathLike[str] | None = None, *,
                        incremental: bool) -> Path | None:
    """What Phase 1/2 should read: the replica of an incrementally synced object, else its newest raw CSV."""
    replica = build_sync_paths(object_name, data_root=data_root).replica
    if incremental and storage.fetch(replica):
        storage.fetch(overlay_path_for(replica))  # the records changed since the base (see utils/replica_layers)
        return replica
    latest = find_latest_raw_csv(object_name, data_root)
    if latest is not None:
        storage.fetch(latest)
        storage.fetch(schema_sidecar_for(latest))
    return latest
