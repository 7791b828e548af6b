"""How utils/storage.py moves a data root's bytes to and from S3 (SeaweedFS on loopback, tests/s3_server.py): small
files in one PUT whose answer names the version, big ones in bounded multipart uploads, downloads in one stream;
and why botocore's default request checksums stay on (the store checks nothing else of a body).

Each test works under its own key prefix in the session's one bucket.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.s3_server import S3Store
from tests.s3_server import s3_store as s3_store  # the session fixture (`as`: an explicit re-export, not unused)
from utils import storage
from utils.atomic import write_text_atomic

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
