"""Formula fields (describe ``calculated: true``), computed when a record is read, as Salesforce does: a formula's value
changes when what it reads changes (the parent's field, the date) while the record itself, and its SystemModstamp,
stay as they were.

The emulator evaluates the formula shapes its objects use, each a pure function of the frame, its parents' frames and
the server's date: ``Parent__r.Field`` (cross-object) and ``TODAY() - DATEVALUE(DateTimeField)``. TODAY() is the
UTC date (the integration user's time zone is GMT)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import polars as pl

from emulator import schema as s
from emulator.generate import column_dtype

_CROSS_OBJECT = re.compile(r"(\w+)\.(\w+)")
_DAYS_SINCE = re.compile(r"TODAY\(\)\s*-\s*DATEVALUE\((\w+)\)")


def with_formulas(obj: s.ObjectDef, frame: pl.DataFrame, parent_frame: Callable[[str], pl.DataFrame],
                  today: date) -> pl.DataFrame:
    """``frame`` (an object's stored columns) with its formula columns, in describe order."""
    formulas = obj.formulas
    if not formulas:
        return frame
    columns = [_formula(obj, f, frame, parent_frame, today) for f in formulas]
    out = frame.with_columns(columns)
    return out.select([f.name for f in obj.fields if f.name in out.columns])


def _formula(obj: s.ObjectDef, f: s.FieldDef, frame: pl.DataFrame, parent_frame: Callable[[str], pl.DataFrame],
             today: date) -> pl.Series:
    text = f.formula or ""
    dtype = column_dtype(f.type)
    if match := _CROSS_OBJECT.fullmatch(text):
        return _cross_object(obj, match.group(1), match.group(2), frame, parent_frame).cast(dtype).alias(f.name)
    if match := _DAYS_SINCE.fullmatch(text):
        days = (pl.lit(today) - frame[match.group(1)].dt.date()).dt.total_days()
        return frame.select(days.cast(dtype).alias(f.name)).to_series()
    msg = f"{obj.name}.{f.name}: the emulator cannot evaluate the formula {text!r}"
    raise ValueError(msg)


def _cross_object(obj: s.ObjectDef, relationship: str, field: str, frame: pl.DataFrame,
                  parent_frame: Callable[[str], pl.DataFrame]) -> pl.Series:
    """The parent's ``field`` through the lookup whose relationship is ``relationship`` (null without a parent)."""
    lookup = next(f for f in obj.fields if f.relationship_name == relationship)
    parents = parent_frame(lookup.reference_to[0]).select(pl.col("Id").alias("__parent"), pl.col(field))
    joined = frame.select(pl.col(lookup.name).alias("__parent")).join(parents, on="__parent", how="left",
                                                                       maintain_order="left")
    return joined[field]
