"""The schema sidecar written beside each raw CSV: column types from describe, row count and provenance.

Processing and QA read it so they never guess a type. Format (``<raw>.schema.json``)::

    {"object": "Account", "run_id": "...", "api_path": "rest"|"bulk2", "source": "emulator"|"salesforce",
     "soql": "...", "row_count": 123, "extracted_at": "2026-01-01T00:00:00Z",
     "columns": [{"name": "Id", "type": "id"}, {"name": "Owner.Name", "type": "string"}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from utils.atomic import write_text_atomic
from utils.sf_types import polars_dtype_for


@dataclass(frozen=True)
class RawColumn:
    name: str
    type: str


@dataclass(frozen=True)
class RawSchema:
    object: str
    columns: tuple[RawColumn, ...]
    row_count: int
    api_path: str = "rest"
    source: str = "salesforce"
    soql: str = ""
    run_id: str = ""
    extracted_at: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def sf_type(self, column: str) -> str:
        for c in self.columns:
            if c.name == column:
                return c.type
        msg = f"{self.object}: column {column!r} is not in the raw extract's schema"
        raise KeyError(msg)

    def polars_schema(self) -> dict[str, pl.DataType]:
        """Final (typed) dtypes per column."""
        return {c.name: polars_dtype_for(c.type) for c in self.columns}


def write_raw_schema(path: Path, schema: RawSchema) -> Path:
    data = asdict(schema)
    data["columns"] = [asdict(c) for c in schema.columns]
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_raw_schema(path: Path) -> RawSchema:
    """Load a sidecar; a missing or corrupt one is a clear error naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        columns = tuple(RawColumn(name=c["name"], type=c["type"]) for c in data["columns"])
        return RawSchema(
            object=data["object"], columns=columns, row_count=int(data["row_count"]),
            api_path=data.get("api_path", "rest"), source=data.get("source", "salesforce"),
            soql=data.get("soql", ""), run_id=data.get("run_id", ""), extracted_at=data.get("extracted_at", ""),
            extra=data.get("extra", {}),
        )
    except FileNotFoundError as err:
        msg = f"schema sidecar {path} is missing: re-run the extract for this object"
        raise FileNotFoundError(msg) from err
    except (ValueError, KeyError, TypeError) as err:
        msg = f"schema sidecar {path} is corrupt ({err}): delete it and re-run the extract for this object"
        raise ValueError(msg) from err
