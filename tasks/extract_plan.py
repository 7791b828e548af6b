"""What to extract: per object its SOQL (from the registry, or a custom one checked against the registry)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from configs.salesforce_objects import SALESFORCE_OBJECTS, ApiChoice, ObjectSpec, is_api_choice
from utils.errors import ConfigError
from utils.timefmt import utc_millis

_HEAD_RE = re.compile(r"^\s*SELECT\s", re.IGNORECASE)
_FROM_RE = re.compile(r"\sFROM\s+(?P<object>[A-Za-z][A-Za-z0-9_]*)\b", re.IGNORECASE)
_TAIL_RE = re.compile(r"\b(ORDER\s+BY|LIMIT|OFFSET)\b", re.IGNORECASE)




@dataclass(frozen=True)
class ExtractPlanItem:
    """One object to extract: the SOQL to run and the columns it yields, in order."""

    object_name: str
    soql: str
    columns: tuple[str, ...]
    api: ApiChoice
    custom_soql: bool
    # what a query that times out is split on (cursor windows); None: it cannot be split (custom SOQL)
    cursor: str | None = None
    cursor_since: datetime | None = None  # the query's own lower bound on the cursor (a delta's), if any


# A query over windows of the cursor starts here when it has no lower bound of its own: Salesforce's earliest
# datetime (audit fields can be set in the past on import, so not the org's creation)
EARLIEST_CURSOR = datetime(1700, 1, 1, tzinfo=timezone.utc)


def with_select(item: ExtractPlanItem, columns: Sequence[str]) -> ExtractPlanItem:
    """``item`` selecting ``columns`` instead, the rest of its SOQL (a delta's WHERE on the cursor) kept: rebuilt
    from the select list alone, every delta would be the whole object."""
    head = build_soql(item.object_name, item.columns)
    if not item.soql.startswith(head):
        msg = f"{item.object_name}: the query does not start with its own select list, so it cannot be narrowed"
        raise ValueError(msg)
    return replace(item, columns=tuple(columns), soql=build_soql(item.object_name, columns) + item.soql[len(head):])


def window_soql(soql: str, cursor: str, start: datetime, end: datetime) -> str:
    """``soql`` narrowed to ``start <= cursor < end`` (AND-ed to its own WHERE, if it has one)."""
    window = f"{cursor} >= {utc_millis(start)} AND {cursor} < {utc_millis(end)}"
    joiner = " AND " if " WHERE " in mask_string_literals(soql).upper() else " WHERE "
    return soql + joiner + window


def halves(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The window split in two at its middle, to the second."""
    middle = (start + (end - start) / 2).replace(microsecond=0)
    return [(start, middle), (middle, end)]


def build_soql(object_name: str, fields: Sequence[str]) -> str:
    return f"SELECT {', '.join(fields)} FROM {object_name}"


@dataclass(frozen=True)
class _SoqlParts:
    select: str
    object_name: str
    rest: str


def _split_soql(soql: str) -> _SoqlParts | None:
    """SELECT list, FROM object and the rest, finding the FROM outside any parenthesised subquery."""
    head = _HEAD_RE.match(soql)
    if not head:
        return None
    depth = 0
    for i in range(head.end() - 1, len(soql)):
        ch = soql[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch.isspace():
            m = _FROM_RE.match(soql, i)
            if m:
                return _SoqlParts(soql[head.end(): i].strip(), m.group("object"), soql[m.end():])
    return None


def split_select_list(select: str) -> list[str]:
    """Top-level comma split of a SELECT list (commas inside parentheses belong to functions/subqueries)."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in select:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [i for i in items if i]


def parse_custom_soql(object_name: str, soql: str) -> tuple[str, ...]:
    """Columns a custom SOQL selects; rejects SOQL we cannot turn into a flat CSV."""
    m = _split_soql(soql)
    if not m or not m.select:
        msg = f"{object_name}: custom SOQL must look like 'SELECT <fields> FROM {object_name} ...', got {soql!r}"
        raise ConfigError(msg)
    if m.object_name.lower() != object_name.lower():
        msg = f"{object_name}: custom SOQL selects FROM {m.object_name}; it must select FROM {object_name}"
        raise ConfigError(msg)
    columns = split_select_list(m.select)
    for col in columns:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*){0,4}", col):
            msg = (f"{object_name}: custom SOQL item {col!r} is not a plain field or relationship path; "
                   "aggregates, aliases, FIELDS() and subqueries cannot be written as a flat CSV")
            raise ConfigError(msg)
    return tuple(columns)


def mask_string_literals(soql: str) -> str:
    """The same text with the inside of every '...' literal blanked, so keywords in values are never matched."""
    out, in_string, escaped = [], False, False
    for ch in soql:
        if in_string:
            out.append(" " if ch not in "'" or escaped else ch)
            in_string = not (ch == "'" and not escaped)
            escaped = ch == "\\" and not escaped
        else:
            out.append(ch)
            in_string = ch == "'"
    return "".join(out)


def count_soql(item: ExtractPlanItem) -> str:
    """``SELECT COUNT() FROM X [WHERE ...]``: the same filter, no ordering or limit."""
    m = _split_soql(item.soql)
    rest = m.rest if m else ""
    tail = _TAIL_RE.search(mask_string_literals(rest))
    where = rest[: tail.start()] if tail else rest
    return f"SELECT COUNT() FROM {item.object_name}{where.rstrip()}"


def needed_columns(spec: ObjectSpec, *, strict_qa: bool) -> dict[str, str]:
    """Column -> why the run needs it: processing always needs the group_by and metric columns; strict QA
    also needs QA's required columns (``required``, primary key, cursor field), or it fails on every run."""
    needed = {c: "group_by" for c in spec.group_by}
    for column in spec.metrics:
        needed.setdefault(column, "metric")
    if strict_qa:
        for column, role in spec.qa_required_columns().items():
            needed.setdefault(column, role)
    return needed


def check_custom_columns(name: str, columns: Sequence[str], spec: ObjectSpec, *, strict_qa: bool) -> None:
    """One ConfigError naming every needed column the custom SOQL does not select, and why it is needed."""
    lowered = {c.lower() for c in columns}
    missing = {c: why for c, why in needed_columns(spec, strict_qa=strict_qa).items() if c.lower() not in lowered}
    if missing:
        listed = ", ".join(f"{c} ({why})" for c, why in missing.items())
        msg = f"{name}: custom SOQL does not select {listed}; add them to the SELECT list"
        raise ConfigError(msg)


def api_choice(api: str | None) -> ApiChoice | None:
    """A flow's ``api`` parameter (a plain string) checked against the API choices; None keeps the registry's."""
    if api is None or is_api_choice(api):
        return api
    msg = f"api must be one of auto, rest, bulk2; got {api!r}"
    raise ConfigError(msg)


def resolve_extract_plan(
    objects: Sequence[str] | None = None,
    soql: Mapping[str, str] | None = None,
    *,
    registry: Mapping[str, ObjectSpec] | None = None,
    api: str | None = None,
    strict_qa: bool = False,
) -> list[ExtractPlanItem]:
    """Registry objects (all, or the chosen ones) with their SOQL. Pure: no API call.

    A custom SOQL replaces the registry's field list, but processing still uses the registry's group_by and
    metrics, and strict QA (``strict_qa``) its required, key and cursor columns, so it must select those:
    missing ones are reported before anything runs.
    """
    registry = registry if registry is not None else SALESFORCE_OBJECTS
    soql = dict(soql or {})
    chosen = list(objects) if objects else list(registry)
    unknown = [o for o in list(chosen) + list(soql) if o not in registry]
    if unknown:
        msg = (f"unknown object(s) {', '.join(sorted(set(unknown)))}: not in configs/salesforce_objects.py "
               f"(known: {', '.join(registry)}); add an entry there first")
        raise ConfigError(msg)
    choice = api_choice(api)
    plan = []
    for name in dict.fromkeys(chosen):
        spec = registry[name]
        if name in soql:
            columns = parse_custom_soql(name, soql[name])
            check_custom_columns(name, columns, spec, strict_qa=strict_qa)
            plan.append(ExtractPlanItem(name, soql[name].strip(), columns, choice or spec.api, True))
        else:
            # no cursor: a full extract that timed out is not split, for a record updated between two windows would
            # be read twice, and a raw CSV (its dataset) has no merge by key to absorb it
            plan.append(ExtractPlanItem(name, build_soql(name, spec.fields), spec.fields, choice or spec.api, False))
    return plan
