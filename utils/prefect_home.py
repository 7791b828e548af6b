"""Prepare Prefect's local database once, under a cross-process lock, before any flow of this process starts.

With no Prefect server configured (``PREFECT_API_URL`` unset) every process runs Prefect's ephemeral API on the
database in ``PREFECT_HOME``, and the first client of each process migrates that database and registers Prefect's
block types. Processes starting together on a fresh home do both at once and crash on each other's half-finished
work ("duplicate column name ...", "UNIQUE constraint failed: block_type.slug / block_schema.checksum"). Here the
first process does it alone while holding a lock file; the others wait, then find everything done: the migrations
have nothing left to apply and Prefect's memo store (``memo_store.toml``) tells it to skip block registration.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from utils.locks import exclusive_lock

LOCK_FILE_NAME = ".sf-pipeline-database.lock"


def uses_ephemeral_api() -> bool:
    """True when Prefect would run its API in this process (no server URL in the environment or profile)."""
    from prefect.settings import PREFECT_API_URL

    return not PREFECT_API_URL.value()


async def _start_ephemeral_api() -> None:
    from prefect.client.orchestration import get_client
    from prefect.server.database.dependencies import provide_database_interface

    # the migrations first and on their own: the API's startup below must finish within Prefect's fixed 30 s,
    # which a first migration on a busy machine can exceed
    await provide_database_interface().create_db()
    async with get_client() as client:  # the API's startup: migrations (none left) and block-type registration
        await client.hello()


def prepare_prefect_database() -> None:
    """Create and migrate Prefect's local database and register its block types, once per Prefect home.

    Call it before the first flow of an entry point. With a Prefect server configured it does nothing: the
    server owns its database.
    """
    if not uses_ephemeral_api():
        return
    from prefect.settings import PREFECT_HOME

    with exclusive_lock(Path(PREFECT_HOME.value()) / LOCK_FILE_NAME, what="Prefect database bootstrap"):
        asyncio.run(_start_ephemeral_api())
