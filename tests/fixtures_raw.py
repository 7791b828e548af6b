"""Test helper: write a raw extract CSV (Salesforce Bulk style) and its schema sidecar, like the extract."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from utils.atomic import write_text_atomic
from utils.paths import RAW_NAME_RE, raw_csv_name, schema_sidecar_for
from utils.raw_schema import RawColumn, RawSchema, write_raw_schema

FIXTURE_MOMENT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def quote_bulk(value: str | None) -> str:
    """One CSV cell, Salesforce Bulk style: always double-quoted, inner quotes doubled, None -> ``""``."""
    text = "" if value is None else str(value)
    return '"' + text.replace('"', '""') + '"'


def format_raw_csv(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> str:
    """The whole raw CSV text: quoted header, one quoted line per row (``\\n`` line ends)."""
    width = len(header)
    lines = [",".join(quote_bulk(h) for h in header)]
    for i, row in enumerate(rows):
        if len(row) != width:
            msg = f"fixture row {i} has {len(row)} values but the header has {width} columns"
            raise ValueError(msg)
        lines.append(",".join(quote_bulk(v) for v in row))
    return "\n".join(lines) + "\n"


def write_raw_fixture(
    dir_or_path: str | os.PathLike[str],
    object_name: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[str | None]],
    run_id: str = "TEST01",
) -> Path:
    """Write ``<Object>_20240102-030405_<run_id>.csv`` (or the exact ``*.csv`` path given) and its sidecar.

    ``columns`` are ``(name, Salesforce describe type)`` pairs; ``rows`` hold already-formatted text
    (``"1500.0"``, ``"2024-01-01"``, ``"true"``) or ``None`` for null. Returns the raw CSV path.
    """
    target = Path(dir_or_path)
    if target.suffix != ".csv":
        target = target / raw_csv_name(object_name, run_id, FIXTURE_MOMENT)
    materialised = [list(r) for r in rows]
    write_text_atomic(target, format_raw_csv([name for name, _ in columns], materialised))
    match = RAW_NAME_RE.match(target.name)
    schema = RawSchema(
        object=object_name,
        columns=tuple(RawColumn(name=n, type=t) for n, t in columns),
        row_count=len(materialised),
        api_path="bulk2",
        source="emulator",
        soql=f"SELECT {', '.join(n for n, _ in columns)} FROM {object_name}",
        run_id=match["run_id"] if match else run_id,
        extracted_at=FIXTURE_MOMENT.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    write_raw_schema(schema_sidecar_for(target), schema)
    return target


# The registry's Opportunity and Account columns with their describe types, as raw fixtures carry them
OPPORTUNITY_COLUMNS = [
    ("Id", "id"), ("Name", "string"), ("StageName", "picklist"), ("Amount", "currency"),
    ("Probability", "percent"), ("CloseDate", "date"), ("IsClosed", "boolean"), ("IsWon", "boolean"),
    ("ForecastCategory", "picklist"), ("LeadSource", "picklist"), ("AccountId", "reference"),
    ("Account.Name", "string"), ("OwnerId", "reference"), ("Owner.Name", "string"),
    ("CreatedDate", "datetime"), ("SystemModstamp", "datetime"),
]
ACCOUNT_COLUMNS = [
    ("Id", "id"), ("Name", "string"), ("Type", "picklist"), ("Industry", "picklist"),
    ("BillingCountry", "string"), ("AnnualRevenue", "currency"), ("NumberOfEmployees", "int"),
    ("Rating", "picklist"), ("OwnerId", "reference"), ("Owner.Name", "string"), ("CreatedDate", "datetime"),
    ("LastModifiedDate", "datetime"), ("SystemModstamp", "datetime"),
]
