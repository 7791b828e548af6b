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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from emulator import admin, auth, bulk1, composite, routes
from emulator.faults import ERROR_ACTIONS, Fault
from emulator.http_codec import (
    HttpError,
    RequestHead,
    body_framing,
    choose_encoding,
    encode_body,
    encode_stream,
    read_body,
    read_request_head,
)
from emulator.org import build_org
from emulator.schema import lookup_object
from emulator.state import API_VERSION, EmulatorConfig, EmulatorState
from emulator.tls import TlsFiles, server_context, write_tls_files
from emulator.web import ApiError, Request, Response, compact_json, error_response

Handler = Callable[..., Response]
_DATA_RE = re.compile(r"^/services/data/v(\d+\.\d)(?:/(.*))?$")
_SOAP_RE = re.compile(r"^/services/Soap/u/(\d+\.\d)")
_METHODS = frozenset({"GET", "POST", "PATCH", "DELETE", "PUT"})  # the rest (HEAD, OPTIONS, ...) get 501
_ONE_WRITE_BYTES = 64 * 1024  # head and body in one write up to this size; larger bodies are not copied
_LINGER_SECONDS, _LINGER_BYTES = 2.0, 1024 * 1024  # draining a rejected request before closing
# (method, path under /services/data/vXX.X/, handler, fault kind); first match wins
_ROUTE_TABLE: tuple[tuple[str, str, Handler, str], ...] = (
    *routes.SOBJECT_ROUTES,  # first: sobjects/Account/updated is not a record Id
    *composite.ROUTES,
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
)
_ROUTES: list[tuple[str, re.Pattern[str], Handler, str]] = [(m, re.compile(p), h, k) for m, p, h, k in _ROUTE_TABLE]


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
    body = compact_json(result.body) if result.content_type.startswith("application/json") else result.body
    return Response(result.status, body, result.content_type), fault


def _apply_job_fault(state: EmulatorState, fault: Fault, job_id: str) -> None:
    failed = fault.action == "job_failed"
    message = "InternalServerError : Failed to process query: UNKNOWN_EXCEPTION" if failed else None
    state.jobs.end(job_id, "Failed" if failed else "Aborted", message, state.now(), force=True)


def _add_location(response: Response, version: str, object_name: str) -> None:
    """A REST create's 201 names the new record's URL in ``Location``, as Salesforce's does."""
    if response.status != 201 or not isinstance(response.body, bytes):
        return
    obj = lookup_object(object_name)
    record_id = json.loads(response.body)["id"]
    response.headers["Location"] = f"/services/data/v{version}/sobjects/{obj.name if obj else object_name}/{record_id}"


def _data_route(state: EmulatorState, req: Request, version: str, rest: str) -> tuple[Response, Fault | None]:
    matched = _match(req.method, rest.strip("/"))
    if isinstance(matched, ApiError):
        raise matched
    handler, args, kind = matched
    if not state.tokens.is_valid(req.token):
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    if not state.usage.count():
        raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    fault = state.admit(kind, req.token)
    if fault is not None and fault.action in ERROR_ACTIONS:
        raise ApiError(fault.status, fault.error_code, fault.message)
    req = Request(req.method, req.path, req.query, req.headers, req.body, version, req.token)
    if kind == "bulk.status" and req.method == "GET" and args:  # a status poll holds or releases the job
        state.jobs.hold(args[0], fault is not None and fault.action == "hold")
    job_fault = fault is not None and fault.action in ("job_failed", "job_aborted")
    if job_fault and kind == "bulk.status" and args:
        _apply_job_fault(state, fault, args[0])  # type: ignore[arg-type]
    response = handler(state, req, *args)
    if kind == "sobject" and req.method == "POST" and args:  # composite/sobjects POST has no object in its path
        _add_location(response, version, args[0])
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
        if req.path.startswith(bulk1.PREFIX):
            return bulk1.handle(state, req)
        identity = routes.identity_route(req.method, req.path)
        if identity is not None:
            return identity[0](state, req, *identity[1]), None
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
    """One connection's requests, read by ``http_codec`` (Content-Length or chunked bodies, ``100-continue``,
    strict framing) and answered with one Date, gzip/deflate when asked, keep-alive unless something ends it."""

    protocol_version = "HTTP/1.1"
    server_version = "SalesforceEmulator/1.0"
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: request lines could carry session ids in query strings; nothing is logged."""

    def handle_one_request(self) -> None:
        self.request_version = "HTTP/1.1"  # what an error answer assumes until a request line says otherwise
        try:
            head = read_request_head(self.rfile)
            if head is None:  # the client closed the connection between requests
                self.close_connection = True
                return
            self.command, self.path, self.request_version = head.method, head.target, head.version
            framing = body_framing(head)
            if framing.has_body and head.expects_continue:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = read_body(self.rfile, framing)
        except HttpError as err:
            self._reject(err)
            return
        self.close_connection = not head.keep_alive
        self._serve(head, body)

    def _serve(self, head: RequestHead, body: bytes) -> None:
        url = urlsplit(head.target)
        headers = head.headers()
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        token = auth.bearer_token(headers.get("authorization"))
        req = Request(head.method, url.path, query, headers, body, token=token)
        fault = None
        if head.method not in _METHODS:
            response = error_response(501, "NOT_IMPLEMENTED", f"HTTP method '{head.method}' is not supported")
        else:
            try:
                response, fault = dispatch(self.server.state, req)
            except Exception:  # noqa: BLE001 - a bug in the emulator must still answer like Salesforce does
                traceback.print_exc(file=sys.stderr)
                response = error_response(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")
        self._send(response, encoding=choose_encoding(headers.get("accept-encoding")), cut=fault is not None,
                   head_only=head.method == "HEAD")

    def _reject(self, err: HttpError) -> None:
        """Answer an unreadable request, then close: what follows on the stream is not known to be a request."""
        self.close_connection = True
        try:
            answer = (Response(err.status, err.front_end_page(), "text/html;charset=iso-8859-1") if err.front_end
                      else error_response(err.status, err.error_code, err.message))
            self._send(answer, encoding=None, cut=False)
        except OSError:
            return  # the client is gone (often the very reason the request was incomplete)
        self._linger()

    def _linger(self) -> None:
        """Half-close and drain what the client is still sending (up to a bound): closing with unread bytes makes
        the kernel send a TCP RST, which can destroy the error response before the client reads it."""
        deadline = time.monotonic() + _LINGER_SECONDS
        drained = 0
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while drained < _LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                data = self.connection.recv(65536)
                if not data:
                    return
                drained += len(data)
        except OSError:
            return

    def date_time_string(self, timestamp: float | None = None) -> str:
        """``Date`` is the org's clock, frozen or not: clients read Salesforce's time from it (the pipeline checks
        its watermark against it)."""
        return super().date_time_string(self.server.state.now().timestamp() if timestamp is None else timestamp)

    def _head(self, status: int, fields: list[tuple[str, str]]) -> bytes:
        reason = self.responses.get(status, ("Unknown",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {self.date_time_string()}", f"Server: {self.server_version}",
                 *(f"{name}: {value}" for name, value in fields)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, response: Response, *, encoding: str | None, cut: bool, head_only: bool = False) -> None:
        fields = list(response.headers.items())
        if self.close_connection:
            fields.append(("Connection", "close"))
        elif self.request_version == "HTTP/1.0":
            fields.append(("Connection", "keep-alive"))
        if response.status == 204:  # no content: no Content-Type or Content-Length either (RFC 9110 8.6)
            self.wfile.write(self._head(204, fields))
            return None
        fields[:0] = [("Content-Type", response.content_type), ("Vary", "Accept-Encoding")]
        body = response.body
        if encoding is not None:
            fields.append(("Content-Encoding", encoding))
        if isinstance(body, bytes | bytearray):
            return self._send_bytes(response.status, fields, encode_body(body, encoding) if encoding else body,
                                    cut=cut, head_only=head_only)
        return self._send_stream(response.status, fields, encode_stream(body, encoding) if encoding else body,
                                 cut=cut, head_only=head_only)

    def _send_bytes(self, status: int, fields: list[tuple[str, str]], body: bytes, *, cut: bool,
                    head_only: bool) -> None:
        head = self._head(status, [*fields, ("Content-Length", str(len(body)))])
        if head_only:
            self.wfile.write(head)
        elif cut:
            self.wfile.write(head)
            self._cut(body[: len(body) // 2])
        elif len(body) <= _ONE_WRITE_BYTES:  # one TLS record and one send for a small answer
            self.wfile.write(head + body)
        else:
            self.wfile.write(head)
            self.wfile.write(body)

    def _send_stream(self, status: int, fields: list[tuple[str, str]], chunks: Iterable[bytes], *, cut: bool,
                     head_only: bool) -> None:
        chunked = self.request_version == "HTTP/1.1"
        if not chunked:  # an HTTP/1.0 client cannot read chunked encoding: the body ends when the connection does
            self.close_connection = True
            fields = [f for f in fields if f[0] != "Connection"] + [("Connection", "close")]
        self.wfile.write(self._head(status, [*fields, ("Transfer-Encoding", "chunked")] if chunked else fields))
        if head_only:
            return None
        for chunk in chunks:
            if not chunk:
                continue
            size_line = b"%x\r\n" % len(chunk) if chunked else b""
            if cut:
                return self._cut(size_line + chunk[: len(chunk) // 2])
            self.wfile.write(size_line)
            self.wfile.write(chunk)  # large CSV pieces: no concatenation copy
            if chunked:
                self.wfile.write(b"\r\n")
        if chunked:
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
