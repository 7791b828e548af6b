"""Handlers of the Salesforce REST and Bulk 2.0 endpoints: Request in, Response out (no socket code here)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import polars as pl

from emulator import auth
from emulator import schema as s
from emulator.bulk import bulk_query_problem
from emulator.faults import QUERY_TIMEOUT
from emulator.ids import checksum
from emulator.limits import limits_body
from emulator.org import Org, RecordError
from emulator.render import ROOT_ID, record_plan, rest_records, rest_value, single_record
from emulator.soql import SelectItem, SoqlError, SoqlQuery, execute, matched_rows, parse_soql
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
    return json_response(200, state.org.schema.describe_global(req.version))


def sobject_def(state: EmulatorState, name: str) -> s.ObjectDef:
    """The object named in a URL (any casing), else NOT_FOUND."""
    obj = state.org.schema.lookup(name)
    if obj is None:
        raise not_found()
    return obj


def describe(state: EmulatorState, req: Request, object_name: str) -> Response:
    schema = state.org.schema
    return json_response(200, schema.describe_sobject(sobject_def(state, object_name), req.version, state.instance_url))


def sobject_info(state: EmulatorState, req: Request, object_name: str) -> Response:
    return json_response(200, {"objectDescribe": s.describe_global_entry(sobject_def(state, object_name), req.version),
                               "recentItems": []})


def limits(state: EmulatorState, req: Request) -> Response:
    body = limits_body(api_requests=(state.usage.used, state.usage.limit), bulk_batches=state.jobs.v1.batch_count,
                       bulk_query_jobs=state.jobs.created_count)
    return json_response(200, body)


# --- sObject rows -------------------------------------------------------------------------------------------------
def valid_record_id(obj: s.ObjectDef, record_id: str) -> str:
    """The 18-char form of an Id of ``obj`` (15 or 18 chars, its key prefix), else NOT_FOUND."""
    if len(record_id) == 15:
        record_id += checksum(record_id)
    if len(record_id) != 18 or not record_id.startswith(obj.key_prefix):
        raise not_found()
    return record_id


def _record_error(err: RecordError) -> ApiError:
    return ApiError(err.status, err.error_code, err.message, err.fields)


def body_object(req: Request) -> dict[str, Any]:
    """The JSON object of a write (its ``attributes`` dropped), else JSON_PARSER_ERROR."""
    try:
        body = req.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {err}") from err
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
    body.pop("attributes", None)
    return body


def create_record(state: EmulatorState, req: Request, object_name: str) -> Response:
    obj = sobject_def(state, object_name)
    try:
        record_id = state.org.create(obj.name, body_object(req), state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return json_response(201, {"id": record_id, "success": True, "errors": []})


def get_record(state: EmulatorState, req: Request, object_name: str, record_id: str) -> Response:
    obj = sobject_def(state, object_name)
    try:
        row = state.org.get(obj.name, valid_record_id(obj, record_id))
    except RecordError as err:
        raise _record_error(err) from err
    fields = [f for f in req.query.get("fields", "").split(",") if f] or None
    return json_response(200, single_record(obj, row, req.version, fields))


def update_record(state: EmulatorState, req: Request, object_name: str, record_id: str) -> Response:
    obj = sobject_def(state, object_name)
    try:
        state.org.update(obj.name, valid_record_id(obj, record_id), body_object(req), state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return Response(204)


def delete_record(state: EmulatorState, req: Request, object_name: str, record_id: str) -> Response:
    obj = sobject_def(state, object_name)
    try:
        state.org.delete(obj.name, valid_record_id(obj, record_id), state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return Response(204)


# --- upsert and lookup by external id ------------------------------------------------------------------------------
UPSERT_REPORTS_CREATED = 46.0  # from v46.0 an upsert answers {id, success, errors, created}, an update 200 not 204


class MultipleMatches(Exception):
    """An external id value matched several live records (REST 300, DUPLICATE_EXTERNAL_ID in collections)."""

    def __init__(self, ids: list[str]):
        super().__init__(f"{len(ids)} records match")
        self.ids = ids


def external_id_field(obj: s.ObjectDef, name: str) -> s.FieldDef:
    """The field an upsert keys on: one describe marks ``externalId`` or ``idLookup`` (Id, and on real standard
    objects fields such as Lead.Email); anything else is Salesforce's 404."""
    f = obj.field(name)
    described = s.describe_field(f) if f is not None else None
    if f is None or described is None or not (described["externalId"] or described["idLookup"]):
        raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
    return f


def external_id_matches(org: Org, obj: s.ObjectDef, f: s.FieldDef, value: str) -> list[str]:
    """Ids of the live records whose ``f`` equals ``value`` (case-insensitively, as external ids match)."""
    if f.type == "id":
        try:
            record_id = valid_record_id(obj, value)
            org.get(obj.name, record_id)
        except (ApiError, RecordError):
            return []
        return [record_id]
    frame = org.live_frame(obj.name)
    return frame.filter(pl.col(f.name).cast(pl.Utf8).str.to_lowercase() == value.lower())["Id"].to_list()


def upsert_values(org: Org, obj: s.ObjectDef, f: s.FieldDef, value: str | None, values: dict[str, Any],
                  now: datetime) -> tuple[str, bool]:
    """Create or update by external id: (record id, created). An empty Id creates; an Id that matches nothing is
    NOT_FOUND (a record cannot be created with a chosen Id)."""
    matches = external_id_matches(org, obj, f, value) if value else []
    if len(matches) > 1:
        raise MultipleMatches(matches)
    if matches:
        org.update(obj.name, matches[0], values, now)
        return matches[0], False
    if f.type == "id" and value:
        raise RecordError("NOT_FOUND", "The requested resource does not exist", status=404)
    return org.create(obj.name, {**values, f.name: value} if value else values, now), True


def _multiple_choices(version: str, obj: s.ObjectDef, ids: list[str]) -> Response:
    return json_response(300, [f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids])


def _upsert_response(version: str, record_id: str, created: bool) -> Response:
    body: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
    if float(version) >= UPSERT_REPORTS_CREATED:
        return json_response(201 if created else 200, {**body, "created": created})
    return json_response(201, body) if created else Response(204)


def upsert_record(state: EmulatorState, req: Request, object_name: str, field_name: str, value: str) -> Response:
    """``PATCH /sobjects/{Object}/{ExternalIdField}/{value}``: 201 created, 200 (204 before v46) updated, 300."""
    obj = sobject_def(state, object_name)
    f = external_id_field(obj, field_name)
    try:
        record_id, created = upsert_values(state.org, obj, f, unquote(value), body_object(req), state.now())
    except MultipleMatches as many:
        return _multiple_choices(req.version, obj, many.ids)
    except RecordError as err:
        raise _record_error(err) from err
    return _upsert_response(req.version, record_id, created)


def create_by_id(state: EmulatorState, req: Request, object_name: str) -> Response:
    """``POST /sobjects/{Object}/Id``: Id as the external id with a null value, i.e. a create (API 37.0+)."""
    obj = sobject_def(state, object_name)
    try:
        record_id, _ = upsert_values(state.org, obj, external_id_field(obj, "Id"), None, body_object(req),
                                     state.now())
    except RecordError as err:
        raise _record_error(err) from err
    return _upsert_response(req.version, record_id, True)


def _one_match(state: EmulatorState, req: Request, object_name: str, field_name: str, value: str
               ) -> tuple[s.ObjectDef, str] | Response:
    obj = sobject_def(state, object_name)
    matches = external_id_matches(state.org, obj, external_id_field(obj, field_name), unquote(value))
    if not matches:
        raise not_found()
    return (obj, matches[0]) if len(matches) == 1 else _multiple_choices(req.version, obj, matches)


def get_by_external_id(state: EmulatorState, req: Request, object_name: str, field_name: str,
                       value: str) -> Response:
    """``GET /sobjects/{Object}/{ExternalIdField}/{value}`` (simple-salesforce's ``get_by_custom_id``)."""
    found = _one_match(state, req, object_name, field_name, value)
    if isinstance(found, Response):
        return found
    obj, record_id = found
    fields = [f for f in req.query.get("fields", "").split(",") if f] or None
    return json_response(200, single_record(obj, state.org.get(obj.name, record_id), req.version, fields))


def delete_by_external_id(state: EmulatorState, req: Request, object_name: str, field_name: str,
                          value: str) -> Response:
    found = _one_match(state, req, object_name, field_name, value)
    if isinstance(found, Response):
        return found
    obj, record_id = found
    state.org.delete(obj.name, record_id, state.now())
    return Response(204)


# --- replication: getUpdated / getDeleted --------------------------------------------------------------------------
REPLICATION_DAYS = 30  # how far back start may reach
MAX_REPLICATION_IDS = 600_000


def _replication_time(req: Request, name: str) -> datetime:
    text = req.query.get(name)
    if not text:
        raise ApiError(400, "MISSING_ARGUMENT", f"The {name} parameter is required: ?start=2024-01-01T00:00:00Z"
                       "&end=2024-01-02T00:00:00Z")
    try:  # a '+' sent unencoded arrives as a space
        parsed = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError as err:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name}={text!r} is not an ISO 8601 dateTime such as "
                       "2024-01-01T00:00:00Z") from err
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).replace(second=0, microsecond=0)  # Salesforce ignores the seconds


def _replication_window(state: EmulatorState, req: Request) -> tuple[datetime, datetime, datetime]:
    """(start, latestDateCovered, earliestDateAvailable), to the minute; INVALID_REPLICATION_DATE when start is
    more than 30 days back or end is not at least a minute after start."""
    start, end = _replication_time(req, "start"), _replication_time(req, "end")
    now = state.now().astimezone(timezone.utc).replace(second=0, microsecond=0)
    earliest = now - timedelta(days=REPLICATION_DAYS)
    if start < earliest:
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {REPLICATION_DAYS} days "
                       f"ago (earliest: {rest_value(earliest)})")
    if end <= start:
        raise ApiError(400, "INVALID_REPLICATION_DATE",
                       "startDate must chronologically precede endDate by more than one minute")
    return start, min(end, now), earliest


def _stamped_between(state: EmulatorState, obj: s.ObjectDef, start: datetime, end: datetime, *,
                     deleted: bool) -> pl.DataFrame:
    frame = state.org.frame(obj.name)
    in_window = (pl.col("SystemModstamp") >= start) & (pl.col("SystemModstamp") < end)
    if not deleted:
        rows = state.org.live_frame(obj.name).filter(in_window)
    elif "IsDeleted" in frame.columns:
        rows = frame.filter(in_window & pl.col("IsDeleted"))
    else:  # no recycle bin (User, Group): nothing is ever soft-deleted
        rows = frame.clear()
    rows = rows.select("Id", "SystemModstamp")
    if rows.height > MAX_REPLICATION_IDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"{rows.height} records changed in this window; the limit is "
                       f"{MAX_REPLICATION_IDS}: ask for a shorter window")
    return rows


def get_updated(state: EmulatorState, req: Request, object_name: str) -> Response:
    """``GET /sobjects/{Object}/updated/?start=&end=``: live records whose SystemModstamp is in the window."""
    obj = sobject_def(state, object_name)
    start, latest, _ = _replication_window(state, req)
    rows = _stamped_between(state, obj, start, latest, deleted=False)
    return json_response(200, {"ids": rows["Id"].to_list(), "latestDateCovered": rest_value(latest)})


def get_deleted(state: EmulatorState, req: Request, object_name: str) -> Response:
    """``GET /sobjects/{Object}/deleted/?start=&end=``: soft-deleted records (recycle bin) deleted in the window."""
    obj = sobject_def(state, object_name)
    start, latest, earliest = _replication_window(state, req)
    rows = _stamped_between(state, obj, start, latest, deleted=True)
    deleted = [{"id": i, "deletedDate": rest_value(d)} for i, d in rows.iter_rows()]
    return json_response(200, {"deletedRecords": deleted, "earliestDateAvailable": rest_value(earliest),
                               "latestDateCovered": rest_value(latest)})


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


def with_root_id(query: SoqlQuery) -> SoqlQuery:
    """The query plus a trailing Id item (attributes.url needs it even when Id is not selected)."""
    return dataclasses.replace(query, items=(*query.items, SelectItem(("Id",))))


def times_out(state: EmulatorState, parsed: SoqlQuery, *, include_deleted: bool) -> bool:
    """Whether the query matches more rows than ``--query-timeout-rows`` (a big object's query timing out)."""
    limit = state.config.query_timeout_rows
    return limit is not None and matched_rows(parsed, state.org, include_deleted=include_deleted,
                                              now=state.now()) > limit


def query(state: EmulatorState, req: Request, *, include_deleted: bool) -> Response:
    soql = req.query.get("q")
    if not soql:
        raise ApiError(400, "MALFORMED_QUERY", "A query string (q=SELECT ...) is required")
    parsed = _parse(state, soql)
    if include_deleted:
        _check_query_all(state, parsed)
    if times_out(state, parsed, include_deleted=include_deleted):
        raise ApiError(*QUERY_TIMEOUT)
    if parsed.is_count:
        result = execute(parsed, state.org, include_deleted=include_deleted, now=state.now())
        return json_response(200, {"totalSize": result.total_size, "done": True, "records": []})
    has_id = any(item.path == ("Id",) for item in parsed.items)
    result = execute(parsed if has_id else with_root_id(parsed), state.org, include_deleted=include_deleted,
                     now=state.now())
    frame = result.frame.with_columns(pl.col("Id").alias(ROOT_ID))
    plan = record_plan(parsed.object_name, [item.path for item in parsed.items], req.version, state.org.schema)
    size = batch_size(req.headers)
    if frame.height <= size or parsed.aggregation is not None:  # aggregate results (<= 2,000 rows) come in one page
        return _page_response(frame, plan, result.total_size, done=True, next_url=None)
    locator = state.cursors.open(frame, plan, result.total_size)
    return _page(state, req, locator, 0, size)


def _check_query_all(state: EmulatorState, parsed: SoqlQuery) -> None:
    """An object that refuses queryAll (``ObjectDef.query_all``) answers it with an error; query still works."""
    entity = state.org.schema.objects.get(parsed.object_name)
    if entity is not None and not entity.query_all:
        raise ApiError(*s.query_all_refusal(entity.name))


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
def bulk_create(state: EmulatorState, req: Request) -> Response:
    body = body_object(req)
    operation, soql = body.get("operation"), body.get("query")
    if operation not in ("query", "queryAll") or not isinstance(soql, str) or not soql.strip():
        raise ApiError(400, "INVALIDJOB", "Job requires operation 'query' or 'queryAll' and a query")
    parsed = _parse(state, soql)
    entity = state.org.schema.objects.get(parsed.object_name)  # None for AggregateResult (refused just below)
    if entity is not None and not entity.bulk_query:
        raise ApiError(400, "INVALIDENTITY", f"Entity '{entity.name}' is not supported by the Bulk API.")
    problem = bulk_query_problem(parsed, version2=True,
                                 reject_limit_order_by=state.config.bulk_reject_limit_order_by)
    if problem:
        raise ApiError(400, *problem)
    include_deleted = operation == "queryAll"
    if include_deleted:  # refused at creation, as an entity the Bulk API refuses is
        _check_query_all(state, parsed)
    failure = None
    if times_out(state, parsed, include_deleted=include_deleted):  # the job runs, then fails [wording unverified]
        failure, frame = f"Failed to process query: {QUERY_TIMEOUT[1]}: {QUERY_TIMEOUT[2]}", pl.DataFrame()
    else:
        result = execute(parsed, state.org, include_deleted=include_deleted, now=state.now())
        frame = result.frame.select([item.column for item in parsed.items])
    job = state.jobs.add(operation=operation, object_name=parsed.object_name, frame=frame, now=state.now(),
                         body=body, version=req.version, failure=failure)
    return json_response(200, job.info(full=False))


def bulk_status(state: EmulatorState, req: Request, job_id: str) -> Response:
    return json_response(200, state.jobs.get(job_id).info())


def bulk_list(state: EmulatorState, req: Request) -> Response:
    records = [job.info() for job in state.jobs.all()]
    return json_response(200, {"done": True, "records": records, "nextRecordsUrl": None})


def bulk_patch(state: EmulatorState, req: Request, job_id: str) -> Response:
    body = body_object(req)
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
                           max_records=int(max_records) if max_records else None, version=req.version)
    headers = {"Sforce-NumberOfRecords": str(page.number_of_records), "Sforce-Locator": page.next_locator}
    return Response(200, page.chunks, content_type="text/csv", headers=headers)


# --- identity service ----------------------------------------------------------------------------------------------
_IDENTITY_RE = re.compile(r"^/id/(\w+)/(\w+)/?$")
_USERINFO_PATH = "/services/oauth2/userinfo"


def _identity_error(code: str) -> Response:
    return Response(auth.IDENTITY_ERRORS[code], code.encode(), "text/plain;charset=UTF-8")


def _identity_user(state: EmulatorState, req: Request, user_id: str, org_id: str | None = None
                   ) -> dict[str, Any] | Response:
    """The user row an identity request may read, or the identity service's error (a bare code in text)."""
    token = req.token or req.query.get("oauth_token")
    if not token:
        return _identity_error("Missing_OAuth_Token")
    if not state.tokens.is_valid(token):
        return _identity_error("Bad_OAuth_Token")
    if org_id is not None and org_id not in (state.identity.org_id, state.identity.org_id_18):
        return _identity_error("Wrong_Org")
    try:
        user = state.org.get("User", valid_record_id(state.org.schema.objects["User"], user_id))
    except (ApiError, RecordError):
        return _identity_error("Bad_Id")
    return user if user["IsActive"] else _identity_error("Inactive")


def _username(state: EmulatorState, user: dict[str, Any]) -> str:
    """The login name: every token belongs to the admin user, who logs in as the configured username."""
    return state.credentials.username if user["Id"] == state.identity.user_id else str(user["Username"])


def identity(state: EmulatorState, req: Request, org_id: str, user_id: str) -> Response:
    """``GET /id/{orgId}/{userId}`` with the bearer token (or ``?oauth_token=``): the identity service's JSON."""
    user = _identity_user(state, req, user_id, org_id)
    if isinstance(user, Response):
        return user
    return json_response(200, auth.identity_body(user, org=state.identity, username=_username(state, user),
                                                 instance_url=state.instance_url))


def userinfo(state: EmulatorState, req: Request) -> Response:
    """``GET|POST /services/oauth2/userinfo``: the token's user in OpenID Connect form."""
    user = _identity_user(state, req, state.identity.user_id)
    if isinstance(user, Response):
        return user
    return json_response(200, auth.userinfo_body(user, org=state.identity, username=_username(state, user),
                                                 instance_url=state.instance_url))


def identity_route(method: str, path: str) -> tuple[Callable[..., Response], tuple[str, ...]] | None:
    """The identity handler for a path outside /services/data (``/id/...``, ``userinfo``), with its arguments."""
    match = _IDENTITY_RE.match(path)
    if match and method == "GET":
        return identity, match.groups()
    if path.rstrip("/") == _USERINFO_PATH and method in ("GET", "POST"):
        return userinfo, ()
    return None


# Routes this module adds for composite clients and replication, in server._ROUTES's format (method, path under
# /services/data/vXX.X/, handler, fault kind). They go before server's own table: its record-by-Id route
# (sobjects/X/Y) would otherwise take sobjects/Account/updated.
SOBJECT_ROUTES: tuple[tuple[str, str, Callable[..., Response], str], ...] = (
    ("GET", r"sobjects/(\w+)/updated", get_updated, "sobject"),
    ("GET", r"sobjects/(\w+)/deleted", get_deleted, "sobject"),
    ("POST", r"sobjects/(\w+)/(?i:id)", create_by_id, "sobject"),
    ("PATCH", r"sobjects/(\w+)/(\w+)/([^/]+)", upsert_record, "sobject"),
    ("GET", r"sobjects/(\w+)/(\w+)/([^/]+)", get_by_external_id, "sobject"),
    ("DELETE", r"sobjects/(\w+)/(\w+)/([^/]+)", delete_by_external_id, "sobject"),
)
