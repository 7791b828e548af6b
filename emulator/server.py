"""The HTTPS server: routing of Salesforce paths, auth, API usage, fault injection, keep-alive responses."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from emulator import admin, auth, routes
from emulator.faults import ERROR_ACTIONS, Fault
from emulator.org import build_org
from emulator.state import API_VERSION, EmulatorConfig, EmulatorState
from emulator.tls import TlsFiles, server_context, write_tls_files
from emulator.web import ApiError, Request, Response, error_response

Handler = Callable[..., Response]
_DATA_RE = re.compile(r"^/services/data/v(\d+\.\d)(?:/(.*))?$")
_SOAP_RE = re.compile(r"^/services/Soap/u/(\d+\.\d)")
# (method, path under /services/data/vXX.X/, handler, fault kind); first match wins
_ROUTES: list[tuple[str, re.Pattern[str], Handler, str]] = [(m, re.compile(p), h, k) for m, p, h, k in (
    ("GET", r"", routes.resources, "rest.describe"),
    ("GET", r"sobjects", routes.describe_global, "rest.describe"),
    ("GET", r"sobjects/(\w+)", routes.sobject_info, "rest.describe"),
    ("POST", r"sobjects/(\w+)", routes.create_record, "sobject"),
    ("GET", r"sobjects/(\w+)/describe", routes.describe, "rest.describe"),
    ("GET", r"sobjects/(\w+)/(\w+)", routes.get_record, "sobject"),
    ("PATCH", r"sobjects/(\w+)/(\w+)", routes.update_record, "sobject"),
    ("DELETE", r"sobjects/(\w+)/(\w+)", routes.delete_record, "sobject"),
    ("GET", r"query", lambda st, rq: routes.query(st, rq, include_deleted=False), "rest.query"),
    ("GET", r"queryAll", lambda st, rq: routes.query(st, rq, include_deleted=True), "rest.query"),
    ("GET", r"(?:query|queryAll)/([\w-]+)", routes.query_more, "rest.query_more"),
    ("GET", r"limits", routes.limits, "rest.limits"),
    ("POST", r"jobs/query", routes.bulk_create, "bulk.create"),
    ("GET", r"jobs/query", routes.bulk_list, "bulk.status"),
    ("GET", r"jobs/query/(\w+)", routes.bulk_status, "bulk.status"),
    ("PATCH", r"jobs/query/(\w+)", routes.bulk_patch, "bulk.status"),
    ("DELETE", r"jobs/query/(\w+)", routes.bulk_delete, "bulk.status"),
    ("GET", r"jobs/query/(\w+)/results", routes.bulk_results, "bulk.results"),
)]


def _match(method: str, rest: str) -> tuple[Handler, tuple[str, ...], str] | ApiError:
    allowed = []
    for route_method, pattern, handler, kind in _ROUTES:
        m = pattern.fullmatch(rest)
        if m and route_method == method:
            return handler, m.groups(), kind
        if m:
            allowed.append(route_method)
    if allowed:
        return ApiError(405, "METHOD_NOT_ALLOWED",
                        f"HTTP Method '{method}' not allowed. Allowed are {','.join(sorted(set(allowed)))}")
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _auth_route(state: EmulatorState, req: Request) -> tuple[Response, Fault | None]:
    """SOAP login and the OAuth token endpoint; errors (also injected ones) in each flow's own format."""
    soap = _SOAP_RE.match(req.path)
    decision = state.faults.decide("auth")
    state.record_request("auth")
    time.sleep((state.config.latency_ms + decision.latency_ms) / 1000)
    fault = decision.fault
    if fault is not None and fault.action in ERROR_ACTIONS:
        failure = (auth.soap_fault(fault.error_code, fault.message) if soap
                   else auth.oauth_error(fault.error_code.lower(), fault.message))
        return Response(fault.status, failure.body, failure.content_type), None
    if soap:
        result = auth.soap_login(req.body, version=soap.group(1), creds=state.credentials, tokens=state.tokens,
                                 instance_url=state.instance_url)
    else:
        result = auth.oauth_token(req.body, req.headers.get("authorization"), creds=state.credentials,
                                  tokens=state.tokens, instance_url=state.instance_url)
    return Response(result.status, result.body, result.content_type), fault


def _apply_job_fault(state: EmulatorState, fault: Fault, job_id: str) -> None:
    failed = fault.action == "job_failed"
    message = "InternalServerError : Failed to process query: UNKNOWN_EXCEPTION" if failed else None
    state.jobs.end(job_id, "Failed" if failed else "Aborted", message, state.now(), force=True)


def _data_route(state: EmulatorState, req: Request, version: str, rest: str) -> tuple[Response, Fault | None]:
    matched = _match(req.method, rest.strip("/"))
    if isinstance(matched, ApiError):
        raise matched
    handler, args, kind = matched
    if not state.tokens.is_valid(req.token):
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    if not state.usage.count():
        raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    state.record_request(kind)
    decision = state.faults.decide(kind)
    time.sleep((state.config.latency_ms + decision.latency_ms) / 1000)
    fault = decision.fault
    if fault is not None and fault.action in ERROR_ACTIONS:
        if fault.action == "daily":
            state.usage.exhaust()
        if fault.action == "expire" and req.token:
            state.tokens.revoke(req.token)
        raise ApiError(fault.status, fault.error_code, fault.message)
    req = Request(req.method, req.path, req.query, req.headers, req.body, version, req.token)
    if kind == "bulk.status" and req.method == "GET" and args:  # a status poll holds or releases the job
        state.jobs.hold(args[0], fault is not None and fault.action == "hold")
    job_fault = fault is not None and fault.action in ("job_failed", "job_aborted")
    if job_fault and kind == "bulk.status" and args:
        _apply_job_fault(state, fault, args[0])  # type: ignore[arg-type]
    response = handler(state, req, *args)
    if job_fault and kind == "bulk.create":
        _apply_job_fault(state, fault, json.loads(response.body)["id"])  # type: ignore[arg-type]
    return response, fault if fault is not None and fault.action == "reset" else None


def dispatch(state: EmulatorState, req: Request) -> tuple[Response, Fault | None]:
    """Route one request; the Fault returned (if any) is a transport fault for the sender to apply."""
    try:
        if req.path.startswith(admin.PREFIX):
            return admin.handle_admin(state, req, req.token), None
        if req.method == "POST" and (_SOAP_RE.match(req.path) or req.path.rstrip("/") == "/services/oauth2/token"):
            return _auth_route(state, req)
        if req.path.rstrip("/") == "/services/data":
            return routes.versions(state, req), None
        data = _DATA_RE.match(req.path)
        if data is None or data.group(1) not in routes.SUPPORTED_VERSIONS:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        response, fault = _data_route(state, req, data.group(1), data.group(2) or "")
    except ApiError as err:
        response, fault = error_response(err.status, err.error_code, err.message, err.fields), None
    if req.path.startswith("/services/data/"):
        response.headers["Sforce-Limit-Info"] = state.usage.header()
    return response, fault


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response has Content-Length or chunked encoding
    server_version = "SalesforceEmulator/1.0"
    sys_version = ""
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: request lines could carry session ids in query strings; nothing is logged."""

    def _request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        token = auth.bearer_token(headers.get("authorization"))
        return Request(self.command, url.path, query, headers, body, token=token)

    def _serve(self) -> None:
        req = self._request()
        try:
            response, fault = dispatch(self.server.state, req)
        except Exception:  # noqa: BLE001 - a bug in the emulator must still answer like Salesforce does
            traceback.print_exc(file=sys.stderr)
            response, fault = error_response(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."), None
        self._send(response, cut=fault is not None)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def date_time_string(self, timestamp: float | None = None) -> str:
        """``Date`` (sent by ``send_response``) is the org's clock, frozen or not: clients read Salesforce's time
        from it (the pipeline checks its watermark against it)."""
        return super().date_time_string(self.server.state.now().timestamp() if timestamp is None else timestamp)

    def _send(self, response: Response, *, cut: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(response.body, bytes | bytearray):
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if cut:
                return self._cut(response.body[: len(response.body) // 2])
            self.wfile.write(response.body)
            return None
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in response.body:
            if not chunk:
                continue
            if cut:
                return self._cut(b"%x\r\n" % len(chunk) + chunk[: len(chunk) // 2])
            self.wfile.write(b"%x\r\n" % len(chunk))
            self.wfile.write(chunk)  # large CSV pieces: no concatenation copy
            self.wfile.write(b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        return None

    def _cut(self, partial: bytes) -> None:
        """Send part of the body, then reset the connection (SO_LINGER 0 sends a TCP RST on close)."""
        self.wfile.write(partial)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState, context: ssl.SSLContext):
        self.state = state
        self.ssl_context = context
        super().__init__(address, _Handler)

    def finish_request(self: Self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, so one slow client never blocks accept().

        ``self: Self`` so mypy binds the ``Self`` that typeshed's ``RequestHandlerClass`` takes as its server."""
        try:
            # no Nagle: headers and body are separate writes, and delayed ACKs would add ~40 ms per response
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ConnectionError, ssl.SSLError, OSError, ValueError):
            pass  # client went away or we cut the connection on purpose
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 - socketserver's signature
        traceback.print_exc(file=sys.stderr)


@dataclass
class RunningServer:
    """A started emulator: its state, address, CA file, and how to stop it."""

    server: EmulatorHTTPServer
    thread: threading.Thread
    state: EmulatorState
    tls: TlsFiles
    tmpdir: Path

    @property
    def instance_url(self) -> str:
        return self.state.instance_url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def start_server(config: EmulatorConfig) -> RunningServer:
    """Build the org, create the certificates, bind and serve on a background thread."""
    org = build_org(config.seed, config.scale, config.rows)
    tmpdir = Path(tempfile.mkdtemp(prefix="sf-emulator-"))
    files = write_tls_files(tmpdir)
    state = EmulatorState(config, org)
    server = EmulatorHTTPServer((config.host, config.port), state, server_context(files))
    host = config.host if config.host not in ("", "0.0.0.0") else "127.0.0.1"
    state.instance_url = f"https://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="sf-emulator", daemon=True)
    thread.start()
    return RunningServer(server, thread, state, files, tmpdir)


def info_line(running: RunningServer) -> str:
    """The one JSON line ``serve`` prints when ready."""
    return json.dumps({"instance_url": running.instance_url, "access_token": running.state.tokens.default_token,
                       "ca_bundle": str(running.tls.ca_cert.resolve()), "api_version": API_VERSION})


__all__ = ["EmulatorHTTPServer", "RunningServer", "dispatch", "info_line", "start_server"]
