"""``make ui`` / ``make ui-stop``: a local Prefect server (UI and API) in the background, for this project.

    python deployments/prefect_ui.py start    # starts it, or says where it already runs; prints the URL
    python deployments/prefect_ui.py stop
    python deployments/prefect_ui.py status

Its database, log and pid file live in ``.prefect-ui/`` in the project root (not your ``~/.prefect``), so
``make clean`` style removal of that folder resets it. ``make run`` and the serve scripts report to it while it
is up (utils/local_ui.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from utils.local_ui import is_up, local_ui_url  # noqa: E402

HOME = Path(os.environ.get("SF_UI_HOME") or PROJECT_ROOT / ".prefect-ui")  # SF_UI_HOME: elsewhere (tests)
PID_FILE = HOME / "server.pid"
LOG_FILE = HOME / "server.log"
START_TIMEOUT_S = 120.0  # a first start migrates a new SQLite database: ~10-30 s on a small machine


def _server_env(port: str, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # the server is its own API
    if database_url:  # make ui-postgres (deployments/prefect_postgres.py); else SQLite in HOME
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    env.update(PREFECT_HOME=str(HOME), PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               # Prefect's own services write to SQLite beside the runs; these two are unused here and only add to
               # the "database is locked" noise (README, Troubleshooting)
               PREFECT_API_SERVICES_FLOW_RUN_NOTIFICATIONS_ENABLED="false",
               PREFECT_API_SERVICES_PAUSE_EXPIRATIONS_ENABLED="false")
    return env


def _pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(*, database_url: str | None = None) -> int:
    """Start the server (on ``database_url``, else its SQLite file in HOME) unless one answers already."""
    ui = local_ui_url()
    if is_up(f"{ui}/api"):
        print(f"Prefect UI already running at {ui}" + ("" if _pid() else " (started elsewhere)"))
        return 0
    HOME.mkdir(exist_ok=True)
    port = ui.rsplit(":", 1)[1]
    prefect = Path(sys.executable).with_name("prefect")
    with open(LOG_FILE, "ab") as log:
        proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", port],
                                cwd=PROJECT_ROOT, env=_server_env(port, database_url), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    PID_FILE.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if is_up(f"{ui}/api"):
            print(f"Prefect UI at {ui}  (log: {LOG_FILE}; stop: make ui-stop)")
            print("make run and the serve scripts report to it while it runs.")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    print(f"the Prefect server did not come up at {ui}; last lines of {LOG_FILE}:", file=sys.stderr)
    print("\n".join(LOG_FILE.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    PID_FILE.unlink(missing_ok=True)
    return 1


def stop(*, quiet: bool = False) -> int:
    pid = _pid()
    if pid is None:
        if not quiet:
            print("no Prefect UI started by make ui is running")
        PID_FILE.unlink(missing_ok=True)
        return 0
    os.killpg(pid, signal.SIGTERM)  # the server and the UI/API workers it started
    for _ in range(40):
        if _pid() is None:
            break
        time.sleep(0.25)
    else:
        os.killpg(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    if not quiet:
        print(f"stopped the Prefect UI (pid {pid})")
    return 0


def status() -> int:
    ui = local_ui_url()
    up = is_up(f"{ui}/api")
    print(f"Prefect UI {'up' if up else 'down'} at {ui}" + (f" (pid {_pid()})" if _pid() else ""))
    return 0 if up else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    action = parser.parse_args(argv).action
    return start() if action == "start" else stop() if action == "stop" else status()


if __name__ == "__main__":
    sys.exit(main())
