"""The cross-process lock: exclusive, released by the OS, and a wait that is never silent."""

from __future__ import annotations

import logging
import threading
import time

import prefect  # noqa: F401 - Prefect configures logging on import; before caplog attaches, not during a test

from utils.locks import exclusive_lock


def test_a_blocked_wait_logs_until_the_holder_releases(tmp_path, caplog):
    lock = tmp_path / "state" / "Lead.lock"
    holding, release = threading.Event(), threading.Event()

    def holder():
        with exclusive_lock(lock, what="test holder"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(10)
    caplog.set_level(logging.INFO)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    with exclusive_lock(lock, what="sync of Lead", log_every_seconds=0.3, object="Lead"):
        waited = time.monotonic() - started
    thread.join()
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=lock_waiting")]
    assert waited >= 0.9, "the second holder waited for the first"
    assert waits and all('lock="sync of Lead"' in w and "object=Lead" in w for w in waits)
    assert any(r.getMessage().startswith("event=lock_acquired") for r in caplog.records)


def test_an_uncontended_lock_logs_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with exclusive_lock(tmp_path / "x.lock", what="quick"):
        pass
    assert not [r for r in caplog.records if "lock_" in r.getMessage()]
