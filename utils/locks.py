"""Cross-process exclusive locks on a lock file, with a visible wait: the one place the pipeline locks.

``filelock`` (an OS lock: ``fcntl.flock`` on POSIX, ``msvcrt`` on Windows) is released by the kernel when the
holder dies, SIGKILL included, so a crash never wedges the next run. A run that waits says so every
``log_every_seconds``, so a long wait behind another run (a backfill, an overlapping schedule) is never silent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from utils.logs import log_event

LOCK_WAIT_LOG_SECONDS = 30.0
_POLL_SECONDS = 0.2


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, *, what: str, log_every_seconds: float = LOCK_WAIT_LOG_SECONDS,
                   **log_fields: Any) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the ``with`` block; log ``lock_waiting`` while blocked."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, thread_local=False)  # one object per holder: threads and processes exclude each other
    started = time.monotonic()
    while True:
        try:
            lock.acquire(timeout=log_every_seconds, poll_interval=_POLL_SECONDS)
            break
        except Timeout:
            log_event("lock_waiting", level=30, lock=what, seconds=round(time.monotonic() - started, 1),
                      file=str(lock_path), **log_fields)
    waited = time.monotonic() - started
    if waited >= log_every_seconds:
        log_event("lock_acquired", lock=what, seconds=round(waited, 1), **log_fields)
    try:
        yield
    finally:
        lock.release()
