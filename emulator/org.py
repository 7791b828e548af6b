"""The emulated org: one Polars frame per object (the SOQL Catalog), plus record create/update/delete."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import polars as pl

from emulator import schema as s
from emulator import schema_changes as sc
from emulator.formulas import with_formulas
from emulator.generate import (
    PHOTO_URL,
    STAGE_FACTS,
    column_dtype,
    epoch_for,
    expected_revenue,
    fiscal_columns,
    forecast_category_name,
    generate_object,
)
from emulator.ids import make_id
from emulator.optional_objects import ACCOUNT_TRACKED, AUTO_NUMBER_FORMATS, generate_optional, lookup_optional

DEFAULT_SEED = 42
OBJECT_ORDER = ("User", "Group", "Account", "Contact", "Opportunity", "Lead", "Case")  # parents before children
SCALES: dict[str, dict[str, int]] = {
    "small": {"User": 50, "Group": 4, "Account": 2_000, "Contact": 6_000, "Opportunity": 10_000, "Lead": 5_000,
              "Case": 5_000},
    "medium": {"User": 500, "Group": 8, "Account": 20_000, "Contact": 60_000, "Opportunity": 100_000,
               "Lead": 50_000, "Case": 50_000},
    "large": {"User": 2_000, "Group": 20, "Account": 200_000, "Contact": 600_000, "Opportunity": 5_000_000,
              "Lead": 500_000, "Case": 500_000},
}
_DELETE_NOT_ALLOWED = "HTTP Method 'DELETE' not allowed. Allowed are HEAD,GET,PATCH"


class RecordError(Exception):
    """A write was refused; carries the Salesforce errorCode, HTTP status and offending fields."""

    def __init__(self, error_code: str, message: str, *, status: int = 400, fields: list[str] | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status
        self.fields = fields or []


def resolve_sizes(scale: str, rows: Mapping[str, int] | None) -> dict[str, int]:
    """Row counts per object: the scale's defaults overridden by ``rows`` (names in any casing)."""
    if scale not in SCALES:
        msg = f"unknown scale {scale!r}: use one of {', '.join(SCALES)}"
        raise ValueError(msg)
    sizes = dict(SCALES[scale])
    for name, count in (rows or {}).items():
        obj = s.lookup_object(name) or lookup_optional(name)
        if obj is None or count < 0:
            msg = (f"--rows {name}={count}: use Object=N with N >= 0 and Object one of {', '.join(OBJECT_ORDER)}, "
                   "or an optional object: Invoice__c, AccountHistory, CaseStatus, Wide__c, Bench_01__c...")
            raise ValueError(msg)
        sizes[obj.name] = int(count)
    return sizes


def parse_rows(text: str | None) -> dict[str, int]:
    """``"Opportunity=1000000,Account=10"`` -> ``{"Opportunity": 1000000, "Account": 10}``."""
    rows: dict[str, int] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit():
            msg = f"--rows entry {part!r}: write Object=N, e.g. Opportunity=1000000"
            raise ValueError(msg)
        rows[name.strip()] = int(count)
    return rows


@dataclass(frozen=True)
class OrgSpec:
    seed: int
    sizes: Mapping[str, int]


class Org:
    """All object frames (including soft-deleted rows); implements the SOQL engine's Catalog protocol."""

    def __init__(self, spec: OrgSpec, frames: dict[str, pl.DataFrame], schema: s.Schema = s.STANDARD):
        self.spec = spec
        self.schema = self._initial_schema = schema
        self._hidden: dict[tuple[str, str], s.FieldDef] = {}  # fields whose access an admin revoked (FLS)
        self._hidden_at: dict[tuple[str, str], int] = {}  # and where they were in describe
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # TODAY() in formulas
        self.epoch = epoch_for(spec.seed)
        self._initial = dict(frames)
        self._frames = dict(frames)
        self._next_number = {name: spec.sizes[name] for name in frames}
        self._lock = threading.RLock()
        # field writes wait here and are applied to the frame in one vectorised pass when it is next read:
        # rewriting a million-row frame per PATCH would make bulk record changes quadratic
        self._pending: dict[str, dict[str, dict[str, Any]]] = {}

    # --- Catalog protocol -------------------------------------------------------------------------------
    def object_names(self) -> list[str]:
        return list(self.schema.objects)

    def fields(self, object_name: str) -> list[s.FieldDef]:
        if object_name == s.POLYMORPHIC_PARENT.name:
            return list(s.POLYMORPHIC_PARENT.fields)
        return list(self.schema.objects[object_name].fields)

    def frame(self, object_name: str) -> pl.DataFrame:
        """Every row of an object (the recycle bin's too), formula fields computed as of now."""
        if object_name == s.POLYMORPHIC_PARENT.name:
            return self._owners_frame()
        stored = self._stored(object_name)
        return with_formulas(self.schema.objects[object_name], stored, self._stored, self._today())

    def _stored(self, object_name: str) -> pl.DataFrame:
        """An object's stored columns (no formulas), its waiting writes applied."""
        with self._lock:
            self._flush(object_name)
            return self._frames[object_name]

    def _today(self) -> date:
        return self.clock().astimezone(timezone.utc).date()

    def _owners_frame(self) -> pl.DataFrame:
        """The ``Name`` rows a polymorphic Owner reaches: every User and every Group (a queue's Type is 'Queue')."""
        users = self.frame("User").select(
            "Id", "Name", "LastName", "FirstName", pl.lit("User").alias("Type"), "Alias", "UserRoleId", "IsActive",
            "ProfileId", "Title", "Email", "Phone", pl.col("Name").alias("NameOrAlias"), "Username")
        groups = self.frame("Group").select("Id", "Name", "Type", "Email", pl.col("Name").alias("NameOrAlias"))
        columns = [f.name for f in s.POLYMORPHIC_PARENT.fields]
        return pl.concat([users, groups], how="diagonal_relaxed").select(columns)

    def live_frame(self, object_name: str) -> pl.DataFrame:
        """The rows ``query`` (not queryAll) sees: without the recycle bin; every row of an object without one."""
        frame = self.frame(object_name)
        return frame.filter(~pl.col("IsDeleted")) if "IsDeleted" in frame.columns else frame

    # --- schema changes an admin makes at runtime (emulator/schema_changes.py) ---------------------------------
    def change_field(self, object_name: str, field_name: str, action: str, options: Mapping[str, Any]) -> None:
        """Delete, hide (revoke FLS), show (grant it back), retype or add a field; SchemaChangeError if refused."""
        obj = self.schema.lookup(object_name)
        if obj is None:
            msg = f"unknown object {object_name!r}"
            raise sc.SchemaChangeError(msg)
        with self._lock:
            self._flush(obj.name)
            frame = self._frames[obj.name]
            if action == "show":
                self._show(obj, field_name)
                return
            if action == "add":
                f = sc.new_custom_field(obj, field_name, str(options.get("type")), dict(options))
                self._frames[obj.name] = frame.with_columns(pl.lit(None, column_dtype(f.type)).alias(f.name))
                self.schema = self.schema.with_object(sc.with_field(obj, f))
                return
            f = sc.field_of(obj, field_name)
            if action == "hide":
                sc.check_hideable(obj, f)
                self._hidden[obj.name, f.name.lower()] = f
                self._hidden_at[obj.name, f.name.lower()] = obj.fields.index(f)
                self.schema = self.schema.with_object(sc.without_field(obj, f))
            elif action in ("delete", "retype"):
                sc.check_custom(obj, f, action)
                if action == "delete":
                    self._frames[obj.name] = frame.drop(f.name)
                    self.schema = self.schema.with_object(sc.without_field(obj, f))
                else:
                    new = sc.retyped(f, str(options.get("type")), dict(options))
                    self._frames[obj.name] = frame.with_columns(sc.converted(frame[f.name], f, new))
                    self.schema = self.schema.with_object(sc.with_field(obj, new))
            else:
                msg = f"unknown action {action!r}: use one of {', '.join(sc.ACTIONS)}"
                raise sc.SchemaChangeError(msg)

    def _show(self, obj: s.ObjectDef, field_name: str) -> None:
        """Grant back access to a hidden field: it returns to its place in describe, with the values it kept."""
        key = (obj.name, field_name.lower())
        f = self._hidden.pop(key, None)
        if f is None:
            msg = f"{obj.name}.{field_name} is not hidden"
            raise sc.SchemaChangeError(msg)
        self.schema = self.schema.with_object(sc.with_field(obj, f, self._hidden_at.pop(key)))

    def scratch_copy(self) -> Org:
        """A throwaway copy of the current rows and schema (frames shared, not copied): an all-or-none dry run."""
        return Org(self.spec, {name: self._stored(name) for name in self.schema.objects}, self.schema)

    # --- state --------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the generated data: undo every create, update and delete."""
        with self._lock:
            self._frames = dict(self._initial)
            self.schema = self._initial_schema
            self._hidden.clear()
            self._hidden_at.clear()
            self._pending.clear()
            self._next_number = {name: self.spec.sizes[name] for name in self._frames}

    def row_counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for name in list(self._frames):
            frame = self.frame(name)
            deleted = int(frame["IsDeleted"].sum()) if "IsDeleted" in frame.columns else 0
            out[name] = {"rows": frame.height, "deleted": deleted}
        return out

    # --- records -----------------------------------------------------------------------------------------
    def get(self, object_name: str, record_id: str) -> dict[str, Any]:
        """One live record as a column -> value dict; RecordError NOT_FOUND / ENTITY_IS_DELETED otherwise."""
        row = self._find(object_name, record_id)
        if row.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", status=404)
        return row

    def create(self, object_name: str, values: Mapping[str, Any], now: datetime) -> str:
        obj = self.schema.objects[object_name]
        typed = _typed_values(obj, values, creating=True)
        missing = [f for f in obj.required_on_create if typed.get(f) is None]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              fields=missing)
        now = stored_datetime(now)
        with self._lock:
            number = self._next_number[object_name]
            self._next_number[object_name] = number + 1
            record_id = make_id(obj.key_prefix, number)
            frame = self._frames[object_name]
            row: dict[str, Any] = dict.fromkeys(frame.columns)
            row.update(CreatedDate=now, LastModifiedDate=now, SystemModstamp=now)
            row.update(_create_defaults(obj, number, self._frames["User"]))
            row.update(typed)
            row.update(_derived(object_name, row, now))
            row["Id"] = record_id
            if obj.field("PhotoUrl") is not None:
                row["PhotoUrl"] = PHOTO_URL + record_id
            self._frames[object_name] = pl.concat([frame, pl.DataFrame([row], schema=frame.schema, orient="row")],
                                                  rechunk=False)
        return record_id

    def update(self, object_name: str, record_id: str, values: Mapping[str, Any], now: datetime) -> None:
        obj = self.schema.objects[object_name]
        typed = _typed_values(obj, values, creating=False)
        now = stored_datetime(now)
        with self._lock:
            row = self.get(object_name, record_id)
            merged = {**row, **typed}
            changes = {**typed, **_derived(object_name, merged, now), "LastModifiedDate": now, "SystemModstamp": now,
                       "LastModifiedById": self._api_user()}
            self._set(object_name, record_id, changes)
            if object_name == "Account" and "AccountHistory" in self.schema.objects:
                self._track_history(record_id, row, changes, now)

    def _track_history(self, record_id: str, before: Mapping[str, Any], changes: Mapping[str, Any],
                       now: datetime) -> None:
        """Field history: one AccountHistory row per tracked field the update changed (caller holds the lock)."""
        rows = []
        for name, data_type in ACCOUNT_TRACKED.items():
            if data_type is None or name not in changes or changes[name] == before.get(name):
                continue
            number = self._next_number["AccountHistory"]
            self._next_number["AccountHistory"] = number + 1
            old, new = before.get(name), changes[name]
            rows.append({"Id": make_id("017", number), "IsDeleted": False, "AccountId": record_id,
                         "CreatedById": self._api_user(), "CreatedDate": now, "Field": name, "DataType": data_type,
                         "OldValue": None if old is None else str(old), "NewValue": None if new is None else str(new)})
        if rows:
            frame = self._frames["AccountHistory"]
            added = pl.DataFrame(rows, schema=frame.schema, orient="row")
            self._frames["AccountHistory"] = pl.concat([frame, added], rechunk=False)

    def delete(self, object_name: str, record_id: str, now: datetime) -> None:
        """Soft delete: the row stays, IsDeleted=true, visible to queryAll only. An object without a recycle bin
        (Group) loses the row; one Salesforce never deletes (User) refuses, as its REST resource does (405)."""
        obj = self.schema.objects[object_name]
        if not obj.deletable:
            raise RecordError("METHOD_NOT_ALLOWED", _DELETE_NOT_ALLOWED, status=405)
        with self._lock:
            self.get(object_name, record_id)
            if not obj.undeletable:
                self.purge(record_id)
                return
            self._set(object_name, record_id, {"IsDeleted": True, "SystemModstamp": stored_datetime(now)})

    def undelete(self, record_id: str, now: datetime) -> None:
        object_name = self._object_of(record_id)
        if not self.schema.objects[object_name].undeletable:
            raise RecordError("INVALID_TYPE_FOR_OPERATION", "entity type cannot be undeleted")
        with self._lock:
            self._find(object_name, record_id)
            self._set(object_name, record_id, {"IsDeleted": False, "SystemModstamp": stored_datetime(now)})

    def _api_user(self) -> str | None:
        """The User every API call acts as (User row 0, whom every token belongs to): who creates and modifies."""
        users = self._frames["User"]
        return users["Id"][0] if users.height else None

    def purge(self, record_id: str) -> None:
        """Hard delete (emptied recycle bin): the row disappears even from queryAll."""
        object_name = self._object_of(record_id)
        with self._lock:
            self._find(object_name, record_id)
            frame = self.frame(object_name)
            self._frames[object_name] = frame.filter(pl.col("Id") != record_id)

    def _object_of(self, record_id: str) -> str:
        name = self.schema.key_prefixes.get(record_id[:3])
        if name is None or len(record_id) not in (15, 18):
            raise RecordError("NOT_FOUND", "The requested resource does not exist", status=404)
        return name

    def _find(self, object_name: str, record_id: str) -> dict[str, Any]:
        frame = self._frames[object_name]
        hit = frame.filter(pl.col("Id") == record_id)
        if hit.height == 0:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", status=404)
        row = hit.row(0, named=True)
        row.update(self._pending.get(object_name, {}).get(record_id, {}))
        obj = self.schema.objects[object_name]
        if obj.formulas:  # computed for this record only: a whole-frame flush per write would be quadratic
            one = pl.DataFrame([row], schema=frame.schema, orient="row")
            row.update(with_formulas(obj, one, self._stored, self._today()).row(0, named=True))
        return row

    def _set(self, object_name: str, record_id: str, changes: Mapping[str, Any]) -> None:
        self._pending.setdefault(object_name, {}).setdefault(record_id, {}).update(changes)

    def _flush(self, object_name: str) -> None:
        """Apply the waiting field writes of one object with a single join (caller holds the lock)."""
        pending = self._pending.pop(object_name, None)
        if not pending:
            return
        frame = self._frames[object_name]
        ids = list(pending)
        columns = sorted({c for changes in pending.values() for c in changes})
        updates: dict[str, pl.Series] = {"Id": pl.Series("Id", ids, dtype=pl.Utf8)}
        for c in columns:
            updates[f"__value.{c}"] = pl.Series([pending[i].get(c) for i in ids], dtype=frame.schema[c])
            updates[f"__set.{c}"] = pl.Series([c in pending[i] for i in ids], dtype=pl.Boolean)
        joined = frame.join(pl.DataFrame(updates), on="Id", how="left", maintain_order="left")
        self._frames[object_name] = joined.with_columns(
            pl.when(pl.col(f"__set.{c}").fill_null(False)).then(pl.col(f"__value.{c}")).otherwise(pl.col(c)).alias(c)
            for c in columns
        ).select(frame.columns)

    # --- the living org (emulator/living.py) ----------------------------------------------------------------
    def initial_frame(self, object_name: str) -> pl.DataFrame:
        """The generated rows of one object, before any change."""
        return self._initial[object_name]

    def apply_changes(self, object_name: str, appended: pl.DataFrame | None, updates: Mapping[str, Mapping[str, Any]],
                      purged: set[str]) -> None:
        """Scheduled changes: rows inserted, field values by Id (ignored for rows no longer there), rows purged."""
        with self._lock:
            frame = self.frame(object_name)
            if appended is not None and appended.height:
                appended = appended.with_columns(pl.lit(None, frame.schema[c]).alias(c)  # a field an admin added
                                                 for c in frame.columns if c not in appended.columns)
                frame = pl.concat([frame, appended.select(frame.columns).cast(frame.schema)], rechunk=False)
            if purged:
                frame = frame.filter(~pl.col("Id").is_in(list(purged)))
            self._frames[object_name] = frame
            for record_id, changes in updates.items():
                self._set(object_name, record_id, changes)


def stored_datetime(value: datetime) -> datetime:
    """A datetime as Salesforce stores it: whole seconds (every value reads back with ``.000`` milliseconds)."""
    return value.replace(microsecond=0)


def _create_defaults(obj: s.ObjectDef, number: int, users: pl.DataFrame) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if users.height:
        api_user = users["Id"][0]
        defaults.update({name: api_user for name in ("OwnerId", "CreatedById", "LastModifiedById")
                         if obj.field(name) is not None})
    for f in obj.fields:
        if f.type == "boolean":
            defaults[f.name] = False
    if obj.name == "Case":
        defaults["CaseNumber"] = f"{number + 1:08d}"
    if obj.name in AUTO_NUMBER_FORMATS:
        defaults["Name"] = AUTO_NUMBER_FORMATS[obj.name].format(number + 1)
    if obj.name == "User":
        defaults["IsActive"] = True
    return defaults


def _derived(object_name: str, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Fields Salesforce computes from others (Name, stage facts, closed flags)."""
    out: dict[str, Any] = {}
    if object_name in ("User", "Contact", "Lead"):
        out["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
    if object_name == "Opportunity" and row.get("StageName") in STAGE_FACTS:
        prob, closed, won, forecast = STAGE_FACTS[row["StageName"]]
        out.update(IsClosed=closed, IsWon=won, ForecastCategory=forecast,
                   ForecastCategoryName=forecast_category_name(pl.Series([forecast]))[0])
        if row.get("Probability") is None:
            out["Probability"] = prob
    if object_name == "Opportunity":
        out.update(_opportunity_figures({**row, **out}))
    if object_name == "Case":
        closed = row.get("Status") == "Closed"
        out["IsClosed"] = closed
        out["ClosedDate"] = (row.get("ClosedDate") or now) if closed else None
    if object_name == "Lead":
        out["IsConverted"] = row.get("Status") == "Closed - Converted"
    return out


def _opportunity_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    """ExpectedRevenue (Amount x Probability) and the fiscal period of the close date, as generation derives them."""
    amount = pl.Series([row.get("Amount")], dtype=pl.Float64)
    probability = pl.Series([row.get("Probability")], dtype=pl.Float64)
    close = pl.Series([row.get("CloseDate")], dtype=pl.Date)
    return {"ExpectedRevenue": expected_revenue(amount, probability)[0],
            **{c.name: c[0] for c in fiscal_columns(close)}}


def _typed_values(obj: s.ObjectDef, values: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """JSON values of a write, keyed by canonical field name and converted to column types."""
    typed: dict[str, Any] = {}
    bad = [k for k in values if obj.field(k) is None]
    if bad:
        raise RecordError("INVALID_FIELD", f"No such column '{bad[0]}' on sobject of type {obj.name}", fields=bad)
    locked = [obj.field(k).name for k in values if not obj.field(k).writable]  # type: ignore[union-attr]
    if locked:
        action = "create" if creating else "update"
        raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                          f"Unable to {action} fields: {locked}. Please check the security settings of this field "
                          "and verify that it is read/write for your profile or permission set.", fields=locked)
    for key, value in values.items():
        f = obj.field(key)
        assert f is not None
        typed[f.name] = _convert(f, value)
    return typed


def _convert(f: s.FieldDef, value: Any) -> Any:
    if value is None:
        return None
    try:
        if f.type == "date":
            return date.fromisoformat(str(value))
        if f.type == "datetime":
            return stored_datetime(_parse_datetime(str(value)))
        if f.type == "boolean":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if f.type == "int":
            return int(value)
        if column_dtype(f.type) == pl.Float64():
            return float(value)
        return str(value)
    except (TypeError, ValueError) as err:
        msg = f"{f.name}: value not of required type: {value!r}"
        raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", msg, fields=[f.name]) from err


def _parse_datetime(text: str) -> datetime:
    text = text.replace("Z", "+00:00")
    if text.endswith("+0000") or (len(text) > 5 and text[-5] in "+-" and text[-3] != ":"):
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def build_org(seed: int = DEFAULT_SEED, scale: str = "small", rows: Mapping[str, int] | None = None) -> Org:
    """The org the emulator serves for these options; pure and deterministic (same inputs, same frames). Optional
    objects (``emulator/optional_objects.py``) are there only when ``rows`` names them."""
    sizes = resolve_sizes(scale, rows)
    frames = {name: generate_object(name, sizes[name], seed=seed, sizes=sizes) for name in OBJECT_ORDER}
    optional = [obj for name in sizes if name not in OBJECT_ORDER and (obj := lookup_optional(name)) is not None]
    for obj in optional:
        frames[obj.name] = generate_optional(obj, sizes[obj.name], seed=seed, sizes=sizes)
    schema = s.Schema([*s.STANDARD.objects.values(), *optional]) if optional else s.STANDARD
    return Org(OrgSpec(seed=seed, sizes=sizes), frames, schema)
