"""Run a validated SoqlQuery over the catalog's Polars frames: parent joins, WHERE, ORDER BY, LIMIT/OFFSET;
parent-to-child subqueries as lists of child records; aggregate queries as grouped rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone

import polars as pl

from emulator.render import ROOT_ID
from emulator.soql_parser import (
    MAX_AGGREGATE_ROWS,
    TEXT_TYPES,
    AggregateColumn,
    Aggregation,
    Catalog,
    ChildSubquery,
    Comparison,
    FieldPath,
    Logical,
    Measure,
    Negation,
    Relationship,
    RelativeDate,
    SelectItem,
    SoqlError,
    SoqlQuery,
)

REF_COLUMN_PREFIX = "__ref__."
# Sorting is case-insensitive for text; ids sort as stored (they are not words, and lowercasing costs time).
_CASE_FOLDED_SORT_TYPES = TEXT_TYPES - {"id", "reference"}


@dataclass
class QueryResult:
    """Rows of a query (one column per SELECT item, then hidden ``__ref__.<prefix>`` parent-Id columns).

    A subquery's column holds, per parent, the list of its child records (structs of the child columns, their
    ``__ref__`` columns and the child's own Id as ROOT_ID), null when it has none."""

    total_size: int
    frame: pl.DataFrame


def execute(query: SoqlQuery, catalog: Catalog, *, include_deleted: bool, now: datetime) -> QueryResult:
    """Run ``query``; ``include_deleted`` is queryAll; ``now`` anchors relative dates (TODAY, LAST_N_DAYS:n)."""
    if query.aggregation is not None:
        return _execute_aggregate(query, query.aggregation, catalog, include_deleted=include_deleted, now=now)
    if query.subqueries:
        return _execute_with_children(query, catalog, include_deleted=include_deleted, now=now)
    return _execute_rows(query, catalog, include_deleted=include_deleted, now=now)


def matched_rows(query: SoqlQuery, catalog: Catalog, *, include_deleted: bool, now: datetime) -> int:
    """How many rows the query's FROM and WHERE match, before grouping, ORDER BY, LIMIT and OFFSET: the rows the
    database scans for it, which is what a query's running time (and a QUERY_TIMEOUT) grows with."""
    base = query.aggregation.rows if query.aggregation is not None else query
    counting = replace(base, items=(), is_count=True, limit=None, offset=None, order_by=())
    return _execute_rows(counting, catalog, include_deleted=include_deleted, now=now).total_size


def _today(now: datetime) -> date:
    return (now if now.tzinfo else now.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()


def _execute_rows(query: SoqlQuery, catalog: Catalog, *, include_deleted: bool, now: datetime,
                  keep: pl.Expr | None = None) -> QueryResult:
    """A query of records; ``keep`` (a subquery's parent filter) narrows the rows before everything else."""
    today = _today(now)
    lf = catalog.frame(query.object_name).lazy()
    if not include_deleted and "IsDeleted" in lf.collect_schema():
        lf = lf.filter(pl.col("IsDeleted").fill_null(False).not_())
    if keep is not None:
        lf = lf.filter(keep)
    columns = _columns_needed(query)
    # Join only the parents WHERE / ORDER BY need before filtering and sorting; the rest after LIMIT/OFFSET.
    early = _with_ancestors({f.prefix for f in _filter_and_sort_fields(query) if f.prefix})
    lf = _join_parents(lf, query, catalog, columns, early)
    if query.where is not None:
        lf = lf.filter(_predicate(query.where, lf.collect_schema(), today))
    if query.is_count:
        matched = lf.select(pl.len()).collect().item()
        return QueryResult(_window_size(matched, query), pl.DataFrame())
    if query.order_by:
        lf = _sort(lf, query)
    if query.offset or query.limit is not None:
        lf = lf.slice(query.offset or 0, query.limit)
    late = {r.prefix for r in query.relationships} - early
    lf = _join_parents(lf, query, catalog, columns, late)
    frame = lf.select(_output_columns(query)).collect()
    return QueryResult(frame.height, frame)


def _window_size(matched: int, query: SoqlQuery) -> int:
    remaining = max(matched - (query.offset or 0), 0)
    return remaining if query.limit is None else min(remaining, query.limit)


# ------------------------------------------------------------------------------------ parent-to-child subqueries

_PARENT_KEY = "__parent__"


def _execute_with_children(query: SoqlQuery, catalog: Catalog, *, include_deleted: bool,
                           now: datetime) -> QueryResult:
    """The parent rows as a plain query, then one list column per subquery, joined on the parent Id."""
    fields = tuple(item for item in query.items if not isinstance(item, ChildSubquery))
    with_id = fields if any(item.path == ("Id",) for item in fields) else (*fields, SelectItem(("Id",), "id"))
    parents = _execute_rows(replace(query, items=with_id), catalog, include_deleted=include_deleted, now=now).frame
    for sub in query.subqueries:
        children = _child_lists(sub, parents["Id"], catalog, include_deleted=include_deleted, now=now)
        parents = parents.join(children, left_on="Id", right_on=_PARENT_KEY, how="left", coalesce=True,
                               maintain_order="left")
    refs = [c for c in parents.columns if c.startswith(REF_COLUMN_PREFIX)]
    frame = parents.select([item.column for item in query.items] + refs)
    return QueryResult(frame.height, frame)


def _child_lists(sub: ChildSubquery, parent_ids: pl.Series, catalog: Catalog, *, include_deleted: bool,
                 now: datetime) -> pl.DataFrame:
    """Per parent Id (``__parent__``), its children as a list of records: the subquery's WHERE and ORDER BY,
    and its LIMIT per parent (as Salesforce applies it)."""
    child = sub.query
    selected = {item.column for item in child.items}
    extra = [SelectItem((name,)) for name in (sub.foreign_key, "Id") if name not in selected]
    rows = _execute_rows(replace(child, items=(*child.items, *extra), limit=None, offset=None), catalog,
                         include_deleted=include_deleted, now=now, keep=pl.col(sub.foreign_key).is_in(parent_ids)).frame
    refs = [c for c in rows.columns if c.startswith(REF_COLUMN_PREFIX)]
    record = pl.struct([*(item.column for item in child.items), *refs, pl.col("Id").alias(ROOT_ID)])
    if child.limit is not None:
        record = record.head(child.limit)
    return (rows.lazy().group_by(pl.col(sub.foreign_key).alias(_PARENT_KEY), maintain_order=True)
            .agg(record.alias(sub.column)).collect())


# ------------------------------------------------------------------------------------------ aggregate queries
# Text groups and text MIN/MAX/COUNT_DISTINCT compare case-insensitively, as SOQL's = and ORDER BY do; a group
# shows the spelling of its first row. Null is a group of its own. SUM of no values is null; COUNT counts non-nulls.

_AGGREGATE_QUERY_MORE = ("Aggregate query does not support queryMore(), use LIMIT to restrict the results to a "
                         "single batch")


def _execute_aggregate(query: SoqlQuery, agg: Aggregation, catalog: Catalog, *, include_deleted: bool,
                       now: datetime) -> QueryResult:
    """The rows (FROM, WHERE, the fields read), grouped and measured, then HAVING, ORDER BY, LIMIT/OFFSET."""
    rows = _execute_rows(agg.rows, catalog, include_deleted=include_deleted, now=now).frame
    orders = {m.key: _value_order(rows[m.field.column], m) for m in agg.measures if _by_value_order(m)}
    lf = rows.lazy().with_columns(_ordinal(m, orders[m.key]) for m in agg.measures if m.key in orders)
    measures = [_measure(m, ordinal=m.key in orders).alias(m.key) for m in agg.measures]
    if agg.group_by:
        folded = [f.column for f in agg.group_by if f.type in _CASE_FOLDED_SORT_TYPES]
        grouped = lf.group_by(_group_keys(agg)).agg(*(pl.col(c).first() for c in folded), *measures)
    else:
        grouped = lf.select(measures)  # one row, also when no row matched
    grouped = grouped.with_columns(  # ordinals back to values
        pl.col(key).replace_strict(range(len(order)), order, default=None) for key, order in orders.items())
    if agg.having is not None:
        grouped = grouped.filter(_predicate(agg.having, grouped.collect_schema(), _today(now)))
    if query.order_by:
        grouped = _sort(grouped, query)
    elif agg.group_by:  # no order is promised; grouping order keeps pages and tests stable
        grouped = grouped.sort([k.meta.output_name() for k in _group_keys(agg)], maintain_order=True)
    if query.offset or query.limit is not None:
        grouped = grouped.slice(query.offset or 0, query.limit)
    frame = grouped.select(_aggregate_output(query)).collect()
    if frame.height > MAX_AGGREGATE_ROWS:
        raise SoqlError("EXCEEDED_ID_LIMIT", _AGGREGATE_QUERY_MORE)
    return QueryResult(frame.height, frame)


_ORDINAL = "__ordinal__."


def _group_keys(agg: Aggregation) -> list[pl.Expr]:
    return [pl.col(f.column).str.to_lowercase().alias(f"__group__.{f.column}")
            if f.type in _CASE_FOLDED_SORT_TYPES else pl.col(f.column) for f in agg.group_by]


def _by_value_order(measure: Measure) -> bool:
    """MIN/MAX of text follow Salesforce's sort order (picklist order, else case-insensitive), not byte order."""
    return measure.function in ("MIN", "MAX") and measure.field.type in _CASE_FOLDED_SORT_TYPES


def _value_order(values: pl.Series, measure: Measure) -> pl.Series:
    """The distinct non-null values in that order; MIN/MAX then compare their positions (whole-column work:
    sorting inside each group by a derived key is both slower and, in Polars 2.1, crash-prone)."""
    keys = [pl.col("v").str.to_lowercase(), pl.col("v")]
    if measure.picklist:  # picklist order first; values outside the picklist after it
        keys.insert(0, pl.col("v").replace_strict(measure.picklist, range(len(measure.picklist)),
                                                  default=len(measure.picklist), return_dtype=pl.Int64))
    return pl.DataFrame({"v": values.drop_nulls().unique()}).sort(keys)["v"]


def _ordinal(measure: Measure, order: pl.Series) -> pl.Expr:
    """The measured field's values as positions in ``order`` (null stays null)."""
    return (pl.col(measure.field.column).replace_strict(order, range(len(order)), default=None, return_dtype=pl.Int64)
            .alias(_ORDINAL + measure.key))


def _measure(measure: Measure, *, ordinal: bool) -> pl.Expr:
    col = pl.col(_ORDINAL + measure.key) if ordinal else pl.col(measure.field.column)
    if measure.function == "COUNT":
        return col.count().cast(pl.Int64)
    if measure.function == "COUNT_DISTINCT":
        folded = measure.field.type in _CASE_FOLDED_SORT_TYPES
        return (col.str.to_lowercase() if folded else col).drop_nulls().n_unique().cast(pl.Int64)
    if measure.function == "SUM":
        return pl.when(col.count() > 0).then(col.sum())
    if measure.function == "AVG":
        return col.mean()
    return col.max() if measure.function == "MAX" else col.min()


def _aggregate_output(query: SoqlQuery) -> list[pl.Expr]:
    """The AggregateResult columns; any other item (REST's hidden Id for attributes.url) is null: an
    AggregateResult has no Id."""
    return [pl.col(item.source).alias(item.column) if isinstance(item, AggregateColumn)
            else pl.lit(None).alias(item.column) for item in query.items]


# ------------------------------------------------------------------------------------------------ parent joins

def _filter_and_sort_fields(query: SoqlQuery) -> list[FieldPath]:
    fields = [o.field for o in query.order_by]
    stack = [query.where] if query.where is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, Comparison):
            fields.append(node.field)
        elif isinstance(node, Negation):
            stack.append(node.operand)
        elif isinstance(node, Logical):
            stack.extend(node.operands)
    return fields


def _with_ancestors(prefixes: Iterable[tuple[str, ...]]) -> set[tuple[str, ...]]:
    return {p[:n] for p in prefixes for n in range(1, len(p) + 1)}


def _columns_needed(query: SoqlQuery) -> dict[tuple[str, ...], set[str]]:
    """Per relationship prefix, the parent's columns the query reads (fields, compound parts, onward keys)."""
    needed: dict[tuple[str, ...], set[str]] = {r.prefix: set() for r in query.relationships}
    for f in [*query.items, *_filter_and_sort_fields(query)]:
        if f.prefix:
            needed[f.prefix].update(f.components or (f.path[-1],))
    for rel in query.relationships:
        if len(rel.prefix) > 1:
            needed[rel.prefix[:-1]].add(rel.foreign_key)
    return needed


def _join_parents(lf: pl.LazyFrame, query: SoqlQuery, catalog: Catalog,
                  columns: dict[tuple[str, ...], set[str]], prefixes: set[tuple[str, ...]]) -> pl.LazyFrame:
    """Left-join each parent on its Id (parents before grandchildren); its Id lands in ``__ref__.<prefix>``."""
    for rel in query.relationships:  # already ordered parents first
        if rel.prefix in prefixes:
            lf = _join_parent(lf, rel, catalog, sorted(columns[rel.prefix]))
    return lf


def _join_parent(lf: pl.LazyFrame, rel: Relationship, catalog: Catalog, columns: list[str]) -> pl.LazyFrame:
    # Salesforce Ids are unique, so the per-query dedup runs only when the hash check finds a repeat; should a
    # frame repeat an Id anyway, the first row wins (no duplicated children).
    parent = catalog.frame(rel.object_name)
    if parent["Id"].hash().n_unique() != parent.height:
        parent = parent.unique("Id", keep="first", maintain_order=True)
        if parent["Id"].hash().n_unique() != parent.height:  # a 64-bit hash collision: astronomically rare
            return string_key_join(lf, rel, parent, columns)
    return hashed_lookup_join(lf, rel, parent, columns)


def string_key_join(lf: pl.LazyFrame, rel: Relationship, parent: pl.DataFrame, columns: list[str]) -> pl.LazyFrame:
    """Left join on the Id string; the parent Id lands in ``__ref__.<prefix>`` (null for null/dangling keys)."""
    name = ".".join(rel.prefix)
    ref_column = REF_COLUMN_PREFIX + name
    right = parent.lazy().select(pl.col("Id").alias(ref_column), *(pl.col(c).alias(f"{name}.{c}") for c in columns))
    return lf.join(right, left_on=rel.foreign_key_column, right_on=ref_column, how="left", coalesce=False,
                   maintain_order="left")


def hashed_lookup_join(lf: pl.LazyFrame, rel: Relationship, parent: pl.DataFrame,
                       columns: list[str]) -> pl.LazyFrame:
    """``string_key_join``'s result, ~8x faster: hash(foreign key) -> parent row number, then a gather per column.

    It keeps the child order for free (5M children x 1M parents: ~1 s instead of ~8 s for an ordered string
    join). Needs unique parent-Id hashes; the Id equality check drops a child whose own key merely collides
    with a parent's hash.
    """
    name = ".".join(rel.prefix)
    fk, row = rel.foreign_key_column, f"__row__.{name}"
    rows = pl.int_range(parent.height, eager=True, dtype=pl.UInt32)
    lookup = pl.col(fk).hash().replace_strict(parent["Id"].hash(), rows, default=None, return_dtype=pl.UInt32)
    parent_ids = pl.lit(parent["Id"])
    lf = lf.with_columns(lookup.alias(row)).with_columns(
        pl.when(parent_ids.gather(pl.col(row)) == pl.col(fk)).then(pl.col(row)).alias(row))
    gathered = [pl.lit(parent[c]).gather(pl.col(row)).alias(f"{name}.{c}") for c in columns]
    return lf.with_columns(parent_ids.gather(pl.col(row)).alias(REF_COLUMN_PREFIX + name), *gathered).drop(row)


# ---------------------------------------------------------------------------------------------------- output

def _output_columns(query: SoqlQuery) -> list[pl.Expr]:
    exprs = [_compound(item) if item.components else pl.col(item.column) for item in query.items]
    prefixes = _with_ancestors(item.prefix for item in query.items if item.prefix)
    for rel in query.relationships:
        if rel.prefix in prefixes:
            exprs.append(pl.col(REF_COLUMN_PREFIX + ".".join(rel.prefix)))
    return exprs


def _compound(item: FieldPath) -> pl.Expr:
    """A compound field (address) as a struct of its components; null when every component is null."""
    parts = [pl.col(".".join((*item.prefix, c))).alias(c) for c in item.components]
    return (pl.when(pl.any_horizontal(*(p.is_not_null() for p in parts)))
            .then(pl.struct(parts)).otherwise(None).alias(item.column))


# ----------------------------------------------------------------------------------------------------- ORDER BY

def _sort(lf: pl.LazyFrame, query: SoqlQuery) -> pl.LazyFrame:
    keys = [pl.col(o.field.column).str.to_lowercase() if o.field.type in _CASE_FOLDED_SORT_TYPES
            else pl.col(o.field.column) for o in query.order_by]
    # maintain_order: ties keep insertion order, so pages of the same query are stable.
    return lf.sort(keys, descending=[o.descending for o in query.order_by],
                   nulls_last=[o.nulls_last for o in query.order_by], maintain_order=True)


# ------------------------------------------------------------------------------------------------------- WHERE
# Null semantics (Salesforce): every comparison is true or false, never unknown. A null field fails = < <= > >=
# LIKE IN INCLUDES, and passes != NOT IN EXCLUDES (Salesforce documents that != returns records whose value is
# null). NOT therefore simply negates, and `x = null` / `x != null` test for null.

def _predicate(node: object, schema: pl.Schema, today: date) -> pl.Expr:
    if isinstance(node, Logical):
        exprs = [_predicate(n, schema, today) for n in node.operands]
        return pl.all_horizontal(exprs) if node.op == "AND" else pl.any_horizontal(exprs)
    if isinstance(node, Negation):
        return _predicate(node.operand, schema, today).not_()
    assert isinstance(node, Comparison)
    return _comparison(node, schema[node.field.column], today)


def _comparison(node: Comparison, dtype: pl.DataType, today: date) -> pl.Expr:
    col = pl.col(node.field.column)
    op, value = node.op, node.value
    if op == "LIKE":
        return col.str.contains(str(value)).fill_null(False)
    if op in ("INCLUDES", "EXCLUDES"):
        assert isinstance(value, tuple)  # list operators carry a tuple (see Comparison)
        hit = _includes(col, value)
        return hit if op == "INCLUDES" else hit.not_()
    if op in ("IN", "NOT_IN"):
        assert isinstance(value, tuple)
        hit = pl.any_horizontal([_equals(node.field, col, v, dtype, today) for v in value])
        return hit if op == "IN" else hit.not_()
    if op in ("=", "!="):
        hit = _equals(node.field, col, value, dtype, today)
        return hit if op == "=" else hit.not_()
    return _ordering(node.field, col, op, value, dtype, today)


def _equals(field: FieldPath, col: pl.Expr, value: object, dtype: pl.DataType, today: date) -> pl.Expr:
    """``col = value`` as a never-null boolean."""
    if value is None:
        return col.is_null()
    if isinstance(value, RelativeDate):
        start, end = _range_literals(value, dtype, today)
        return ((col >= start) & (col < end)).fill_null(False)
    lhs, rhs = _comparable(field, col, value, dtype)
    return (lhs == rhs).fill_null(False)


def _ordering(field: FieldPath, col: pl.Expr, op: str, value: object, dtype: pl.DataType, today: date) -> pl.Expr:
    if value is None:
        return pl.lit(False)  # nothing is greater or smaller than null
    if isinstance(value, RelativeDate):
        # A relative literal is the range [start, end): < before it, <= up to its end, > after it, >= from its start.
        start, end = _range_literals(value, dtype, today)
        bound = {"<": col < start, "<=": col < end, ">": col >= end, ">=": col >= start}[op]
        return bound.fill_null(False)
    lhs, rhs = _comparable(field, col, value, dtype)
    return {"<": lhs < rhs, "<=": lhs <= rhs, ">": lhs > rhs, ">=": lhs >= rhs}[op].fill_null(False)


def _comparable(field: FieldPath, col: pl.Expr, value: object, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """Both sides in a form where Salesforce's comparison is plain Polars comparison."""
    if field.type == "multipicklist":
        # 'a;b' = 'b;a': a multipicklist compares as a set of values.
        return _normalised_multipicklist(col), pl.lit(";".join(sorted(_split_multipicklist(str(value)))))
    if field.type in ("id", "reference") and len(str(value)) == 15:
        # A 15-char Id is the case-sensitive form of the 18-char Id's first 15 characters.
        return col.str.slice(0, 15), pl.lit(str(value))
    if field.type in TEXT_TYPES or isinstance(value, str):
        return col.str.to_lowercase(), pl.lit(str(value).lower())
    if isinstance(value, datetime):
        return col, pl.lit(value).cast(dtype)
    return col, pl.lit(value)


def _split_multipicklist(text: str) -> set[str]:
    return {v.strip().lower() for v in text.split(";") if v.strip()}


def _normalised_multipicklist(col: pl.Expr) -> pl.Expr:
    return (col.str.to_lowercase().str.split(";").list.eval(pl.element().str.strip_chars())
            .list.sort().list.join(";"))


def _includes(col: pl.Expr, values: tuple[str, ...]) -> pl.Expr:
    """INCLUDES: the row holds every value of at least one ';'-joined group ('a;b' means a AND b)."""
    selected = col.str.to_lowercase().str.split(";").list.eval(pl.element().str.strip_chars())
    groups = [pl.all_horizontal([selected.list.contains(v) for v in sorted(_split_multipicklist(group))])
              for group in values]
    return pl.any_horizontal(groups).fill_null(False)


def _range_literals(value: RelativeDate, dtype: pl.DataType, today: date) -> tuple[pl.Expr, pl.Expr]:
    start, end = relative_date_range(value, today)
    if isinstance(dtype, pl.Datetime):
        return (pl.lit(datetime.combine(start, time(), timezone.utc)).cast(dtype),
                pl.lit(datetime.combine(end, time(), timezone.utc)).cast(dtype))
    return pl.lit(start), pl.lit(end)


# -------------------------------------------------------------------------------------------- relative dates

def relative_date_range(value: RelativeDate, today: date) -> tuple[date, date]:
    """The [start, end) dates of a relative literal on ``today`` (UTC). Weeks start on Sunday (US locale)."""
    unit_start = _period_start(value.unit, today)
    n = value.n
    if value.kind == "THIS":
        return unit_start, _shift(value.unit, unit_start, 1)
    if value.kind == "AGO":
        return _shift(value.unit, unit_start, -n), _shift(value.unit, unit_start, 1 - n)
    if value.kind == "NEXT_N":
        return _shift(value.unit, unit_start, 1), _shift(value.unit, unit_start, 1 + n)
    # LAST_N: the n whole periods before the current one; LAST_N_DAYS also includes today (Salesforce docs).
    end = _shift(value.unit, unit_start, 1) if value.unit == "DAY" else unit_start
    return _shift(value.unit, unit_start, -n), end


def _period_start(unit: str, today: date) -> date:
    if unit == "DAY":
        return today
    if unit == "WEEK":
        return today - timedelta(days=(today.weekday() + 1) % 7)
    if unit == "MONTH":
        return today.replace(day=1)
    if unit == "QUARTER":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return date(today.year, 1, 1)


def _shift(unit: str, start: date, periods: int) -> date:
    if unit == "DAY":
        return start + timedelta(days=periods)
    if unit == "WEEK":
        return start + timedelta(weeks=periods)
    months = periods * {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit]
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
