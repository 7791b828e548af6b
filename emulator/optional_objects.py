"""Objects an org serves only when asked for (``rows={"Invoice__c": 300}``, ``--rows Invoice__c=300``): the real-org
cases a pipeline meets beyond the standard objects (issue #17), each with its describe and its generated rows.

* ``Invoice__c``: a custom object, auto-number ``Name``, master-detail to Account, a geolocation, and two formula
  fields whose values change while the record's SystemModstamp stays (``emulator/formulas.py`` computes them).
* ``AccountHistory``: a field history object: insert-only, no LastModifiedDate, no SystemModstamp.
* ``CaseStatus``: a setup object the Bulk APIs refuse (``Entity 'CaseStatus' is not supported by the Bulk API.``).
* ``Wide__c``: 500 fields of mixed types: a query of all of them does not fit in a REST GET URL.
* ``Snapshot__c``: an object that refuses queryAll on every API (``INVALID_TYPE_FOR_OPERATION``, see
  ``schema.query_all_refusal``) while query works: a delta cannot see its deletions. Which real objects do is
  barely documented (tap-salesforce excludes ``ListViewChartInstance``, a virtual object without audit fields);
  this one is a plain custom object with SystemModstamp, so the fallback to query is tested on an incremental sync.
* ``Bench_01__c`` ... (``--custom-objects N``): plain custom objects for scale tests (emulator/generated_objects.py).

Each draws from its own random stream (``object_seed(seed, name)``), so asking for one never changes the rows of
another, and the default org (none of them) stays exactly as it was."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

from emulator import schema as s
from emulator.generate import (
    COMPANY_WORDS,
    COORDINATES,
    _dates,
    _datetimes,
    _Draw,
    _nulls,
    _where,
    column_dtype,
    epoch_for,
)
from emulator.generated_objects import generated_columns, lookup_generated
from emulator.ids import make_ids

INVOICE_STATUSES = ("Draft", "Sent", "Paid", "Void")
# AccountHistory.Field values this org tracks ('created' is the row of the record's creation), with the DataType a
# change of that field is recorded under
ACCOUNT_TRACKED = {"created": None, "Name": "Text", "Type": "DynamicEnum", "Industry": "DynamicEnum",
                   "Rating": "DynamicEnum", "AccountNumber": "Text", "Phone": "Phone"}
HISTORY_DATA_TYPES = ("Text", "DynamicEnum", "Phone")
_NOT_SETUP = ("createable", "updateable", "deletable", "undeletable", "mergeable", "layoutable", "triggerable",
              "feedEnabled", "mruEnabled", "searchable")


def _custom_audit() -> tuple[s.FieldDef, ...]:
    """The standard fields every custom object has after Name, in describe order."""
    return (*s._audit(), s._read_only("LastActivityDate", "date"), *s._recently_viewed())


def _location(name: str) -> tuple[s.FieldDef, ...]:
    """A geolocation custom field: its two ``__s`` components, then the compound ``location`` field."""
    base = name[: -len("__c")]
    parts = tuple(s.FieldDef(f"{base}__{p}__s", "double", compound_field_name=name, precision=18, scale=15)
                  for p in ("Latitude", "Longitude"))
    return (*parts, s.FieldDef(name, "location", writable=False))


INVOICE = s.ObjectDef("Invoice__c", "a00", "Invoices", (
    s._ID, s._IS_DELETED,
    s.FieldDef("Name", "string", length=80, nillable=False, writable=False, auto_number=True, label="Invoice Number"),
    *_custom_audit(),
    s._ref("Account__c", "Account", rel="Account__r", nillable=False, master_detail=True,
           child_relationship="Invoices__r", label="Account"),
    s._money("Amount__c", label="Amount"), s.FieldDef("Quantity__c", "double", precision=18, scale=0, label="Quantity"),
    s._pick("Status__c", INVOICE_STATUSES, label="Status"), s.FieldDef("Due_Date__c", "date", label="Due Date"),
    *_location("Site_Location__c"),
    # formulas: a cross-object one (the master's name) and one on the server's clock
    s.FieldDef("Account_Name__c", "string", length=1300, writable=False, formula="Account__r.Name",
               label="Account Name"),
    s.FieldDef("Days_Open__c", "double", precision=18, scale=0, writable=False,
               formula="TODAY() - DATEVALUE(CreatedDate)", label="Days Open"),
), required_on_create=("Account__c",))

ACCOUNT_HISTORY = s.ObjectDef("AccountHistory", "017", "Account History", (
    s._ID, s._IS_DELETED,
    s._ref("AccountId", "Account", nillable=False, writable=False, child_relationship="Histories"),
    s._ref("CreatedById", "User", rel="CreatedBy", nillable=False, writable=False),
    s._read_only("CreatedDate", "datetime", nillable=False),
    s._pick("Field", tuple(ACCOUNT_TRACKED), nillable=False, writable=False),
    s._pick("DataType", HISTORY_DATA_TYPES, writable=False),
    s.FieldDef("OldValue", "anyType", writable=False), s.FieldDef("NewValue", "anyType", writable=False),
), deletable=False, undeletable=False,
    describe_flags=(*((k, False) for k in _NOT_SETUP), ("replicateable", True)))

CASE_STATUS = s.ObjectDef("CaseStatus", "01k", "Case Status Values", (
    s._ID, s._text("MasterLabel", 255, nillable=False, writable=False),
    s._text("ApiName", 255, nillable=False, writable=False), s._read_only("SortOrder", "int", precision=9),
    s._flag("IsDefault", writable=False), s._flag("IsClosed", writable=False), *s._audit(),
), deletable=False, undeletable=False, bulk_query=False,
    describe_flags=(*((k, False) for k in _NOT_SETUP), ("replicateable", False)))

# Wide__c's custom fields: (name word, describe type, FieldDef options), cycled over 488 fields
_WIDE_KINDS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Text", "string", {"length": 255}), ("Number", "double", {"precision": 18, "scale": 2}),
    ("Amount", "currency", {"precision": 18, "scale": 2}), ("Rate", "percent", {"precision": 5, "scale": 2}),
    ("Date", "date", {}), ("Timestamp", "datetime", {}), ("Flag", "boolean", {"nillable": False}),
    ("Choice", "picklist", {"picklist": ("Alpha", "Beta", "Gamma", "Delta")}), ("Email", "email", {}),
    ("Phone", "phone", {}), ("Website", "url", {}), ("Note", "textarea", {"length": 255}),
)
WIDE_CUSTOM_FIELDS = 488  # + 12 standard fields = 500


def _wide_fields() -> tuple[s.FieldDef, ...]:
    fields = []
    for i in range(WIDE_CUSTOM_FIELDS):
        word, type_, options = _WIDE_KINDS[i % len(_WIDE_KINDS)]
        fields.append(s.FieldDef(f"{word}_Measurement_Attribute_{i + 1:03d}__c", type_, **options))
    return tuple(fields)


WIDE = s.ObjectDef("Wide__c", "a01", "Wides", (
    s._ID, s._owner(), s._IS_DELETED, s.FieldDef("Name", "string", length=80, nillable=False), *_custom_audit(),
    *_wide_fields(),
))

SNAPSHOT_STATUSES = ("Open", "Frozen", "Archived")
SNAPSHOT = s.ObjectDef("Snapshot__c", "a02", "Snapshots", (
    s._ID, s._owner(), s._IS_DELETED, s.FieldDef("Name", "string", length=80, nillable=False), *_custom_audit(),
    s.FieldDef("Value__c", "double", precision=18, scale=2, label="Value"),
    s._pick("Status__c", SNAPSHOT_STATUSES, label="Status"),
), query_all=False)

AUTO_NUMBER_FORMATS = {"Invoice__c": "INV-{:06d}"}  # the display format of each auto-number Name
OPTIONAL_OBJECTS: dict[str, s.ObjectDef] = {o.name: o for o in (INVOICE, ACCOUNT_HISTORY, CASE_STATUS, WIDE, SNAPSHOT)}


def lookup_optional(name: str) -> s.ObjectDef | None:
    """The optional object of that API name (any casing): one above, or a generated ``Bench_NN__c``."""
    found = next((o for o in OPTIONAL_OBJECTS.values() if o.name.lower() == name.lower()), None)
    return found or lookup_generated(name)


# --- rows ------------------------------------------------------------------------------------------------------
def _stored_schema(obj: s.ObjectDef) -> dict[str, pl.DataType]:
    """The frame columns of an object: every field but compound and formula fields (computed when read)."""
    return {f.name: column_dtype(f.type) for f in obj.fields if not f.is_compound and f.formula is None}


def _audit_columns(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    created, modified, modstamp = d.history()
    return [_datetimes("CreatedDate", created), d.lookup("CreatedById", "005", sizes["User"]),
            _datetimes("LastModifiedDate", modified), d.lookup("LastModifiedById", "005", sizes["User"]),
            _datetimes("SystemModstamp", modstamp)]


def _invoices(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    numbers = pl.Series(np.arange(1, d.n + 1)).cast(pl.String).str.zfill(6)
    located = d.mask(0.5)
    spot = d.rng.integers(0, len(COORDINATES), d.n)
    lat, lon = (pl.Series([xy[i] for xy in COORDINATES.values()]).gather(spot) for i in range(2))
    due_ms = d.epoch_ms + d.rng.integers(-200, 60, d.n) * 86_400_000
    return [make_ids("a00", np.arange(d.n)), pl.Series("IsDeleted", d.mask(0.01)),
            d.text("Name", ["INV-", numbers]), *_audit_columns(d, sizes),
            d.lookup("Account__c", "001", sizes["Account"]), d.money("Amount__c", 1, 200_000, 0.25, 0.05),
            pl.Series("Quantity__c", d.rng.integers(1, 100, d.n).astype(np.float64)),
            d.choice("Status__c", INVOICE_STATUSES, 0.05), d.nulls(_dates("Due_Date__c", due_ms), 0.1),
            _where(located, lat.alias("Site_Location__Latitude__s")),
            _where(located, lon.alias("Site_Location__Longitude__s"))]


def _history_values(field: pl.Series, d: _Draw, name: str) -> pl.Series:
    """An Old/NewValue per row: a value of the field the row records (null on 'created' rows)."""
    options = {"Name": [" ".join((w, "Holdings")) for w in COMPANY_WORDS], "Type": list(s.ACCOUNT_TYPES),
               "Industry": list(s.INDUSTRIES), "Rating": list(s.RATINGS),
               "AccountNumber": [f"CD{i}" for i in range(100000, 100050)],
               "Phone": [f"+1 555 0{i}" for i in range(100, 150)]}
    pick = d.rng.integers(0, 1_000_000, d.n)
    values = [options[f][p % len(options[f])] if f in options else None for f, p in zip(field, pick, strict=True)]
    return d.nulls(pl.Series(name, values, dtype=pl.String), 0.1)


def _account_history(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    created, _, _ = d.history()
    field = d.choice("Field", list(ACCOUNT_TRACKED))
    data_type = field.replace_strict(ACCOUNT_TRACKED, return_dtype=pl.String).alias("DataType")
    old, new = _history_values(field, d, "OldValue"), _history_values(field, d, "NewValue")
    created_row = (field == "created").to_numpy()
    return [make_ids("017", np.arange(d.n)), pl.Series("IsDeleted", d.mask(0.01)),
            d.lookup("AccountId", "001", sizes["Account"]), d.lookup("CreatedById", "005", sizes["User"]),
            _datetimes("CreatedDate", created), field, data_type,
            _where(~created_row, old), _where(~created_row, new)]


def _case_statuses(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    labels = [s.CASE_STATUSES[i % len(s.CASE_STATUSES)] + (f" {i // len(s.CASE_STATUSES) + 1}"
                                                           if i >= len(s.CASE_STATUSES) else "") for i in range(d.n)]
    label = pl.Series("MasterLabel", labels, dtype=pl.String)
    numbers = np.arange(d.n)
    return [make_ids("01k", numbers), label, label.alias("ApiName"), pl.Series("SortOrder", numbers + 1),
            pl.Series("IsDefault", numbers == 0), pl.Series("IsClosed", label.str.starts_with("Closed").to_numpy()),
            *_audit_columns(d, sizes)]


def _wide_column(d: _Draw, f: s.FieldDef) -> pl.Series:
    builders: dict[str, Callable[[], pl.Series]] = {
        "string": lambda: d.combo(f.name, [COMPANY_WORDS, [str(i) for i in range(50)]], " ", 0.2),
        "double": lambda: d.money(f.name, 0, 1_000_000, 0.01, 0.2),
        "currency": lambda: d.money(f.name, 0, 500_000, 0.5, 0.2),
        "percent": lambda: d.money(f.name, 0, 10_000, 0.01, 0.2),
        "date": lambda: d.nulls(_dates(f.name, d.epoch_ms - d.rng.integers(0, 900, d.n) * 86_400_000), 0.2),
        "datetime": lambda: d.nulls(_datetimes(f.name, d.epoch_ms - d.rng.integers(0, 10**8, d.n) * 1000), 0.2),
        "boolean": lambda: pl.Series(f.name, d.mask(0.3)),
        "picklist": lambda: d.choice(f.name, f.picklist, 0.2),
        "email": lambda: d.combo(f.name, [["info", "sales", "ops"], ["@example.com", "@example.org"]], "", 0.3),
        "phone": lambda: d.combo(f.name, [["+1 555 0"], [str(i) for i in range(100, 1000)]], "", 0.3),
        "url": lambda: d.combo(f.name, [["https://www."], ["acme", "globex"], [".example.com"]], "", 0.3),
        "textarea": lambda: d.combo(f.name, [["Note", "Remark, with comma", 'Quote "x"'], ["one", "two"]], " ", 0.5),
    }
    return builders[f.type]()


def _wides(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    numbers = pl.Series(np.arange(1, d.n + 1)).cast(pl.String)
    head = [make_ids("a01", np.arange(d.n)), d.lookup("OwnerId", "005", sizes["User"]),
            pl.Series("IsDeleted", d.mask(0.01)), d.text("Name", ["Wide record ", numbers]), *_audit_columns(d, sizes),
            _nulls("LastActivityDate", d.n, pl.Date()), _nulls("LastViewedDate", d.n, column_dtype("datetime")),
            _nulls("LastReferencedDate", d.n, column_dtype("datetime"))]
    return head + [_wide_column(d, f) for f in WIDE.fields if f.is_custom]


def _snapshots(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    numbers = pl.Series(np.arange(1, d.n + 1)).cast(pl.String)
    return [make_ids("a02", np.arange(d.n)), d.lookup("OwnerId", "005", sizes["User"]),
            pl.Series("IsDeleted", d.mask(0.02)), d.text("Name", ["Snapshot ", numbers]), *_audit_columns(d, sizes),
            d.money("Value__c", 0, 10_000, 0.01, 0.1), d.choice("Status__c", SNAPSHOT_STATUSES, 0.05)]


_BUILDERS: dict[str, Callable[[_Draw, Mapping[str, int]], list[pl.Series]]] = {
    "Invoice__c": _invoices, "AccountHistory": _account_history, "CaseStatus": _case_statuses, "Wide__c": _wides,
    "Snapshot__c": _snapshots,
}


def generate_optional(obj: s.ObjectDef, n: int, *, seed: int, sizes: Mapping[str, int]) -> pl.DataFrame:
    """``n`` rows of an optional object, from its own stream; lookups point below ``sizes[parent]``."""
    d = _Draw(seed, obj.name, n, epoch_for(seed))
    built = _BUILDERS[obj.name](d, sizes) if obj.name in _BUILDERS else generated_columns(obj, d, sizes)
    columns = {c.name: c for c in built}
    schema = _stored_schema(obj)
    return pl.DataFrame([columns[name].cast(dtype).alias(name) if name in columns else _nulls(name, n, dtype)
                         for name, dtype in schema.items()])
