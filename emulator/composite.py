"""sObject Collections (``/services/data/vXX.X/composite/sobjects``): create, update, upsert and delete up to 200
records, and retrieve up to 2,000, answering per record ``{id, success, errors}`` as Salesforce does.

Each record goes through the same Org create/update/delete as the single-record REST routes. ``allOrNone=true``
first runs the whole request on a scratch copy of the org (the frames are immutable, so the copy is cheap): if any
record fails there, nothing is written, the failing records report their errors and the others
ALL_OR_NONE_OPERATION_ROLLED_BACK; otherwise the records are written for real, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator import schema as s
from emulator.org import Org, RecordError
from emulator.render import single_record
from emulator.routes import (
    MultipleMatches,
    body_object,
    external_id_field,
    sobject_def,
    upsert_values,
    valid_record_id,
)
from emulator.state import EmulatorState
from emulator.web import ApiError, Request, Response, json_response

MAX_WRITE_RECORDS = 200
MAX_RETRIEVE_IDS = 2000
ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
               "message": "Record rolled back because not all records were valid and the request was using AllOrNone "
                          "header", "fields": []}
# one record's write on an org: its id and whether an upsert created it; raises RecordError / MultipleMatches
Operation = Callable[[Org, datetime], tuple[str, bool]]


class RecordFailure(Exception):
    """A record refused before it reaches the org (no Id to update, a malformed Id): its result's error."""

    def __init__(self, status_code: str, message: str, *, fields: list[str] | None = None):
        super().__init__(message)
        self.error = {"statusCode": status_code, "message": message, "fields": fields or []}


@dataclass(frozen=True)
class RecordWrite:
    """One record of a collection request: its operation (or why it was refused), and the Id a failed result
    names, which only a delete does (a SaveResult carries no id unless the save succeeded)."""

    operation: Operation | RecordFailure
    reported_id: str | None = None


def _error(err: Exception) -> dict[str, Any]:
    if isinstance(err, RecordFailure):
        return err.error
    if isinstance(err, MultipleMatches):
        return {"statusCode": "DUPLICATE_EXTERNAL_ID",
                "message": f"more than one record found for external id field: {err.ids}", "fields": []}
    assert isinstance(err, RecordError)
    if err.error_code == "NOT_FOUND":  # a well-formed Id of no record, in a DML call's words
        return {"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id", "fields": []}
    return {"statusCode": err.error_code, "message": err.message, "fields": list(err.fields)}


def _failed(write: RecordWrite, error: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"success": False, "errors": [error]}
    return {"id": write.reported_id, **result} if write.reported_id else result


def _attempt(write: RecordWrite, org: Org, now: datetime, *, upsert: bool) -> dict[str, Any]:
    try:
        if isinstance(write.operation, RecordFailure):
            raise write.operation
        record_id, created = write.operation(org, now)
    except (RecordFailure, RecordError, MultipleMatches) as err:
        return _failed(write, _error(err))
    result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
    return {**result, "created": created} if upsert else result


def _scratch_org(org: Org) -> Org:
    """A throwaway copy of the org's current rows for an all-or-none dry run (frames are shared, not copied)."""
    return org.scratch_copy()


def run_writes(state: EmulatorState, writes: list[RecordWrite], *, all_or_none: bool,
               upsert: bool = False) -> list[dict[str, Any]]:
    """Each record's result, in request order; with ``all_or_none`` nothing is written unless every record can be."""
    now = state.now()
    if all_or_none:
        scratch = _scratch_org(state.org)
        trial = [_attempt(w, scratch, now, upsert=upsert) for w in writes]
        if not all(r["success"] for r in trial):
            return [r if not r["success"] else _failed(w, ROLLED_BACK) for r, w in zip(trial, writes, strict=True)]
    return [_attempt(w, state.org, now, upsert=upsert) for w in writes]


# --- request bodies -------------------------------------------------------------------------------------------
def _collection(req: Request) -> tuple[list[dict[str, Any]], bool]:
    """``{"allOrNone": bool, "records": [...]}``: at most 200 records, each an object."""
    body = body_object(req)
    records = body.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ApiError(400, "JSON_PARSER_ERROR", 'The request body needs "records": a list of record objects, each '
                       'with "attributes": {"type": "Account"}')
    if len(records) > MAX_WRITE_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_WRITE_RECORDS} "
                       "records into this call")
    return records, bool(body.get("allOrNone", False))


def _record_type(record: dict[str, Any], schema: s.Schema) -> tuple[s.ObjectDef, dict[str, Any]]:
    """The record's sObject (``attributes.type``, required) and its field values."""
    values = dict(record)
    attributes = values.pop("attributes", None)
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    if not type_name:
        raise ApiError(400, "INVALID_TYPE", 'Each record needs its sObject type: "attributes": {"type": "Account"}')
    obj = schema.lookup(str(type_name))
    if obj is None:
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported. If you are attempting to "
                       "use a custom object, be sure to append the '__c' after the entity name.")
    return obj, values


def _pop_id(values: dict[str, Any]) -> Any:
    key = next((k for k in values if k.lower() == "id"), None)
    return values.pop(key) if key is not None else None


# --- create / update / upsert / delete ------------------------------------------------------------------------
def _create_write(record: dict[str, Any], schema: s.Schema) -> RecordWrite:
    obj, values = _record_type(record, schema)
    if _pop_id(values) is not None:
        return RecordWrite(RecordFailure("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call",
                                         fields=["Id"]))
    return RecordWrite(lambda org, now: (org.create(obj.name, values, now), True))


def create_records(state: EmulatorState, req: Request) -> Response:
    """``POST composite/sobjects``: insert records of one or more types."""
    records, all_or_none = _collection(req)
    writes = [_create_write(r, state.org.schema) for r in records]
    return json_response(200, run_writes(state, writes, all_or_none=all_or_none))


def _update_write(record: dict[str, Any], schema: s.Schema) -> RecordWrite:
    obj, values = _record_type(record, schema)
    raw_id = _pop_id(values)
    if raw_id is None:
        return RecordWrite(RecordFailure("MISSING_ARGUMENT", "Id not specified in an update call"))
    try:
        record_id = valid_record_id(obj, str(raw_id))
    except ApiError:
        return RecordWrite(RecordFailure("MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {raw_id}",
                                         fields=["Id"]))

    def update(org: Org, now: datetime) -> tuple[str, bool]:
        org.update(obj.name, record_id, values, now)
        return record_id, False
    return RecordWrite(update)


def update_records(state: EmulatorState, req: Request) -> Response:
    """``PATCH composite/sobjects``: update records by their ``id``."""
    records, all_or_none = _collection(req)
    writes = [_update_write(r, state.org.schema) for r in records]
    return json_response(200, run_writes(state, writes, all_or_none=all_or_none))


def _upsert_write(obj: s.ObjectDef, f: s.FieldDef, record: dict[str, Any], schema: s.Schema) -> RecordWrite:
    record_obj, values = _record_type(record, schema)
    if record_obj.name != obj.name:
        return RecordWrite(RecordFailure("INVALID_TYPE", f"Record type {record_obj.name} is not {obj.name}, the "
                                         "type in the URL"))
    key = next((k for k in values if k.lower() == f.name.lower()), None)
    value = values.pop(key) if key is not None else None
    return RecordWrite(lambda org, now: upsert_values(org, obj, f, None if value is None else str(value), values,
                                                      now))


def upsert_records(state: EmulatorState, req: Request, object_name: str, field_name: str) -> Response:
    """``PATCH composite/sobjects/{Object}/{ExternalIdField}``: upsert records of one type by external id (the
    field's value in each record; ``Id`` with no value creates), results with ``created``."""
    obj = sobject_def(state, object_name)
    f = external_id_field(obj, field_name)
    records, all_or_none = _collection(req)
    writes = [_upsert_write(obj, f, r, state.org.schema) for r in records]
    return json_response(200, run_writes(state, writes, all_or_none=all_or_none, upsert=True))


def _delete_write(raw_id: str, schema: s.Schema) -> RecordWrite:
    obj = schema.objects.get(schema.key_prefixes.get(raw_id[:3], ""))
    try:
        record_id = valid_record_id(obj, raw_id) if obj is not None else ""
    except ApiError:
        record_id = ""
    if obj is None or not record_id:
        return RecordWrite(RecordFailure("MALFORMED_ID", f"malformed id {raw_id}"))

    def delete(org: Org, now: datetime) -> tuple[str, bool]:
        org.delete(obj.name, record_id, now)
        return record_id, False
    return RecordWrite(delete, reported_id=record_id)


def delete_records(state: EmulatorState, req: Request) -> Response:
    """``DELETE composite/sobjects?ids=001...,003...&allOrNone=false``: ids of any types, at most 200."""
    ids = _listed(req, "ids")
    if not ids:
        raise ApiError(400, "MISSING_ARGUMENT", "ids: give the record ids to delete, comma separated")
    if len(ids) > MAX_WRITE_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_WRITE_RECORDS} "
                       "records into this call")
    all_or_none = req.query.get("allOrNone", "false").lower() == "true"
    writes = [_delete_write(i, state.org.schema) for i in ids]
    return json_response(200, run_writes(state, writes, all_or_none=all_or_none))


# --- retrieve -------------------------------------------------------------------------------------------------
def _id_and_field_lists(req: Request) -> tuple[list[str], list[str]]:
    """``?ids=..&fields=..`` (GET) or ``{"ids": [...], "fields": [...]}`` (POST)."""
    if req.method == "POST":
        body = body_object(req)
        ids, fields = body.get("ids") or [], body.get("fields") or []
        if not isinstance(ids, list) or not isinstance(fields, list):
            raise ApiError(400, "JSON_PARSER_ERROR", 'The body is {"ids": ["001..."], "fields": ["Name"]}')
        return [str(i) for i in ids], [str(f) for f in fields]
    return _listed(req, "ids"), _listed(req, "fields")


def _listed(req: Request, name: str) -> list[str]:
    return [v.strip() for v in req.query.get(name, "").split(",") if v.strip()]


def retrieve_records(state: EmulatorState, req: Request, object_name: str) -> Response:
    """``GET|POST composite/sobjects/{Object}``: the records in ``ids`` order with ``fields``; null for an id that
    names no live record."""
    obj = sobject_def(state, object_name)
    ids, fields = _id_and_field_lists(req)
    if not ids or not fields:
        raise ApiError(400, "MISSING_ARGUMENT", "Both ids and fields are required, e.g. ?ids=001...,001...&fields=Name")
    if len(ids) > MAX_RETRIEVE_IDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"Too many ids: at most {MAX_RETRIEVE_IDS} per request")
    unknown = [f for f in fields if obj.field(f) is None]
    if unknown:
        raise ApiError(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{obj.name}'. If you are "
                       "attempting to use a custom field, be sure to append the '__c' after the custom field name.")
    out: list[dict[str, Any] | None] = []
    for raw_id in ids:
        try:
            row = state.org.get(obj.name, valid_record_id(obj, raw_id))
        except (ApiError, RecordError):
            out.append(None)
            continue
        out.append(single_record(obj, row, req.version, fields))
    return json_response(200, out)


# (method, path under /services/data/vXX.X/, handler, fault kind), in server._ROUTES's format
ROUTES: tuple[tuple[str, str, Callable[..., Response], str], ...] = (
    ("POST", r"composite/sobjects", create_records, "sobject"),
    ("PATCH", r"composite/sobjects", update_records, "sobject"),
    ("DELETE", r"composite/sobjects", delete_records, "sobject"),
    ("GET", r"composite/sobjects/(\w+)", retrieve_records, "sobject"),
    ("POST", r"composite/sobjects/(\w+)", retrieve_records, "sobject"),
    ("PATCH", r"composite/sobjects/(\w+)/(\w+)", upsert_records, "sobject"),
)
