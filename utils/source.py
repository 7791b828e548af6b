"""Which Salesforce a run talks to: the org in ``.env``, or the embedded emulator when there are no credentials.

``pipeline_source()`` opens the source once per process (nested calls reuse it), logs in once, says loudly which
one it is, and ``get_connection()`` hands each thread its own client on that one session. Secrets never leave
this module's objects.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from utils.connection import SalesforceConnection, SharedSession
from utils.errors import ConfigError
from utils.settings import Credentials, load_credentials, setting

logger = logging.getLogger("sf_pipeline.source")

EMULATOR_NOTICE = "no Salesforce credentials found: using the built-in emulator, synthetic data"


@dataclass(frozen=True)
class SourceInfo:
    """What a run records about its source (no secrets)."""

    kind: str  # "emulator" | "salesforce"
    instance_url: str
    auth_flow: str


class _ActiveSource:
    def __init__(self, credentials: Credentials, info: SourceInfo, shared: SharedSession | None = None) -> None:
        self.credentials = credentials
        self.info = info
        self.shared = shared or SharedSession(credentials)  # the run's one session, whatever the thread
        self.local = threading.local()


_lock = threading.RLock()
_active: _ActiveSource | None = None
_depth = 0


def _emulator_options() -> dict:
    rows_spec = setting("SF_EMULATOR_ROWS", "") or ""
    rows = {}
    for part in filter(None, (p.strip() for p in rows_spec.split(","))):
        name, _, count = part.partition("=")
        if not count.isdigit():
            msg = f"SF_EMULATOR_ROWS: {part!r} should look like Opportunity=100000"
            raise ConfigError(msg)
        rows[name.strip()] = int(count)
    return {"scale": setting("SF_EMULATOR_SCALE", "small"), "rows": rows or None}


@contextlib.contextmanager
def _open(credentials: Credentials | None, log: logging.Logger | logging.LoggerAdapter) -> Iterator[_ActiveSource]:
    if credentials is None:
        from emulator import run_emulator  # imported lazily: a real-org run never loads it

        log.warning("=" * 20 + " " + EMULATOR_NOTICE + " " + "=" * 20)
        with run_emulator(**_emulator_options()) as emu:
            creds = Credentials(flow="access_token", instance_url=emu.instance_url, access_token=emu.access_token,
                                ca_bundle=emu.ca_bundle, api_version=emu.api_version)
            yield _ActiveSource(creds, SourceInfo("emulator", emu.instance_url, "access_token"))
        return
    shared = SharedSession(credentials)  # the run's one login; bad credentials fail before any task starts
    conn = SalesforceConnection(credentials, shared=shared)
    conn.verify()
    info = SourceInfo("salesforce", conn.instance_url, credentials.flow)
    log.warning("using the Salesforce org at %s (auth flow: %s)", info.instance_url, credentials.flow)
    active = _ActiveSource(credentials, info, shared)
    active.local.connection = conn
    yield active


@contextlib.contextmanager
def pipeline_source(log: logging.Logger | logging.LoggerAdapter | None = None, *,
                    credentials_block: str | None = None) -> Iterator[SourceInfo]:
    """Open the run's Salesforce source (or reuse the one already open in this process); its credentials come
    from the Prefect Secret block ``credentials_block`` when one is named, else from the environment / .env."""
    global _active, _depth
    log = log or logger
    with _lock:
        if _active is not None:
            _depth += 1
            reused = _active
        else:
            reused = None
    if reused is not None:
        try:
            if reused.info.kind == "emulator":
                log.warning(EMULATOR_NOTICE + f" ({reused.info.instance_url})")
            else:
                log.warning("using the Salesforce org at %s (auth flow: %s)", reused.info.instance_url,
                            reused.info.auth_flow)
            yield reused.info
        finally:
            with _lock:
                _depth -= 1
        return
    if credentials_block:
        log.info("Salesforce credentials from the Prefect Secret block %r", credentials_block)
    with _open(load_credentials(block=credentials_block), log) as active:
        with _lock:
            _active, _depth = active, 1
        try:
            yield active.info
        finally:
            with _lock:
                _active, _depth = None, 0


def _open_source() -> _ActiveSource:
    if _active is None:
        msg = "no Salesforce source is open: run inside pipeline_source() (the flows do this for you)"
        raise ConfigError(msg)
    return _active


def current_source() -> SourceInfo:
    return _open_source().info


def get_connection() -> SalesforceConnection:
    """This thread's client for the open source, on the run's shared session."""
    active = _open_source()
    conn: SalesforceConnection | None = getattr(active.local, "connection", None)
    if conn is None:
        conn = SalesforceConnection(active.credentials, source=active.info.kind, shared=active.shared)
        active.local.connection = conn
    return conn
