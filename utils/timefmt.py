"""UTC timestamps as text: the one place their formats are written.

- ``utc_seconds``: ``2026-01-01T12:00:00Z``: when something happened (run start, extract, row-count history,
  state updates, benchmark runs).
- ``utc_millis``: ``2026-01-01T12:00:00.123Z``: Salesforce datetimes in the raw CSV and SOQL literals (the
  precision Salesforce keeps); ``POLARS_UTC_MILLIS`` is the same format for Polars' ``strftime``/``strptime``.
- ``utc_iso``: full precision (``...00.521000Z``): the sync state's watermark, which must not be rounded.
- ``utc_json``: JSON outputs: milliseconds when the value has them, microseconds only when it needs them.
A naive datetime means UTC everywhere.
"""

from __future__ import annotations

from datetime import datetime, timezone

POLARS_UTC_MILLIS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def utc_seconds(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_millis(moment: datetime) -> str:
    utc = as_utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def utc_json(moment: datetime) -> str:
    utc = as_utc(moment)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond % 1000 == 0 and utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    elif utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def now_utc_seconds() -> str:
    """The current moment, to the second."""
    return utc_seconds(datetime.now(timezone.utc))
