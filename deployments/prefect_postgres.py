"""``make ui-postgres``: the local Prefect server of ``make ui`` (deployments/prefect_ui.py), on PostgreSQL.

    python deployments/prefect_postgres.py start    # PostgreSQL on 127.0.0.1, then the Prefect server on it
    python deployments/prefect_postgres.py stop     # the Prefect server, then PostgreSQL (make ui-stop)
    python deployments/prefect_postgres.py status

SQLite serves one machine; a server that workers on other machines report to, or that many runs write at once,
wants PostgreSQL (on SQLite Prefect's own services log "database is locked" under load). The server is the
same one ``make ui`` starts, with ``PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...``; asyncpg,
its driver, is a dependency of Prefect 2.20 and pinned with hashes in requirements.lock.

PostgreSQL is Debian's (``apt-get install postgresql``; installed here when missing and running as root). Its
cluster lives in ``.prefect-ui/postgres/`` (``SF_UI_HOME``), listens on 127.0.0.1 only (port
``SF_UI_POSTGRES_PORT``, 54329) with no Unix socket, and lets the local role ``prefect`` in without a password
(``trust``): it is a local development server, like the SQLite one. ``initdb`` and ``postgres`` refuse to run
as root, so under root they run as the ``postgres`` user Debian's package creates (else ``nobody``).
The functions below are also the tests' (tests/integration/test_prefect_postgres.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from deployments import prefect_ui  # noqa: E402
from deployments.apt import apt_install  # noqa: E402
from utils.local_ui import is_up, local_ui_url  # noqa: E402

PG_HOME = prefect_ui.HOME / "postgres"
DATA_DIR = PG_HOME / "data"
LOG_FILE = PG_HOME / "postgres.log"
PORT = int(os.environ.get("SF_UI_POSTGRES_PORT") or 54329)
ROLE = DATABASE = "prefect"
SERVER_USERS = ("postgres", "nobody")  # who runs initdb and postgres when this is root (they refuse root)
READY_TIMEOUT_S = 60.0


def find_postgres_bin() -> Path | None:
    """Debian's server binaries (``/usr/lib/postgresql/<major>/bin``, kept out of PATH), the newest major."""
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0, default=None)


def ensure_postgresql() -> Path:
    """The server binaries, installed with apt-get first if missing (root only; quick when already there)."""
    found = find_postgres_bin()
    if found is not None:
        return found
    apt_install("postgresql")
    found = find_postgres_bin()
    if found is None:
        msg = "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb exists"
        raise RuntimeError(msg)
    return found


def database_url(port: int = PORT, database: str = DATABASE) -> str:
    """What ``PREFECT_API_DATABASE_CONNECTION_URL`` is set to (no password: the cluster trusts 127.0.0.1)."""
    return f"postgresql+asyncpg://{ROLE}@127.0.0.1:{port}/{database}"


def server_user() -> dict[str, Any]:
    """``subprocess`` arguments that run a PostgreSQL program unprivileged: as the postgres user under root."""
    if os.geteuid() != 0:
        return {}
    for name in SERVER_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    msg = f"no unprivileged user ({', '.join(SERVER_USERS)}) to run PostgreSQL as; create one"
    raise RuntimeError(msg)


def _owned_by_server_user(folder: Path) -> None:
    """Create ``folder`` for the server's user; under root, check that user can reach it through every parent."""
    folder.mkdir(parents=True, exist_ok=True)
    user = server_user()
    if not user:
        return
    os.chown(folder, user["user"], user["group"])
    folder.chmod(0o700)
    for parent in folder.resolve().parents:
        if parent.stat().st_uid != user["user"] and not parent.stat().st_mode & 0o001:
            msg = (f"PostgreSQL runs as uid {user['user']}, who cannot enter {parent}: `chmod o+x {parent}`, or "
                   "set SF_UI_HOME to a folder it can reach")
            raise RuntimeError(msg)


def _run(command: list[str], *, what: str, timeout: float = 120) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd="/", **server_user())
    if done.returncode != 0:
        msg = f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
        raise RuntimeError(msg)
    return done.stdout


def init_cluster(bin_dir: Path, data_dir: Path) -> None:
    """A new cluster in ``data_dir`` (which must not exist yet) whose superuser is the role ``prefect``."""
    _owned_by_server_user(data_dir.parent)
    _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", ROLE, "--auth=trust", "-E", "UTF8",
          "--locale=C", "--no-sync", "--no-instructions"], what="initdb")


def start_postgres(bin_dir: Path, data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``postgres`` on 127.0.0.1:``port`` only (no Unix socket) in its own session; returns once it accepts
    connections."""
    cmd = [str(bin_dir / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port), "-k", ""]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/",
                                start_new_session=True, **server_user())
    deadline = time.monotonic() + READY_TIMEOUT_S
    ready = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, "-d", "postgres"]
    while subprocess.run(ready, check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_postgres(proc.pid)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            msg = f"PostgreSQL did not come up on 127.0.0.1:{port}; last lines of {log}:\n{tail}"
            raise RuntimeError(msg)
        time.sleep(0.2)
    return proc


def create_database(bin_dir: Path, port: int, database: str = DATABASE) -> bool:
    """Create ``database`` unless it exists; True when it was created."""
    psql = [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, "-d", "postgres", "-Atc"]
    if _run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"], what="psql").strip():
        return False
    _run([*psql, f'CREATE DATABASE "{database}"'], what="CREATE DATABASE")
    return True


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the server running on ``data_dir`` (first line of its postmaster.pid), if it is alive."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def stop_postgres(pid: int, *, timeout_s: float = 30.0) -> None:
    """Fast shutdown (SIGINT: clients disconnected, data written), then SIGKILL of its group if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child (the tests): reap it
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------------ make targets

def start() -> int:
    ui = local_ui_url()
    running = postmaster_pid(DATA_DIR)
    if is_up(f"{ui}/api"):
        if running:
            print(f"Prefect UI already running at {ui}, on PostgreSQL 127.0.0.1:{PORT}")
            return 0
        print(f"a Prefect server not on this PostgreSQL already runs at {ui}: `make ui-stop` it first",
              file=sys.stderr)
        return 1
    bin_dir = ensure_postgresql()
    if not (DATA_DIR / "PG_VERSION").is_file():
        init_cluster(bin_dir, DATA_DIR)
    if not running:
        start_postgres(bin_dir, DATA_DIR, PORT, LOG_FILE)
    create_database(bin_dir, PORT)
    print(f"PostgreSQL on 127.0.0.1:{PORT} (data: {DATA_DIR}; log: {LOG_FILE})")
    code = prefect_ui.start(database_url=database_url())
    if code != 0 and not running:
        stop()
    return code


def stop() -> int:
    prefect_ui.stop()
    pid = postmaster_pid(DATA_DIR)
    if pid is not None:
        stop_postgres(pid)
        print(f"stopped PostgreSQL (pid {pid})")
    return 0


def status() -> int:
    code = prefect_ui.status()
    pid = postmaster_pid(DATA_DIR)
    print(f"PostgreSQL {'up' if pid else 'down'} on 127.0.0.1:{PORT}" + (f" (pid {pid})" if pid else ""))
    return code if pid else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    action = parser.parse_args(argv).action
    try:
        return start() if action == "start" else stop() if action == "stop" else status()
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
