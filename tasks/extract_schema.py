"""Check the planned columns against the org's describe and learn their types (for the schema sidecar)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from configs.salesforce_objects import ObjectSpec
from utils.aggregations import find_misfit_metrics
from utils.errors import ConfigError
from utils.raw_schema import RawColumn
from utils.sf_types import BULK_UNSUPPORTED_TYPES, COMPOUND_TYPES, is_known_type

Describe = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class ResolvedColumns:
    columns: tuple[RawColumn, ...]  # canonical names and describe types, in SOQL order
    missing: tuple[str, ...]        # planned columns the org does not have (typo, permissions)

    @property
    def bulk_compatible(self) -> bool:
        return not any(c.type.lower() in BULK_UNSUPPORTED_TYPES for c in self.columns)


def _field_by_name(describe: dict[str, Any], name: str) -> dict[str, Any] | None:
    lowered = name.lower()
    return next((f for f in describe["fields"] if f["name"].lower() == lowered), None)


def _field_by_relationship(describe: dict[str, Any], relationship: str) -> dict[str, Any] | None:
    lowered = relationship.lower()
    return next((f for f in describe["fields"]
                 if f.get("type") == "reference" and (f.get("relationshipName") or "").lower() == lowered), None)


def _parent_object(field: dict[str, Any]) -> str:
    targets = field.get("referenceTo") or []
    # polymorphic lookups (OwnerId -> User/Group): User carries the fields people select (Name, Email)
    return "User" if "User" in targets else targets[0]


def resolve_column(object_name: str, column: str, describe: Describe) -> RawColumn | None:
    """Canonical name and type of a field or relationship path, or None if the org does not have it."""
    parts = column.split(".")
    current = object_name
    canonical = []
    for rel in parts[:-1]:
        field = _field_by_relationship(describe(current), rel)
        if field is None or not field.get("referenceTo"):
            return None
        canonical.append(field["relationshipName"])
        current = _parent_object(field)
    field = _field_by_name(describe(current), parts[-1])
    if field is None:
        return None
    canonical.append(field["name"])
    return RawColumn(name=".".join(canonical), type=field["type"])


def every_field(describe: dict[str, Any], exclude: Sequence[str] = ()) -> tuple[str, ...]:
    """``fields: "*"``: every field of the describe a query can select and a CSV can hold, in describe order: no
    base64 (Bulk cannot select it and a blob is no column), no compound parent (``BillingAddress``: its components
    ``BillingStreet``... are fields of their own), nothing in ``exclude``."""
    excluded = {name.lower() for name in exclude}
    skipped = BULK_UNSUPPORTED_TYPES  # base64 and the compound types
    return tuple(f["name"] for f in describe["fields"]
                 if str(f.get("type", "")).lower() not in skipped and f["name"].lower() not in excluded)


def expand_compound(fields: Sequence[str],
                    describe: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The field list with each compound parent (``BillingAddress``, a geolocation) replaced by its component fields
    in describe order (those not listed already), and what was expanded. Bulk cannot select a compound field, and
    its components are what a table can hold; expanding on every API keeps the dataset the same whichever runs."""
    by_name = {f["name"].lower(): f for f in describe["fields"]}
    out: list[str] = []
    expanded: dict[str, tuple[str, ...]] = {}
    for name in fields:
        field = by_name.get(name.lower()) if "." not in name else None
        if field is None or str(field.get("type", "")).lower() not in COMPOUND_TYPES:
            out.append(name)
            continue
        parts = tuple(f["name"] for f in describe["fields"] if f.get("compoundFieldName") == field["name"])
        expanded[name] = parts
        listed = {n.lower() for n in (*fields, *out)}
        out.extend(p for p in parts if p.lower() not in listed)
    return tuple(out), expanded


def resolve_columns(object_name: str, columns: Sequence[str], describe: Describe) -> ResolvedColumns:
    resolved, missing = [], []
    for column in columns:
        found = resolve_column(object_name, column, describe)
        if found is None:
            missing.append(column)
        else:
            resolved.append(found)
    return ResolvedColumns(tuple(resolved), tuple(missing))


def check_metric_types(object_name: str, spec: ObjectSpec, columns: Sequence[RawColumn]) -> None:
    """Raise a ConfigError when a registry metric cannot fit its column's described type (``sum`` of text).

    Processing applies the same rule (``utils.aggregations``) to the extract; on the describe types it costs one
    describe instead of a whole extract. Columns the extract lacks, or of unknown type, stay processing's to report.
    """
    described = {c.name.lower(): c.type for c in columns}
    sf_types = {column: described[column.lower()] for column in spec.metrics
                if is_known_type(described.get(column.lower(), "?"))}
    problems = find_misfit_metrics(object_name, spec.metrics, sf_types)
    if problems:
        msg = (f"cannot summarise {'; '.join(problems)}; fix the metrics in configs/salesforce_objects.py "
               "(found in the describe, before any query)")
        raise ConfigError(msg)
