"""One migrated Prefect database for every test session on this machine, copied wherever a test needs one.

Creating and migrating Prefect 2's SQLite database costs ~10 s of CPU, and registering its block types ~2 s
more; a suite that did both for every xdist worker's home, every ``prefect_harness`` database, every
``fresh_prefect_home`` and every ``prefect server start`` spent minutes of CPU on it. Here it is done once:
the first process that needs it builds a *template* with the project's own bootstrap
(``utils.prefect_home.prepare_prefect_database``, in a subprocess on an empty home) under a lock file that every
worker and session shares, into a temporary folder renamed into place only when complete. The template is
keyed by the Prefect version, the virtualenv, the bootstrap's source and this module's build format, so another
Prefect or a half-built or outdated template is never used. Each home then gets its own *copy* of the database,
never a shared one.

Prefect also remembers in ``memo_store.toml`` that it registered its block types, so that a restart skips it;
the memo is a hash of the block registry *and of the database URL*, so a copied memo would never match. Each
copy gets a memo computed here with Prefect's own inputs for its own database URL. Should a process's block
registry differ from the one hashed here, the memo does not match and Prefect simply registers its blocks again,
as it would on any new database: the memo saves time, it never decides what is in the database.

Tests whose subject is the first start on an empty home (the bootstrap lock, in
``test_first_runs_started_together_share_one_fresh_prefect_home``) do not use this.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from utils.locks import exclusive_lock

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "prefect.db"  # Prefect's default database file in PREFECT_HOME
MEMO_STORE = "memo_store.toml"  # Prefect's default memo store in PREFECT_HOME
_COMPLETE = "template-complete"  # written last, before the rename: a template without it is never copied
_BUILD_FORMAT = "1"  # change it when the build below changes: older templates are then left unused
_BOOTSTRAP = ROOT / "utils" / "prefect_home.py"
_BUILD = "from utils.prefect_home import prepare_prefect_database\nprepare_prefect_database()\n"
_BUILD_TIMEOUT_S = 600


def template_home() -> Path:
    """Where this Prefect version's template lives: shared by every worker and session of this user and venv."""
    key = hashlib.sha256("\0".join([sys.prefix, _BUILD_FORMAT, _BUILD, _bootstrap_source()]).encode())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"sfpp-prefect-template-{version('prefect')}-{uid}-{key.hexdigest()[:12]}"


def _bootstrap_source() -> str:
    try:
        return _BOOTSTRAP.read_text(encoding="utf-8")
    except OSError:
        return ""


def _is_complete(template: Path) -> bool:
    return (template / _COMPLETE).is_file() and (template / DATABASE).is_file()


def _build(template: Path) -> None:
    """Bootstrap an empty home in a subprocess (clean Prefect environment), then rename it to ``template``."""
    build = Path(tempfile.mkdtemp(prefix=f"{template.name}.build-", dir=template.parent))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "PREFECT_"))}
        env.update(PREFECT_HOME=str(build), SF_ENV_FILE="", PREFECT_LOGGING_LEVEL="WARNING")
        done = subprocess.run([sys.executable, "-c", _BUILD], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=_BUILD_TIMEOUT_S)
        if done.returncode != 0 or not (build / DATABASE).is_file():
            raise RuntimeError(f"building the Prefect template home failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        (build / _COMPLETE).write_text(f"prefect {version('prefect')}\n", encoding="utf-8")
        os.rename(build, template)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def _copy_template_database(database: Path) -> None:
    """Copy the template's database to ``database``, building the template first if there is none yet."""
    template = template_home()
    # one lock for building and copying: a damaged template (a tmp cleaner) is only replaced while nobody copies
    with exclusive_lock(template.with_name(template.name + ".lock"), what="Prefect template home",
                        log_every_seconds=60):
        if not _is_complete(template):
            if template.exists():
                shutil.rmtree(template)
            _build(template)
        shutil.copyfile(template / DATABASE, database)


def _load_collection_blocks_data():
    import asyncio

    from prefect.server.models.block_registration import _load_collection_blocks_data

    return asyncio.run(_load_collection_blocks_data())


def block_registration_memo(database: Path) -> str | None:
    """The hash Prefect's ephemeral API or server would find in its memo store after registering its block types
    in the SQLite database ``database`` (``prefect.server.api.server._memoize_block_auto_registration``); None if
    it cannot be computed here."""
    try:
        from hashlib import sha256

        import prefect.plugins
        from prefect.blocks.core import Block
        from prefect.utilities.dispatch import get_registry_for_type
        from prefect.utilities.hashing import hash_objects

        prefect.plugins.load_prefect_collections()
        # Prefect reads the collections' block data asynchronously; a thread of its own keeps this process's
        # event loop (running or not) out of it
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            collection_blocks_data = pool.submit(_load_collection_blocks_data).result()
        return hash_objects(get_registry_for_type(Block), collection_blocks_data,
                            f"sqlite+aiosqlite:///{database}", hash_algo=sha256)
    except Exception:  # noqa: BLE001 - without a memo Prefect registers its blocks: slower, never wrong
        return None


def seed_prefect_home(home: Path, *, database: Path | None = None) -> Path:
    """Give ``home`` a copy of the migrated template database and a memo store matching that copy.

    ``database`` is where the copy goes: by default Prefect's own default, ``home/prefect.db``; the
    ``prefect_harness`` fixture passes the database its settings point at. ``home`` is created if missing.
    """
    home.mkdir(parents=True, exist_ok=True)
    database = database if database is not None else home / DATABASE
    _copy_template_database(database)
    memo = block_registration_memo(database)
    memo_path = home / MEMO_STORE
    if memo is None:
        memo_path.unlink(missing_ok=True)
    else:
        import toml

        memo_path.write_text(toml.dumps({"block_auto_registration": memo}), encoding="utf-8")
        memo_path.chmod(0o600)
    return home
