"""Python API: run the emulator (subprocess by default, or a thread) and drive its admin endpoints."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from emulator.generated_objects import with_custom_objects
from emulator.org import DEFAULT_SEED, parse_rows, resolve_sizes
from emulator.state import EmulatorConfig, living_rate_of

STARTUP_TIMEOUT_S = 180.0  # a `large` org takes a while to generate
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class EmulatorInfo:
    """What a client needs: where the emulator is, a valid session id, the CA file and the API version."""

    instance_url: str
    access_token: str
    ca_bundle: str
    api_version: str

    @classmethod
    def from_json(cls, line: str) -> EmulatorInfo:
        data = json.loads(line)
        return cls(data["instance_url"], data["access_token"], data["ca_bundle"], data["api_version"])

    def __repr__(self) -> str:  # keep the token out of logs and assertion messages
        return f"EmulatorInfo(instance_url={self.instance_url!r}, ca_bundle={self.ca_bundle!r}, ...)"


def _rows_arg(rows: Mapping[str, int] | None) -> str:
    return ",".join(f"{name}={count}" for name, count in (rows or {}).items())


def _serve_command(seed: int, scale: str, rows: Mapping[str, int] | None, latency_ms: int, faults: str | None,
                   living_rate: float | None, query_timeout_rows: int | None, extra_args: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "emulator", "serve", "--exit-with-parent", "--seed", str(seed), "--scale", scale,
           "--latency-ms", str(latency_ms)]
    if rows:
        cmd += ["--rows", _rows_arg(rows)]
    if faults is not None:
        cmd += ["--faults", faults]
    if living_rate is not None:
        cmd += ["--living-rate", str(living_rate)]
    if query_timeout_rows is not None:
        cmd += ["--query-timeout-rows", str(query_timeout_rows)]
    return cmd + list(extra_args)


def _read_info_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=STARTUP_TIMEOUT_S):
            msg = f"the emulator printed nothing within {STARTUP_TIMEOUT_S:.0f} s; see its stderr above"
            raise RuntimeError(msg)
    line = proc.stdout.readline()
    if not line:
        msg = f"the emulator exited with code {proc.wait()} before it was ready; see its stderr above"
        raise RuntimeError(msg)
    return line


@contextmanager
def _subprocess_emulator(cmd: list[str]) -> Iterator[EmulatorInfo]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    # stdin is a pipe only we hold: if this process dies, even by SIGKILL, the OS closes it and the
    # emulator (started with --exit-with-parent) sees EOF and shuts down instead of lingering as an orphan
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        yield EmulatorInfo.from_json(_read_info_line(proc))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


@contextmanager
def _thread_emulator(config: EmulatorConfig) -> Iterator[EmulatorInfo]:
    from emulator.server import info_line, start_server

    running = start_server(config)
    try:
        yield EmulatorInfo.from_json(info_line(running))
    finally:
        running.stop()


@contextmanager
def run_emulator(*, seed: int = DEFAULT_SEED, scale: str = "small", rows: dict[str, int] | None = None,
                 latency_ms: int = 0, faults: str | None = None, living_rate: float | None = None,
                 query_timeout_rows: int | None = None, custom_objects: int = 0, in_process: bool = False,
                 extra_args: Sequence[str] = ()) -> Iterator[EmulatorInfo]:
    """Run an emulator for the ``with`` block: a ``python -m emulator serve`` subprocess (its own GIL), or a
    background thread with ``in_process=True``. ``extra_args`` are further ``serve`` flags (subprocess only).
    ``faults=None`` lets the subprocess read ``SF_EMULATOR_FAULTS``; pass ``""`` for certainly no faults.
    ``living_rate=None`` reads ``SF_EMULATOR_LIVING_RATE`` (default 1: the org changes with time); 0: it never does.
    ``query_timeout_rows``: a query matching more rows fails with QUERY_TIMEOUT (REST) or a Failed Bulk job.
    ``rows`` may name optional objects (Invoice__c, AccountHistory, CaseStatus, Wide__c): only then are they there.
    ``custom_objects``: also serve that many generated custom objects, Bench_01__c ... (emulator/generated_objects.py;
    ``rows`` may set the rows of each)."""
    rows = with_custom_objects(rows, custom_objects) or None  # the same org whichever way it is served
    resolve_sizes(scale, rows)  # fail fast, in the caller, on a bad scale or object name
    if in_process:
        if extra_args:
            msg = "extra_args apply to the subprocess emulator only; drop them or use in_process=False"
            raise ValueError(msg)
        config = EmulatorConfig(seed=seed, scale=scale, rows=parse_rows(_rows_arg(rows)), latency_ms=latency_ms,
                                faults=faults, living_rate=living_rate_of(living_rate),
                                query_timeout_rows=query_timeout_rows)
        with _thread_emulator(config) as info:
            yield info
        return
    command = _serve_command(seed, scale, rows, latency_ms, faults, living_rate, query_timeout_rows, extra_args)
    with _subprocess_emulator(command) as info:
        yield info


# --- clients and admin helpers ----------------------------------------------------------------------------------
def emulator_session(info: EmulatorInfo) -> requests.Session:
    """A requests Session that trusts the emulator's CA (trust_env=False: REQUESTS_CA_BUNDLE would override)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = info.ca_bundle
    return session


def _admin(info: EmulatorInfo, method: str, name: str, payload: Any = None) -> dict[str, Any]:
    with emulator_session(info) as session:
        response = session.request(method, f"{info.instance_url}/__emulator__/{name}", json=payload,
                                   headers={"Authorization": f"Bearer {info.access_token}"}, timeout=30)
    if response.status_code >= 300:
        msg = f"emulator admin {name} failed with HTTP {response.status_code}: {response.text}"
        raise RuntimeError(msg)
    return response.json()


def set_faults(info: EmulatorInfo, spec: str | None) -> dict[str, Any]:
    """Replace the active fault rules (None or "" turns faults off); counters start from zero."""
    return _admin(info, "POST", "faults", {"spec": spec or ""})


def reset_state(info: EmulatorInfo, *, data: bool = True) -> dict[str, Any]:
    """Faults off, API usage zero, startup token valid again, cursors/jobs dropped; data regenerated if ``data``."""
    return _admin(info, "POST", "reset", {"data": data})


def get_state(info: EmulatorInfo) -> dict[str, Any]:
    return _admin(info, "GET", "state")


def undelete(info: EmulatorInfo, ids: Sequence[str]) -> dict[str, Any]:
    return _admin(info, "POST", "undelete", {"ids": list(ids)})


def purge(info: EmulatorInfo, ids: Sequence[str]) -> dict[str, Any]:
    """Hard delete: the rows vanish even from queryAll (an emptied recycle bin)."""
    return _admin(info, "POST", "purge", {"ids": list(ids)})


def freeze_clock(info: EmulatorInfo, now: str | None) -> dict[str, Any]:
    """Freeze the server clock at an ISO datetime (writes and relative date literals use it); None unfreezes."""
    return _admin(info, "POST", "clock", {"now": now})


def change_field(info: EmulatorInfo, object_name: str, field: str, action: str, **options: Any) -> dict[str, Any]:
    """An admin's field change: ``delete`` (custom fields), ``hide`` (revoke the integration user's field-level
    security) / ``show`` (grant it back), ``retype`` (``type="double"``, ``picklist=[...]``), ``add`` a custom field
    (``type=...``). Describe and every read API follow at once; ``reset_state`` undoes it."""
    return _admin(info, "POST", "schema", {"object": object_name, "field": field, "action": action, **options})


def configure_jwt_key(info: EmulatorInfo, public_key_pem: str) -> dict[str, Any]:
    """Trust this PEM public key / certificate for OAuth JWT bearer assertions."""
    return _admin(info, "POST", "auth", {"jwt_public_key": public_key_pem})
