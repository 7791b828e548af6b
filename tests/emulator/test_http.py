"""HTTP/1.1 as real clients speak it, over raw TLS sockets: chunked request bodies, ``Expect: 100-continue``,
malformed requests answered 400 and the connection closed, gzip/deflate answers, and the headers and JSON
Salesforce sends (one Date, compact JSON, Location on 201). The framing rules are also unit-tested on bytes."""

from __future__ import annotations

import gzip
import io
import json
import socket
import ssl
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import pytest

from emulator import EmulatorInfo
from emulator.http_codec import HttpError, choose_encoding, encode_stream, read_chunked

API = "/services/data/v59.0"
QUERY = f"{API}/query/?q=" + quote("SELECT Id, Name, AnnualRevenue FROM Account ORDER BY Id LIMIT 300")


# --- a raw HTTP/1.1 client over TLS -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RawResponse:
    status: int
    fields: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes  # as sent: still compressed if Content-Encoding says so

    def header(self, name: str) -> str | None:
        values = [value for field, value in self.fields if field == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def decoded(self) -> bytes:
        encoding = self.header("content-encoding")
        if encoding == "gzip":
            return gzip.decompress(self.body)
        return zlib.decompress(self.body) if encoding == "deflate" else self.body


class Connection:
    """One TLS connection: write raw bytes, read whole responses (Content-Length or chunked)."""

    def __init__(self, tls: ssl.SSLSocket, info: EmulatorInfo):
        self.tls, self.rfile = tls, tls.makefile("rb")
        self.host = urlsplit(info.instance_url).netloc
        self.auth = f"Authorization: Bearer {info.access_token}\r\n"

    def send(self, data: bytes) -> None:
        self.tls.sendall(data)

    def request(self, method: str, target: str, body: bytes = b"", headers: str = "") -> RawResponse:
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        self.send(f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}{headers}{length}\r\n".encode()
                  + body)
        return self.read_response()

    def read_response(self) -> RawResponse:
        status_line = self.rfile.readline()
        assert status_line.startswith(b"HTTP/1.1 "), f"not a status line: {status_line!r}"
        fields = []
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            fields.append((name.lower(), value.strip()))
        response = RawResponse(int(status_line.split()[1]), fields, b"")
        if response.status in (100, 204):
            return response
        if response.header("transfer-encoding") == "chunked":
            return RawResponse(response.status, fields, read_chunked(self.rfile))
        return RawResponse(response.status, fields, self.rfile.read(int(response.header("content-length") or 0)))

    def at_eof(self) -> bool:
        """True when the server has closed the connection (nothing more was sent)."""
        return self.rfile.read() == b""


@contextmanager
def connect(info: EmulatorInfo) -> Iterator[Connection]:
    url = urlsplit(info.instance_url)
    context = ssl.create_default_context(cafile=info.ca_bundle)
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=url.hostname) as tls:
        yield Connection(tls, info)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def errors_of(response: RawResponse) -> list[dict[str, str]]:
    return json.loads(response.decoded())


# --- chunked bodies and 100-continue ----------------------------------------------------------------------------
@pytest.mark.integration
def test_chunked_create_is_read_whole_and_the_connection_serves_the_next_request(emulator_reset):
    """jsforce sends bodies chunked with no Content-Length; the record gets every field, and the next request on
    the same connection is answered normally (no leftover chunk bytes read as a request)."""
    body = chunked(b'{"Name": "Chunked', b' Logistics", "Annual', b'Revenue": 1200}')
    with connect(emulator_reset) as conn:
        conn.send(f"POST {API}/sobjects/Account/ HTTP/1.1\r\nHost: {conn.host}\r\n{conn.auth}"
                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body)
        created = conn.read_response()
        assert created.status == 201, created.body
        record_id = json.loads(created.decoded())["id"]
        assert created.header("location") == f"{API}/sobjects/Account/{record_id}"
        fetched = conn.request("GET", created.header("location") or "")
    assert fetched.status == 200
    assert json.loads(fetched.decoded())["Name"] == "Chunked Logistics"
    assert json.loads(fetched.decoded())["AnnualRevenue"] == 1200


SOAP_LOGIN = (b'<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope '
              b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
              b'<login xmlns="urn:partner.soap.sforce.com"><username>etl@emulator.local</username>'
              b"<password>emulator-passwordEMULATORTOKEN</password></login></soapenv:Body></soapenv:Envelope>")


@pytest.mark.integration
def test_jsforce_style_chunked_soap_login_then_a_query_on_the_same_connection(emulator):
    """The reported failure: jsforce's login body arrives chunked with no Content-Length."""
    with connect(emulator) as conn:
        conn.send(f"POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: {conn.host}\r\nContent-Type: text/xml\r\n"
                  "SOAPAction: login\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                  + chunked(SOAP_LOGIN[:100], SOAP_LOGIN[100:]))
        login = conn.read_response()
        assert login.status == 200, login.body
        session_id = login.decoded().split(b"<sessionId>")[1].split(b"</sessionId>")[0].decode()
        conn.auth = f"Authorization: Bearer {session_id}\r\n"
        page = conn.request("GET", QUERY)
    assert page.status == 200 and json.loads(page.decoded())["totalSize"] == 300


@pytest.mark.integration
def test_chunked_oauth_login_with_extensions_and_trailers(emulator):
    form = urlencode({"grant_type": "password", "client_id": "emulator-consumer-key",
                      "client_secret": "emulator-consumer-secret", "username": "etl@emulator.local",
                      "password": "emulator-password"}).encode()
    body = (b"%x;name=value;quoted=\"a;b\"\r\n%s\r\n" % (len(form[:20]), form[:20])
            + b"%x\r\n%s\r\n" % (len(form[20:]), form[20:]) + b"0\r\nX-Checksum: abc\r\n\r\n")
    with connect(emulator) as conn:
        conn.send(f"POST /services/oauth2/token HTTP/1.1\r\nHost: {conn.host}\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode() + body)
        login = conn.read_response()
        assert login.status == 200, login.body
        token = json.loads(login.decoded())["access_token"]
        conn.auth = f"Authorization: Bearer {token}\r\n"
        assert conn.request("GET", f"{API}/limits/").status == 200


@pytest.mark.integration
def test_expect_100_continue_is_answered_before_the_body_is_sent(emulator_reset):
    body = b'{"Name": "Continued"}'
    with connect(emulator_reset) as conn:
        conn.send(f"POST {API}/sobjects/Account HTTP/1.1\r\nHost: {conn.host}\r\n{conn.auth}"
                  f"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode())
        interim = conn.read_response()  # the server must not wait for the body before saying go ahead
        assert interim.status == 100 and interim.fields == []
        conn.send(body)
        assert conn.read_response().status == 201


# --- malformed requests -----------------------------------------------------------------------------------------
MALFORMED = {
    "leftover chunk bytes": b"15\r\n",
    "HTTP/0.9 request": b"GET /services/data\r\n",
    "no Host": b"GET /services/data HTTP/1.1\r\n\r\n",
    "header without colon": b"GET /services/data HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n",
    "space before colon": b"GET /services/data HTTP/1.1\r\nHost : h\r\n\r\n",
    "folded header": b"GET /services/data HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  continued\r\n\r\n",
    "bare CR": b"GET /services/data HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n",
    "non-numeric Content-Length": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n1x",
    "negative Content-Length": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "conflicting Content-Lengths": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                                   b"Content-Length: 3\r\n\r\nabc",
    "Content-Length and Transfer-Encoding": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\n"
                                            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked not last": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "bad chunk size": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nabc\r\n0\r\n\r\nGET /services/data HTTP/1.1\r\nHost: h\r\n\r\n",
    "chunk longer than its size": b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.integration
@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_gets_400_and_the_connection_is_closed(emulator, raw):
    with connect(emulator) as conn:
        conn.send(raw)
        response = conn.read_response()
        assert response.status == 400
        assert response.header("connection") == "close"
        assert errors_of(response)[0]["errorCode"] == "BAD_REQUEST" and errors_of(response)[0]["message"]
        assert conn.at_eof(), "nothing may follow the 400: leftover bytes are never read as a request"


@pytest.mark.integration
@pytest.mark.parametrize(("raw", "status"), [
    (b"GET /services/data HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    (b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999\r\n\r\n", 413),
    (b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n", 413),
    (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
    (b"POST /services/oauth2/token HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
], ids=["HTTP/2.0", "Content-Length over the limit", "chunk over the limit", "101 headers",
        "gzip transfer coding"])
def test_unservable_request_gets_its_status_and_the_connection_is_closed(emulator, raw, status):
    with connect(emulator) as conn:
        conn.send(raw)
        response = conn.read_response()
        assert response.status == status and response.header("connection") == "close"
        assert errors_of(response)[0]["message"]
        assert conn.at_eof()


@pytest.mark.integration
@pytest.mark.parametrize(("raw", "status", "reason"), [
    (b"GET /" + b"a" * 16_384 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, "URI Too Long"),
    (b"GET /" + b"a" * 16_000 + b" HTTP/1.1\r\nHost: h\r\n" + b"X-Pad: " + b"p" * 400 + b"\r\n\r\n", 431,
     "Request Header Fields Too Large"),
], ids=["URI over 16,384 bytes", "URI and headers over 16,384 bytes"])
def test_uri_over_salesforces_limit_gets_the_front_ends_page(emulator, raw, status, reason):
    """Salesforce: at most 16,384 bytes of URI and headers; over it, 414 or 431 from its front end (Jetty's page)."""
    with connect(emulator) as conn:
        conn.send(raw)
        response = conn.read_response()
        assert response.status == status and response.header("connection") == "close"
        assert response.decoded() == f"<h1>Bad Message {status}</h1><pre>reason: {reason}</pre>".encode()
        assert conn.at_eof()


@pytest.mark.integration
def test_uri_of_9000_bytes_is_served(emulator):
    """8 KB is many servers' limit, not Salesforce's: such a URI reaches the API (here: an unknown resource)."""
    with connect(emulator) as conn:
        response = conn.request("GET", "/services/data/v59.0/" + "a" * 9000)
    assert response.status == 404


# --- compression ------------------------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answer_decodes_to_the_plain_one(emulator, encoding):
    with connect(emulator) as conn:
        plain = conn.request("GET", QUERY)
        packed = conn.request("GET", QUERY, headers=f"Accept-Encoding: {encoding}\r\n")
    assert plain.header("content-encoding") is None and plain.header("vary") == "Accept-Encoding"
    assert packed.header("content-encoding") == encoding and packed.header("vary") == "Accept-Encoding"
    assert len(packed.body) < len(plain.body) / 3
    assert packed.decoded() == plain.body


@pytest.mark.integration
@pytest.mark.parametrize(("accept", "expected"), [
    ("gzip, deflate", "gzip"), ("gzip;q=0, deflate", "deflate"), ("gzip;q=0, deflate;q=0", None), ("identity", None),
    ("*;q=0", None), ("*", "gzip"), ("br", None),
])
def test_accept_encoding_weights_are_respected(emulator, accept, expected):
    with connect(emulator) as conn:
        response = conn.request("GET", f"{API}/limits/", headers=f"Accept-Encoding: {accept}\r\n")
    assert response.status == 200 and response.header("content-encoding") == expected
    assert "DailyApiRequests" in json.loads(response.decoded())


@pytest.mark.integration
def test_bulk_result_pages_stream_gzip(emulator):
    job_body = json.dumps({"operation": "query", "query": "SELECT Id FROM Account"}).encode()
    with connect(emulator) as conn:
        job_id = json.loads(conn.request("POST", f"{API}/jobs/query", job_body,
                                         "Content-Type: application/json\r\n").decoded())["id"]
        while json.loads(conn.request("GET", f"{API}/jobs/query/{job_id}").decoded())["state"] != "JobComplete":
            time.sleep(0.05)
        results = f"{API}/jobs/query/{job_id}/results?maxRecords=1000"
        plain = conn.request("GET", results)
        packed = conn.request("GET", results, headers="Accept-Encoding: gzip, deflate\r\n")
    assert packed.header("transfer-encoding") == "chunked" and packed.header("content-encoding") == "gzip"
    assert packed.header("sforce-numberofrecords") == plain.header("sforce-numberofrecords") == "1000"
    assert packed.decoded() == plain.body and plain.body.count(b"\n") == 1001


# --- what Salesforce's headers and JSON look like ---------------------------------------------------------------
@pytest.mark.integration
def test_one_date_header_a_clean_server_header_and_compact_json(emulator):
    with connect(emulator) as conn:
        responses = [conn.request("GET", f"{API}/limits/"), conn.request("GET", f"{API}/sobjects"),
                     conn.request("GET", f"{API}/nowhere")]
        login = conn.request("POST", "/services/oauth2/token", b"grant_type=password&client_id=wrong",
                             "Content-Type: application/x-www-form-urlencoded\r\n")
    for response in [*responses, login]:
        assert response.header("date")  # header() also asserts it was sent once
        assert response.header("server") == "SalesforceEmulator/1.0"
        body = response.decoded()
        assert body == json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()
    assert [r.status for r in (*responses, login)] == [200, 200, 404, 400]


# --- the framing rules on bytes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("accept", "expected"), [
    ("gzip", "gzip"), ("deflate", "deflate"), ("x-gzip", "gzip"), ("deflate, gzip", "gzip"),
    ("deflate;q=1, gzip;q=0.5", "deflate"), ("gzip;q=0.5", "gzip"), ("gzip;q=0.5, identity", None),
    ("gzip;q=bad", None), ("GZIP;Q=0.9", "gzip"), ("*;q=0.3, gzip;q=0", "deflate"), ("", None), (None, None),
])
def test_choose_encoding(accept, expected):
    assert choose_encoding(accept) == expected


def test_read_chunked_ignores_extensions_and_trailers():
    stream = io.BytesIO(b'3;ext\r\nabc\r\n2 ; a = "q;\\"x" \r\nde\r\n0\r\nTrailer: 1\r\n\r\nNEXT')
    assert read_chunked(stream) == b"abcde"
    assert stream.read() == b"NEXT"  # the stream stops exactly at the end of the message


@pytest.mark.parametrize("raw", [b"3\r\nabc\r\n", b"-1\r\n", b"3 x\r\nabc\r\n0\r\n\r\n", b"1\r\nab\r\n0\r\n\r\n",
                                 b"0\r\nbad trailer\r\n\r\n", b"3\r\nabc\r\n0\r\n"],
                         ids=["no last chunk", "negative size", "bad extension", "overlong chunk", "bad trailer",
                              "no end of trailers"])
def test_read_chunked_refuses_broken_framing(raw):
    with pytest.raises(HttpError) as caught:
        read_chunked(io.BytesIO(raw))
    assert caught.value.status == 400


def test_read_chunked_enforces_the_size_limit_before_reading_the_data():
    with pytest.raises(HttpError) as caught:
        read_chunked(io.BytesIO(b"10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"), limit=15)
    assert caught.value.status == 413


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_large_streamed_piece_is_compressed_in_slices_the_client_can_decode_as_they_come(encoding):
    page = b"".join(b'"001EM%012d","Name %d","2024-01-01T00:00:00.000Z"\n' % (i, i * 7919 % 10007)
                    for i in range(40_000))
    pieces = list(encode_stream([b'"Id","Name","CreatedDate"\n', page], encoding))
    assert len(pieces) > 4, "a 2 MB page goes out in several compressed pieces, not one at the end"
    decoder = zlib.decompressobj(47)  # gzip or zlib header, auto-detected
    assert b"".join(decoder.decompress(p) for p in pieces) == b'"Id","Name","CreatedDate"\n' + page
