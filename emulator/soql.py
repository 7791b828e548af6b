"""The emulator's SOQL engine: ``parse_soql`` (validate like Salesforce) and ``execute`` (over Polars frames)."""

from __future__ import annotations

from emulator.soql_exec import REF_COLUMN_PREFIX, QueryResult, execute, relative_date_range
from emulator.soql_parser import (
    Catalog,
    Comparison,
    FieldInfo,
    FieldPath,
    Logical,
    Negation,
    OrderItem,
    Relationship,
    RelativeDate,
    SelectItem,
    SoqlError,
    SoqlQuery,
    parse_soql,
)

__all__ = [
    "REF_COLUMN_PREFIX", "Catalog", "Comparison", "FieldInfo", "FieldPath", "Logical", "Negation", "OrderItem",
    "QueryResult", "Relationship", "RelativeDate", "SelectItem", "SoqlError", "SoqlQuery", "execute", "parse_soql",
    "relative_date_range",
]
