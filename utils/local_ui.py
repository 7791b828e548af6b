"""The local Prefect server that ``make ui`` starts: where it is, whether it is up, and the UI link of a run.

Entry points a person runs (``make run``, the serve scripts) report to it when it is up and no other server is
configured, so each run shows in the UI at http://127.0.0.1:4200 without exporting anything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from utils.prefect_sync import blocking

DEFAULT_PORT = 4200
PORT_ENV = "SF_UI_PORT"  # another port for `make ui` and the detection below


def local_ui_url() -> str:
    """``http://127.0.0.1:<port>``: where ``make ui`` serves the Prefect UI."""
    return f"http://127.0.0.1:{os.environ.get(PORT_ENV) or DEFAULT_PORT}"


def is_up(api_url: str, timeout: float = 0.5) -> bool:
    """Whether a Prefect API answers ``/health`` at ``api_url`` (``.../api``)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return bool(response.status == 200 and response.read().strip() == b"true")
    except (OSError, urllib.error.URLError, ValueError):
        return False


@contextlib.contextmanager
def prefect_ui_server() -> Iterator[str | None]:
    """Inside it, Prefect reports to the configured server, else to the one ``make ui`` runs when it is up; yields
    the UI's URL runs show in, or None (no server: Prefect runs its API in this process, no UI shows the runs).

    Prefect reads its settings when it is imported, so the local server is switched to through a settings
    context rather than the environment.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        yield PREFECT_UI_URL.value() or configured.removesuffix("/api")
        return
    ui = local_ui_url()
    if not is_up(f"{ui}/api"):
        yield None
        return
    with temporary_settings(updates={PREFECT_API_URL: f"{ui}/api"}):
        yield ui


def flow_run_link(ui_url: str, flow_run_id: object) -> str:
    """The page of one flow run in the Prefect UI."""
    return f"{ui_url.rstrip('/')}/flow-runs/flow-run/{flow_run_id}"


def serve_every(flow: Any, name: str, cron: str) -> None:
    """``flow.serve`` on ``cron`` against a Prefect server (schedules fire only there): the configured one, else the
    one ``make ui`` runs; without either, exit with what to do instead of serving schedules that never fire."""
    with prefect_ui_server() as ui:
        if ui is None:
            sys.exit("schedules need a Prefect server: run `make ui` first (or set PREFECT_API_URL to yours)")
        print(f"serving {name} on cron '{cron}'; its runs show at {ui}", flush=True)
        blocking(flow.serve(name=name, cron=cron))
