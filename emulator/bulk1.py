"""Bulk API 1.0 (``/services/async/<version>/``) query jobs, as simple-salesforce's ``sf.bulk`` and Singer taps use
them: jobs in XML or JSON, query batches, PK chunking, results in CSV or JSON, errors in the API's own format.

Formats. A job request is answered in its own Content-Type (``application/json`` -> JSON, anything else -> XML);
batch and result-list answers follow the job's contentType (JSON jobs -> JSON, CSV jobs -> XML), which is why a
Singer tap posts a batch as ``text/csv`` and reads the batchInfo as XML. Errors are
``{"exceptionCode", "exceptionMessage"}`` or ``<error>``, HTTP 400 for client errors (an invalid session too).

Results. CSV like Bulk 2.0 (every value quoted, ``Z`` datetimes, null as ``""``), but a query with no rows gives the
body ``Records not found for this query``. JSON records carry ``attributes`` and nested parents like REST, but
datetimes and dates are epoch milliseconds (Salesforce's Bulk JSON quirk, simple-salesforce issue #290). Doubles are
written as Java writes them in CSV and JSON alike (``4.6559E8``).

Faults use the Bulk 2.0 kinds (job and batch creation ``bulk.create``, status reads ``bulk.status``, results
``bulk.results``) and answer in this API's format (``expire`` is a 400 InvalidSessionId here); on a batch creation
``timeout`` / ``job_failed`` fail the batch (QUERY_TIMEOUT / UNKNOWN_EXCEPTION in its stateMessage) and
``job_aborted`` aborts the job. ``hold`` is Bulk 2.0's only.

Not emulated: ingest operations (insert, update, upsert, delete, hardDelete) and contentType XML/ZIP_* are refused
at job creation with InvalidJob, the code Salesforce gives for a job configuration it does not support.
"""

# ruff: noqa: ARG001 - every handler takes (state, req, version, *ids, fault) whether it reads them or not

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import polars as pl

from emulator import schema as s
from emulator.auth import ADMIN_USER_ID
from emulator.bulk import Bulk1Error, ClassicBatch, ClassicJob, bulk_query_problem
from emulator.faults import ERROR_ACTIONS, QUERY_TIMEOUT, Fault
from emulator.numbers import exponent_columns, marked_double_expr, unmark_json
from emulator.render import ROOT_ID, RecordPlan, csv_chunks, csv_ready, record_plan
from emulator.routes import SUPPORTED_VERSIONS, times_out, with_root_id
from emulator.soql import SoqlError, SoqlQuery, execute, parse_soql
from emulator.state import EmulatorState
from emulator.web import Request, Response

PREFIX = "/services/async/"
NAMESPACE = "http://www.force.com/2009/06/asyncapi/dataload"
XML_TYPE, JSON_TYPE = "application/xml", "application/json"
CSV_TYPE = "text/csv; charset=UTF-8"  # requests would read a bare text/csv as ISO-8859-1
QUERY_OPERATIONS = ("query", "queryAll")
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
RESULT_CONTENT_TYPES = ("CSV", "JSON")
CONCURRENCY_MODES = ("Parallel", "Serial")  # simple-salesforce sends the enum's ordinals, 0 and 1
DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE = 100_000, 250_000  # Sforce-Enable-PKChunking
NO_RECORDS = b"Records not found for this query"
_PATH_RE = re.compile(r"^/services/async/(\d+\.\d)(?:/(.*))?$")
_CHUNK_RE = re.compile(r"chunkSize\s*=\s*(\d+)", re.IGNORECASE)
Handler = Callable[..., Response]


# --- entry point ------------------------------------------------------------------------------------------------
def handle(state: EmulatorState, req: Request) -> tuple[Response, Fault | None]:
    """Answer one ``/services/async/...`` request; a Fault returned is a transport fault (``reset``) to apply."""
    try:
        return _dispatch(state, req)
    except Bulk1Error as err:
        return error_response(err, json_format=_wants_json(req)), None


def error_response(err: Bulk1Error, *, json_format: bool) -> Response:
    if json_format:
        return Response(err.status, _json({"exceptionCode": err.code, "exceptionMessage": err.message}), JSON_TYPE)
    return Response(err.status, _xml("error", [("exceptionCode", err.code), ("exceptionMessage", err.message)]),
                    XML_TYPE)


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _wants_json(req: Request) -> bool:
    return "json" in req.headers.get("content-type", "").lower()


def _dispatch(state: EmulatorState, req: Request) -> tuple[Response, Fault | None]:
    match = _PATH_RE.match(req.path)
    if match is None or match.group(1) not in SUPPORTED_VERSIONS:
        raise Bulk1Error(400, "InvalidUrl", f"Invalid URL {req.path}: use /services/async/<version>/job with a "
                         f"version from {SUPPORTED_VERSIONS[0]} to {SUPPORTED_VERSIONS[-1]}")
    version = match.group(1)
    handler, args, kind = _route(req.method, [p for p in (match.group(2) or "").split("/") if p])
    session = req.headers.get("x-sfdc-session", "").strip()
    if not session:
        raise Bulk1Error(400, "InvalidSessionId", "Unable to find session id")
    if not state.tokens.is_valid(session):
        raise Bulk1Error(400, "InvalidSessionId", "Invalid session id")
    if not state.usage.count():
        raise Bulk1Error(403, "ExceededQuota", "TotalRequests Limit exceeded.")
    fault = state.admit(kind, session)
    # a query timing out in Bulk 1.0 is a Failed batch (QUERY_TIMEOUT in its stateMessage, what makes a Singer tap
    # retry with PK chunking), not an HTTP error: add_batch applies it
    batch_timeout = fault is not None and fault.action == "timeout" and handler is add_batch
    if fault is not None and fault.action in ERROR_ACTIONS and not batch_timeout:
        raise _fault_error(fault)
    response = handler(state, req, version, *args, fault=fault)
    return response, fault if fault is not None and fault.action == "reset" else None


def _fault_error(fault: Fault) -> Bulk1Error:
    """An injected error in Bulk 1.0's format: an expired session is a 400 InvalidSessionId there, not a 401."""
    if fault.action == "expire":
        return Bulk1Error(400, "InvalidSessionId", "Invalid session id")
    if fault.action in ("daily", "concurrent"):
        return Bulk1Error(fault.status, "ExceededQuota", fault.message)
    code = "Timeout" if fault.action == "timeout" else "Unknown"
    return Bulk1Error(fault.status, code, fault.message)


def _route(method: str, parts: list[str]) -> tuple[Handler, tuple[str, ...], str]:
    if not parts or parts[0] != "job":
        raise Bulk1Error(400, "InvalidOperation", f"Unknown resource '{'/'.join(parts)}': Bulk API 1.0 resources "
                         "start with job/ (check the spelling of 'job' in the URI)")
    allowed = []
    for route_method, shape, handler, kind in _ROUTES:
        if len(shape) == len(parts) and all(want in ("*", got) for want, got in zip(shape, parts, strict=True)):
            if route_method == method:
                return handler, tuple(got for want, got in zip(shape, parts, strict=True) if want == "*"), kind
            allowed.append(route_method)
    if allowed:
        raise Bulk1Error(405, "InvalidUrl", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}")
    raise Bulk1Error(400, "InvalidUrl", f"Invalid URL: {'/'.join(parts)}")


# --- formats ----------------------------------------------------------------------------------------------------
def _xml(root: str, fields: Iterable[tuple[str, Any]]) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NAMESPACE}">{_xml_fields(fields)}</{root}>'
            ).encode()


def _xml_fields(fields: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<{name}>{escape(_text(value))}</{name}>" for name, value in fields if value is not None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xml_stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _json_stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _answer(status: int, root: str, fields: list[tuple[str, Any]], *, json_format: bool) -> Response:
    """One jobInfo/batchInfo: XML elements in the documented order, or JSON keys sorted as Salesforce sorts them."""
    if json_format:
        body = {name: value for name, value in sorted(fields) if value is not None}
        return Response(status, _json(body), JSON_TYPE)
    return Response(status, _xml(root, fields), XML_TYPE)


def _job_fields(job: ClassicJob, *, json_format: bool) -> list[tuple[str, Any]]:
    stamp = _json_stamp if json_format else _xml_stamp
    batches = list(job.batches.values())
    count = {state: sum(b.state == state for b in batches) for state in ("Queued", "InProgress", "Completed", "Failed")}
    return [
        ("id", job.id), ("operation", job.operation), ("object", job.object_name), ("createdById", ADMIN_USER_ID),
        ("createdDate", stamp(job.created)), ("systemModstamp", stamp(job.modstamp or job.created)),
        ("state", job.state), ("concurrencyMode", job.concurrency_mode), ("contentType", job.content_type),
        ("numberBatchesQueued", count["Queued"]), ("numberBatchesInProgress", count["InProgress"]),
        ("numberBatchesCompleted", count["Completed"]), ("numberBatchesFailed", count["Failed"]),
        ("numberBatchesTotal", len(batches)), ("numberRecordsProcessed", sum(b.records_processed for b in batches)),
        ("numberRetries", 0), ("apiVersion", float(job.api_version)), ("numberRecordsFailed", 0),
        ("totalProcessingTime", 0), ("apiActiveProcessingTime", 0), ("apexProcessingTime", 0),
    ]


def _batch_fields(batch: ClassicBatch, *, json_format: bool) -> list[tuple[str, Any]]:
    stamp = _json_stamp if json_format else _xml_stamp
    message = batch.failure if batch.state == "Failed" else None
    return [
        ("id", batch.id), ("jobId", batch.job_id), ("state", batch.state), ("stateMessage", message),
        ("createdDate", stamp(batch.created)), ("systemModstamp", stamp(batch.modstamp or batch.created)),
        ("numberRecordsProcessed", batch.records_processed), ("numberRecordsFailed", 0),
        ("totalProcessingTime", 0), ("apiActiveProcessingTime", 0), ("apexProcessingTime", 0),
    ]


def _batch_answer(status: int, job: ClassicJob, batch: ClassicBatch) -> Response:
    json_format = job.content_type == "JSON"
    return _answer(status, "batchInfo", _batch_fields(batch, json_format=json_format), json_format=json_format)


# --- jobs -------------------------------------------------------------------------------------------------------
def _job_request(req: Request) -> dict[str, Any]:
    """The jobInfo of a create/update request, from JSON or XML (namespace or not)."""
    text = req.body.decode("utf-8", "replace")
    if _wants_json(req):
        try:
            body = json.loads(text or "null")
        except json.JSONDecodeError as err:
            raise Bulk1Error(400, "InvalidJob", f"Unable to parse the JSON jobInfo: {err}") from err
        if not isinstance(body, dict):
            raise Bulk1Error(400, "InvalidJob", "The request body must be a JSON jobInfo object")
        return body
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        raise Bulk1Error(400, "InvalidXML", f"Unable to parse the XML jobInfo: {err}") from err
    return {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}


def _concurrency_mode(value: Any) -> str:
    if value is None:
        return "Parallel"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(CONCURRENCY_MODES):
        return CONCURRENCY_MODES[value]
    if value in CONCURRENCY_MODES:
        return str(value)
    raise Bulk1Error(400, "InvalidJob", f"Invalid concurrencyMode {value!r}: use Parallel or Serial")


def _check_job_request(body: dict[str, Any], schema: s.Schema) -> tuple[str, s.ObjectDef, str]:
    operation, object_name = body.get("operation"), body.get("object")
    content_type = body.get("contentType") or "XML"  # Bulk 1.0's documented default
    if operation in INGEST_OPERATIONS:
        raise Bulk1Error(400, "InvalidJob", f"Operation '{operation}' is not supported by the emulator's Bulk API "
                         "1.0: only query and queryAll jobs are emulated (write with REST or composite/sobjects)")
    if operation not in QUERY_OPERATIONS:
        raise Bulk1Error(400, "InvalidJob", f"Invalid operation {operation!r}: use one of "
                         f"{', '.join(QUERY_OPERATIONS + INGEST_OPERATIONS)} (case-sensitive)")
    obj = schema.lookup(str(object_name or ""))
    if obj is None:
        raise Bulk1Error(400, "InvalidJob", f"Unable to find object: {object_name}")
    if not obj.bulk_query:
        raise Bulk1Error(400, "InvalidEntity", f"Entity '{obj.name}' is not supported by the Bulk API.")
    if operation == "queryAll" and not obj.query_all:  # Bulk 1.0's own code for it [unverified]
        raise Bulk1Error(400, "InvalidOperation", s.query_all_refusal(obj.name)[2])
    if content_type not in RESULT_CONTENT_TYPES:
        raise Bulk1Error(400, "InvalidJob", f"contentType {content_type!r} is not supported by the emulator for "
                         f"query jobs: use {' or '.join(RESULT_CONTENT_TYPES)}")
    return str(operation), obj, str(content_type)


def _pk_chunk_size(header: str | None) -> int | None:
    """``Sforce-Enable-PKChunking: true`` / ``chunkSize=50000`` / ``TRUE; chunkSize=...``; ``false`` or absent: off."""
    if header is None or header.strip().lower().startswith("false"):
        return None
    match = _CHUNK_RE.search(header)
    size = int(match.group(1)) if match else DEFAULT_CHUNK_SIZE
    if not 1 <= size <= MAX_CHUNK_SIZE:
        raise Bulk1Error(400, "InvalidJob", f"Invalid PK chunking chunkSize {size}: use 1 to {MAX_CHUNK_SIZE}")
    return size


def create_job(state: EmulatorState, req: Request, version: str, *, fault: Fault | None) -> Response:
    operation, obj, content_type = _check_job_request(body := _job_request(req), state.org.schema)
    chunk_size = _pk_chunk_size(req.headers.get("sforce-enable-pkchunking"))
    job = state.jobs.v1.create(operation=operation, object_name=obj.name, content_type=content_type,
                               concurrency_mode=_concurrency_mode(body.get("concurrencyMode")), version=version,
                               now=state.now(), pk_chunk_size=chunk_size)
    json_format = _wants_json(req)
    return _answer(201, "jobInfo", _job_fields(job, json_format=json_format), json_format=json_format)


def job_info(state: EmulatorState, req: Request, version: str, job_id: str, *, fault: Fault | None) -> Response:
    job = state.jobs.v1.job(job_id, state.now())
    json_format = _wants_json(req)
    return _answer(200, "jobInfo", _job_fields(job, json_format=json_format), json_format=json_format)


def update_job(state: EmulatorState, req: Request, version: str, job_id: str, *, fault: Fault | None) -> Response:
    """Close (``{"state": "Closed"}``) or abort a job."""
    job = state.jobs.v1.job(job_id, state.now())
    wanted = _job_request(req).get("state")
    if wanted not in ("Closed", "Aborted"):
        raise Bulk1Error(400, "InvalidJobState", f"Invalid state {wanted!r}: a job can be set to Closed or Aborted")
    state.jobs.v1.change_state(job, str(wanted), state.now())
    json_format = _wants_json(req)
    return _answer(200, "jobInfo", _job_fields(job, json_format=json_format), json_format=json_format)


# --- batches ----------------------------------------------------------------------------------------------------
def _failure(code: str, message: str) -> str:
    return f"InvalidBatch : Failed to process query: {code}: {message}"


def _run_query(state: EmulatorState, job: ClassicJob, soql: str) -> tuple[SoqlQuery | None, pl.DataFrame | None, str]:
    """Parse and run a batch's SOQL: (query, rows, "") or (None, None, the batch's stateMessage)."""
    try:
        query = parse_soql(soql, state.org)
    except SoqlError as err:
        return None, None, _failure(err.error_code, err.message)
    problem = bulk_query_problem(query, version2=False)
    if problem:
        return None, None, _failure(*problem)
    if query.object_name != job.object_name:
        return None, None, (f"InvalidBatch : The query's object {query.object_name} is not the job's object "
                            f"{job.object_name}")
    if times_out(state, query, include_deleted=job.operation == "queryAll"):
        return None, None, _failure(*QUERY_TIMEOUT[1:])
    has_id = any(item.path == ("Id",) for item in query.items)
    try:
        result = execute(query if has_id else with_root_id(query), state.org,
                         include_deleted=job.operation == "queryAll", now=state.now())
    except SoqlError as err:  # a refusal found while running
        return None, None, _failure(err.error_code, err.message)
    return query, result.frame.with_columns(pl.col("Id").alias(ROOT_ID)), ""


def _chunks(state: EmulatorState, job: ClassicJob, rows: pl.DataFrame) -> list[pl.DataFrame]:
    """PK chunking: the object's Id space (every row, deleted ones too) cut every chunk-size records; each chunk's
    batch holds the query's rows in that Id range, so a chunk may hold fewer rows, or none."""
    size = job.pk_chunk_size or DEFAULT_CHUNK_SIZE
    ids = state.org.frame(job.object_name)["Id"].sort()
    bounds = ids.gather_every(size).to_list()
    out = []
    for index, low in enumerate(bounds):
        in_range = pl.col(ROOT_ID) >= low
        if index + 1 < len(bounds):
            in_range &= pl.col(ROOT_ID) < bounds[index + 1]
        out.append(rows.filter(in_range).sort(ROOT_ID))
    return out


def add_batch(state: EmulatorState, req: Request, version: str, job_id: str, *, fault: Fault | None) -> Response:
    """A query batch: the body is the SOQL (whatever Content-Type). Bad SOQL is accepted and fails the batch."""
    now = state.now()
    job = state.jobs.v1.job(job_id, now)
    soql = req.body.decode("utf-8", "replace").strip()
    query, rows, failure = _run_query(state, job, soql)
    if fault is not None and fault.action == "job_failed":
        rows, failure = None, _failure("UNKNOWN_EXCEPTION", "An unexpected error occurred.")
    if fault is not None and fault.action == "timeout":
        rows, failure = None, _failure("QUERY_TIMEOUT", "Your query request was running for too long.")
    if rows is None or job.pk_chunk_size is None:
        batch = state.jobs.v1.add_batch(job, soql, now, query=query, rows=rows, failure=failure or None)
    else:  # the submitted batch is not processed; Salesforce adds one batch per chunk
        batch = state.jobs.v1.add_batch(job, soql, now, query=query, not_processed=True)
        for chunk in _chunks(state, job, rows):
            state.jobs.v1.add_batch(job, soql, now, query=query, rows=chunk)
    if fault is not None and fault.action == "job_aborted":
        state.jobs.v1.change_state(job, "Aborted", now)
    return _batch_answer(201, job, batch)


def batch_info(state: EmulatorState, req: Request, version: str, job_id: str, batch_id: str, *,
               fault: Fault | None) -> Response:
    job = state.jobs.v1.job(job_id, state.now())
    return _batch_answer(200, job, state.jobs.v1.batch(job, batch_id))


def batch_list(state: EmulatorState, req: Request, version: str, job_id: str, *, fault: Fault | None) -> Response:
    job = state.jobs.v1.job(job_id, state.now())
    if job.content_type == "JSON":
        infos = [dict(sorted((k, v) for k, v in _batch_fields(b, json_format=True) if v is not None))
                 for b in job.batches.values()]
        return Response(200, _json({"batchInfo": infos}), JSON_TYPE)
    inner = "".join(f"<batchInfo>{_xml_fields(_batch_fields(b, json_format=False))}</batchInfo>"
                    for b in job.batches.values())
    body = f'<?xml version="1.0" encoding="UTF-8"?><batchInfoList xmlns="{NAMESPACE}">{inner}</batchInfoList>'
    return Response(200, body.encode(), XML_TYPE)


# --- results ----------------------------------------------------------------------------------------------------
def _completed_batch(state: EmulatorState, job_id: str, batch_id: str) -> tuple[ClassicJob, ClassicBatch]:
    job = state.jobs.v1.job(job_id, state.now())
    batch = state.jobs.v1.batch(job, batch_id)
    if batch.state != "Completed":
        detail = f": {batch.failure}" if batch.state == "Failed" else ""
        raise Bulk1Error(400, "InvalidBatch", f"Batch {batch_id} is {batch.state}{detail}; results are available "
                         "once it is Completed")
    return job, batch


def result_list(state: EmulatorState, req: Request, version: str, job_id: str, batch_id: str, *,
                fault: Fault | None) -> Response:
    job, batch = _completed_batch(state, job_id, batch_id)
    if job.content_type == "JSON":
        return Response(200, _json(list(batch.result_ids)), JSON_TYPE)
    inner = "".join(f"<result>{result_id}</result>" for result_id in batch.result_ids)
    body = f'<?xml version="1.0" encoding="UTF-8"?><result-list xmlns="{NAMESPACE}">{inner}</result-list>'
    return Response(200, body.encode(), XML_TYPE)


def result(state: EmulatorState, req: Request, version: str, job_id: str, batch_id: str, result_id: str, *,
           fault: Fault | None) -> Response:
    job, batch = _completed_batch(state, job_id, batch_id)
    if result_id not in batch.result_ids:
        raise Bulk1Error(400, "InvalidBatch", f"Invalid result id: {result_id}")
    rows, query = batch.rows, batch.query
    assert rows is not None and query is not None  # a Completed batch ran its query
    if job.content_type == "JSON":
        plan = record_plan(query.object_name, [item.path for item in query.items], job.api_version, state.org.schema)
        return Response(200, json_records(rows, plan), JSON_TYPE)
    if rows.height == 0:
        return Response(200, NO_RECORDS, CSV_TYPE)
    columns = [item.column for item in query.items]
    return Response(200, csv_chunks(csv_ready(rows.select(columns)), columns), CSV_TYPE)


def json_records(rows: pl.DataFrame, plan: RecordPlan) -> bytes:
    """A JSON result: REST-shaped records (``attributes``, nested parents, null for a missing parent), with
    datetimes and dates as epoch milliseconds."""
    if rows.height == 0:
        return b"[]"
    record = _json_node(plan.root, plan.version, "r", exponent_columns(rows))
    encoded = unmark_json(rows.select(record.struct.json_encode()).to_series())
    return b"[" + ",".join(encoded.to_list()).encode() + b"]"


def _json_node(node: Any, version: str, key: str, java: frozenset[str]) -> pl.Expr:
    """One record object of ``render.record_plan``'s tree (its nodes: object_name, id_column, children)."""
    url = pl.concat_str([pl.lit(f"/services/data/v{version}/sobjects/{node.object_name}/"), pl.col(node.id_column)])
    members = [pl.struct(pl.lit(node.object_name).alias("type"), url.alias("url")).alias("attributes")]
    for child_key, child in node.children.items():
        if isinstance(child, tuple):
            column, f = child
            value = marked_double_expr(pl.col(column)) if column in java else _epoch_value(column, f)
            members.append(value.alias(child_key))
        else:
            members.append(_json_node(child, version, child_key, java))
    obj = pl.struct(members)
    if node.id_column != ROOT_ID:  # a null lookup is "Owner": null
        obj = pl.when(pl.col(node.id_column).is_null()).then(None).otherwise(obj)
    return obj.alias(key)


def _epoch_value(column: str, f: s.FieldDef | None) -> pl.Expr:
    """A leaf value; ``f`` is None only in aggregate rows, which Bulk queries refuse before running."""
    if f is not None and f.type == "datetime":
        return pl.col(column).dt.epoch("ms")
    if f is not None and f.type == "date":
        return pl.col(column).cast(pl.Datetime("ms", "UTC")).dt.epoch("ms")
    return pl.col(column)


# (method, path segments after the version with "*" for an id) -> handler and fault kind. Bulk 1.0 shares the
# bulk.* fault kinds with Bulk 2.0: job and batch creation are bulk.create, status reads bulk.status, results
# bulk.results.
_ROUTES: tuple[tuple[str, tuple[str, ...], Handler, str], ...] = (
    ("POST", ("job",), create_job, "bulk.create"),
    ("GET", ("job", "*"), job_info, "bulk.status"),
    ("POST", ("job", "*"), update_job, "bulk.status"),
    ("POST", ("job", "*", "batch"), add_batch, "bulk.create"),
    ("GET", ("job", "*", "batch"), batch_list, "bulk.status"),
    ("GET", ("job", "*", "batch", "*"), batch_info, "bulk.status"),
    ("GET", ("job", "*", "batch", "*", "result"), result_list, "bulk.results"),
    ("GET", ("job", "*", "batch", "*", "result", "*"), result, "bulk.results"),
)
