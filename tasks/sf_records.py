"""Turn Salesforce REST records into rows of the raw CSV, in exactly the form a Bulk 2.0 extract has.

Quirks handled here, each on purpose:
- relationship fields arrive as nested objects (``{"Owner": {"Name": ...}}``) and a null parent as ``null``;
  both become the dot-path column ``Owner.Name`` (empty for a null parent), as Bulk writes them.
- REST datetimes end in ``+0000``; Bulk writes ``Z``. We write ``2024-01-01T12:00:00.000Z`` for both.
- booleans are JSON true/false; Bulk writes ``true``/``false``.
- numbers keep the text JSON gives them (``1500.0``, ``42``); compound fields (address, location) become
  compact JSON text (Bulk cannot select them at all).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

Formatter = Callable[[Any], str]


def format_datetime(value: Any) -> str:
    """Any Salesforce datetime text -> ``YYYY-MM-DDTHH:MM:SS.fffZ`` (UTC)."""
    if value is None:
        return ""
    text = str(value)
    if text.endswith("+0000") and len(text) == 28:  # the REST form: 2024-01-01T12:00:00.000+0000
        return text[:-5] + "Z"
    if text.endswith("Z") and len(text) == 24:
        return text
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def format_boolean(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.lower()
    return "true" if value else "false"


def format_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # never expected, but True is an int in Python
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return str(value)


def format_compound(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        value = {k: v for k, v in value.items() if k != "attributes"}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def format_text(value: Any) -> str:
    return "" if value is None else str(value)


_FORMATTERS: dict[str, Formatter] = {
    "datetime": format_datetime,
    "boolean": format_boolean,
    "int": format_number, "long": format_number, "double": format_number,
    "currency": format_number, "percent": format_number,
    "address": format_compound, "location": format_compound,
}


def formatter_for(sf_type: str) -> Formatter:
    return _FORMATTERS.get(sf_type.lower(), format_text)


def lookup_path(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    """Value at a relationship path; None when any parent on the way is null."""
    value: Any = record
    for part in path:
        if value is None:
            return None
        value = value.get(part)
    return value


def build_row_converter(columns: Sequence[str], sf_types: Sequence[str]) -> Callable[[Mapping[str, Any]], list[str]]:
    """A fast record -> CSV row function for fixed columns (paths split once, formatters chosen once)."""
    paths = [tuple(c.split(".")) for c in columns]
    formatters = [formatter_for(t) for t in sf_types]
    simple = [len(p) == 1 for p in paths]

    def convert(record: Mapping[str, Any]) -> list[str]:
        row = []
        for path, fmt, is_simple in zip(paths, formatters, simple, strict=True):
            value = record.get(path[0]) if is_simple else lookup_path(record, path)
            row.append(fmt(value))
        return row

    return convert
