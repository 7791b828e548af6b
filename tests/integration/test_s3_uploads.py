"""How utils/storage.py moves a data root's bytes to and from S3 (SeaweedFS on loopback, tests/s3_server.py): small
files in one PUT whose answer names the version, big ones in bounded multipart uploads, big files written front to
back uploaded while they are written (visible only once complete), downloads in one stream, one request for an
absent file or a listing; and why botocore's default request checksums stay on (the store checks nothing else of a
body).

Each test works under its own key prefix in the session's one bucket.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.s3_server import S3Store
from tests.s3_server import s3_store as s3_store  # the session fixture (`as`: an explicit re-export, not unused)
from utils import storage
from utils.atomic import atomic_path, write_text_atomic

pytestmark = pytest.mark.integration
MiB = 2**20


@pytest.fixture()
def store_root(s3_store: S3Store, monkeypatch, tmp_path, request) -> tuple[str, Path]:
    """An S3 data root of this test's own (URL, its scratch mirror), reached through the standard variables."""
    for name, value in s3_store.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(storage.SCRATCH_ENV, str(tmp_path / "scratch"))
    url = s3_store.url(f"{request.node.name}-{time.monotonic_ns()}")
    storage.check_data_root(url)
    return url, storage.mirror_root(url)


def _store_info(url: str, path: Path) -> dict:
    mirror = storage.mirror_of(path)
    assert mirror is not None and mirror.url == url
    return mirror.fs.info(mirror.key(path))


def _remembered(path: Path) -> str | None:
    mirror = storage.mirror_of(path)
    assert mirror is not None
    return storage._remembered_version(mirror, path)


def test_a_small_file_is_one_put_whose_answer_names_the_version_the_scratch_holds(store_root, monkeypatch):
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    heads = []
    real_info = mirror.fs.info  # fsspec sets an async filesystem's blocking methods on the instance
    monkeypatch.setattr(mirror.fs, "info", lambda *a, **k: heads.append(a) or real_info(*a, **k))
    summary, record = root / "output" / "Account" / "summary.json", root / "raw" / "Account_x.csv"
    write_text_atomic(summary, "[]")
    write_text_atomic(record, '"Id"\n"001A"\n')
    assert heads == []  # no HEAD after a PUT
    for path, content_type in ((summary, "application/json"), (record, "text/csv")):
        info = _store_info(url, path)
        assert _remembered(path) == info["ETag"]  # the next fetch finds the scratch current: no download
        assert info["ContentType"].startswith(content_type)  # as s3fs's put_file would have set it
    assert storage.fetch(summary) and summary.read_text() == "[]"


def test_a_big_file_uploads_in_bounded_parts_and_is_whole_in_the_store(store_root, monkeypatch):
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    calls = []
    real_put = mirror.fs.put_file
    monkeypatch.setattr(mirror.fs, "put_file", lambda src, dst, **kw: calls.append(kw) or real_put(src, dst, **kw))
    body = os.urandom(MiB) * 40  # 40 MiB: three parts
    path = root / "replica" / "Opportunity.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    storage.publish(path)
    storage.wait_for_uploads()
    assert calls == [{"chunksize": storage.S3_PART_BYTES, "max_concurrency": storage.S3_UPLOAD_PARTS_AT_ONCE}]
    info = _store_info(url, path)
    assert info["size"] == len(body) and info["ETag"].strip('"').endswith("-3")  # a completed 3-part upload
    assert _remembered(path) == info["ETag"]
    path.unlink()
    storage._version_file(mirror, path).unlink()
    assert storage.fetch(path) and path.read_bytes() == body  # downloaded again, in one stream, byte for byte


def test_a_download_is_one_stream(store_root, monkeypatch):
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    path = root / "replica" / "Lead.parquet"
    body = os.urandom(MiB) * 3
    mirror.fs.pipe_file(mirror.key(path), body)  # written by another machine
    # s3fs's default for a file over its block size (50 MiB): ranged GETs 10 at a time, each held in memory. With a
    # 1 MiB block this 3 MiB file would take 3 ranged GETs; one stream is one GET
    monkeypatch.setattr(mirror.fs, "default_block_size", MiB)
    gets = []
    real_call = mirror.fs._call_s3

    async def recorded(method, *args, **kwargs):
        if method == "get_object":
            gets.append(kwargs.get("Range"))
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(mirror.fs, "_call_s3", recorded)
    assert storage.fetch(path) and path.read_bytes() == body
    assert len(gets) == 1


@pytest.fixture()
def requests_sent():
    """``start(mirror)``: the names of the S3 operations the store's client sends from then on (botocore's own
    event, seen for every request, paginated listings included); the handler goes with the test."""
    registered = []

    def start(mirror: storage.Mirror) -> list[str]:
        sent: list[str] = []
        events = mirror.fs.s3.meta.events
        unique_id = f"count-{len(registered)}-{time.monotonic_ns()}"
        events.register("before-call.s3", lambda model, **_: sent.append(model.name), unique_id=unique_id)
        registered.append((events, unique_id))
        return sent

    yield start
    for events, unique_id in registered:
        events.unregister("before-call.s3", unique_id=unique_id)


def test_an_absent_file_and_a_listing_cost_one_request_each(store_root, requests_sent):
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    for name in ("Account_1.csv", "Account_2.csv", "Contact_1.csv", "Account_x/not_directly_in_raw.csv"):
        mirror.fs.pipe_file(mirror.key(root / "raw" / name), b"Id\n")
    sent = requests_sent(mirror)
    assert not storage.fetch(root / "state" / "Account.json")  # s3fs's info follows the HEAD with a listing
    assert not storage.remove_file(root / "raw" / "Lead_1.csv")
    assert sorted(p.name for p in storage.list_files(root / "raw", "Account_*.csv")) == ["Account_1.csv",
                                                                                          "Account_2.csv"]
    assert sorted(p.name for p in storage.list_files(root / "raw")) == ["Account_1.csv", "Account_2.csv",
                                                                        "Contact_1.csv"]
    assert sent == ["HeadObject", "HeadObject", "ListObjectsV2", "ListObjectsV2"]  # s3fs's glob: 4 a listing


@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
def test_the_store_refuses_a_body_changed_in_transit_only_by_its_checksum(s3_store, checksums, request):
    """botocore (>= 1.36) sends a CRC32 of every PUT by default (``when_supported``); SeaweedFS checks it, but not the
    SHA-256 of the payload in the signature over plain http. So turning the checksums off to save their CPU
    (``request_checksum_calculation="when_required"``) would let a changed body in: they stay on."""
    from botocore.exceptions import ClientError

    client = s3_store.client(request_checksum_calculation=checksums, retries={"max_attempts": 1})

    def change_first_byte(request, **_):
        request.body = b"X" + request.body.read()[1:]

    client.meta.events.register("before-send.s3.PutObject", change_first_byte)
    key = f"{request.node.name}-{time.monotonic_ns()}"
    if checksums == "when_supported":
        with pytest.raises(ClientError, match="BadDigest"):
            client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"hello world")
    else:
        client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"hello world")
        assert client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == b"Xello world"


def _uploads_in_progress(s3_store: S3Store, key: str) -> list[dict]:
    """The store's unfinished multipart uploads of ``key`` (bucket/key), with the parts each holds so far."""
    client = s3_store.client()
    bucket, _, name = key.partition("/")
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix=name).get("Uploads", [])
    return [{**u, "Parts": client.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])}
            for u in listed if u["Key"] == name]


def _wait_for_parts(s3_store: S3Store, key: str, parts: int, timeout_s: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        uploads = _uploads_in_progress(s3_store, key)
        if uploads and len(uploads[0]["Parts"]) >= parts:
            return uploads
        time.sleep(0.05)
    msg = f"the store did not receive {parts} part(s) of {key} within {timeout_s} s"
    raise AssertionError(msg)


def _no_whole_file_upload(mirror: storage.Mirror, monkeypatch) -> None:
    """Fail the test if a file is uploaded whole: what reaches the store came from the streaming upload."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the file was uploaded whole, not while it was written")

    monkeypatch.setattr(mirror.fs, "put_file", refuse)
    monkeypatch.setattr(storage, "_put_object", refuse)


def _followers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("store-follow")]


def test_a_big_file_is_uploaded_while_it_is_written_and_appears_only_complete(store_root, s3_store, monkeypatch):
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    _no_whole_file_upload(mirror, monkeypatch)
    path = root / "raw" / "Opportunity_x.csv"
    key = mirror.key(path)
    part = storage.S3_PART_BYTES
    pages = [os.urandom(MiB) * (part // MiB) for _ in range(3)] + [b"the last, short page\n"]
    with atomic_path(path, upload_while_written=True) as tmp, open(tmp, "wb") as fh:
        for number, page in enumerate(pages[:2], start=1):
            fh.write(page)
            fh.flush()
            uploads = _wait_for_parts(s3_store, key, number)  # sent while the writer is still writing
            assert [p["Size"] for p in uploads[0]["Parts"]] == [part] * number
            assert not mirror.fs.exists(key)  # and nothing a reader could see
        for page in pages[2:]:
            fh.write(page)
    storage.wait_for_uploads()
    info = _store_info(url, path)
    body = b"".join(pages)
    assert info["size"] == len(body) and info["ETag"].strip('"').endswith("-4")  # 3 whole parts and the rest
    assert mirror.fs.cat_file(key) == body
    assert info["ContentType"].startswith("text/csv")  # the type of the target's name, not the temp file's
    assert _remembered(path) == info["ETag"]  # the completion's answer named the version: no download next time
    assert _uploads_in_progress(s3_store, key) == [] and _followers() == []


def test_a_writer_that_fails_leaves_neither_an_object_nor_an_upload(store_root, s3_store):
    _, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    path = root / "processed" / "qa" / "Opportunity" / "dedup.csv"
    key = mirror.key(path)
    with pytest.raises(RuntimeError, match="the source went away"), \
            atomic_path(path, upload_while_written=True) as tmp, open(tmp, "wb") as fh:
        fh.write(os.urandom(storage.S3_PART_BYTES + MiB))
        fh.flush()
        _wait_for_parts(s3_store, key, 1)
        raise RuntimeError("the source went away")
    storage.wait_for_uploads()
    assert not mirror.fs.exists(key) and not path.exists() and list(path.parent.iterdir()) == []  # no temp file
    assert _uploads_in_progress(s3_store, key) == []  # aborted, not left for the sweep
    assert _followers() == []


def test_a_store_that_fails_a_part_gets_the_whole_file_instead(store_root, s3_store, monkeypatch):
    """A failure while following (here the store refusing one part) only loses the early start."""
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    path = root / "raw" / "Contact_x.csv"
    key = mirror.key(path)
    real_call = mirror.fs._call_s3
    refused = []

    async def refuse_the_second_part(method, *args, **kwargs):
        if method == "upload_part" and kwargs.get("PartNumber") == 2 and not refused:
            refused.append(kwargs["Key"])
            raise ConnectionResetError("the store went away for a moment")
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(mirror.fs, "_call_s3", refuse_the_second_part)
    body = os.urandom(3 * storage.S3_PART_BYTES + 5)
    with atomic_path(path, upload_while_written=True) as tmp, open(tmp, "wb") as fh:
        fh.write(body[: storage.S3_PART_BYTES])
        fh.flush()
        _wait_for_parts(s3_store, key, 1)
        fh.write(body[storage.S3_PART_BYTES:])
    storage.wait_for_uploads()
    assert refused == [key.partition("/")[2]]
    assert mirror.fs.cat_file(key) == body and _remembered(path) == _store_info(url, path)["ETag"]
    assert _uploads_in_progress(s3_store, key) == [] and _followers() == []  # the started one was aborted


def test_a_writer_that_rewrites_what_was_sent_still_publishes_its_finished_file(store_root, s3_store):
    """Following assumes a writer that only appends; one that starts over (a rewrite of sent bytes) is caught by
    the parts' checksums, and the finished file is uploaded whole."""
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    path = root / "raw" / "Account_x.csv"
    key = mirror.key(path)
    first, second = os.urandom(2 * storage.S3_PART_BYTES), os.urandom(2 * storage.S3_PART_BYTES + 7)
    with atomic_path(path, upload_while_written=True) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(first)
        _wait_for_parts(s3_store, key, 2)
        with open(tmp, "wb") as fh:  # starts over, past the size already sent
            fh.write(second)
    storage.wait_for_uploads()
    assert mirror.fs.cat_file(key) == second
    assert _remembered(path) == _store_info(url, path)["ETag"]
    assert _uploads_in_progress(s3_store, key) == []


def test_a_small_file_written_with_upload_while_written_is_one_put_and_starts_no_upload(store_root, s3_store):
    url, root = store_root
    mirror = storage.mirror_of(root)
    assert mirror is not None
    path = root / "raw" / "Lead_x.csv"
    with atomic_path(path, upload_while_written=True) as tmp:
        tmp.write_bytes(b'"Id"\n"00QA"\n')
    info = _store_info(url, path)  # a small file is in the store when the write returns
    assert mirror.fs.cat_file(mirror.key(path)) == b'"Id"\n"00QA"\n'
    assert not info["ETag"].strip('"').endswith("-1") and _remembered(path) == info["ETag"]
    assert _uploads_in_progress(s3_store, mirror.key(path)) == []
