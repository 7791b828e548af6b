"""Turn Salesforce REST records into rows of the raw CSV, in exactly the form a Bulk 2.0 extract has.

Quirks handled here, each on purpose:
- relationship fields arrive as nested objects (``{"Owner": {"Name": ...}}``) and a null parent as ``null``;
  both become the dot-path column ``Owner.Name`` (empty for a null parent), as Bulk writes them.
- REST datetimes end in ``+0000``; Bulk writes ``Z``. We write ``2024-01-01T12:00:00.000Z`` for both.
- booleans are JSON true/false; Bulk writes ``true``/``false``.
- numbers keep the text Salesforce gives them (``1500.0``, ``42``): a double is written as Java writes it, as Bulk
  does, so 465590000 is ``4.6559E8`` whichever API read it (``json`` would give ``465590000.0``); compound fields
  (address, location) become compact JSON text (Bulk cannot select them at all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from utils.sf_types import COMPOUND_TYPES, NUMERIC_TYPES
from utils.timefmt import utc_millis


def format_datetime(value: Any) -> str:
    """Any Salesforce datetime text -> ``YYYY-MM-DDTHH:MM:SS.fffZ`` (UTC)."""
    if value is None:
        return ""
    text = str(value)
    if text.endswith("+0000") and len(text) == 28:  # the REST form: 2024-01-01T12:00:00.000+0000
        return text[:-5] + "Z"
    if text.endswith("Z") and len(text) == 24:
        return text
    return utc_millis(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_boolean(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.lower()
    return "true" if value else "false"


def format_double(value: float) -> str:
    """A double as Salesforce writes it everywhere (Java's ``Double.toString``): plain for 1e-3 <= |x| < 1e7 and
    zero (``465590.0``), else one digit, the shortest round-trip rest and an exponent (``4.6559E8``, ``1.0E-4``)."""
    if value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e7:
        return json.dumps(value)  # repr: Java's digits in this range
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple))
    power = len(digits) - 1 + int(exponent)
    digits = digits.rstrip("0")
    return f"{'-' if sign else ''}{digits[0]}.{digits[1:] or '0'}E{power}"


def format_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # never expected, but True is an int in Python
        return "1" if value else "0"
    if isinstance(value, float):
        return format_double(value)
    if isinstance(value, int):
        return json.dumps(value)
    return str(value)


def format_compound(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        value = {k: v for k, v in value.items() if k != "attributes"}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def lookup_path(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    """Value at a relationship path; None when any parent on the way is null."""
    value: Any = record
    for part in path:
        if value is None:
            return None
        value = value.get(part)
    return value


def _column_values(records: Sequence[Mapping[str, Any]], path: tuple[str, ...]) -> list[Any]:
    if len(path) == 1:
        key = path[0]
        return [r.get(key) for r in records]
    if len(path) == 2:
        parent, key = path
        return [p.get(key) if (p := r.get(parent)) is not None else None for r in records]
    return [lookup_path(r, path) for r in records]


def _format_column(values: list[Any], sf_type: str) -> list[str]:
    """Column-wise formatting: list comprehensions with the common case inlined (the REST hot path)."""
    t = sf_type.lower()
    if t == "datetime":
        return ["" if v is None else (v[:-5] + "Z" if len(v) == 28 and v.endswith("+0000") else format_datetime(v))
                for v in values]
    if t in NUMERIC_TYPES:
        # repr(float) is Java's text in its plain range (and what json.dumps gives a finite float)
        return ["" if v is None else (repr(v) if v.__class__ is float and 1e-3 <= abs(v) < 1e7 else format_number(v))
                for v in values]
    if t == "boolean":
        return ["" if v is None else ("true" if v is True else "false" if v is False else format_boolean(v))
                for v in values]
    if t in COMPOUND_TYPES:
        return [format_compound(v) for v in values]
    return ["" if v is None else (v if v.__class__ is str else str(v)) for v in values]


def build_page_converter(columns: Sequence[str], sf_types: Sequence[str]):
    """A REST page (list of records) -> CSV rows function, for fixed columns and types."""
    paths = [tuple(c.split(".")) for c in columns]
    types = list(sf_types)

    def convert(records: Sequence[Mapping[str, Any]]):
        formatted = [_format_column(_column_values(records, p), t) for p, t in zip(paths, types, strict=True)]
        return zip(*formatted, strict=True)

    return convert


def build_row_converter(columns: Sequence[str], sf_types: Sequence[str]) -> Callable[[Mapping[str, Any]], list[str]]:
    """One record -> one CSV row (the page converter applied to a single record)."""
    convert_page = build_page_converter(columns, sf_types)
    return lambda record: list(next(iter(convert_page([record]))))
