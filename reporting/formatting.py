"""How the report writes numbers, shares, durations and times for people: the one place these formats live."""

from __future__ import annotations

import math
import re
from typing import Any

_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_DTYPE_KEYWORDS = re.compile(r"(time_unit|time_zone)=|'")

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def format_count(value: int | None) -> str:
    """``1980`` -> ``1,980``; None -> an en dash (no value)."""
    return "–" if value is None else f"{value:,}"


def format_number(value: float | int | None) -> str:
    """Full precision a person reads: thousands separated, at most 2 decimals (3 significant below 1)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def format_compact(value: float | None) -> str:
    """Axis labels: ``248150906.5`` -> ``248M``, ``1500`` -> ``1.5k``, ``0.25`` -> ``0.25``."""
    if value is None or not math.isfinite(value):
        return "–"
    for size, suffix in _SUFFIXES:
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def format_share(rate: float | None) -> str:
    """A share as a percentage; ``0.0004`` -> ``<0.1%`` so a few nulls never read as none."""
    if rate is None:
        return "–"
    if rate == 0:
        return "0%"
    if rate < 0.001:
        return "<0.1%"
    return f"{rate * 100:.1f}%".replace(".0%", "%")


def format_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def format_moment(utc_text: str) -> str:
    """``2026-12-02T00:24:55Z`` -> ``2026-12-02 00:24:55 UTC`` (any other text is left as it is)."""
    if utc_text.endswith("Z") and "T" in utc_text:
        return utc_text[:-1].replace("T", " ", 1) + " UTC"
    return utc_text


def format_dtype(polars_type: str) -> str:
    """``Datetime(time_unit='ms', time_zone='UTC')`` -> ``Datetime(ms, UTC)``."""
    return _DTYPE_KEYWORDS.sub("", polars_type)


def format_value(value: Any) -> str:
    """An observed value or threshold of a check: numbers for people, mappings as ``key: value`` pairs."""
    if value is None:
        return "–"
    if isinstance(value, (bool, int, float)):
        return format_number(value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    text = str(value)
    if _ISO_MOMENT.match(text):  # a profiled datetime: to the second is enough to read
        return text[:19].replace("T", " ")
    return text
