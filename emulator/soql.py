"""The emulator's SOQL engine: ``parse_soql`` (validate like Salesforce) and ``execute`` (over Polars frames)."""

from __future__ import annotations

from collections.abc import Sequence

from emulator import schema
from emulator.soql_exec import REF_COLUMN_PREFIX, QueryResult, execute, matched_rows, relative_date_range
from emulator.soql_parser import (
    AGGREGATE_RESULT,
    MAX_AGGREGATE_ROWS,
    AggregateColumn,
    Aggregation,
    Catalog,
    ChildRelationship,
    ChildRelationships,
    ChildSubquery,
    Comparison,
    FieldInfo,
    FieldPath,
    Logical,
    Measure,
    Negation,
    OrderItem,
    Relationship,
    RelativeDate,
    SelectItem,
    SoqlError,
    SoqlQuery,
)
from emulator.soql_parser import parse_soql as _parse_soql

__all__ = [
    "AGGREGATE_RESULT", "MAX_AGGREGATE_ROWS", "REF_COLUMN_PREFIX", "AggregateColumn", "Aggregation", "Catalog",
    "ChildRelationship", "ChildRelationships", "ChildSubquery", "Comparison", "FieldInfo", "FieldPath", "Logical",
    "Measure", "Negation", "OrderItem", "QueryResult", "Relationship", "RelativeDate", "SelectItem", "SoqlError",
    "SoqlQuery", "describe_child_relationships", "execute", "matched_rows", "parse_soql", "relative_date_range",
]


def parse_soql(text: str, catalog: Catalog, *, child_relationships: ChildRelationships | None = None) -> SoqlQuery:
    """Parse and validate ``text``; subqueries resolve through the emulated org's describe ``childRelationships``
    unless ``child_relationships`` is given."""
    org_schema = getattr(catalog, "schema", schema.STANDARD)  # an Org's own objects (optional ones, changes)
    return _parse_soql(text, catalog, child_relationships=child_relationships or (
        lambda object_name: describe_child_relationships(object_name, org_schema)))


def describe_child_relationships(object_name: str, org_schema: schema.Schema = schema.STANDARD
                                 ) -> Sequence[ChildRelationship]:
    """The child relationships ``GET /sobjects/{object}/describe`` lists (those with a relationshipName)."""
    obj = org_schema.lookup(object_name)
    if obj is None:
        return ()
    return tuple(ChildRelationship(rel["relationshipName"], rel["childSObject"], rel["field"])
                 for rel in org_schema.child_relationships(obj) if rel["relationshipName"])
