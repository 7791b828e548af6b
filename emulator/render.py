"""Query results as Salesforce writes them: REST JSON records (nested relationships and subqueries, ``+0000``
datetimes, AggregateResult rows) and Bulk 2.0 CSV (everything quoted, ``Z`` datetimes); doubles in both as Java writes
them (``4.6559E8``, see ``numbers``). Pure functions over Polars frames."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl

from emulator import schema as s
from emulator.numbers import exponent_columns, java_double_series, marked_double_expr, unmark_json
from emulator.soql_parser import AGGREGATE_RESULT

REST_DATETIME = "%Y-%m-%dT%H:%M:%S%.3f+0000"
BULK_DATETIME = "%Y-%m-%dT%H:%M:%S%.3fZ"
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
ROOT_ID = "__root_id__"  # hidden column with the root record's Id, for attributes.url
# an address value's keys, in the order real orgs write them; stateCode/countryCode only exist where state and country
# picklists are enabled, which this org (like most) does not have
_ADDRESS_KEYS = ("city", "country", "geocodeAccuracy", "latitude", "longitude", "postalCode", "state", "street")


@dataclass(frozen=True)
class _ChildRecords:
    """A parent-to-child subquery's value: the column holding each parent's list of child records."""

    column: str
    object_name: str
    schema: s.Schema = field(default=s.STANDARD, compare=False)


@dataclass
class _Node:
    """One JSON object of a record: the root or a parent reached through a relationship.

    A leaf is (column, field); its field is None in an AggregateResult, whose values are formatted by dtype."""

    object_name: str
    id_column: str
    children: dict[str, _Node | _ChildRecords | tuple[str, s.FieldDef | None]] = field(default_factory=dict)
    has_url: bool = True  # attributes.url: every record but an AggregateResult


@dataclass(frozen=True)
class RecordPlan:
    """How to turn result columns into REST records for one query."""

    root: _Node
    version: str


def resolve_path(object_name: str, path: Sequence[str], schema: s.Schema = s.STANDARD
                 ) -> tuple[list[str], s.FieldDef]:
    """Object names along a relationship path and the final field, e.g. Opportunity, (Account, Owner, Name)."""
    objects = [object_name]
    obj = schema.objects[object_name]
    for rel in path[:-1]:
        ref = next(f for f in obj.fields if f.relationship_name and f.relationship_name.lower() == rel.lower())
        parent = schema.parent_object(ref)  # Name for a polymorphic lookup (Lead.Owner: a User or a queue)
        assert parent is not None, f"{obj.name}.{rel}: not a relationship the SOQL binder accepts"
        obj = parent
        objects.append(obj.name)
    final = obj.field(path[-1])
    if final is None:
        msg = f"{obj.name}.{path[-1]}: not a field of the emulated schema"
        raise KeyError(msg)
    return objects, final


def record_plan(object_name: str, paths: Sequence[tuple[str, ...]], version: str,
                schema: s.Schema = s.STANDARD) -> RecordPlan:
    """The nesting of the selected paths (key order = first mention in SELECT, like Salesforce).

    A one-name path that is a child relationship (``("Contacts",)``) is a subquery; ``object_name``
    AggregateResult makes flat rows keyed by column name (grouped fields, aliases, expr0...) with no url."""
    if object_name == AGGREGATE_RESULT:
        flat = _Node(AGGREGATE_RESULT, ROOT_ID, has_url=False)
        flat.children.update({path[-1]: (".".join(path), None) for path in paths})
        return RecordPlan(flat, version)
    root = _Node(object_name, ROOT_ID)
    for path in paths:
        child_object = _child_object(object_name, path, schema)
        if child_object is not None:
            root.children[path[0]] = _ChildRecords(path[0], child_object, schema)
            continue
        objects, final = resolve_path(object_name, path, schema)
        node = root
        for depth, rel in enumerate(path[:-1]):
            child = node.children.get(rel)
            if not isinstance(child, _Node):
                child = _Node(objects[depth + 1], "__ref__." + ".".join(path[:depth + 1]))
                node.children[rel] = child
            node = child
        node.children[path[-1]] = (".".join(path), final)
    return RecordPlan(root, version)


def _child_object(object_name: str, path: tuple[str, ...], schema: s.Schema) -> str | None:
    """The child object of a subquery path (a child relationship's name, not a field), else None."""
    obj = schema.objects[object_name]
    if len(path) != 1 or obj.field(path[0]) is not None:
        return None
    return next((rel["childSObject"] for rel in schema.child_relationships(obj)
                 if rel["relationshipName"] == path[0]), None)


Column = Callable[[str], pl.Expr]  # a result column by name: a frame column, or a field of a child record struct


def _frame_column(name: str) -> pl.Expr:
    return pl.col(name)


def _record_field(name: str) -> pl.Expr:
    return pl.element().struct.field(name)


def _attributes(node: _Node, version: str, column: Column) -> pl.Expr:
    if not node.has_url:
        return pl.struct(pl.lit(node.object_name).alias("type")).alias("attributes")
    # a polymorphic parent is typed Name; its url names the record's own object, known from the Id's key prefix
    url_type = (column(node.id_column).str.slice(0, 3).replace_strict(s.KEY_PREFIXES, default=None)
                if node.object_name == s.POLYMORPHIC_PARENT.name else pl.lit(node.object_name))
    url = pl.concat_str([pl.lit(f"/services/data/v{version}/sobjects/"), url_type, pl.lit("/"), column(node.id_column)])
    return pl.struct(pl.lit(node.object_name).alias("type"), url.alias("url")).alias("attributes")


def _value(col: pl.Expr, f: s.FieldDef | None, dtype: pl.DataType, java: bool) -> pl.Expr:
    """A leaf's JSON value; ``java``: a double column holding values Java writes with an exponent (marked text)."""
    if java and dtype.is_float():
        return marked_double_expr(col)
    kind = f.type if f is not None else _dtype_kind(dtype)
    if kind == "datetime":
        return col.dt.strftime(REST_DATETIME)
    if kind == "date":
        return col.dt.strftime("%Y-%m-%d")
    if f is not None and f.is_compound and isinstance(dtype, pl.Struct):
        parts = {fld.name: fld for fld in dtype.fields}
        keys = []
        for key, name in compound_keys(f):
            keys.append((col.struct.field(name) if name in parts else pl.lit(None)).alias(key))
        empty = pl.all_horizontal(col.struct.field(n).is_null() for n in parts) if parts else pl.lit(True)
        return pl.when(col.is_null() | empty).then(None).otherwise(pl.struct(keys))
    return col


def compound_keys(f: s.FieldDef) -> list[tuple[str, str]]:
    """A compound field's JSON keys and the component fields they come from: an address's eight, a geolocation's
    ``latitude``/``longitude`` (``Site_Location__c``: ``Site_Location__Latitude__s``, ...)."""
    if f.type == "location":
        base = f.name[: -len("__c")] if f.name.endswith("__c") else f.name
        return [("latitude", f"{base}__Latitude__s"), ("longitude", f"{base}__Longitude__s")]
    prefix = f.name[: -len("Address")]
    return [(key, prefix + key[0].upper() + key[1:]) for key in _ADDRESS_KEYS]


def _dtype_kind(dtype: pl.DataType) -> str:
    """An AggregateResult value's type from its dtype (MIN/MAX of a date or datetime keep the field's type)."""
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    return "date" if isinstance(dtype, pl.Date) else ""


def _node_expr(node: _Node, version: str, dtypes: Mapping[str, pl.DataType], key: str,
               column: Column = _frame_column, java: frozenset[str] | None = None) -> pl.Expr:
    """``java``: the double columns to write in Java's text (None: every double, as inside a subquery's records)."""
    members = [_attributes(node, version, column)]
    for child_key, child in node.children.items():
        if isinstance(child, _Node):
            members.append(_node_expr(child, version, dtypes, child_key, column, java))
        elif isinstance(child, _ChildRecords):
            members.append(_child_records(child, version, dtypes[child.column], column).alias(child_key))
        else:
            name, f = child
            members.append(_value(column(name), f, dtypes[name], java is None or name in java).alias(child_key))
    obj = pl.struct(members)
    if node.id_column != ROOT_ID:  # a null lookup is "Owner": null, not an object of nulls
        obj = pl.when(column(node.id_column).is_null()).then(None).otherwise(obj)
    return obj.alias(key)


def _child_records(child: _ChildRecords, version: str, dtype: pl.DataType, column: Column) -> pl.Expr:
    """A subquery's value: ``{"totalSize": n, "done": true, "records": [...]}``, or null when there are no children.

    Each list element is a struct of the child's selected columns, its ``__ref__`` columns and its Id (ROOT_ID);
    the child records nest like root records (parents as objects, each record with attributes)."""
    assert isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct), dtype
    fields = pl.Schema([(f.name, f.dtype) for f in dtype.inner.fields])
    paths = [tuple(name.split(".")) for name in fields if not name.startswith("__")]
    plan = record_plan(child.object_name, paths, version, child.schema)
    records = column(child.column).list.eval(_node_expr(plan.root, version, fields, "record", _record_field))
    size = column(child.column).list.len()
    body = pl.struct(size.alias("totalSize"), pl.lit(True).alias("done"), records.alias("records"))
    return pl.when(size > 0).then(body).otherwise(None)


def rest_records(frame: pl.DataFrame, plan: RecordPlan) -> bytes:
    """The JSON array of REST records for these result rows (the ``records`` value of a query page)."""
    if frame.height == 0:
        return b"[]"
    record = _node_expr(plan.root, plan.version, frame.schema, "r", java=exponent_columns(frame))
    encoded = unmark_json(frame.select(record.struct.json_encode()).to_series())
    return b"[" + ",".join(encoded.to_list()).encode() + b"]"  # str.join in Polars is ~3x slower here


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates, datetimes and doubles as their Bulk CSV text, once per job (formatting them is most of the CSV cost)."""
    return frame.with_columns(
        [pl.col(c).dt.strftime(BULK_DATETIME) for c, d in frame.schema.items() if isinstance(d, pl.Datetime)]
        + [pl.col(c).dt.strftime("%Y-%m-%d") for c, d in frame.schema.items() if isinstance(d, pl.Date)]
        + [java_double_series(frame[c]) for c in exponent_columns(frame)])


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
            parts = {key: row.get(name) for key, name in compound_keys(f)}
            out[f.name] = parts if any(v is not None for v in parts.values()) else None
        else:
            out[f.name] = rest_value(row.get(f.name))
    return out
