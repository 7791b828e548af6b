"""Consistent, parseable log lines: ``event=... run_id=... object=... rows=... seconds=...``."""

from __future__ import annotations

import logging
from typing import Any

_fallback = logging.getLogger("sf_pipeline")


def get_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow/task run, else a plain module logger."""
    try:
        from prefect import get_run_logger
        from prefect.exceptions import MissingContextError

        try:
            return get_run_logger()
        except MissingContextError:
            return _fallback
    except ImportError:  # pragma: no cover - prefect is a runtime dependency
        return _fallback


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def kv(event: str, **fields: Any) -> str:
    """``event=<event> k=v ...`` with values quoted when needed (logfmt)."""
    parts = [f"event={event}"] + [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


def log_event(event: str, *, level: int = logging.INFO, logger: Any = None, **fields: Any) -> None:
    (logger or get_logger()).log(level, kv(event, **fields))
