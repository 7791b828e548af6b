"""The emulator's own control endpoints under ``/__emulator__/`` (faults, reset, undelete/purge, clock, JWT key,
schema changes).

They are not Salesforce APIs: they take the startup access token (even after a fault revoked it for the API)."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import datetime, timezone
from typing import Any

from emulator.faults import FaultSpecError
from emulator.org import RecordError
from emulator.schema_changes import SchemaChangeError
from emulator.state import EmulatorState
from emulator.web import ApiError, Request, Response, json_response, not_found

PREFIX = "/__emulator__/"


def _json_body(req: Request) -> dict[str, Any]:
    try:
        body = req.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, "JSON_PARSER_ERROR", f"admin request body is not JSON: {err}") from err
    return body if isinstance(body, dict) else {}


def state_snapshot(state: EmulatorState) -> dict[str, Any]:
    return {
        "seed": state.config.seed, "sizes": dict(state.org.spec.sizes), "rows": state.org.row_counts(),
        "api_usage": {"used": state.usage.used, "limit": state.usage.limit},
        "requests_by_kind": dict(state.requests_by_kind), "faults": state.faults.spec,
        "fault_rules": state.faults.describe(), "open_cursors": len(state.cursors),
        "bulk_jobs": len(state.jobs.all()), "tokens_issued": state.tokens.counter,
        "frozen_now": state.frozen_now.isoformat() if state.frozen_now else None,
    }


def _set_faults(state: EmulatorState, req: Request) -> Response:
    text = req.body.decode("utf-8", "replace").strip()
    spec = _json_body(req).get("spec") if text.startswith("{") else text
    try:
        state.faults.replace(spec or None)
    except FaultSpecError as err:
        raise ApiError(400, "INVALID_FAULT_SPEC", str(err)) from err
    return json_response(200, {"faults": state.faults.spec})


def _records(state: EmulatorState, req: Request, action: str) -> Response:
    ids = _json_body(req).get("ids") or []
    try:
        for record_id in ids:
            if action == "undelete":
                state.org.undelete(record_id, state.now())
            else:
                state.org.purge(record_id)
    except RecordError as err:
        raise ApiError(err.status, err.error_code, f"{err.message}: {record_id}") from err
    return json_response(200, {action: len(ids)})


def _clock(state: EmulatorState, req: Request) -> Response:
    when = _json_body(req).get("now")
    if when is None:
        state.frozen_now = None
    else:
        parsed = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        state.frozen_now = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    return json_response(200, {"frozen_now": state.frozen_now.isoformat() if state.frozen_now else None})


def _schema(state: EmulatorState, req: Request) -> Response:
    """``{"object", "field", "action": delete|hide|show|retype|add, "type", "picklist", ...}``: an admin changes a
    field (emulator/schema_changes.py); describe and every read API follow at once."""
    body = _json_body(req)
    try:
        state.org.change_field(str(body.get("object")), str(body.get("field")), str(body.get("action")), body)
    except SchemaChangeError as err:
        raise ApiError(400, "INVALID_SCHEMA_CHANGE", str(err)) from err
    obj = state.org.schema.lookup(str(body.get("object")))
    return json_response(200, {"object": obj.name if obj else None,
                               "fields": [f.name for f in obj.fields] if obj else []})


def _auth(state: EmulatorState, req: Request) -> Response:
    pem = _json_body(req).get("jwt_public_key")
    if not isinstance(pem, str) or "BEGIN" not in pem:
        raise ApiError(400, "INVALID_KEY", "send {\"jwt_public_key\": \"-----BEGIN PUBLIC KEY-----...\"} (PEM)")
    state.credentials = dataclasses.replace(state.credentials, jwt_public_key_pem=pem.encode())
    return json_response(200, {"jwt_public_key": "configured"})


def handle_admin(state: EmulatorState, req: Request, token: str | None) -> Response:
    """Route one ``/__emulator__/...`` request; only the startup token is accepted."""
    if token is None or not secrets.compare_digest(token, state.tokens.default_token):
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    name = req.path[len(PREFIX):].strip("/")
    if req.method == "GET" and name == "state":
        return json_response(200, state_snapshot(state))
    if req.method != "POST":
        raise not_found()
    if name == "faults":
        return _set_faults(state, req)
    if name == "reset":
        state.reset(data=_json_body(req).get("data", True) is not False)
        return json_response(200, state_snapshot(state))
    if name in ("undelete", "purge"):
        return _records(state, req, name)
    if name == "clock":
        return _clock(state, req)
    if name == "auth":
        return _auth(state, req)
    if name == "schema":
        return _schema(state, req)
    raise not_found()
