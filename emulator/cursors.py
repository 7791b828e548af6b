"""REST query cursors: executed results kept per locator so ``nextRecordsUrl`` pages can be served."""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass

import polars as pl

from emulator.render import RecordPlan

FINISHED_GRACE_S = 30.0  # a fully read cursor lingers briefly so a client can re-fetch a page it lost


@dataclass
class Cursor:
    frame: pl.DataFrame
    plan: RecordPlan
    total_size: int
    expires_at: float
    finished: bool = False


class QueryCursors:
    """Open cursors by locator id; released after ``ttl_s`` of inactivity or shortly after the last page."""

    def __init__(self, ttl_s: float = 900.0):
        self.ttl_s = ttl_s
        self._cursors: dict[str, Cursor] = {}
        self._lock = threading.Lock()

    def open(self, frame: pl.DataFrame, plan: RecordPlan, total_size: int) -> str:
        locator = "01g" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(15))
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            self._cursors[locator] = Cursor(frame, plan, total_size, now + self.ttl_s)
        return locator

    def get(self, locator: str) -> Cursor | None:
        now = time.monotonic()
        with self._lock:
            cursor = self._cursors.get(locator)
            if cursor is None or cursor.expires_at < now:
                self._cursors.pop(locator, None)
                return None
            if not cursor.finished:
                cursor.expires_at = now + self.ttl_s
            return cursor

    def finish(self, locator: str) -> None:
        with self._lock:
            cursor = self._cursors.get(locator)
            if cursor is not None:
                cursor.finished = True
                cursor.expires_at = time.monotonic() + FINISHED_GRACE_S

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

    def __len__(self) -> int:
        with self._lock:
            self._sweep(time.monotonic())
            return len(self._cursors)

    def _sweep(self, now: float) -> None:
        for locator in [k for k, c in self._cursors.items() if c.expires_at < now]:
            del self._cursors[locator]
