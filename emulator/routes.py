"""Handlers of the Salesforce REST and Bulk 2.0 endpoints: Request in, Response out (no socket code here)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import polars as pl

from emulator import schema as s
from emulator.ids import checksum
from emulator.org import RecordError
from emulator.render import ROOT_ID, record_plan, rest_records, single_record
from emulator.soql import SelectItem, SoqlError, SoqlQuery, execute, parse_soql
from emulator.state import EmulatorState
from emulator.web import ApiError, Request, Response, json_response, not_found

DEFAULT_BATCH = 2000
MIN_BATCH, MAX_BATCH = 200, 2000
SUPPORTED_VERSIONS = [f"{v}.0" for v in range(31, 63)]
_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


# --- discovery ------------------------------------------------------------------------------------------------
def _release_label(version: str) -> str:
    idx = int(float(version)) - 59  # v59.0 is Winter '24; three releases a year
    season = ("Winter", "Spring", "Summer")[idx % 3]
    return f"{season} '{24 + idx // 3}"


def versions(state: EmulatorState, req: Request) -> Response:
    return json_response(200, [{"label": _release_label(v), "url": f"/services/data/v{v}", "version": v}
                               for v in SUPPORTED_VERSIONS])


def resources(state: EmulatorState, req: Request) -> Response:
    base = f"/services/data/v{req.version}"
    names = ("sobjects", "query", "queryAll", "limits", "jobs")
    return json_response(200, {name: f"{base}/{name}" for name in names})


def describe_global(state: EmulatorState, req: Request) -> Response:
    return json_response(200, s.describe_global(req.version))


def _object(name: str) -> s.ObjectDef:
    obj = s.lookup_object(name)
    if obj is None:
        raise not_found()
    return obj


def describe(state: EmulatorState, req: Request, object_name: str) -> Response:
    return json_response(200, s.describe_sobject(_object(object_name), req.version))


def sobject_info(state: EmulatorState, req: Request, object_name: str) -> Response:
    return json_response(200, {"objectDescribe": s.describe_global_entry(_object(object_name), req.version),
                               "recentItems": []})


def limits(state: EmulatorState, req: Request) -> Response:
    used, cap = state.usage.used, state.usage.limit
    jobs = state.jobs.created_count
    body = {
        "DailyApiRequests": {"Max": cap, "Remaining": max(cap - used, 0)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": max(10000 - jobs, 0)},
        "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        "DataStorageMB": {"Max": 1024, "Remaining": 1000},
        "FileStorageMB": {"Max": 1024, "Remaining": 1024},
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
    }
    return json_response(200, body)


# --- sObject rows -------------------------------------------------------------------------------------------------
def _record_id(obj: s.ObjectDef, record_id: str) -> str:
    if len(record_id) == 15:
        record_id += checksum(record_id)
    if len(record_id) != 18 or not record_id.startswith(obj.key_prefix):
        raise not_found()
    return record_id


def _record_error(err: RecordError) -> ApiError:
    return ApiError(err.status, err.error_code, err.message, err.fields)


def _body_object(req: Request) -> dict[str, Any]:
    try:
        body = req.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {err}") from err
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
    body.pop("attributes", None)
    return body


def create_record(state: EmulatorState, req: Request, object_name: str) -> Response:
    obj = _object(object_name)
    try:
        record_id = state.org.create(obj.name, _body_object(req), state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return json_response(201, {"id": record_id, "success": True, "errors": []})


def get_record(state: EmulatorState, req: Request, object_name: str, record_id: str) -> Response:
    obj = _object(object_name)
    try:
        row = state.org.get(obj.name, _record_id(obj, record_id))
    except RecordError as err:
        raise _record_error(err) from err
    fields = [f for f in req.query.get("fields", "").split(",") if f] or None
    return json_response(200, single_record(obj, row, req.version, fields))


def update_record(state: EmulatorState, req: Request, object_name: str, record_id: str) -> Response:
    obj = _object(object_name)
    try:
        state.org.update(obj.name, _record_id(obj, record_id), _body_object(req), state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return Response(204)


def delete_record(state: EmulatorState, req: Request, object_name: str, record_id: str) -> Response:
    obj = _object(object_name)
    try:
        state.org.delete(obj.name, _record_id(obj, record_id), state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return Response(204)


# --- REST query -------------------------------------------------------------------------------------------------
def _parse(state: EmulatorState, soql: str) -> SoqlQuery:
    try:
        return parse_soql(soql, state.org)
    except SoqlError as err:
        raise ApiError(400, err.error_code, err.message) from err


def batch_size(headers: dict[str, str] | Any) -> int:
    """``Sforce-Query-Options: batchSize=N``, clamped to Salesforce's 200..2000 (default 2000)."""
    match = _BATCH_RE.search(headers.get("sforce-query-options", ""))
    return min(max(int(match.group(1)), MIN_BATCH), MAX_BATCH) if match else DEFAULT_BATCH


def _with_root_id(query: SoqlQuery) -> SoqlQuery:
    """The query plus a trailing Id item (attributes.url needs it even when Id is not selected)."""
    return dataclasses.replace(query, items=(*query.items, SelectItem(("Id",))))


def query(state: EmulatorState, req: Request, *, include_deleted: bool) -> Response:
    soql = req.query.get("q")
    if not soql:
        raise ApiError(400, "MALFORMED_QUERY", "A query string (q=SELECT ...) is required")
    parsed = _parse(state, soql)
    if parsed.is_count:
        result = execute(parsed, state.org, include_deleted=include_deleted, now=state.now())
        return json_response(200, {"totalSize": result.total_size, "done": True, "records": []})
    has_id = any(item.path == ("Id",) for item in parsed.items)
    result = execute(parsed if has_id else _with_root_id(parsed), state.org, include_deleted=include_deleted,
                     now=state.now())
    frame = result.frame.with_columns(pl.col("Id").alias(ROOT_ID))
    plan = record_plan(parsed.object_name, [item.path for item in parsed.items], req.version)
    size = batch_size(req.headers)
    if frame.height <= size:
        return _page_response(frame, plan, result.total_size, done=True, next_url=None)
    locator = state.cursors.open(frame, plan, result.total_size)
    return _page(state, req, locator, 0, size)


def query_more(state: EmulatorState, req: Request, locator_and_offset: str) -> Response:
    locator, _, offset_text = locator_and_offset.rpartition("-")
    if not locator or not offset_text.isdigit():
        raise invalid_locator(state)
    return _page(state, req, locator, int(offset_text), batch_size(req.headers))


def invalid_locator(state: EmulatorState) -> ApiError:
    return ApiError(state.config.invalid_locator_status, "INVALID_QUERY_LOCATOR", "invalid query locator")


def _page(state: EmulatorState, req: Request, locator: str, offset: int, size: int) -> Response:
    cursor = state.cursors.get(locator)
    if cursor is None or offset > cursor.frame.height:
        raise invalid_locator(state)
    end = min(offset + size, cursor.frame.height)
    done = end >= cursor.frame.height
    if done:
        state.cursors.finish(locator)
    next_url = None if done else f"/services/data/v{req.version}/query/{locator}-{end}"
    return _page_response(cursor.frame.slice(offset, end - offset), cursor.plan, cursor.total_size, done=done,
                          next_url=next_url)


def _page_response(rows: pl.DataFrame, plan: Any, total: int, *, done: bool, next_url: str | None) -> Response:
    head = f'{{"totalSize":{total},"done":{"true" if done else "false"},'
    if next_url:
        head += f'"nextRecordsUrl":{json.dumps(next_url)},'
    body = head.encode() + b'"records":' + rest_records(rows, plan) + b"}"
    return Response(200, body)


# --- Bulk API 2.0 query jobs -----------------------------------------------------------------------------------
def _bulk_rejection(state: EmulatorState, query_: SoqlQuery) -> str | None:
    if query_.selects_compound:
        return "Selecting compound data not supported in Bulk Query"
    if query_.is_count:
        return "Aggregate Relationships not supported in Bulk Query with CSV content type"
    if query_.offset is not None:
        return "OFFSET clause is not supported in Bulk Query"
    if query_.uses_fields_function:
        return "FIELDS() is not supported in Bulk Query"
    if state.config.bulk_reject_limit_order_by and (query_.limit is not None or query_.order_by):
        return "LIMIT and ORDER BY clauses are not supported in Bulk Query"
    return None


def bulk_create(state: EmulatorState, req: Request) -> Response:
    body = _body_object(req)
    operation, soql = body.get("operation"), body.get("query")
    if operation not in ("query", "queryAll") or not isinstance(soql, str) or not soql.strip():
        raise ApiError(400, "INVALIDJOB", "Job requires operation 'query' or 'queryAll' and a query")
    parsed = _parse(state, soql)
    problem = _bulk_rejection(state, parsed)
    if problem:
        raise ApiError(400, "MALFORMED_QUERY" if not parsed.selects_compound else "API_ERROR", problem)
    result = execute(parsed, state.org, include_deleted=operation == "queryAll", now=state.now())
    frame = result.frame.select([item.column for item in parsed.items])
    job = state.jobs.add(operation=operation, object_name=parsed.object_name, frame=frame, now=state.now(),
                         body=body, version=req.version)
    return json_response(200, job.info(full=False))


def bulk_status(state: EmulatorState, req: Request, job_id: str) -> Response:
    return json_response(200, state.jobs.get(job_id).info())


def bulk_list(state: EmulatorState, req: Request) -> Response:
    records = [job.info() for job in state.jobs.all()]
    return json_response(200, {"done": True, "records": records, "nextRecordsUrl": None})


def bulk_patch(state: EmulatorState, req: Request, job_id: str) -> Response:
    body = _body_object(req)
    if body.get("state") != "Aborted":
        raise ApiError(400, "INVALIDJOBSTATE", "A query job can only be changed to state Aborted")
    return json_response(200, state.jobs.end(job_id, "Aborted", None, state.now()).info(full=False))


def bulk_delete(state: EmulatorState, req: Request, job_id: str) -> Response:
    state.jobs.delete(job_id)
    return Response(204)


def bulk_results(state: EmulatorState, req: Request, job_id: str) -> Response:
    max_records = req.query.get("maxRecords")
    if max_records is not None and not max_records.isdigit():
        raise ApiError(400, "INVALIDREQUEST", f"maxRecords must be a positive whole number, not {max_records!r}")
    page = state.jobs.page(job_id, locator=req.query.get("locator") or None,
                           max_records=int(max_records) if max_records else None)
    headers = {"Sforce-NumberOfRecords": str(page.number_of_records), "Sforce-Locator": page.next_locator}
    return Response(200, page.chunks, content_type="text/csv", headers=headers)
