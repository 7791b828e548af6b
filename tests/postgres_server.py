"""A throwaway PostgreSQL on loopback for the tests: Debian's server binaries (installed when missing), a cluster
in a fresh folder, one database, stopped and removed on exit. The programs are make ui-postgres's own
(deployments/prefect_postgres.py), so the tests start PostgreSQL the way a person's `make ui-postgres` does.

    with running_postgres(postgres_binaries()) as pg:
        ... PREFECT_API_DATABASE_CONNECTION_URL=pg.url ...   # postgresql+asyncpg://prefect@127.0.0.1:PORT/prefect
        pg.psql("SELECT count(*) FROM flow_run")
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from deployments.prefect_postgres import (
    DATABASE,
    ROLE,
    create_database,
    database_url,
    ensure_postgresql,
    init_cluster,
    start_postgres,
    stop_postgres,
)
from tests.prefect_server import free_port

INSTALL_LOCK = Path(tempfile.gettempdir()) / "sfpp-postgresql-install.lock"


def postgres_binaries() -> Path:
    """Debian's PostgreSQL server binaries, installed by apt-get on a machine without them (CI starts clean); a
    file lock makes parallel workers install once, and an installed one is found with a glob."""
    with FileLock(str(INSTALL_LOCK), timeout=1200):
        return ensure_postgresql()


@dataclass(frozen=True)
class Postgres:
    """A running cluster: its binaries, its port, and the URL Prefect's server takes."""

    bin_dir: Path
    port: int
    url: str

    def psql(self, sql: str) -> list[str]:
        """The rows ``sql`` returns from the database, one line each (columns joined by ``|``)."""
        done = subprocess.run([str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE,
                               "-d", DATABASE, "-Atc", sql], capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.splitlines()


@contextlib.contextmanager
def running_postgres(bin_dir: Path) -> Iterator[Postgres]:
    """A new cluster on a free loopback port with the database ``prefect``; yields it. The cluster's
    folder is one of its own under /tmp, which the unprivileged PostgreSQL user can enter (pytest's tmp_path is
    root's alone); the server is stopped (fast shutdown, SIGKILL if it hangs) and the folder removed on exit."""
    home = Path(tempfile.mkdtemp(prefix="sfpp-postgres-"))
    home.chmod(0o755)
    port = free_port()
    try:
        init_cluster(bin_dir, home / "pg" / "data")
        proc = start_postgres(bin_dir, home / "pg" / "data", port, home / "postgres.log")
        try:
            create_database(bin_dir, port)
            yield Postgres(bin_dir, port, database_url(port))
        finally:
            stop_postgres(proc.pid)
    finally:
        shutil.rmtree(home, ignore_errors=True)
