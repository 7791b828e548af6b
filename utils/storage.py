"""Where the data root's bytes live: a local folder, or an object store (``s3://``, ``gs://``, ``az://``).

The pipeline reads and writes files under a local root as it always has. When the data root is a URL, that
local root is a scratch mirror (``$SF_PIPELINE_SCRATCH_DIR``, else a folder in the temp directory named after
the URL) and the store is the truth; this module is the one owner of the mapping between the two:

* ``publish(path)``: after a local atomic write, the complete file is uploaded (one PUT, or a multipart upload,
  which becomes visible only when complete): no reader of the store ever sees a partial object. A big file
  (``BACKGROUND_UPLOAD_MIN_BYTES``) is uploaded by the process's one upload thread while the run goes on; the
  store still sees every file after the files its writer published before it (see "Uploads in the background").
  A big file written front to back (``atomic_path(..., upload_while_written=True)``: a raw extract, dedup.csv)
  has its parts sent while it is written (``start_streaming_upload``); publishing it only completes the upload;
* ``fetch(path)``: before reading what another run or machine may have written (sync state, replica, row-count
  history, run records), the local copy is replaced by the store's, or removed when the store has none;
* ``list_files``, ``remove_file``, ``modified_at``: listings, deletions and ages act on the store;
* ``check_data_root``: one clear error when the store cannot be reached or refuses the credentials, before any
  Salesforce call.

Credentials are the store's standard ones (``AWS_*`` variables, ``AWS_ENDPOINT_URL`` for S3-compatible stores,
Google or Azure defaults); none of them is ever logged or written.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import mimetypes
import os
import re
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from utils.errors import PipelineError
from utils.streaming_upload import StreamingUpload

SCRATCH_ENV = "SF_PIPELINE_SCRATCH_DIR"
REMOTE_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "az", "abfs": "az", "abfss": "az",
                  "memory": "memory"}  # URL scheme -> fsspec protocol ("memory": tests of this module)
EXTRAS = {"s3": "s3", "gcs": "gcs", "az": "azure"}


class StorageError(PipelineError):
    """The data root's store cannot be used: unreachable, refused, or its filesystem package is missing."""


def is_remote(spec: str | os.PathLike[str]) -> bool:
    """Whether a data root is an object-store URL (``file://`` and plain paths are local)."""
    return urlsplit(os.fspath(spec)).scheme.lower() in REMOTE_SCHEMES


def local_path_of(spec: str | os.PathLike[str]) -> Path:
    """A local data root: a path, or a ``file://`` URL."""
    text = os.fspath(spec)
    parts = urlsplit(text)
    if parts.scheme.lower() == "file":
        return Path(parts.path)
    return Path(text)


@dataclass(frozen=True)
class Mirror:
    """One object-store data root and its local scratch mirror."""

    url: str  # normalised: scheme://bucket/prefix, no trailing slash
    local: Path
    protocol: str

    @property
    def fs(self) -> Any:
        return _filesystem(self.protocol)

    def key(self, path: Path) -> str:
        """The store's path of a file under the mirror (``bucket/prefix/raw/x.csv``, no scheme)."""
        base = self.url.split("://", 1)[1]
        relative = path.absolute().relative_to(self.local).as_posix()
        return base if relative == "." else f"{base}/{relative}"

    def local_of(self, key: str) -> Path:
        """The mirror path of a store path (as a listing names it: some filesystems add a leading slash)."""
        base = self.url.split("://", 1)[1]
        return self.local / key.lstrip("/")[len(base):].lstrip("/")


_MIRRORS: dict[Path, Mirror] = {}
_LOCK = threading.Lock()


def mirror_root(url: str) -> Path:
    """The local root standing for object-store data root ``url`` (registered, so writes under it are published)."""
    parts = urlsplit(url)
    protocol = REMOTE_SCHEMES[parts.scheme.lower()]
    normalised = f"{parts.scheme.lower()}://{parts.netloc}{parts.path}".rstrip("/")
    if not parts.netloc:
        msg = f"data root {url!r} names no bucket: write {parts.scheme}://<bucket>/<prefix>"
        raise StorageError(msg)
    from utils.settings import setting  # the environment, then .env

    scratch = setting(SCRATCH_ENV) or os.path.join(tempfile.gettempdir(), "sf-pipeline-scratch")
    local = (Path(scratch).expanduser().absolute()
             / hashlib.sha256(normalised.encode()).hexdigest()[:16])
    with _LOCK:
        _MIRRORS.setdefault(local, Mirror(normalised, local, protocol))
    return local


def mirror_of(path: str | os.PathLike[str]) -> Mirror | None:
    """The object-store mirror a local path belongs to, or None for a plain local file."""
    if not _MIRRORS:
        return None
    absolute = Path(path).absolute()
    for root, mirror in _MIRRORS.items():
        if absolute == root or root in absolute.parents:
            return mirror
    return None


def _filesystem(protocol: str) -> Any:
    """The fsspec filesystem of a protocol, with the standard credentials of the environment."""
    try:
        import fsspec
    except ImportError as err:  # pragma: no cover - fsspec comes with the pinned dependencies
        raise StorageError(f"fsspec is not installed ({err})") from None
    # listings must be fresh: another process or machine writes under the same prefix
    options: dict[str, Any] = {"use_listings_cache": False} if protocol != "memory" else {}
    if protocol == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        # passed explicitly (when set) so that fsspec's instance cache never serves a client built with older
        # credentials; otherwise botocore's default chain (profile, instance role) applies
        for option, variable in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"),
                                 ("token", "AWS_SESSION_TOKEN")):
            if os.environ.get(variable):
                options[option] = os.environ[variable]
    try:
        return fsspec.filesystem(protocol, **options)
    except (ImportError, ValueError) as err:
        extra = EXTRAS.get(protocol, protocol)
        msg = (f"a data root on {protocol} needs its filesystem package ({err}): "
               f"pip install 'sf-prefect-pipeline[{extra}]'")
        raise StorageError(msg) from None


# --- the operations the pipeline's I/O goes through ----------------------------------------------------------------
def location(path: str | os.PathLike[str]) -> str:
    """Where a file lives for a reader of the run's records: its store URL on an object-store data root (the
    scratch copy is the run's own), else its local path."""
    mirror = mirror_of(path)
    if mirror is None:
        return os.fspath(path)
    return f"{mirror.url.split('://', 1)[0]}://{mirror.key(Path(path))}"


def publish(path: str | os.PathLike[str], *, streaming: StreamingUpload | None = None) -> None:
    """Upload a complete local file to the store, if it lives under an object-store data root.

    A small file is in the store when this returns, after every file the same thread published before it; a big
    one is queued and uploaded while the caller goes on (that thread's next small publish, ``wait_for_uploads`` or
    a read of it waits for it). ``streaming``: the upload started while the file was written
    (``start_streaming_upload``), which this completes in the place the whole-file upload would have taken."""
    path = Path(path).absolute()
    mirror = mirror_of(path)
    if mirror is None:
        return
    try:
        if path.stat().st_size >= BACKGROUND_UPLOAD_MIN_BYTES:
            _queue_upload(mirror, path, streaming)
            return
        wait_for_own_uploads()  # a writer's files reach the store in its order: replica before state
    except BaseException:
        if streaming is not None:  # never handed to an upload: nothing else would stop it
            streaming.abandon()
        raise
    _upload(mirror, path, streaming)


def start_streaming_upload(path: str | os.PathLike[str],
                           target: str | os.PathLike[str]) -> StreamingUpload | None:
    """Start uploading ``path`` (being written, to become ``target``) before it is complete, for a big file written
    front to back (utils/streaming_upload.py); ``publish(target, streaming=...)`` completes it, ``abandon()``
    drops it. None where that does not apply: a local data root, or a store other than S3 (it uploads once
    complete)."""
    target = Path(target).absolute()
    mirror = mirror_of(target)
    if mirror is None or mirror.protocol != "s3":
        return None
    bucket, _, key = mirror.key(target).partition("/")
    return StreamingUpload(Path(path), bucket, key, functools.partial(_s3_call, mirror, "write"),
                           part_bytes=S3_PART_BYTES, content_type=_content_type(target))


def _upload(mirror: Mirror, path: Path, streaming: StreamingUpload | None = None) -> None:
    key = mirror.key(path)
    completed = streaming.finish(path) if streaming is not None else None
    if completed is not None:
        etag = completed.etag
    else:
        size = path.stat().st_size
        if mirror.protocol == "s3" and size < 2 * S3_PART_BYTES:
            written = guarded(mirror, "write", lambda: _put_object(mirror, path, key))
        else:
            options = _s3_upload_options(size) if mirror.protocol == "s3" else {}
            written = guarded(mirror, "write", lambda: mirror.fs.put_file(os.fspath(path), key, **options))
        etag = written.get("ETag") if isinstance(written, dict) else None
    # a single PUT's answer, and a streaming upload's completion, name the version they made: no HEAD after them.
    # A multipart upload's version is read by a HEAD after it, which would see a later writer's version if one
    # wrote in between (the scratch would then take that version for its own); the object's lease keeps other
    # writers of its files out until the upload is done
    _remember_version(mirror, path, {"ETag": etag} if etag else _file_info(mirror, key))


def _put_object(mirror: Mirror, path: Path, key: str) -> Any:
    """One PUT of a file under two parts (read whole, as s3fs's ``put_file`` would), with the content type
    ``put_file`` would give it; the store's answer (its ``ETag``)."""
    options: dict[str, Any] = {"chunksize": S3_PART_BYTES}  # s3fs PUTs in one request what is under two parts
    if content_type := _content_type(path):
        options["ContentType"] = content_type
    return mirror.fs.pipe_file(key, path.read_bytes(), **options)


def _content_type(path: Path) -> str | None:
    """The type s3fs's ``put_file`` gives an object, from its name (``text/csv``, ``application/json``...)."""
    return mimetypes.guess_type(os.fspath(path))[0]


def _s3_call(mirror: Mirror, action: str, method: str, **kwargs: Any) -> Any:
    """One S3 API call that s3fs has no method for (botocore's name: ``upload_part``...), from any thread; its
    answer. Errors as ``guarded``."""
    from fsspec.asyn import sync

    fs = mirror.fs
    return guarded(mirror, action, lambda: sync(fs.loop, fs._call_s3, method, **kwargs))


def _s3_upload_options(size: int) -> dict[str, int]:
    """s3fs's ``put_file`` options: parts of ``S3_PART_BYTES`` (more for a file that would need over 10,000
    parts, S3's limit, which s3fs checks only for its own default size), ``S3_UPLOAD_PARTS_AT_ONCE`` at a time."""
    return {"chunksize": max(S3_PART_BYTES, -(-size // S3_MAX_PARTS)), "max_concurrency": S3_UPLOAD_PARTS_AT_ONCE}


# s3fs sends a multipart upload's 50 MiB parts 10 at a time by default: 500 MiB in memory while QA holds its own
# peak. 2 at a time measured as fast on the loopback store, whose writes are the limit. Each part is read whole and
# copied once more on its way out (botocore wraps it in a BytesIO, aiohttp takes that one's buffer), so 50 MiB parts
# still added 200 MB to the peak; 16 MiB parts, measured on a 280 MiB CSV (5 interleaved uploads each): 16-64 MB
# added to the peak, 0.56 CPU-s an upload instead of 0.74 (fewer fresh pages to map), the store's CPU and the wall
# time unchanged. A file under two parts (32 MiB) goes in one PUT, read whole.
S3_UPLOAD_PARTS_AT_ONCE = 2
S3_PART_BYTES = 16 * 2**20
S3_MAX_PARTS = 10_000


# --- uploads in the background ---------------------------------------------------------------------------------
# A big file (a raw extract, the replica, the QA snapshot and dedup.csv) takes seconds to upload; the run goes on
# meanwhile (the sync merges while its raw CSV uploads, QA runs while the replica does). The rules that keep the
# store consistent:
# * one upload thread, first in first out, and a small publish first waits for every upload its own thread queued:
#   the store sees each writer's files in the order it published them (a sync's raw CSV and replica before its
#   sidecar and state, QA's snapshot before its report), so a crash at any point leaves what a synchronous writer
#   killed there would. Writers in other threads (Phase 1 beside QA, the other objects) do not wait for each other
#   (measured: QA's and Phase 1's small outputs waited 2-4 s each behind a 1M-row backfill's raw CSV); what commits
#   a whole run (its run record, a fan-out object run's part) calls ``wait_for_uploads`` first, and a landing
#   step or a lease holder ``wait_for_own_uploads`` before others read what it wrote;
# * a failed upload stops the queue: nothing queued after it is uploaded (a state never describes a replica that
#   did not reach the store), and every later publish, read of a queued file or ``wait_for_uploads`` raises it
#   until the next run's ``check_data_root`` (which raises it first if nobody has yet): it fails the run;
# * reading, listing or deleting a file with a queued upload waits for that upload; a lease on the store is
#   released only once the uploads made under it are done (utils/locks.py); a flow waits for every upload
#   before it ends (flows/common.py); the thread is not a daemon, so the interpreter finishes them before it exits;
# * a streaming upload (utils/streaming_upload.py) sends parts early but completes in this queue, in the place of
#   its file's whole-file upload, so these rules hold for it as they are; a publish that fails before handing it to
#   the queue, or a queue that stopped after a failure, abandons it (aborts its parts).
BACKGROUND_UPLOAD_MIN_BYTES = 8 * 2**20  # below this an upload costs less than the bookkeeping is worth
_QUEUED: dict[Path, tuple[Future[None], int]] = {}  # the last queued upload of each path and the thread that
#                                                     queued it, until someone waited for it
_FAILED: list[tuple[BaseException, bool]] = []  # (the first failed upload's error, whether it was reported)


@functools.cache
def _uploader() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-upload")  # one: uploads stay in order


def _queue_upload(mirror: Mirror, path: Path, streaming: StreamingUpload | None = None) -> None:
    _raise_failed_upload()

    def upload() -> None:
        if _FAILED:  # an earlier upload failed: publishing what followed it could break the order
            if streaming is not None:
                streaming.abandon()
            raise StorageError(f"{location(path)} was not uploaded: an upload before it failed")
        try:
            _upload(mirror, path, streaming)
        except BaseException as err:
            with _LOCK:
                _FAILED[:] = _FAILED or [(err, False)]
            raise

    with _LOCK:
        _QUEUED[path] = (_uploader().submit(upload), threading.get_ident())


def _settle(under: Path | None = None, *, writer: int | None = None) -> None:
    """Wait for the queued uploads (of ``under`` or files below it, of one ``writer`` thread; all of them if
    None); raise a failed one."""
    _wait_for_queued(under, writer)
    _raise_failed_upload()


def _wait_for_queued(under: Path | None, writer: int | None = None) -> None:
    with _LOCK:
        waiting = [(p, queued) for p, queued in _QUEUED.items()
                   if (under is None or p == under or under in p.parents) and writer in (None, queued[1])]
    for path, queued in waiting:
        queued[0].exception()  # waits; a failure is kept in _FAILED
        with _LOCK:
            if _QUEUED.get(path) is queued:
                del _QUEUED[path]


def wait_for_uploads() -> None:
    """Return once every file published so far is in the store; raise the error of a failed upload."""
    _settle()


def wait_for_own_uploads() -> None:
    """Return once every file this thread published is in the store (a step's writes, before others derive files
    from them or a lease it holds is released); raise the error of a failed upload."""
    _settle(writer=threading.get_ident())


def _raise_failed_upload() -> None:
    with _LOCK:
        if not _FAILED:
            return
        err, _ = _FAILED[0]
        _FAILED[0] = (err, True)
    raise StorageError(f"an upload to the store failed, so the run stopped publishing: {err}") from None


def _forget_reported_failure() -> None:
    """A new run starts clean once the failure was reported (to the run it broke) and the queue is idle."""
    _wait_for_queued(None)
    with _LOCK:
        if _FAILED and _FAILED[0][1] and not _QUEUED:
            _FAILED.clear()
    _raise_failed_upload()  # one nobody reported yet


def fetch(path: str | os.PathLike[str]) -> bool:
    """Make the local copy the store's current one (or absent if the store has none); whether it exists.

    A plain local file is left alone (its existence is returned)."""
    path = Path(path)
    mirror = mirror_of(path)
    if mirror is None:
        return path.is_file()
    _settle(path.absolute())  # our own upload of it first: the store's copy is then this scratch's
    from utils.atomic import temp_path_for  # its temp names: a crashed fetch is swept like a crashed write

    key = mirror.key(path)
    try:
        info = _file_info(mirror, key)
    except FileNotFoundError:
        path.unlink(missing_ok=True)
        _version_file(mirror, path).unlink(missing_ok=True)
        return False
    if path.is_file() and _remembered_version(mirror, path) == _version_of(info):
        return True  # the scratch already holds this version (written or fetched here): no download
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        guarded(mirror, "read", lambda: mirror.fs.get_file(key, os.fspath(tmp), **_download_options(mirror)))
    except FileNotFoundError:  # deleted between the two calls
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return False
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    _remember_version(mirror, path, info)
    return True


def _download_options(mirror: Mirror) -> dict[str, int]:
    """One stream from the store straight into the file. s3fs's default for a file over 50 MiB is ranged GETs of
    50 MiB, 10 at a time, each held whole in memory before it is written: measured on a 280 MiB CSV from the
    loopback store (4 downloads each, one per process), 278-450 MB added to the peak and 0.42-1.19 CPU-s in
    1.5-3.9 s, against nothing added and 0.14-0.21 CPU-s in 1.2-1.5 s for one stream. (Against S3 itself, far
    away, parallel ranges can be faster; a replica is fetched only when the scratch does not hold its version.)"""
    return {"max_concurrency": 1} if mirror.protocol == "s3" else {}


# Which version of each file the scratch holds (the store's ETag, or size and time where it has none), kept
# beside the mirror in ``<mirror>.versions/`` (outside it: never listed, swept or published), so that a process
# on a machine that already fetched or wrote a big replica does not download it again when the store still holds
# that version.
def _version_of(info: dict[str, Any]) -> str:
    etag = info.get("ETag") or info.get("etag")
    changed = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("created")
    return str(etag) if etag else f"{info.get('size')}:{changed}"


def _version_file(mirror: Mirror, path: Path) -> Path:
    return mirror.local.parent / f"{mirror.local.name}.versions" / path.absolute().relative_to(mirror.local)


def _remembered_version(mirror: Mirror, path: Path) -> str | None:
    try:
        return _version_file(mirror, path).read_text(encoding="utf-8")
    except OSError:
        return None


def _remember_version(mirror: Mirror, path: Path, info: dict[str, Any]) -> None:
    record = _version_file(mirror, path)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(_version_of(info), encoding="utf-8")
    os.replace(tmp, record)


def remove_file(path: str | os.PathLike[str]) -> bool:
    """Delete a file locally and in the store; whether either held it. A store that cannot be asked is a
    StorageError, as a failed deletion is."""
    path = Path(path)
    removed = False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        removed = True
    mirror = mirror_of(path)
    if mirror is not None:
        _settle(path.absolute())  # a queued upload would bring it back
        key = mirror.key(path)
        _version_file(mirror, path).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):  # S3 deletes are idempotent: ask first, to say the truth
            _file_info(mirror, key)
            guarded(mirror, "delete", lambda: mirror.fs.rm_file(key))
            removed = True
    return removed


def list_files(directory: str | os.PathLike[str], pattern: str = "*") -> list[Path]:
    """Files directly in ``directory`` whose names match a glob ``pattern``, as local paths (not downloaded)."""
    directory = Path(directory)
    mirror = mirror_of(directory)
    if mirror is None:
        return [p for p in directory.glob(pattern) if p.is_file()] if directory.is_dir() else []
    _settle(directory.absolute())
    names = _files_in(mirror, mirror.key(directory), name_prefix=re.split(r"[*?\[]", pattern, maxsplit=1)[0])
    return [mirror.local_of(name) for name in names if fnmatch.fnmatchcase(name.rsplit("/", 1)[-1], pattern)]


def modified_at(path: str | os.PathLike[str]) -> float:
    """The file's last change, seconds since the epoch (FileNotFoundError if absent)."""
    mirror = mirror_of(path)
    if mirror is None:
        return Path(path).stat().st_mtime
    _settle(Path(path).absolute())
    info = _file_info(mirror, mirror.key(Path(path)))
    stamp: Any = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("created")
    if hasattr(stamp, "timestamp"):
        return float(stamp.timestamp())
    return float(stamp or 0.0)


# A file's key is never a directory, and a directory is listed once: s3fs's ``info`` follows a missing key with a
# listing (is it a directory?), and its ``glob`` checks the directory and lists it up to three times, 2-5 requests
# where one does (each a round trip to a store that may be far away, and ~3 ms of the client's CPU).
def _file_info(mirror: Mirror, key: str) -> dict[str, Any]:
    """The store's facts about the file at ``key`` (``ETag``, ``LastModified``, ``size``); FileNotFoundError if
    there is none. On S3 one HEAD."""
    if mirror.protocol != "s3":
        info: dict[str, Any] = guarded(mirror, "read", lambda: mirror.fs.info(key))
        if info.get("type", "file") != "file":  # a directory: no file there
            raise FileNotFoundError(key)
        return info
    bucket, _, name = key.partition("/")
    head = _s3_call(mirror, "read", "head_object", Bucket=bucket, Key=name)
    return {"ETag": head.get("ETag"), "LastModified": head.get("LastModified"), "size": head.get("ContentLength")}


def _files_in(mirror: Mirror, key: str, *, name_prefix: str = "") -> list[str]:
    """The store paths of the files directly under the directory ``key`` (none if it is absent). One listing (s3fs
    lists the parent too when the directory is absent); on S3, of the names starting with ``name_prefix`` only
    (one object's raw CSVs, not every object's: a flat listing of that prefix, as every s3fs since 2021 makes it)."""
    def listing() -> list[dict[str, Any]]:
        if mirror.protocol == "s3" and name_prefix:
            return list(mirror.fs.find(key, prefix=name_prefix, detail=True).values())
        return list(mirror.fs.ls(key, detail=True))

    try:
        entries = guarded(mirror, "list", listing)
    except FileNotFoundError:
        return []
    directory = key.strip("/")
    return [entry["name"] for entry in entries
            if entry.get("type") == "file" and entry["name"].strip("/").rpartition("/")[0] == directory]


def abort_stale_uploads(directory: str | os.PathLike[str], *, older_than_seconds: float = 3600.0) -> int:
    """Abort the multipart uploads a killed writer left under an S3 data root (invisible, but billed); how many.

    An upload younger than ``older_than_seconds`` may belong to a run in progress and is left alone."""
    mirror = mirror_of(directory)
    if mirror is None or mirror.protocol != "s3":
        return 0
    bucket, _, prefix = mirror.key(Path(directory)).partition("/")
    listing = _s3_call(mirror, "list uploads", "list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    now, aborted = time.time(), 0
    for upload in listing.get("Uploads", []):
        started = upload.get("Initiated")
        if started is not None and now - started.timestamp() >= older_than_seconds:
            _s3_call(mirror, "abort an upload", "abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                     UploadId=upload["UploadId"])
            aborted += 1
    return aborted


def check_data_root(url: str) -> None:
    """Write, read and delete a probe object: one clear error before any Salesforce call if the store cannot
    be used (unreachable, refused credentials, missing bucket, missing package)."""
    local = mirror_root(url)
    mirror = _MIRRORS[local]
    _forget_reported_failure()
    probe = f"{mirror.key(local)}/.write-probe-{uuid.uuid4().hex[:12]}"
    try:
        mirror.fs.pipe_file(probe, b"")
        mirror.fs.rm_file(probe)
    except StorageError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure of the store becomes the one clear error
        raise StorageError(_store_error(mirror, "write a probe object", err)) from None


def guarded(mirror: Mirror, action: str, call: Any) -> Any:
    """Run a store call; FileNotFoundError passes, anything else becomes one StorageError naming the store and the
    action (its one clear error, never a traceback from the store's client)."""
    try:
        return call()
    except FileNotFoundError:
        raise
    except StorageError:
        raise
    except Exception as err:  # noqa: BLE001 - network, credentials, permissions: one clear error
        raise StorageError(_store_error(mirror, action, err)) from None


def _store_error(mirror: Mirror, action: str, err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    reason = f"{type(err).__name__}: {text}" if text else type(err).__name__
    lowered = reason.lower()
    if isinstance(err, PermissionError) or any(
            word in lowered for word in ("accessdenied", "access denied", "forbidden", "invalidaccesskeyid",
                                         "signature", "credentials", "unauthorized")):
        hint = "check the store's credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the cloud's defaults)"
    elif any(word in lowered for word in ("nosuchbucket", "bucket")):
        hint = "check that the bucket exists"
    else:
        hint = "check that the store is reachable (AWS_ENDPOINT_URL for an S3-compatible store) and try again"
    return f"the data root {mirror.url} cannot {action} ({reason}); {hint}"
