"""Generated custom objects for scale tests (``--custom-objects N``): ``Bench_01__c`` ... ``Bench_NN__c``, each the
shape of a custom object an admin creates in Setup, with its own rows.

Each has the standard fields every custom object gets (Id, OwnerId, IsDeleted, a text Name, the audit fields,
LastActivityDate, LastViewedDate, LastReferencedDate: the shape of ``Wide__c``), then eight custom fields in the order
they were created: a lookup to Account (``Account__r``; Account's child relationship ``Bench_01s__r``), currency,
number, two picklists, a checkbox, a date and a text area. Key prefixes are sequential like a real org's custom
objects', from ``a10`` (``Bench_01__c``; ``a00`` ... ``a0z`` stay for the hand-made optional objects: Invoice__c
``a00``, Wide__c ``a01``, ...).

They are optional objects like ``Invoice__c``: served only when asked for, by ``--custom-objects N`` (``N`` of them,
``DEFAULT_ROWS`` rows each) or by naming one in ``--rows`` (``Bench_07__c=5000``, which also sets the rows of one of
the N). Each draws from its own random stream (``object_seed(seed, name)``): the default org, and every other object,
stay exactly as they were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

import numpy as np
import polars as pl

from emulator import schema as s
from emulator.generate import _dates, _datetimes, _Draw
from emulator.ids import BASE62, make_ids

DEFAULT_ROWS = 1_000   # rows of each generated object unless ``--rows`` names it
MAX_CUSTOM_OBJECTS = 999  # the name has room for three digits
FIRST_PREFIX = 62  # a10: a00 ... a0z are the hand-made optional objects' (emulator/optional_objects.py)
_NAME = re.compile(r"bench_(\d{2,3})__c", re.IGNORECASE)

STATUSES = ("New", "Open", "On Hold", "Closed")
REGIONS = ("EMEA", "AMER", "APAC", "LATAM")
NOTES = ("Renewal due", 'Customer said "ok", follow up', "Line one\nLine two", "Größer; 日本語", "Plain")
# The custom fields, in describe order: what a registry entry can list, group by and aggregate
CUSTOM_FIELDS = ("Account__c", "Amount__c", "Quantity__c", "Status__c", "Region__c", "Is_Active__c",
                 "Due_Date__c", "Note__c")


def custom_object_name(number: int) -> str:
    """``1`` -> ``Bench_01__c``."""
    return f"Bench_{number:02d}__c"


def custom_object_names(count: int) -> list[str]:
    """The names ``--custom-objects count`` serves; ValueError outside 0..MAX_CUSTOM_OBJECTS."""
    if not 0 <= count <= MAX_CUSTOM_OBJECTS:
        msg = f"--custom-objects {count}: use a number from 0 to {MAX_CUSTOM_OBJECTS}"
        raise ValueError(msg)
    return [custom_object_name(n) for n in range(1, count + 1)]


def with_custom_objects(rows: Mapping[str, int] | None, count: int) -> dict[str, int]:
    """``rows`` plus ``DEFAULT_ROWS`` for each of the first ``count`` generated objects it does not name (in any
    casing: ``--rows`` keeps its own count), those in number order after the rest (their describe order)."""
    out = dict(rows or {})
    named = {name.lower(): name for name in out}
    for name in custom_object_names(count):
        given = named.get(name.lower())
        out[given or name] = out.pop(given) if given else DEFAULT_ROWS
    return out


def _key_prefix(number: int) -> str:
    """``a`` + two base-62 digits: ``a10`` for Bench_01__c, ``a19`` for Bench_10__c."""
    index = number - 1 + FIRST_PREFIX
    return "a" + chr(BASE62[index // 62]) + chr(BASE62[index % 62])


def lookup_generated(name: str) -> s.ObjectDef | None:
    """The generated object of that API name (any casing, two or three digits as ``custom_object_name`` writes
    them), or None."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    number = int(match.group(1))
    if not 1 <= number <= MAX_CUSTOM_OBJECTS or custom_object_name(number).lower() != name.lower():
        return None
    return _object(number)


@cache
def _object(number: int) -> s.ObjectDef:
    name = custom_object_name(number)
    label = name[: -len("__c")].replace("_", " ")  # "Bench 01"
    return s.ObjectDef(name, _key_prefix(number), f"{label}s", (
        s._ID, s._owner(), s._IS_DELETED, s._text("Name", 80, nillable=False, label=f"{label} Name"), *s._audit(),
        s._read_only("LastActivityDate", "date"), *s._recently_viewed(),
        s._ref("Account__c", "Account", rel="Account__r", child_relationship=f"{name[: -len('__c')]}s__r",
               label="Account"),
        s._money("Amount__c", label="Amount"), s.FieldDef("Quantity__c", "double", precision=18, scale=0,
                                                          label="Quantity"),
        s._pick("Status__c", STATUSES, label="Status"), s._pick("Region__c", REGIONS, label="Region"),
        s._flag("Is_Active__c"), s.FieldDef("Due_Date__c", "date", label="Due Date"),
        s.FieldDef("Note__c", "textarea", length=255, label="Note"),
    ))


def generated_columns(obj: s.ObjectDef, d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    """The stored columns of ``d.n`` rows of a generated object (the rest are null: nobody viewed the records)."""
    created, modified, modstamp = d.history()
    numbers = pl.Series(np.arange(1, d.n + 1)).cast(pl.String).str.zfill(6)
    due_ms = d.epoch_ms + d.rng.integers(-300, 90, d.n) * 86_400_000
    return [make_ids(obj.key_prefix, np.arange(d.n)), d.lookup("OwnerId", "005", sizes["User"]),
            pl.Series("IsDeleted", d.mask(0.01)), d.text("Name", [f"{obj.label_plural[:-1]} ", numbers]),
            _datetimes("CreatedDate", created), d.lookup("CreatedById", "005", sizes["User"]),
            _datetimes("LastModifiedDate", modified), d.lookup("LastModifiedById", "005", sizes["User"]),
            _datetimes("SystemModstamp", modstamp),
            d.lookup("Account__c", "001", sizes["Account"], 0.1), d.money("Amount__c", 1, 100_000, 0.5, 0.05),
            pl.Series("Quantity__c", d.rng.integers(1, 500, d.n).astype(np.float64)),
            d.choice("Status__c", STATUSES), d.choice("Region__c", REGIONS, 0.1),
            pl.Series("Is_Active__c", ~d.mask(0.2)), d.nulls(_dates("Due_Date__c", due_ms), 0.1),
            d.choice("Note__c", NOTES, 0.3)]
