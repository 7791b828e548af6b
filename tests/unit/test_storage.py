"""The storage layer on fsspec's in-memory store (the S3 server tests are in tests/integration/test_s3_root.py):
an object-store data root is a scratch mirror whose writes are published complete, whose reads fetch the
store's copy, and whose listings, deletions and locks act on the store."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid

import fsspec
import pytest

from utils import storage
from utils.atomic import write_text_atomic
from utils.errors import ConfigError
from utils.housekeeping import ensure_data_root
from utils.locks import exclusive_lock
from utils.paths import build_sync_paths, resolve_data_root


@pytest.fixture()
def store_root(tmp_path, monkeypatch):
    """A fresh ``memory://`` data root and its scratch mirror under tmp_path."""
    monkeypatch.setenv(storage.SCRATCH_ENV, str(tmp_path / "scratch"))
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/prefix"
    return url, resolve_data_root(url), fsspec.filesystem("memory")


def test_local_roots_stay_local(tmp_path):
    assert not storage.is_remote(tmp_path) and not storage.is_remote(f"file://{tmp_path}")
    assert storage.is_remote("s3://bucket/x") and storage.is_remote("gs://b") and storage.is_remote("az://c/d")
    assert resolve_data_root(f"file://{tmp_path}/data") == tmp_path / "data"
    assert storage.mirror_of(tmp_path / "data" / "x.csv") is None


def test_a_write_is_published_and_a_read_fetches_the_stores_copy(store_root):
    url, root, fs = store_root
    assert root.is_relative_to(resolve_data_root(url).parent) and root == resolve_data_root(url)
    state = build_sync_paths("Account", data_root=url).state
    write_text_atomic(state, '{"v": 1}')
    key = url.split("://", 1)[1] + "/state/Account.json"
    assert fs.cat_file(key) == b'{"v": 1}'
    fs.pipe_file(key, b'{"v": 2}')  # another machine's run
    assert storage.fetch(state) and state.read_text() == '{"v": 2}'
    fs.rm_file(key)
    assert not storage.fetch(state) and not state.exists()  # the store is the truth: no stale local copy


def test_listing_and_deletion_act_on_the_store(store_root):
    url, root, fs = store_root
    base = url.split("://", 1)[1]
    for name in ("Account_20260101-000000_A.csv", "Account_20260102-000000_B.csv"):
        fs.pipe_file(f"{base}/raw/{name}", b"Id\n")
    listed = storage.list_files(root / "raw", "Account_*.csv")
    assert sorted(p.name for p in listed) == ["Account_20260101-000000_A.csv", "Account_20260102-000000_B.csv"]
    assert all(p.parent == root / "raw" and not p.exists() for p in listed)  # listed, not downloaded
    assert storage.remove_file(listed[0]) and not fs.exists(f"{base}/raw/{listed[0].name}")
    assert not storage.remove_file(listed[0])
    assert storage.modified_at(listed[1]) > time.time() - 60
    fs.pipe_file(f"{base}/raw/older/Account_x.csv", b"Id\n")  # a directory is neither listed nor a file to delete
    assert [p.name for p in storage.list_files(root / "raw", "*")] == ["Account_20260102-000000_B.csv"]
    assert not storage.remove_file(root / "raw" / "older") and fs.exists(f"{base}/raw/older/Account_x.csv")


def test_the_store_is_checked_before_anything_runs(store_root, monkeypatch):
    url, root, _ = store_root
    assert ensure_data_root(url) == root
    with pytest.raises(ConfigError, match="names no bucket"):  # one line at the run's start, no traceback
        ensure_data_root("s3://")
    monkeypatch.setattr(storage, "_filesystem", lambda protocol: (_ for _ in ()).throw(
        storage.StorageError(f"a data root on {protocol} needs its filesystem package: pip install x")))
    with pytest.raises(ConfigError, match="needs its filesystem package"):
        ensure_data_root("gs://some-bucket/data")


def test_locks_on_the_store_exclude_each_other_and_an_expired_lease_is_taken_over(store_root, monkeypatch):
    url, root, fs = store_root
    lock_path = root / "state" / "Account.lock"
    inside, overlaps = [], []

    def hold(n: int) -> None:
        with exclusive_lock(lock_path, what="test"):
            if inside:
                overlaps.append(n)
            inside.append(n)
            time.sleep(0.3)
            inside.remove(n)

    monkeypatch.setattr("utils.locks._LEASE_POLL_SECONDS", 0.05)
    threads = [threading.Thread(target=hold, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    key = url.split("://", 1)[1] + "/state/Account.lock"
    assert not fs.exists(key)  # released
    fs.pipe_file(key, json.dumps({"holder": "killed-host:1:x", "expires_at": time.time() - 1}).encode())
    started = time.monotonic()
    with exclusive_lock(lock_path, what="test"):
        assert json.loads(fs.cat_file(key))["holder"] != "killed-host:1:x"
    assert time.monotonic() - started < 5


def test_a_version_the_scratch_already_holds_is_not_downloaded_again(store_root, monkeypatch):
    url, root, fs = store_root
    replica = build_sync_paths("Account", data_root=url).replica
    write_text_atomic(replica, "v1")  # written here: the scratch holds the store's version
    downloads = []
    real_get = type(fs).get_file
    monkeypatch.setattr(type(fs), "get_file", lambda self, *a, **k: downloads.append(a) or real_get(self, *a, **k))
    assert storage.fetch(replica) and downloads == []
    fs.pipe_file(url.split("://", 1)[1] + "/replica/Account.parquet", b"v2")  # another machine's newer version
    assert storage.fetch(replica) and replica.read_text() == "v2" and len(downloads) == 1
    assert storage.fetch(replica) and len(downloads) == 1


def test_the_run_records_name_files_by_their_store_url(store_root):
    from utils.paths import display_path

    url, root, _ = store_root
    raw = root / "raw" / "Account_20260101-000000_A.csv"
    assert storage.location(raw) == f"{url}/raw/Account_20260101-000000_A.csv"
    assert display_path(storage.location(raw), url) == "raw/Account_20260101-000000_A.csv"
    assert display_path(raw, url) == "raw/Account_20260101-000000_A.csv"
    assert storage.location("/elsewhere/x.csv") == "/elsewhere/x.csv"


# --- big files upload in the background (utils/storage.py, "uploads in the background") --------------------------
@pytest.fixture()
def held_uploads(store_root, monkeypatch):
    """Every file of 4 bytes or more uploads in the background, and each upload of a key whose name is in
    ``held`` waits until the test sets ``release``; ``order`` lists the keys as they reach the store."""
    url, root, fs = store_root
    monkeypatch.setattr(storage, "BACKGROUND_UPLOAD_MIN_BYTES", 4)
    held, release, order = set(), threading.Event(), []
    real_put = type(fs).put_file

    def put_file(self, lpath, rpath, *args, **kwargs):
        if any(rpath.endswith(name) for name in held):
            assert release.wait(10)
        real_put(self, lpath, rpath, *args, **kwargs)
        order.append(rpath.rsplit("/", 1)[-1])

    monkeypatch.setattr(type(fs), "put_file", put_file)
    yield url, root, fs, held, release, order
    release.set()
    with contextlib.suppress(storage.StorageError):
        storage.check_data_root(url)  # the next run starts clean (a reported failure is forgotten)


def test_the_state_never_reaches_the_store_before_the_replica_it_describes(held_uploads):
    """One writer (a sync's thread): its state waits behind its replica's upload. Another writer's small file (Phase
    1's summary, in its own thread) does not wait for it; the run record waits for everything."""
    url, root, fs, held, release, order = held_uploads
    paths = build_sync_paths("Account", data_root=url)
    held.add("Account.parquet")
    replica_queued = threading.Event()

    def sync() -> None:
        write_text_atomic(paths.replica, "the replica's rows")  # big: queued, and held
        replica_queued.set()
        write_text_atomic(paths.state, "{}")  # small: waits its turn

    writer = threading.Thread(target=sync)
    writer.start()
    assert replica_queued.wait(10)
    writer.join(0.2)
    assert writer.is_alive() and order == []  # neither is in the store: the state waits behind the replica
    other = root / "output" / "Account" / "summary.json"
    write_text_atomic(other, "[]")  # another thread's small file: at once
    assert order == ["summary.json"]
    record = threading.Thread(target=storage.wait_for_uploads)  # what a run record's writer calls first
    record.start()
    record.join(0.2)
    assert record.is_alive()
    release.set()
    writer.join(10)
    record.join(10)
    assert order == ["summary.json", "Account.parquet", "Account.json"]
    assert storage.fetch(paths.replica) and paths.replica.read_text() == "the replica's rows"  # no download needed


def test_a_failed_upload_fails_the_run_and_nothing_queued_after_it_reaches_the_store(held_uploads, monkeypatch):
    url, root, fs, held, release, order = held_uploads
    paths = build_sync_paths("Account", data_root=url)
    monkeypatch.setattr(storage, "_remember_version", lambda mirror, path, info: (_ for _ in ()).throw(
        OSError("connection reset")) if path.name == "Account.parquet" else None)
    held.add("Account.parquet")
    write_text_atomic(paths.replica, "the replica's rows")
    write_text_atomic(paths.replica_schema, "the sidecar")  # big too: queued behind the replica
    release.set()
    with pytest.raises(storage.StorageError, match="connection reset"):
        write_text_atomic(paths.state, "{}")
    with pytest.raises(storage.StorageError, match="connection reset"):  # every later barrier says so too
        storage.wait_for_uploads()
    assert "Account.schema.json" not in order and "Account.json" not in order
    storage.check_data_root(url)  # the next run: reported once, the queue idle, so it starts clean
    write_text_atomic(paths.state, "{}")
    assert order[-1] == "Account.json"


def test_a_lease_is_released_only_once_what_was_written_under_it_is_in_the_store(held_uploads):
    url, root, fs, held, release, order = held_uploads
    paths = build_sync_paths("Account", data_root=url)
    lease_key = url.split("://", 1)[1] + "/state/Account.lock"
    body_done = threading.Event()

    def sync() -> None:
        with exclusive_lock(paths.state.with_suffix(".lock"), what="test"):
            write_text_atomic(paths.replica, "the replica's rows")
            body_done.set()

    held.add("Account.parquet")
    holder = threading.Thread(target=sync)
    holder.start()
    assert body_done.wait(10)
    holder.join(0.2)
    assert holder.is_alive() and fs.exists(lease_key)  # the next holder would read the old replica: still held
    release.set()
    holder.join(10)
    assert order[-1] == "Account.parquet" and not fs.exists(lease_key)


def test_an_s3_upload_keeps_its_parts_small_unless_s3s_10000_part_limit_needs_bigger_ones():
    assert storage._s3_upload_options(40 * 2**20) == {"chunksize": storage.S3_PART_BYTES,
                                                      "max_concurrency": storage.S3_UPLOAD_PARTS_AT_ONCE}
    huge = storage.S3_PART_BYTES * storage.S3_MAX_PARTS + 1
    part = storage._s3_upload_options(huge)["chunksize"]
    assert part > storage.S3_PART_BYTES and -(-huge // part) == storage.S3_MAX_PARTS
