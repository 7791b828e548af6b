"""The one place that turns Python/Polars/NumPy values into JSON, and writes JSON files atomically.

Conversions (decided once, tested type by type in tests/unit/test_jsonio.py):

- ``None``, ``bool``, ``int``, ``str`` as is; ``float`` as is, but NaN and +/-infinity become null.
- ``datetime.date`` -> ``"YYYY-MM-DD"``.
- ``datetime.datetime`` -> ISO 8601 in UTC with ``Z``: naive values are taken as UTC, aware ones converted.
  The fraction is omitted when zero, three digits when it is whole milliseconds (Salesforce precision), six
  otherwise (never silently dropped).
- ``Decimal`` -> int when integral, else float; NaN/infinite -> null.
- NumPy ``bool_``/integer/floating scalars -> the Python type (Polars hands out Python scalars already).
- ``list``/``tuple``/Polars ``Series`` -> JSON array, ``dict`` (str keys only) -> object, recursively.
- ``bytes``/``bytearray`` -> base64 text (standard alphabet, padded), as Salesforce ships base64 fields.
- Anything else (sets, time, Enum, custom objects, non-str dict keys) -> TypeError naming the type.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from utils.atomic import write_text_atomic
from utils.timefmt import utc_json


def _float_or_null(value: float) -> float | None:
    return value if math.isfinite(value) else None


format_datetime_utc = utc_json  # ISO 8601 UTC with ``Z``; naive means UTC (the rule lives in utils/timefmt)


def _decimal_to_number(value: Decimal) -> int | float | None:
    if not value.is_finite():
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON-ready Python (None, bool, int, float, str, list, dict); TypeError if impossible."""
    # bool before int (bool is an int), datetime before date (datetime is a date).
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float_or_null(float(value))
    if isinstance(value, datetime):
        return format_datetime_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _decimal_to_number(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _float_or_null(float(value))
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {_json_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, pl.Series)):
        return [to_jsonable(v) for v in value]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    msg = f"cannot write a value of type {kind} as JSON: convert it first or teach utils/jsonio.to_jsonable"
    raise TypeError(msg)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    msg = f"JSON object keys must be str, got {type(key).__qualname__} ({key!r}): convert the key first"
    raise TypeError(msg)


def dumps_json(obj: Any) -> str:
    """Strict JSON text of ``obj`` (UTF-8 characters kept, never NaN/Infinity), newline-terminated."""
    return json.dumps(to_jsonable(obj), ensure_ascii=False, allow_nan=False, indent=2) + "\n"


def dumps_records(records: Iterable[Mapping[str, Any]]) -> str:
    """A JSON array of records; each record's keys keep their order."""
    return dumps_json([dict(r) for r in records])


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Serialise first, then write atomically: a value that cannot be written leaves the old file intact."""
    return write_text_atomic(path, dumps_json(obj))
