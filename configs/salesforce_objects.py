"""The object registry: what to extract from Salesforce and how to aggregate and check it.

Add an object by adding one entry to ``SALESFORCE_OBJECTS_RAW``, or, at deploy time without a code change, to a JSON
file named by ``$SF_PIPELINE_REGISTRY_EXTRA`` (``{"Invoice__c": {"fields": [...], ...}}``: the same keys; an entry
named like a built-in one replaces it). The registry is validated once, at import, the file's entries by the same
rules: one ``RegistryError`` lists every problem, naming the object and field (and the file) and what to do.
Summary columns are named ``<column>_<aggregation>`` and follow the ``group_by`` columns in registry order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

AGGREGATIONS: tuple[str, ...] = ("count", "n_unique", "sum", "mean", "median", "min", "max", "std", "null_count")
# The cursor an entry without ``cursor_field`` syncs on: the first of these it lists. Insert-only objects (``*History``)
# have only CreatedDate; an entry listing none of them is extracted in full every run.
CURSOR_CANDIDATES: tuple[str, ...] = ("SystemModstamp", "LastModifiedDate", "CreatedDate")
API_PATHS: tuple[str, ...] = ("auto", "rest", "bulk2")


class RegistryError(ValueError):
    """The object registry has one or more mistakes; the message lists each of them."""


EVERY_FIELD = "*"  # ``fields: "*"``: every field the object's describe has (see ObjectSpec.every_field)
ApiPath = Literal["rest", "bulk2"]            # the API an extract actually used
ApiChoice = Literal["auto", "rest", "bulk2"]   # what the registry or a parameter asks for (auto: by row count)


def is_api_choice(value: str) -> TypeGuard[ApiChoice]:
    """Whether a parameter's string names an API choice (flow parameters arrive as plain strings)."""
    return value in get_args(ApiChoice)


class ObjectSpec(BaseModel):
    """One Salesforce object: the fields to extract, how to summarise them and the QA thresholds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: tuple[str, ...]  # or "*": every field of the describe, at run time (``every_field``)
    exclude_fields: tuple[str, ...] = ()  # with "*": fields left out (e.g. big text areas)
    required: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    metrics: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    primary_key: str = "Id"
    cursor_field: str | None = None  # None: the first of CURSOR_CANDIDATES among fields (see ``cursor``)
    api: ApiChoice = "auto"
    bulk_threshold_rows: int = Field(default=50_000, ge=0)
    rowcount_drift_tolerance_pct: float = Field(default=50.0, ge=0)
    validators: tuple[str, ...] = ()  # dotted paths "package.module:function", see README "Custom validators"
    raw_retention_count: int = Field(default=20, ge=1)
    # incremental sync (see README "Incremental sync"): None means incremental when a cursor field is set
    sync_mode: Literal["incremental", "full"] | None = None
    incremental_overlap_minutes: float = Field(default=5.0, ge=0)
    reconcile_every_runs: int = Field(default=96, ge=1)  # hard-delete check at least daily at 15-minute runs
    # formula fields and relationship paths (Account.Name) change without their record's cursor moving: every this
    # many incremental runs (hourly at 15-minute runs), one narrow query re-reads them for every record; 0: never
    formula_refresh_every_runs: int = Field(default=4, ge=0)

    @field_validator("fields", mode="before")
    @classmethod
    def _every_field(cls, value: Any) -> Any:
        return (EVERY_FIELD,) if value == EVERY_FIELD else value

    @property
    def every_field(self) -> bool:
        """``fields: "*"``: the field list is the describe's, resolved by each run (``with_fields``)."""
        return self.fields == (EVERY_FIELD,)

    def with_fields(self, fields: tuple[str, ...]) -> ObjectSpec:
        """This entry with its ``"*"`` resolved to a run's field list (the describe's, minus ``exclude_fields``)."""
        return self.model_copy(update={"fields": fields})

    @property
    def cursor(self) -> str | None:
        """The field incremental sync and dedup order records by: ``cursor_field``, else the first of
        ``CURSOR_CANDIDATES`` the entry lists, else None (no cursor: full extracts; unknown until a run resolves
        ``"*"``)."""
        return self.cursor_in(self.fields)

    def cursor_in(self, columns: Sequence[str]) -> str | None:
        """The cursor among ``columns`` (a dataset's, for an entry with ``"*"``)."""
        if self.cursor_field:
            return self.cursor_field
        return next((c for c in CURSOR_CANDIDATES if c in columns), None)

    @property
    def effective_sync_mode(self) -> str:
        if self.sync_mode is not None:
            return self.sync_mode
        return "incremental" if self.cursor or self.every_field else "full"

    def metric_columns(self) -> list[tuple[str, str, str]]:
        """``(column, aggregation, summary column name)`` for every metric, in registry order."""
        return [(c, a, f"{c}_{a}") for c, aggregations in self.metrics.items() for a in aggregations]

    def qa_required_columns(self) -> dict[str, str]:
        """Column -> why QA requires it: ``required``, and the primary key and cursor that dedup and sampling use."""
        roles = [*((c, "required") for c in self.required), (self.primary_key, "primary key"),
                 *(((self.cursor, "cursor field"),) if self.cursor else ())]
        needed: dict[str, str] = {}
        for column, role in roles:
            needed.setdefault(column, role)
        return needed

    def summary_columns(self) -> list[str]:
        """Columns of the summary, in order: group_by then ``<column>_<aggregation>``."""
        return [*self.group_by, *(name for _, _, name in self.metric_columns())]


def _check_spec(name: str, spec: ObjectSpec) -> list[str]:
    """Every semantic problem of one entry, as human-readable lines."""
    problems = _check_field_list(name, spec)
    for col, aggs in spec.metrics.items():
        if not aggs:
            problems.append(f"{name}.metrics['{col}']: no aggregation listed; use one of {', '.join(AGGREGATIONS)}")
        for agg in aggs:
            if agg not in AGGREGATIONS:
                problems.append(
                    f"{name}.metrics['{col}']: unknown aggregation '{agg}'; use one of {', '.join(AGGREGATIONS)}"
                )
    for v in spec.validators:
        if ":" not in v:
            problems.append(f"{name}.validators: '{v}' must look like 'package.module:function'")
    return problems


def _check_field_list(name: str, spec: ObjectSpec) -> list[str]:
    """The field list, and every column the entry names, against each other. With ``fields: "*"`` the list is the
    org's describe: the columns named elsewhere are checked against it by each run instead."""
    if spec.every_field:
        return []
    problems: list[str] = []
    if spec.exclude_fields:
        problems.append(f'{name}.exclude_fields: only applies to fields "*"; remove the fields from fields instead')
    fields = spec.fields
    if not fields:
        problems.append(f"{name}.fields: the field list is empty; list at least Id and the columns you need")
    seen: set[str] = set()
    for f in fields:
        if f in seen:
            problems.append(f"{name}.fields: '{f}' is listed twice; remove the duplicate")
        seen.add(f)
    for attr in ("primary_key", "cursor_field"):
        value = getattr(spec, attr)
        if value is not None and value not in seen:
            problems.append(f"{name}.{attr}: '{value}' is not in fields; add it to fields")
    if spec.sync_mode == "incremental" and spec.cursor is None:
        problems.append(f"{name}.sync_mode: incremental needs a cursor; list one of {', '.join(CURSOR_CANDIDATES)} "
                        "in fields, set cursor_field, or use sync_mode 'full'")
    for col in spec.required:
        if col not in seen:
            problems.append(f"{name}.required: '{col}' is not in fields; add it to fields or drop it")
    for col in spec.group_by:
        if col not in seen:
            problems.append(f"{name}.group_by: '{col}' is not in fields; add it to fields")
    for col in spec.metrics:
        if col not in seen:
            problems.append(f"{name}.metrics: '{col}' is not in fields; add it to fields")
    return problems


def _format_pydantic(name: str, err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "entry"
        out.append(f"{name}.{loc}: {e['msg']}")
    return out


def validate_registry(raw: Mapping[str, Mapping[str, Any]], *,
                      source: str = "object registry") -> Mapping[str, ObjectSpec]:
    """Build frozen specs from plain dicts; raise one RegistryError listing every problem (``source`` names where
    the entries come from)."""
    problems: list[str] = []
    specs: dict[str, ObjectSpec] = {}
    if not raw:
        problems.append("registry: no objects configured; add at least one entry")
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            problems.append(f"{name}: the entry must be an object of registry keys (fields, group_by, ...)")
            continue
        if not name.replace("_", "").isalnum() or not name[0].isalpha():
            problems.append(f"{name}: not a valid Salesforce API name (letters, digits, underscores)")
        try:
            spec = ObjectSpec(**entry)
        except ValidationError as err:
            problems.extend(_format_pydantic(name, err))
            continue
        problems.extend(_check_spec(name, spec))
        specs[name] = spec
    if len(problems) == 1:
        msg = f"invalid {source}: {problems[0]}"
        raise RegistryError(msg)
    if problems:
        msg = f"invalid {source} ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
        raise RegistryError(msg)
    return MappingProxyType(specs)


REGISTRY_EXTRA_ENV = "SF_PIPELINE_REGISTRY_EXTRA"  # a JSON file of more entries, read by every process at import


def load_registry_extra(path: str | Path) -> Mapping[str, ObjectSpec]:
    """The entries of a JSON registry file (object name -> entry, the keys of ``ObjectSpec``), validated like the
    built-in ones; a RegistryError naming the file (and each bad entry and field) otherwise."""
    where = f"registry extra {Path(path).absolute()} (${REGISTRY_EXTRA_ENV})"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        msg = f"invalid {where}: cannot read it ({err.strerror or err}); point {REGISTRY_EXTRA_ENV} at a JSON file"
        raise RegistryError(msg) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        msg = f"invalid {where}: not JSON ({err}); write an object of object name -> entry"
        raise RegistryError(msg) from err
    if not isinstance(raw, dict):
        kind = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(raw), "null")
        msg = (f"invalid {where}: the file holds a JSON {kind}, not an object of object name -> "
               'entry, e.g. {"Invoice__c": {"fields": ["Id", "Name", "SystemModstamp"]}}')
        raise RegistryError(msg)
    return validate_registry(raw, source=where)


def with_registry_extra(registry: Mapping[str, ObjectSpec],
                        env: Mapping[str, str] | None = None) -> Mapping[str, ObjectSpec]:
    """``registry`` plus the entries of the file ``$SF_PIPELINE_REGISTRY_EXTRA`` names, after the built-in ones (an
    entry of the same name replaces a built-in one, in its place); ``registry`` itself when the variable is unset."""
    path = (os.environ if env is None else env).get(REGISTRY_EXTRA_ENV, "").strip()
    if not path:
        return registry
    return MappingProxyType({**registry, **load_registry_extra(path)})


SALESFORCE_OBJECTS_RAW: dict[str, dict[str, Any]] = {
    "Account": {
        "fields": ("Id", "Name", "Type", "Industry", "BillingCountry", "AnnualRevenue", "NumberOfEmployees",
                   "Rating", "OwnerId", "Owner.Name", "CreatedDate", "LastModifiedDate", "SystemModstamp"),
        "required": ("Id", "Name", "OwnerId"),
        "group_by": ("Industry",),
        "metrics": {"Id": ("count",), "AnnualRevenue": ("sum", "mean", "max"),
                    "NumberOfEmployees": ("median", "null_count")},
    },
    "Contact": {
        "fields": ("Id", "FirstName", "LastName", "Email", "Title", "LeadSource", "MailingCountry", "Birthdate",
                   "HasOptedOutOfEmail", "AccountId", "Account.Name", "OwnerId", "CreatedDate", "SystemModstamp"),
        "required": ("Id", "LastName"),
        "group_by": ("LeadSource",),
        "metrics": {"Id": ("count",), "AccountId": ("n_unique",), "Email": ("null_count",),
                    "Birthdate": ("min", "max")},
    },
    "Opportunity": {
        "fields": ("Id", "Name", "StageName", "Amount", "Probability", "CloseDate", "IsClosed", "IsWon",
                   "ForecastCategory", "LeadSource", "AccountId", "Account.Name", "OwnerId", "Owner.Name",
                   "CreatedDate", "SystemModstamp"),
        "required": ("Id", "Name", "StageName", "CloseDate"),
        "group_by": ("StageName",),
        "metrics": {"Id": ("count",), "Amount": ("sum", "mean", "median", "min", "max", "std"),
                    "Probability": ("mean",)},
        "validators": ("tasks.validators:amount_non_negative",),
    },
    "Lead": {
        "fields": ("Id", "FirstName", "LastName", "Company", "Status", "LeadSource", "Industry", "Rating",
                   "AnnualRevenue", "IsConverted", "OwnerId", "Owner.Name", "CreatedDate", "SystemModstamp"),
        "required": ("Id", "LastName", "Company", "Status"),
        "group_by": ("Status", "IsConverted"),
        "metrics": {"Id": ("count",), "AnnualRevenue": ("sum", "mean"), "Company": ("n_unique",)},
    },
    "Case": {
        "fields": ("Id", "CaseNumber", "Subject", "Status", "Priority", "Origin", "IsClosed", "IsEscalated",
                   "AccountId", "Account.Name", "ContactId", "OwnerId", "CreatedDate", "ClosedDate",
                   "SystemModstamp"),
        "required": ("Id", "CaseNumber", "Status"),
        "group_by": ("Status", "Priority"),
        "metrics": {"Id": ("count",), "IsEscalated": ("sum",), "ClosedDate": ("null_count", "max")},
    },
}

# every process builds the same registry: a worker and each flow-run process it starts inherit the variable
SALESFORCE_OBJECTS: Mapping[str, ObjectSpec] = with_registry_extra(validate_registry(SALESFORCE_OBJECTS_RAW))


def spec_for(object_name: str) -> ObjectSpec:
    """The registry entry of ``object_name``; a ConfigError saying what to do when there is none."""
    from utils.errors import ConfigError

    try:
        return SALESFORCE_OBJECTS[object_name]
    except KeyError:
        msg = f"object {object_name!r} is not in configs/salesforce_objects.py; add an entry for it"
        raise ConfigError(msg) from None
