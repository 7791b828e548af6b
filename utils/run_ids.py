"""Run ids: short, unique, safe in file names (letters and digits)."""

from __future__ import annotations

import uuid


def new_run_id() -> str:
    return uuid.uuid4().hex[:10].upper()


def run_id_from(flow_run_id: uuid.UUID | str) -> str:
    """The run id of a Prefect flow run: the first 10 hex digits of its id, so the run's name in the Prefect UI,
    its log lines and its file names all carry the same id."""
    return uuid.UUID(str(flow_run_id)).hex[:10].upper()
