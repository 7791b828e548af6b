"""Run ids: short, unique, safe in file names (letters and digits)."""

from __future__ import annotations

import uuid


def new_run_id() -> str:
    return uuid.uuid4().hex[:10].upper()
