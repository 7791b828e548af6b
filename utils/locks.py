"""Cross-process exclusive locks on a lock file, with a visible wait.

``fcntl.flock`` is the OS's own advisory lock: the kernel releases it when the holder dies (SIGKILL included),
so a crash never wedges the next run. A run that waits says so every ``log_every_seconds``, so a long wait
behind another run (a backfill, an overlapping schedule) is never silent.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from utils.logs import log_event

LOCK_WAIT_LOG_SECONDS = 30.0
_POLL_SECONDS = 0.2


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, *, what: str, log_every_seconds: float = LOCK_WAIT_LOG_SECONDS,
                   **log_fields: Any) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the ``with`` block; log ``lock_waiting`` while blocked."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        started = time.monotonic()
        next_log = started + log_every_seconds
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= next_log:
                    log_event("lock_waiting", level=30, lock=what, seconds=round(now - started, 1),
                              file=str(lock_path), **log_fields)
                    next_log = now + log_every_seconds
                time.sleep(_POLL_SECONDS)
        waited = time.monotonic() - started
        if waited >= log_every_seconds:
            log_event("lock_acquired", lock=what, seconds=round(waited, 1), **log_fields)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
