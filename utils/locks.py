"""Exclusive locks with a visible wait: the one place the pipeline locks.

On a local data root, ``filelock`` (an OS lock: ``fcntl.flock`` on POSIX, ``msvcrt`` on Windows), released by
the kernel when the holder dies, SIGKILL included, so a crash never wedges the next run. On an object-store data
root (utils/storage.py), processes on different machines share no kernel: the lock is a **lease object** in the
store, created with a conditional PUT (``If-None-Match: *``: exactly one creator wins), renewed by its holder
every third of its time to live, and taken over (``If-Match`` on the expired lease's ETag) once it has expired,
so a killed holder blocks others for at most ``SF_PIPELINE_LOCK_TTL_SECONDS`` (60 by default). A run that waits
says so every ``log_every_seconds``, so a long wait behind another run is never silent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from utils import storage
from utils.logs import log_event
from utils.settings import env_number

LOCK_WAIT_LOG_SECONDS = 30.0
LEASE_TTL_ENV = "SF_PIPELINE_LOCK_TTL_SECONDS"
DEFAULT_LEASE_TTL_SECONDS = 60.0
_POLL_SECONDS = 0.2
_LEASE_POLL_SECONDS = 1.0


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, *, what: str, log_every_seconds: float = LOCK_WAIT_LOG_SECONDS,
                   **log_fields: Any) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the ``with`` block; log ``lock_waiting`` while blocked."""
    mirror = storage.mirror_of(lock_path)
    if mirror is not None:
        with _lease(mirror, lock_path, what=what, log_every_seconds=log_every_seconds, **log_fields):
            yield
        return
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


def lease_ttl_seconds() -> float:
    """How long a lease on an object store lasts unrenewed (``SF_PIPELINE_LOCK_TTL_SECONDS``, 60 by default)."""
    return env_number(LEASE_TTL_ENV, DEFAULT_LEASE_TTL_SECONDS, positive=True)


class _Lease:
    """One holder's lease object: its key in the store, its ETag (what a renewal or release must still match)."""

    def __init__(self, mirror: storage.Mirror, lock_path: Path, ttl: float) -> None:
        self.fs = mirror.fs
        self.key = mirror.key(lock_path)
        self.url = f"{mirror.url.split('://', 1)[0]}://{self.key}"
        self.ttl = ttl
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.etag: str | None = None

    def _body(self) -> bytes:
        return json.dumps({"holder": self.holder, "expires_at": time.time() + self.ttl}).encode()

    def try_acquire(self) -> str | None:
        """None once the lease is ours; otherwise who holds it (for the wait log)."""
        try:
            self.etag = _etag(self.fs.pipe_file(self.key, self._body(), mode="create"))
            return None
        except OSError as err:  # FileExistsError, or s3fs's OSError for a 412 without its Condition field
            if not _precondition_failed(err):
                raise
        try:
            current, etag = self.fs.cat_file(self.key), self.fs.info(self.key).get("ETag")
            lease = json.loads(current)
        except FileNotFoundError:
            return "nobody (released just now)"
        except ValueError:
            lease, etag = {"holder": "unreadable lease", "expires_at": 0}, self.fs.info(self.key).get("ETag")
        if float(lease.get("expires_at", 0)) > time.time():
            return str(lease.get("holder"))
        try:  # expired: take it over, unless another waiter did so first (its ETag differs)
            self.etag = _etag(self.fs.pipe_file(self.key, self._body(), IfMatch=etag))
        except OSError as err:
            if not _precondition_failed(err):
                raise
            return "another waiter (took over the expired lease first)"
        log_event("lock_taken_over", level=30, lock=self.url, expired_holder=lease.get("holder"))
        return None

    def renew(self) -> bool:
        try:
            self.etag = _etag(self.fs.pipe_file(self.key, self._body(), IfMatch=self.etag))
            return True
        except (OSError, ValueError):
            return False

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.fs.info(self.key).get("ETag") == self.etag:
                self.fs.rm_file(self.key)


def _precondition_failed(err: BaseException) -> bool:
    """A conditional write refused (HTTP 412): the object exists (If-None-Match) or changed (If-Match)."""
    if isinstance(err, FileExistsError):
        return True
    for cause in (err, err.__cause__):
        response = getattr(cause, "response", None) or {}
        if (response.get("Error", {}).get("Code") == "PreconditionFailed"
                or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412):
            return True
    return False


def _etag(put_result: Any) -> str | None:
    return put_result.get("ETag") if isinstance(put_result, dict) else None


@contextlib.contextmanager
def _lease(mirror: storage.Mirror, lock_path: Path, *, what: str, log_every_seconds: float,
           **log_fields: Any) -> Iterator[None]:
    """Hold the lease object of ``lock_path`` in the store, renewed by a daemon thread until the block ends."""
    lease = _Lease(mirror, lock_path, lease_ttl_seconds())
    started = last_log = time.monotonic()
    while (holder := storage.guarded(mirror, "hold a lock", lease.try_acquire)) is not None:
        if time.monotonic() - last_log >= log_every_seconds:
            last_log = time.monotonic()
            log_event("lock_waiting", level=30, lock=what, seconds=round(last_log - started, 1), file=lease.url,
                      holder=holder, **log_fields)
        time.sleep(_LEASE_POLL_SECONDS)
    waited = time.monotonic() - started
    if waited >= log_every_seconds:
        log_event("lock_acquired", lock=what, seconds=round(waited, 1), **log_fields)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(lease.ttl / 3):
            if not lease.renew():
                log_event("lock_lost", level=40, lock=what, file=lease.url, **log_fields)
                return

    keeper = threading.Thread(target=heartbeat, name=f"lease-{lock_path.name}", daemon=True)
    keeper.start()
    try:
        try:
            yield
        finally:  # what was written under the lease is in the store before the next holder reads it (kept renewed)
            _wait_for_uploads(failing=sys.exc_info()[1] is not None)
    finally:
        stop.set()
        keeper.join()
        lease.release()


def _wait_for_uploads(*, failing: bool) -> None:
    """Wait for the background uploads the holder made (utils/storage.py); when the block already failed, its
    error is the one to report, and a failed upload stays recorded for the run's next barrier."""
    try:
        storage.wait_for_own_uploads()  # the holder's: another thread's uploads are not this lease's
    except storage.StorageError:
        if not failing:
            raise
