"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from utils import storage

TEMP_MARKER = ".tmp-"


def temp_path_for(target: Path) -> Path:
    """A unique hidden sibling of ``target``; same directory, so the final rename is atomic."""
    return target.with_name(f".{target.name}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_temp_path(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARKER in path.name


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, upload_while_written: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; on success fsync and rename it onto ``target`` (and publish it to the store
    of an object-store data root), else delete it.

    ``upload_while_written``: the file is big and written front to back (a raw extract, dedup.csv); on S3 its parts
    are sent while it is written, and it still becomes visible only once complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    streaming = storage.start_streaming_upload(tmp, target) if upload_while_written else None
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            if streaming is not None:
                streaming.abandon()
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
    storage.publish(target, streaming=streaming)  # an object-store data root: never a partial object in the store


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(target, text.encode("utf-8"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_files(root: str | os.PathLike[str], *, min_age_seconds: float = 0.0) -> list[Path]:
    """Delete temp files left by crashed writers (their process is gone). Returns what was removed."""
    root = Path(root)
    removed: list[Path] = []
    if not root.exists():
        return removed
    now = time.time()
    for path in root.rglob(f".*{TEMP_MARKER}*"):
        try:
            pid = int(path.name.rsplit(TEMP_MARKER, 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime >= min_age_seconds:
                path.unlink()
                removed.append(path)
    return removed
