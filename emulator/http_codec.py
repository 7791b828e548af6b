"""HTTP/1.1 message framing for the emulator (RFC 9112): request heads, bodies (Content-Length or chunked),
``Accept-Encoding`` negotiation and gzip/deflate response bodies. Pure functions over binary streams; no sockets.

Anything that cannot be read with certainty raises ``HttpError``: the server answers it and closes the
connection, because after a framing error the next byte on the stream is not known to start a request.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

MAX_LINE_BYTES = 8190  # one header field line or one chunk-size line (Apache's and nginx's default)
# Salesforce: "the maximum length for the combined URI and headers is 16,384 bytes"; a longer URI is 414 URI Too
# Long, a longer URI plus headers 431 Request Header Fields Too Large, each in its front end's (Jetty's) HTML
MAX_URI_AND_HEADERS_BYTES = 16_384
MAX_FIELDS = 100  # header (or trailer) field lines per request
MAX_BODY_BYTES = 64 * 1024 * 1024  # the emulator's own guard; no endpoint it serves takes more than a few KB
COMPRESSION_LEVEL = 1  # measured: a 2,000-record REST page 7 ms vs 21 ms at zlib's default 6 (ratio 7.7x vs 10x)
_STREAM_SLICE_BYTES = 256 * 1024  # compressed to ~50-70 KB each at level 1
ENCODINGS = ("gzip", "deflate")  # preference order when the client weighs them equally

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(.*?)[ \t]*")
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs other than HTAB
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})" + _CHUNK_EXT + rb"[ \t]*")  # trailing blanks tolerated
_DIGITS = re.compile(r"[0-9]{1,18}")

_ERROR_CODES = {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 414: "URI_TOO_LONG",
                431: "REQUEST_HEADER_FIELDS_TOO_LARGE", 501: "NOT_IMPLEMENTED", 505: "HTTP_VERSION_NOT_SUPPORTED"}


class Reader(Protocol):
    """The buffered binary stream a request is read from (a socket's ``rfile``, or ``io.BytesIO`` in tests)."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class HttpError(Exception):
    """A request the server cannot read: answer ``status`` with a Salesforce-style error, then close."""

    def __init__(self, status: int, message: str, *, front_end: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = _ERROR_CODES.get(status, "BAD_REQUEST")
        self.front_end = front_end  # refused before the API (URI or headers over Salesforce's limit): Jetty's page

    def front_end_page(self) -> bytes:
        """Salesforce's front end answer: ``<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>``."""
        reason = {414: "URI Too Long", 431: "Request Header Fields Too Large"}.get(self.status, "Bad Request")
        return f"<h1>Bad Message {self.status}</h1><pre>reason: {reason}</pre>".encode()


@dataclass(frozen=True)
class RequestHead:
    """The request line and header fields (names lower-cased, in the order received)."""

    method: str
    target: str
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    fields: tuple[tuple[str, str], ...]

    def values(self, name: str) -> list[str]:
        return [value for field_name, value in self.fields if field_name == name]

    def headers(self) -> dict[str, str]:
        """One value per name; repeated fields joined with ", " (RFC 9110 5.3)."""
        joined: dict[str, str] = {}
        for name, value in self.fields:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return joined

    @property
    def keep_alive(self) -> bool:
        options = {o.strip().lower() for v in self.values("connection") for o in v.split(",")}
        return "keep-alive" in options if self.version == "HTTP/1.0" else "close" not in options

    @property
    def expects_continue(self) -> bool:
        return self.version == "HTTP/1.1" and any(v.strip().lower() == "100-continue" for v in self.values("expect"))


@dataclass(frozen=True)
class Framing:
    """How the request body is delimited: ``chunked``, or exactly ``length`` bytes (0: no body)."""

    chunked: bool = False
    length: int = 0

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


# --- request heads ----------------------------------------------------------------------------------------------
def _read_line(rfile: Reader, *, what: str, too_long_status: int = 400) -> bytes:
    """One line without its CRLF (a bare LF is accepted, RFC 9112 2.2; a bare CR is not)."""
    line = rfile.readline(MAX_LINE_BYTES + 2)
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE_BYTES:
            raise HttpError(too_long_status, f"The {what} is longer than {MAX_LINE_BYTES} bytes")
        raise HttpError(400, f"The request ended inside the {what}")
    line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if b"\r" in line:
        raise HttpError(400, f"The {what} contains a bare carriage return")
    return line


def read_request_head(rfile: Reader) -> RequestHead | None:
    """The next request's line and fields; None when the client closed the connection between requests."""
    limit = MAX_URI_AND_HEADERS_BYTES + 64  # the URI, the method and the protocol
    first = rfile.readline(limit)
    if not first:
        return None
    if first in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore one empty line before the request line
        first = rfile.readline(limit)
        if not first:
            return None
    if len(first) >= limit and not first.endswith(b"\n"):
        raise HttpError(414, f"The URI is longer than {MAX_URI_AND_HEADERS_BYTES} bytes", front_end=True)
    method, target, version = _parse_request_line(_strip_line(first))
    if len(target) > MAX_URI_AND_HEADERS_BYTES:
        raise HttpError(414, f"The URI is longer than {MAX_URI_AND_HEADERS_BYTES} bytes", front_end=True)
    fields = _read_fields(rfile, what="header field line")
    if len(target) + sum(len(k) + len(v) + 4 for k, v in fields) > MAX_URI_AND_HEADERS_BYTES:
        raise HttpError(431, f"The URI and headers are longer than {MAX_URI_AND_HEADERS_BYTES} bytes", front_end=True)
    head = RequestHead(method, target, version, fields)
    if version == "HTTP/1.1" and len(head.values("host")) != 1:
        raise HttpError(400, "An HTTP/1.1 request needs exactly one Host header")
    return head


def _strip_line(line: bytes) -> bytes:
    if not line.endswith(b"\n"):
        raise HttpError(400, "The request ended inside the request line")
    line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if b"\r" in line:
        raise HttpError(400, "The request line contains a bare carriage return")
    return line


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        shown = line[:80].decode("latin-1").encode("unicode_escape").decode()
        raise HttpError(400, f"Malformed request line: '{shown}' (expected: METHOD target HTTP/1.1)")
    method, target, major, minor = match.groups()
    if major != b"1":
        raise HttpError(505, f"HTTP/{major.decode()}.{minor.decode()} is not supported; use HTTP/1.1")
    return method.decode(), target.decode(), "HTTP/1.0" if minor == b"0" else "HTTP/1.1"


def _read_fields(rfile: Reader, *, what: str) -> tuple[tuple[str, str], ...]:
    """Field lines up to the empty line; obs-fold, whitespace before the colon and control bytes are refused."""
    fields: list[tuple[str, str]] = []
    while line := _read_line(rfile, what=what, too_long_status=431):
        if len(fields) == MAX_FIELDS:
            raise HttpError(431, f"More than {MAX_FIELDS} header fields")
        match = _FIELD_LINE.fullmatch(line)
        if match is None or _BAD_VALUE_BYTE.search(match.group(2)):
            shown = line[:80].decode("latin-1").encode("unicode_escape").decode()
            raise HttpError(400, f"Malformed {what}: '{shown}'")
        fields.append((match.group(1).decode().lower(), match.group(2).decode("latin-1")))
    return tuple(fields)


# --- request bodies ---------------------------------------------------------------------------------------------
def body_framing(head: RequestHead, *, limit: int = MAX_BODY_BYTES) -> Framing:
    """The body's framing from Transfer-Encoding / Content-Length (RFC 9112 6.3), refusing anything ambiguous."""
    transfer, length = head.values("transfer-encoding"), head.values("content-length")
    if transfer:
        if head.version == "HTTP/1.0":
            raise HttpError(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
        if length:
            raise HttpError(400, "A request must not carry both Content-Length and Transfer-Encoding")
        codings = [c.strip().lower() for value in transfer for c in value.split(",") if c.strip()]
        if not codings or codings[-1] != "chunked":
            raise HttpError(400, "Transfer-Encoding must end with chunked")
        if len(codings) > 1:
            raise HttpError(501, f"Transfer coding '{codings[0]}' is not supported; send the body chunked only")
        return Framing(chunked=True)
    if not length:
        return Framing()
    values = {v.strip() for value in length for v in value.split(",")}
    text = values.pop()
    if values or not _DIGITS.fullmatch(text):
        raise HttpError(400, f"Invalid Content-Length: '{', '.join(length)[:40]}'")
    if int(text) > limit:
        raise HttpError(413, f"The request body is larger than {limit} bytes")
    return Framing(length=int(text))


def read_body(rfile: Reader, framing: Framing, *, limit: int = MAX_BODY_BYTES) -> bytes:
    if framing.chunked:
        return read_chunked(rfile, limit=limit)
    body = rfile.read(framing.length) if framing.length else b""
    if len(body) < framing.length:
        raise HttpError(400, f"The request ended after {len(body)} of {framing.length} body bytes")
    return body


def read_chunked(rfile: Reader, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """A chunked body (RFC 9112 7.1): extensions are checked and ignored, trailer fields read and discarded."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = _read_line(rfile, what="chunk size line")
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            shown = line[:40].decode("latin-1").encode("unicode_escape").decode()
            raise HttpError(400, f"Invalid chunk size line: '{shown}'")
        size = int(match.group(1), 16)
        if size == 0:
            break
        total += size
        if total > limit:
            raise HttpError(413, f"The request body is larger than {limit} bytes")
        data = rfile.read(size)
        if len(data) < size:
            raise HttpError(400, f"The request ended inside a chunk ({len(data)} of {size} bytes)")
        parts.append(data)
        if _read_line(rfile, what="end of a chunk"):
            raise HttpError(400, "A chunk is longer than its declared size")
    _read_fields(rfile, what="trailer field line")
    return b"".join(parts)


# --- response bodies --------------------------------------------------------------------------------------------
def _weights(accept_encoding: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if not coding:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0  # an unreadable weight does not count as a yes
                weight = weight if 0.0 <= weight <= 1.0 else 0.0
        coding = coding.lower()
        weights["gzip" if coding == "x-gzip" else coding] = weight  # x-gzip: RFC 9110 8.4.1.3
    return weights


def choose_encoding(accept_encoding: str | None) -> str | None:
    """``gzip``, ``deflate`` or None (identity) for an Accept-Encoding value: ``q=0`` refuses a coding, ``*``
    stands for codings not named, and identity wins only when the client weighs it above both."""
    if not accept_encoding:
        return None
    weights = _weights(accept_encoding)
    star = weights.get("*")
    best = max(ENCODINGS, key=lambda c: weights.get(c, star or 0.0))  # max keeps the first of equals: gzip
    weight = weights.get(best, star or 0.0)
    identity = weights.get("identity", star)  # unnamed identity is acceptable, not preferred
    return best if weight > 0 and (identity is None or weight >= identity) else None


def _compressor(encoding: str, level: int) -> zlib._Compress:
    # "deflate" is the zlib format (RFC 9110 8.4.1.2), not a raw deflate stream; wbits 31 writes a gzip member
    return zlib.compressobj(level, zlib.DEFLATED, 31 if encoding == "gzip" else 15)


def encode_body(body: bytes, encoding: str, *, level: int = COMPRESSION_LEVEL) -> bytes:
    compressor = _compressor(encoding, level)
    return compressor.compress(body) + compressor.flush()


def encode_stream(chunks: Iterable[bytes], encoding: str, *, level: int = COMPRESSION_LEVEL) -> Iterator[bytes]:
    """A streamed body compressed as it goes, in slices of a large chunk (a Bulk page is one 10+ MB piece): the
    client receives and decodes one slice while the next is compressed, instead of waiting for the whole page."""
    compressor = _compressor(encoding, level)
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), _STREAM_SLICE_BYTES):
            if out := compressor.compress(view[start:start + _STREAM_SLICE_BYTES]):  # zlib may buffer a slice
                yield out
    yield compressor.flush()


__all__ = [
    "COMPRESSION_LEVEL", "MAX_BODY_BYTES", "Framing", "HttpError", "RequestHead", "body_framing", "choose_encoding",
    "encode_body", "encode_stream", "read_body", "read_chunked", "read_request_head",
]
