"""What an admin does to an org's fields at runtime (``POST /__emulator__/schema``), as pure functions of an object's
definition and its stored column: delete a custom field, revoke (or grant back) the integration user's access to a
field (FLS), change a custom field's type, add a custom field.

A deleted or hidden field is gone from describe, from SOQL (``INVALID_FIELD: No such column``, exactly as for a
field that never existed), from sObject reads and from writes; a retyped field reads with its new type everywhere."""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl

from emulator import schema as s
from emulator.generate import column_dtype
from emulator.numbers import java_double_series

ACTIONS = ("delete", "hide", "show", "retype", "add")
TEXT_TYPES = ("string", "textarea", "picklist", "email", "phone", "url")
NUMBER_TYPES = ("double", "currency", "percent")
TYPES = (*TEXT_TYPES, *NUMBER_TYPES, "date", "datetime", "boolean")


class SchemaChangeError(ValueError):
    """A change Salesforce's setup would refuse (a standard field deleted, an unknown type); the message says why."""


def field_of(obj: s.ObjectDef, name: str) -> s.FieldDef:
    f = obj.field(name)
    if f is None:
        msg = f"{obj.name} has no field {name!r} (hidden or deleted fields cannot be changed again)"
        raise SchemaChangeError(msg)
    return f


def without_field(obj: s.ObjectDef, f: s.FieldDef) -> s.ObjectDef:
    return dataclasses.replace(obj, fields=tuple(x for x in obj.fields if x.name != f.name))


def with_field(obj: s.ObjectDef, f: s.FieldDef, position: int | None = None) -> s.ObjectDef:
    """``obj`` with ``f`` at ``position`` (its former place), or replacing the field of its name, or appended."""
    fields = list(obj.fields)
    names = [x.name for x in fields]
    if f.name in names:
        fields[names.index(f.name)] = f
    else:
        fields.insert(len(fields) if position is None else min(position, len(fields)), f)
    return dataclasses.replace(obj, fields=tuple(fields))


def check_custom(obj: s.ObjectDef, f: s.FieldDef, action: str) -> None:
    if not f.is_custom or f.is_compound or f.formula is not None:
        msg = (f"{obj.name}.{f.name}: only a custom field (name ending in __c, not a formula or compound field) can "
               f"be {'deleted' if action == 'delete' else 'given another type'}; hide a standard field instead")
        raise SchemaChangeError(msg)


def check_hideable(obj: s.ObjectDef, f: s.FieldDef) -> None:
    """Field-level security applies to the fields describe calls ``permissionable`` (not Id or required fields)."""
    if not s.describe_field(f)["permissionable"]:
        msg = f"{obj.name}.{f.name} is not permissionable: field-level security cannot hide it"
        raise SchemaChangeError(msg)


def retyped(f: s.FieldDef, new_type: str, options: dict[str, Any]) -> s.FieldDef:
    """``f`` with another type (text, number, date, datetime, boolean, picklist with ``picklist`` values)."""
    if new_type not in TYPES:
        msg = f"type {new_type!r}: use one of {', '.join(TYPES)}"
        raise SchemaChangeError(msg)
    picklist = tuple(options.get("picklist") or ()) if new_type == "picklist" else ()
    if new_type == "picklist" and not picklist:
        msg = "a picklist needs its values: {\"picklist\": [\"A\", \"B\"]}"
        raise SchemaChangeError(msg)
    numeric = new_type in NUMBER_TYPES
    return dataclasses.replace(
        f, type=new_type, picklist=picklist, picklist_labels=(), nillable=new_type != "boolean",
        precision=int(options.get("precision", 18)) if numeric else 0,
        scale=int(options.get("scale", 2)) if numeric else 0,
        length=int(options.get("length", 255)) if new_type in TEXT_TYPES else None)


def new_custom_field(obj: s.ObjectDef, name: str, new_type: str, options: dict[str, Any]) -> s.FieldDef:
    if not name.endswith("__c") or obj.field(name) is not None:
        msg = f"{obj.name}.{name}: a new field needs a name ending in __c that the object does not have"
        raise SchemaChangeError(msg)
    return retyped(s.FieldDef(name, "string", label=options.get("label")), new_type, options)


def converted(column: pl.Series, old: s.FieldDef, new: s.FieldDef) -> pl.Series:
    """The stored values under the new type, as Salesforce converts them: what does not convert becomes null (the
    setup page warns that such values are lost)."""
    dtype = column_dtype(new.type)
    if column.dtype == dtype:
        return column
    if dtype == pl.String() and old.type in NUMBER_TYPES:
        return java_double_series(column).alias(column.name)  # 1500.0 as Salesforce writes it
    if dtype == pl.String():
        return column.cast(pl.String).alias(column.name)
    text = column.cast(pl.String).str.strip_chars()
    if dtype == pl.Boolean():
        return text.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None,
                                                      return_dtype=pl.Boolean).alias(column.name)
    if dtype == pl.Date():
        return text.str.to_date(strict=False).alias(column.name)
    if isinstance(dtype, pl.Datetime):
        return text.str.to_datetime(strict=False, time_zone="UTC").cast(dtype).alias(column.name)
    return text.cast(dtype, strict=False).alias(column.name)
