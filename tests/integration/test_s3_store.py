"""What an object store does, proved against a real S3 server (SeaweedFS on loopback, tests/s3_server.py) with the
real clients: the facts the storage layer relies on (s3fs, Polars' native cloud I/O, conditional PUTs for leases,
multipart uploads, credential errors), and the harness's own promise that no server outlives its test process.

Each test works under its own key prefix in the session's one bucket.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

try:
    import s3fs
    from botocore.exceptions import ClientError
except ImportError as err:  # pragma: no cover - a venv made before the s3 extra existed
    msg = "the S3 tests need the s3 extra and SeaweedFS: `make s3` (requirements-s3.lock)"
    raise ImportError(msg) from err

from tests.s3_server import WEED_BIN, S3Store
from tests.s3_server import s3_store as s3_store  # the session fixture (`as`: an explicit re-export, not unused)

pytestmark = pytest.mark.integration
MiB = 2**20
FRAME = pl.DataFrame({
    "Id": ["001A", "001B", "001C"],
    "Amount": [1.5, None, 3.25],
    "IsWon": [True, False, None],
    "CloseDate": pl.Series([19000, 19001, None], dtype=pl.Date),
})


@pytest.fixture()
def prefix(request) -> str:
    """A key prefix of this test's own, so tests sharing the session's bucket never see each other's objects."""
    return f"{request.node.name.replace('[', '-').replace(']', '')}-{time.monotonic_ns()}/"


@pytest.fixture()
def fs(s3_store: S3Store) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(**s3_store.storage_options(), skip_instance_cache=True)


def _client_error(call) -> dict:
    """Run a botocore call expected to fail; its error code, message and HTTP status."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return {**response["Error"], "status": response["ResponseMetadata"]["HTTPStatusCode"]}


# --- (a) s3fs through the harness's storage options ------------------------------------------------------------


def test_s3fs_writes_reads_lists_and_deletes(s3_store, fs, prefix):
    base = s3_store.url(prefix)
    fs.pipe(base + "raw/a.csv", b"Id\n001A\n")
    fs.pipe(base + "raw/b.csv", b"Id\n001B\n")
    fs.pipe(base + "state/Account.json", b"{}")

    assert fs.cat(base + "raw/a.csv") == b"Id\n001A\n"
    assert fs.info(base + "raw/b.csv")["size"] == 8
    assert sorted(fs.ls(base + "raw", detail=False)) == [f"{s3_store.bucket}/{prefix}raw/a.csv",
                                                         f"{s3_store.bucket}/{prefix}raw/b.csv"]
    assert len(fs.find(base)) == 3

    fs.rm(base + "raw/a.csv")
    assert not fs.exists(base + "raw/a.csv")
    assert fs.find(base, withdirs=False) == [f"{s3_store.bucket}/{prefix}raw/b.csv",
                                             f"{s3_store.bucket}/{prefix}state/Account.json"]
    with pytest.raises(FileNotFoundError):
        fs.cat(base + "raw/a.csv")


def test_a_deleted_prefix_stays_behind_as_an_empty_folder(s3_store, fs, prefix):
    """SeaweedFS keeps folders (its filer is a tree): after the last object under ``d/`` is deleted (by boto or by
    s3fs's recursive rm), ``d/`` is still a CommonPrefix, ``HEAD d/`` answers 200 (an empty application/x-directory)
    and s3fs's exists/find see it. On AWS S3 the prefix would vanish. A flat listing (no delimiter) is the reliable
    "is there data?"; deleting the key ``d/`` removes the folder."""
    client = s3_store.client()
    fs.pipe(s3_store.url(prefix + "d/x.txt"), b"x")
    fs.pipe(s3_store.url(prefix + "e/y.txt"), b"y")
    client.delete_object(Bucket=s3_store.bucket, Key=prefix + "d/x.txt")
    fs.rm(s3_store.url(prefix + "e"), recursive=True)

    folders = client.list_objects_v2(Bucket=s3_store.bucket, Prefix=prefix, Delimiter="/")
    assert [p["Prefix"] for p in folders.get("CommonPrefixes", [])] == [prefix + "d/", prefix + "e/"]
    assert client.list_objects_v2(Bucket=s3_store.bucket, Prefix=prefix)["KeyCount"] == 0
    assert client.head_object(Bucket=s3_store.bucket, Key=prefix + "d/")["ContentType"] == "application/x-directory"
    assert fs.exists(s3_store.url(prefix + "d"))
    assert fs.find(s3_store.url(prefix)) == [s3_store.url(prefix).removeprefix("s3://").rstrip("/")]

    for folder in ("d/", "e/"):
        client.delete_object(Bucket=s3_store.bucket, Key=prefix + folder)
    assert "CommonPrefixes" not in client.list_objects_v2(Bucket=s3_store.bucket, Prefix=prefix, Delimiter="/")


# --- (b) Polars: native cloud I/O and fsspec file objects ------------------------------------------------------


def test_polars_native_io_round_trips_parquet_and_csv(s3_store, prefix):
    options = s3_store.polars_storage_options()
    parquet, csv = s3_store.url(prefix + "replica/Opportunity.parquet"), s3_store.url(prefix + "summary.csv")

    FRAME.write_parquet(parquet, storage_options=options)
    FRAME.write_csv(csv, storage_options=options)
    FRAME.lazy().sink_parquet(s3_store.url(prefix + "replica/sunk.parquet"), storage_options=options)

    assert_frame_equal(pl.read_parquet(parquet, storage_options=options), FRAME)
    assert_frame_equal(pl.scan_parquet(parquet, storage_options=options).collect(), FRAME)
    assert_frame_equal(pl.read_csv(csv, storage_options=options, schema=FRAME.schema), FRAME)
    assert_frame_equal(pl.scan_csv(csv, storage_options=options, schema=FRAME.schema).collect(), FRAME)
    globbed = pl.scan_parquet(s3_store.url(prefix + "replica/*.parquet"), storage_options=options).collect()
    assert_frame_equal(globbed, pl.concat([FRAME, FRAME]))


def test_polars_storage_options_need_path_style_and_object_store_keys(s3_store, prefix):
    """An http:// endpoint works without ``aws_allow_http`` (Polars allows it for an explicit http endpoint) and
    without a region; virtual-hosted style does not (a loopback IP has no bucket subdomains: the bucket is lost
    from the request); s3fs-style options (``client_kwargs``) are refused: Polars wants object_store keys."""
    url = s3_store.url(prefix + "t.parquet")
    FRAME.write_parquet(url, storage_options=s3_store.polars_storage_options())
    minimal = {"aws_endpoint_url": s3_store.endpoint_url, "aws_access_key_id": s3_store.access_key,
               "aws_secret_access_key": s3_store.secret_key}

    assert_frame_equal(pl.read_parquet(url, storage_options=minimal), FRAME)
    with pytest.raises(FileNotFoundError, match="NoSuchBucket"):
        pl.read_parquet(url, storage_options={**minimal, "aws_virtual_hosted_style_request": "true"})
    with pytest.raises(ValueError, match="client_kwargs"):
        pl.read_parquet(url, storage_options=s3_store.storage_options())


def test_polars_reads_and_writes_through_fsspec_file_objects(s3_store, fs, prefix):
    url = s3_store.url(prefix + "qa/snapshot.parquet")
    with fs.open(url, "wb") as out:
        FRAME.write_parquet(out, compression="zstd")
    with fs.open(url, "rb") as src:
        assert_frame_equal(pl.read_parquet(src), FRAME)

    buffer = io.BytesIO()
    FRAME.write_csv(buffer)
    fs.pipe(s3_store.url(prefix + "raw.csv"), buffer.getvalue())
    with fs.open(s3_store.url(prefix + "raw.csv"), "rb") as src:
        assert_frame_equal(pl.read_csv(src, schema=FRAME.schema), FRAME)


_ENV_PROBE = textwrap.dedent("""
    import json, os, sys
    import polars as pl, s3fs
    url = sys.argv[1]
    out = {"s3fs": s3fs.S3FileSystem().cat(url).decode()}
    out["polars"] = pl.read_csv(url).to_dicts()
    pl.DataFrame({"a": [2]}).write_parquet(url + ".parquet")
    out["polars_write"] = pl.read_parquet(url + ".parquet").to_dicts()
    os.environ["AWS_SECRET_ACCESS_KEY"] = "changed after first use"
    out["polars_after_env_change"] = pl.read_csv(url).to_dicts()
    print(json.dumps(out))
""")


def _run_probe(env: dict[str, str], url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-c", _ENV_PROBE, url], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_standard_aws_variables_alone_configure_s3fs_and_polars(s3_store, fs, prefix):
    """A new process (a flow run on a worker) with only the env: both clients reach the store. Polars keeps the
    object store, credentials included, that it built on first use of a bucket: a later change of the env in the
    same process is not seen."""
    url = s3_store.url(prefix + "t.csv")
    fs.pipe(url, b"a\n1\n")

    result = _run_probe(s3_store.env(), url)

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {"s3fs": "a\n1\n", "polars": [{"a": 1}], "polars_write": [{"a": 2}],
                                         "polars_after_env_change": [{"a": 1}]}


def test_polars_reads_aws_endpoint_url_but_not_the_s3_specific_variable(s3_store, fs, prefix):
    """botocore also reads AWS_ENDPOINT_URL_S3; Polars (object_store) only AWS_ENDPOINT_URL, and without it goes to
    AWS itself (a DNS error here). AWS_ALLOW_HTTP and the region are not needed for an http:// endpoint."""
    url = s3_store.url(prefix + "t.csv")
    fs.pipe(url, b"a\n1\n")
    keys = {"AWS_ACCESS_KEY_ID": s3_store.access_key, "AWS_SECRET_ACCESS_KEY": s3_store.secret_key}

    assert _run_probe({**keys, "AWS_ENDPOINT_URL": s3_store.endpoint_url}, url).returncode == 0
    only_s3_specific = _run_probe({**keys, "AWS_ENDPOINT_URL_S3": s3_store.endpoint_url}, url)
    assert only_s3_specific.returncode != 0
    assert "s3.amazonaws.com" in only_s3_specific.stderr


# --- (c) conditional PUTs: a lease object and compare-and-swap --------------------------------------------------


def test_put_if_none_match_creates_once_then_fails_with_412(s3_store, prefix):
    client, key = s3_store.client(), prefix + "locks/Account.lease"

    first = client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"holder-1", IfNoneMatch="*")
    error = _client_error(lambda: client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"holder-2",
                                                    IfNoneMatch="*"))

    assert first["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (error["status"], error["Code"]) == (412, "PreconditionFailed")
    assert "Condition" not in error  # AWS names the failed header here; SeaweedFS does not (see the s3fs test)
    assert client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == b"holder-1"


def test_s3fs_exclusive_create_raises_oserror_einval_not_file_exists(s3_store, fs, prefix):
    """s3fs sends If-None-Match: * for ``pipe_file(mode="create")`` and ``open(mode="xb")`` (checked at close), and
    turns a 412 into FileExistsError only when the error names the If-None-Match condition, which SeaweedFS's
    does not: here it is OSError(EINVAL, <server message>)."""
    url = s3_store.url(prefix + "lease")
    fs.pipe_file(url, b"holder-1", mode="create")

    with pytest.raises(OSError, match="pre-conditions you specified did not hold") as by_pipe:
        fs.pipe_file(url, b"holder-2", mode="create")
    with pytest.raises(OSError) as by_open, fs.open(url, "xb") as out:
        out.write(b"holder-3")

    for caught in (by_pipe, by_open):
        assert type(caught.value) is OSError and caught.value.errno == errno.EINVAL
    assert fs.cat(url) == b"holder-1"


def test_only_one_of_concurrent_exclusive_creates_wins(s3_store, prefix):
    key, outcomes = prefix + "race.lease", []
    client = s3_store.client(max_pool_connections=8)  # botocore clients are thread-safe
    client.head_bucket(Bucket=s3_store.bucket)  # its first call loads the endpoint rules: not in 8 threads at once
    start = threading.Barrier(8)

    def contend(n: int) -> None:
        start.wait()
        try:
            client.put_object(Bucket=s3_store.bucket, Key=key, Body=str(n).encode(), IfNoneMatch="*")
            outcomes.append(("won", n))
        except ClientError as err:
            outcomes.append((err.response["Error"]["Code"], n))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [n for outcome, n in outcomes if outcome == "won"]
    assert len(winners) == 1, outcomes
    assert sorted(outcome for outcome, _ in outcomes) == ["PreconditionFailed"] * 7 + ["won"]
    assert client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == str(winners[0]).encode()


def test_put_and_delete_if_match_compare_and_swap_on_the_etag(s3_store, prefix):
    """If-Match: <etag> replaces (or deletes) only the version the caller read: a lease renewal or release that
    lost the lease fails with 412 instead of clobbering the new holder's."""
    client, key = s3_store.client(), prefix + "state.lease"
    etag_1 = client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"v1")["ETag"]

    etag_2 = client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"v2", IfMatch=etag_1)["ETag"]
    stale = _client_error(lambda: client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"v3", IfMatch=etag_1))
    absent = _client_error(lambda: client.put_object(Bucket=s3_store.bucket, Key=prefix + "none", Body=b"x",
                                                     IfMatch=etag_1))
    stale_delete = _client_error(lambda: client.delete_object(Bucket=s3_store.bucket, Key=key, IfMatch=etag_1))

    assert etag_2 != etag_1
    assert (stale["status"], stale["Code"]) == (412, "PreconditionFailed")
    assert (absent["status"], absent["Code"]) == (412, "PreconditionFailed")
    assert (stale_delete["status"], stale_delete["Code"]) == (412, "PreconditionFailed")
    assert client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == b"v2"
    assert client.delete_object(Bucket=s3_store.bucket, Key=key, IfMatch=etag_2)["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    assert client.list_objects_v2(Bucket=s3_store.bucket, Prefix=key)["KeyCount"] == 0


# --- (d) multipart uploads ----------------------------------------------------------------------------------------


def _uploads(client, bucket: str, prefix: str) -> list[tuple[str, str]]:
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [(u["Key"], u["UploadId"]) for u in listing.get("Uploads", [])]


def test_a_multipart_upload_is_invisible_until_completed(s3_store, prefix):
    client, key = s3_store.client(), prefix + "replica/big.parquet"
    part_1, part_2 = os.urandom(5 * MiB), os.urandom(MiB + 17)  # every part but the last must be >= 5 MiB
    upload_id = client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    etags = [client.upload_part(Bucket=s3_store.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
             for n, body in ((1, part_1), (2, part_2))]

    assert client.list_objects_v2(Bucket=s3_store.bucket, Prefix=prefix)["KeyCount"] == 0
    assert _client_error(lambda: client.head_object(Bucket=s3_store.bucket, Key=key))["status"] == 404
    assert _uploads(client, s3_store.bucket, prefix) == [(key, upload_id)]

    parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
    done = client.complete_multipart_upload(Bucket=s3_store.bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": parts})

    assert done["ETag"].endswith('-2"')  # a multipart ETag: md5 of the part md5s, dash, part count
    assert client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == part_1 + part_2
    assert _uploads(client, s3_store.bucket, prefix) == []


def test_an_incomplete_multipart_upload_is_listed_and_can_be_aborted(s3_store, prefix):
    client, key = s3_store.client(), prefix + "raw/Account.csv"
    upload_id = client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=s3_store.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * (5 * MiB))

    (listed,) = client.list_multipart_uploads(Bucket=s3_store.bucket, Prefix=prefix)["Uploads"]
    assert (listed["Key"], listed["UploadId"]) == (key, upload_id)
    assert listed["Initiated"].timestamp() == pytest.approx(time.time(), abs=120)  # for "stale after N hours"

    aborted = client.abort_multipart_upload(Bucket=s3_store.bucket, Key=key, UploadId=upload_id)

    assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert _uploads(client, s3_store.bucket, prefix) == []
    assert client.list_objects_v2(Bucket=s3_store.bucket, Prefix=prefix)["KeyCount"] == 0


def test_small_parts_are_refused_and_a_conditional_complete_keeps_the_old_object(s3_store, prefix):
    client, key = s3_store.client(), prefix + "state.json"
    client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"old")

    small_id = client.create_multipart_upload(Bucket=s3_store.bucket, Key=prefix + "small")["UploadId"]
    small = [{"PartNumber": n, "ETag": client.upload_part(Bucket=s3_store.bucket, Key=prefix + "small",
                                                          UploadId=small_id, PartNumber=n, Body=b"ab")["ETag"]}
             for n in (1, 2)]
    too_small = _client_error(lambda: client.complete_multipart_upload(
        Bucket=s3_store.bucket, Key=prefix + "small", UploadId=small_id, MultipartUpload={"Parts": small}))

    upload_id = client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    etag = client.upload_part(Bucket=s3_store.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                              Body=b"new")["ETag"]
    exists = _client_error(lambda: client.complete_multipart_upload(
        Bucket=s3_store.bucket, Key=key, UploadId=upload_id, IfNoneMatch="*",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}))

    assert (too_small["status"], too_small["Code"]) == (400, "EntityTooSmall")
    assert (exists["status"], exists["Code"]) == (412, "PreconditionFailed")
    assert client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == b"old"
    # a refused completion leaves its upload open (it still holds its parts): the writer must abort it
    assert sorted(k for k, _ in _uploads(client, s3_store.bucket, prefix)) == [prefix + "small", key]
    for k, upload in _uploads(client, s3_store.bucket, prefix):
        client.abort_multipart_upload(Bucket=s3_store.bucket, Key=k, UploadId=upload)
    assert _uploads(client, s3_store.bucket, prefix) == []


def test_s3fs_writes_a_big_file_by_multipart_and_shows_it_only_when_closed(s3_store, fs, prefix):
    url, data = s3_store.url(prefix + "raw/Opportunity.csv"), os.urandom(12 * MiB + 123)
    client = s3_store.client()

    with fs.open(url, "wb", block_size=5 * MiB) as out:
        out.write(data[: 6 * MiB])
        out.flush()  # uploads a 5 MiB part
        assert not fs.exists(url)
        assert [k for k, _ in _uploads(client, s3_store.bucket, prefix)] == [prefix + "raw/Opportunity.csv"]
        out.write(data[6 * MiB:])

    assert fs.cat(url) == data
    assert re.search(r'-[0-9]+"$', fs.info(url)["ETag"])  # a multipart ETag
    assert _uploads(client, s3_store.bucket, prefix) == []


# --- (e) credentials --------------------------------------------------------------------------------------------


def test_wrong_credentials_are_refused_with_an_error_that_names_the_cause(s3_store, fs, prefix):
    url = s3_store.url(prefix + "x.csv")
    fs.pipe(url, b"a\n1\n")
    wrong_secret = s3fs.S3FileSystem(**{**s3_store.storage_options(), "secret": "wrong"}, skip_instance_cache=True)
    unknown_key = s3fs.S3FileSystem(**{**s3_store.storage_options(), "key": "AKNOBODY"}, skip_instance_cache=True)
    anonymous = s3fs.S3FileSystem(anon=True, endpoint_url=s3_store.endpoint_url, skip_instance_cache=True)

    with pytest.raises(PermissionError, match="signature we calculated does not match"):
        wrong_secret.ls(s3_store.url(prefix))
    with pytest.raises(PermissionError, match="access key ID you provided does not exist"):
        unknown_key.pipe(s3_store.url(prefix + "y.csv"), b"x")
    with pytest.raises(PermissionError, match="Access Denied"):
        anonymous.ls(s3_store.url(prefix))
    with pytest.raises(PermissionError, match="SignatureDoesNotMatch"):
        FRAME.write_parquet(s3_store.url(prefix + "w.parquet"),
                            storage_options={**s3_store.polars_storage_options(), "aws_secret_access_key": "wrong"})
    with pytest.raises(PermissionError, match="InvalidAccessKeyId"):
        pl.read_parquet(url, storage_options={**s3_store.polars_storage_options(), "aws_access_key_id": "AKNOBODY"})
    assert fs.find(s3_store.url(prefix)) == [f"{s3_store.bucket}/{prefix}x.csv"]  # nothing was written


def test_a_head_request_cannot_say_why_it_was_refused(s3_store, fs, prefix):
    """A HEAD response has no body, so a refused HEAD reads only "403 Forbidden": s3fs's cat and Polars' read_csv
    start with one. Check credentials with a listing, which names SignatureDoesNotMatch or InvalidAccessKeyId."""
    url = s3_store.url(prefix + "x.csv")
    fs.pipe(url, b"x")
    bad_client = S3Store(endpoint_url=s3_store.endpoint_url, bucket=s3_store.bucket, access_key=s3_store.access_key,
                         secret_key="wrong").client()
    wrong_secret = s3fs.S3FileSystem(**{**s3_store.storage_options(), "secret": "wrong"}, skip_instance_cache=True)

    head = _client_error(lambda: bad_client.head_object(Bucket=s3_store.bucket, Key=prefix + "x.csv"))
    listing = _client_error(lambda: bad_client.list_objects_v2(Bucket=s3_store.bucket, Prefix=prefix))

    assert (head["status"], head["Code"], head["Message"]) == (403, "403", "Forbidden")
    assert (listing["status"], listing["Code"]) == (403, "SignatureDoesNotMatch")
    with pytest.raises(PermissionError, match="^Forbidden$"):
        wrong_secret.cat(url)
    with pytest.raises(PermissionError, match="HEAD .* 403 Forbidden: +\\(path"):
        pl.read_csv(url, storage_options={**s3_store.polars_storage_options(), "aws_secret_access_key": "wrong"})


# --- the harness itself ----------------------------------------------------------------------------------------


_OWNER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from tests.s3_server import run_s3_store
    with run_s3_store() as store:
        print(store.log.parent, flush=True)
        time.sleep(600)
""")


def _weed_pids(run_dir: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"^{WEED_BIN} -config_dir={run_dir}"], capture_output=True, text=True,
                           check=False)
    return [int(pid) for pid in found.stdout.split()]


def _wait_for(predicate, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.skipif(sys.platform != "linux", reason="finds weed with pgrep -f")
def test_no_weed_outlives_a_test_process_killed_with_its_process_group():
    project_root = str(Path(__file__).resolve().parents[2])
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, project_root], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert owner.stdout is not None
        run_dir = owner.stdout.readline().strip()
        assert run_dir, "the owner process did not start a store"
        assert len(_weed_pids(run_dir)) == 1
    finally:
        os.killpg(owner.pid, signal.SIGKILL)  # the owner and everything in its group; the watchdog has its own
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()

    assert _wait_for(lambda: not _weed_pids(run_dir)), f"weed still running for {run_dir}"
    assert _wait_for(lambda: not Path(run_dir).exists()), f"{run_dir} was not removed"

