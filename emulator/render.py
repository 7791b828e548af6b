"""Query results as Salesforce writes them: REST JSON records (nested relationships, ``+0000`` datetimes)
and Bulk 2.0 CSV (everything quoted, ``Z`` datetimes). Pure functions over Polars frames."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl

from emulator import schema as s

REST_DATETIME = "%Y-%m-%dT%H:%M:%S%.3f+0000"
BULK_DATETIME = "%Y-%m-%dT%H:%M:%S%.3fZ"
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
ROOT_ID = "__root_id__"  # hidden column with the root record's Id, for attributes.url
_ADDRESS_KEYS = ("street", "city", "state", "postalCode", "country", "stateCode", "countryCode", "latitude",
                 "longitude", "geocodeAccuracy")


@dataclass
class _Node:
    """One JSON object of a record: the root or a parent reached through a relationship."""

    object_name: str
    id_column: str
    children: dict[str, _Node | tuple[str, s.FieldDef]] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordPlan:
    """How to turn result columns into REST records for one query."""

    root: _Node
    version: str


def resolve_path(object_name: str, path: Sequence[str]) -> tuple[list[str], s.FieldDef]:
    """Object names along a relationship path and the final field, e.g. Opportunity, (Account, Owner, Name)."""
    objects = [object_name]
    obj = s.OBJECTS[object_name]
    for rel in path[:-1]:
        ref = next(f for f in obj.fields if f.relationship_name and f.relationship_name.lower() == rel.lower())
        obj = s.OBJECTS[ref.reference_to[0]]
        objects.append(obj.name)
    final = obj.field(path[-1])
    if final is None:
        msg = f"{obj.name}.{path[-1]}: not a field of the emulated schema"
        raise KeyError(msg)
    return objects, final


def record_plan(object_name: str, paths: Sequence[tuple[str, ...]], version: str) -> RecordPlan:
    """The nesting of the selected paths (key order = first mention in SELECT, like Salesforce)."""
    root = _Node(object_name, ROOT_ID)
    for path in paths:
        objects, final = resolve_path(object_name, path)
        node = root
        for depth, rel in enumerate(path[:-1]):
            child = node.children.get(rel)
            if not isinstance(child, _Node):
                child = _Node(objects[depth + 1], "__ref__." + ".".join(path[:depth + 1]))
                node.children[rel] = child
            node = child
        node.children[path[-1]] = (".".join(path), final)
    return RecordPlan(root, version)


def _attributes(node: _Node, version: str) -> pl.Expr:
    url = pl.concat_str([pl.lit(f"/services/data/v{version}/sobjects/{node.object_name}/"), pl.col(node.id_column)])
    return pl.struct(pl.lit(node.object_name).alias("type"), url.alias("url")).alias("attributes")


def _value(column: str, f: s.FieldDef, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(column)
    if f.type == "datetime":
        return col.dt.strftime(REST_DATETIME)
    if f.type == "date":
        return col.dt.strftime("%Y-%m-%d")
    if f.is_compound and isinstance(dtype, pl.Struct):
        prefix = f.name[: -len("Address")]
        parts = {fld.name: fld for fld in dtype.fields}
        keys = []
        for key in _ADDRESS_KEYS:
            name = prefix + key[0].upper() + key[1:]
            keys.append((col.struct.field(name) if name in parts else pl.lit(None)).alias(key))
        empty = pl.all_horizontal(col.struct.field(n).is_null() for n in parts) if parts else pl.lit(True)
        return pl.when(col.is_null() | empty).then(None).otherwise(pl.struct(keys))
    return col


def _node_expr(node: _Node, plan: RecordPlan, schema: pl.Schema, key: str) -> pl.Expr:
    members = [_attributes(node, plan.version)]
    for child_key, child in node.children.items():
        if isinstance(child, _Node):
            members.append(_node_expr(child, plan, schema, child_key))
        else:
            column, f = child
            members.append(_value(column, f, schema[column]).alias(child_key))
    obj = pl.struct(members)
    if node.id_column != ROOT_ID:  # a null lookup is "Owner": null, not an object of nulls
        obj = pl.when(pl.col(node.id_column).is_null()).then(None).otherwise(obj)
    return obj.alias(key)


def rest_records(frame: pl.DataFrame, plan: RecordPlan) -> bytes:
    """The JSON array of REST records for these result rows (the ``records`` value of a query page)."""
    if frame.height == 0:
        return b"[]"
    encoded = frame.select(_node_expr(plan.root, plan, frame.schema, "r").struct.json_encode()).to_series()
    return b"[" + ",".join(encoded.to_list()).encode() + b"]"  # str.join in Polars is ~3x slower here


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates and datetimes as their Bulk CSV text, once per job (formatting them is most of the CSV cost)."""
    return frame.with_columns(
        [pl.col(c).dt.strftime(BULK_DATETIME) for c, d in frame.schema.items() if isinstance(d, pl.Datetime)]
        + [pl.col(c).dt.strftime("%Y-%m-%d") for c, d in frame.schema.items() if isinstance(d, pl.Date)])


def csv_chunks(frame: pl.DataFrame, columns: Sequence[str], *, delimiter: str = "COMMA", line_ending: str = "LF",
               chunk_rows: int = 50_000) -> Iterator[bytes]:
    """A Bulk 2.0 result page as CSV, in pieces: header first, every value quoted, null as ``""``."""
    sep, eol = DELIMITERS[delimiter], LINE_ENDINGS[line_ending]
    data = frame.select(columns)
    yield (sep.join(_quote(c) for c in columns) + eol).encode()
    for start in range(0, data.height, chunk_rows):
        buf = io.BytesIO()
        data.slice(start, chunk_rows).write_csv(
            buf, include_header=False, separator=sep, line_terminator=eol, quote_style="always", null_value="",
            datetime_format=BULK_DATETIME, date_format="%Y-%m-%d")
        yield buf.getvalue()


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def rest_value(value: Any) -> Any:
    """One Python value as REST JSON encodes it (for single-record GETs)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    return value


def single_record(obj: s.ObjectDef, row: dict[str, Any], version: str,
                  fields: Sequence[str] | None = None) -> dict[str, Any]:
    """``GET /sobjects/{Object}/{Id}``: every field (or ``fields``) with attributes; compound as an object."""
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}}
    wanted = [obj.field(n) for n in fields] if fields else list(obj.fields)
    for f in wanted:
        if f is None:
            continue
        if f.is_compound:
            prefix = f.name[: -len("Address")]
            parts = {k: row.get(prefix + k[0].upper() + k[1:]) for k in _ADDRESS_KEYS}
            out[f.name] = parts if any(v is not None for v in parts.values()) else None
        else:
            out[f.name] = rest_value(row.get(f.name))
    return out
