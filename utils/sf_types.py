"""Salesforce field types (describe ``type``) mapped to Polars dtypes, so nothing is ever inferred."""

from __future__ import annotations

import polars as pl

# The Salesforce describe type sets, here and nowhere else. Text-like types (ids, lookups, picklists, ...) are read
# as strings.
STRING_TYPES = frozenset({
    "id", "reference", "string", "textarea", "email", "phone", "url", "picklist", "multipicklist",
    "combobox", "encryptedstring", "time", "base64", "anytype",
    # compound fields are written as JSON text in the raw CSV
    "address", "location",
})
INT_TYPES = frozenset({"int", "long"})
FLOAT_TYPES = frozenset({"double", "currency", "percent"})
NUMERIC_TYPES = INT_TYPES | FLOAT_TYPES
# compound fields: REST returns them as JSON objects (written as compact JSON text); Bulk 2.0 cannot select them
COMPOUND_TYPES = frozenset({"address", "location"})
BULK_UNSUPPORTED_TYPES = COMPOUND_TYPES | {"base64"}

DATETIME_DTYPE = pl.Datetime("ms", "UTC")


class UnknownSalesforceTypeError(ValueError):
    """A describe type we do not know how to read; we refuse to guess."""


def is_known_type(sf_type: str) -> bool:
    """Whether ``polars_dtype_for`` can read this Salesforce type (an unknown one is reported, never guessed)."""
    return sf_type.lower() in STRING_TYPES | NUMERIC_TYPES | {"boolean", "date", "datetime"}


def polars_dtype_for(sf_type: str) -> pl.DataType:
    """The Polars dtype a raw CSV column of Salesforce type ``sf_type`` is read as."""
    t = sf_type.lower()
    if t in STRING_TYPES:
        return pl.Utf8()
    if t in INT_TYPES:
        return pl.Int64()
    if t in FLOAT_TYPES:
        return pl.Float64()
    if t == "boolean":
        return pl.Boolean()
    if t == "date":
        return pl.Date()
    if t == "datetime":
        return DATETIME_DTYPE
    msg = f"unknown Salesforce field type {sf_type!r}: add it to utils/sf_types.py"
    raise UnknownSalesforceTypeError(msg)


def read_dtype(dtype: pl.DataType) -> pl.DataType:
    """The dtype used while *reading* a CSV column of ``dtype``: temporal columns are read as text, parsed after."""
    return pl.Utf8() if dtype in (pl.Date(), DATETIME_DTYPE) else dtype


def csv_read_dtype_for(sf_type: str) -> pl.DataType:
    """``read_dtype`` of a Salesforce type."""
    return read_dtype(polars_dtype_for(sf_type))

