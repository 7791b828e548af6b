"""An S3 multipart upload fed while its file is still being written, so that a big file is mostly in the store
by the time its writer closes it.

A raw extract's CSV grows for as long as Salesforce sends pages, and QA's ``dedup.csv`` as long as Polars writes
it; uploaded only once complete, a 270 MB file kept a 1M-row run waiting seconds on the loopback store (the
sync's state waits for its raw CSV). Here a thread follows the file while it grows and sends each complete part as
soon as it is on disk; what is left when the writer is done is sent by ``finish``, which completes the upload.
The rules:

* the store shows nothing until ``finish`` completes the upload (S3 keeps parts invisible), so readers never see a
  partial object, and ``finish`` runs in the data root's upload queue, where the whole-file upload would run: the
  order in which a writer's files become visible is unchanged (utils/storage.py);
* only bytes below the file's size are read, and ``finish`` checks each sent part against the finished file (its
  CRC32, the file's device and inode): a writer that rewrote or replaced what was already sent gets ``None`` and
  the caller uploads the whole file instead. So does any failure while following (a lost connection, an upload
  aborted by another run's sweep of uploads older than an hour): following is only ever an early start, never a
  second way to be wrong;
* ``abandon`` (the writer failed) stops the thread and aborts the upload; a killed process leaves it to the sweep
  of stale uploads (``storage.abort_stale_uploads``);
* memory: parts are read from the file only by the process's ``PARTS_IN_FLIGHT`` senders, shared by every
  streaming upload, so at most that many parts are held at once (16 MiB each until a file passes 16 GiB).
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.05  # how often the follower looks at the file's size when no complete part is waiting
MAX_SENT_PER_PART = 1000  # a part is at least 1/1000 of what was sent before it (see next_part_sizes)
MAX_PART_BYTES = 5 * 2**30  # S3's largest part
PARTS_IN_FLIGHT = 2  # parts read and being sent at once, across every streaming upload of the process
_SENDERS = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="store-part")


def next_part_sizes(sent: int, size: int, *, part_bytes: int, at_most: int, final: bool) -> list[int]:
    """The sizes of the next parts (up to ``at_most``) of a file now ``size`` bytes long of which ``sent`` went
    already: whole parts only while it grows, the short last one too once it is ``final``. A part is at least
    ``part_bytes`` and 1/``MAX_SENT_PER_PART`` of what went before it (at most 5 GiB), so a file of any size S3
    takes (5 TiB) fits in its 10,000 parts."""
    sizes: list[int] = []
    while len(sizes) < at_most:
        part = min(max(part_bytes, sent // MAX_SENT_PER_PART), MAX_PART_BYTES)
        left = size - sent
        if left <= 0 or (left < part and not final):
            break
        sizes.append(min(part, left))
        sent += sizes[-1]
    return sizes


@dataclass(frozen=True)
class Completed:
    """The store's answer to a completed upload: the version it made (None if it named none)."""

    etag: str | None


@dataclass(frozen=True)
class _SentPart:
    number: int
    offset: int
    size: int
    crc: int
    etag: str


class StreamingUpload:
    """Follows ``path`` (created by its writer, possibly later) and uploads it to ``bucket/key`` part by part.

    ``call(method, **kwargs)`` runs one S3 API call (botocore's names, e.g. ``upload_part``) and returns its
    answer; ``part_bytes`` is the smallest part (S3's floor is 5 MiB for every part but the last); ``content_type``
    is the object's."""

    def __init__(self, path: Path, bucket: str, key: str, call: Callable[..., dict[str, Any]], *,
                 part_bytes: int, content_type: str | None = None) -> None:
        self.path, self.bucket, self.key, self.content_type = path, bucket, key, content_type
        self._call, self.part_bytes = call, part_bytes
        self._parts: list[_SentPart] = []
        self._upload_id: str | None = None
        self._fd: int | None = None  # the file followed, open from the moment its writer created it
        self._failed: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"store-follow-{path.name}", daemon=True)
        self._thread.start()

    # --- while the writer writes (the follower thread) ---------------------------------------------------------

    def _follow(self) -> None:
        try:
            while not self._stop.is_set():
                if self._fd is None:
                    with contextlib.suppress(FileNotFoundError):
                        self._fd = os.open(self.path, os.O_RDONLY)
                elif sizes := self._next_parts(os.fstat(self._fd).st_size, final=False):
                    self._send(self._fd, sizes)
                    continue
                self._stop.wait(POLL_SECONDS)
        except BaseException as err:  # noqa: BLE001 - kept: ``finish`` falls back to the whole-file upload
            self._failed = err

    def _sent_bytes(self) -> int:
        return self._parts[-1].offset + self._parts[-1].size if self._parts else 0

    def _next_parts(self, size: int, *, final: bool) -> list[int]:
        return next_part_sizes(self._sent_bytes(), size, part_bytes=self.part_bytes, at_most=PARTS_IN_FLIGHT,
                               final=final)

    def _send(self, fd: int, sizes: list[int]) -> None:
        """Send the next parts of the file, side by side; return once every one is answered (none in flight)."""
        if self._upload_id is None:
            extra = {"ContentType": self.content_type} if self.content_type else {}
            self._upload_id = self._call("create_multipart_upload", Bucket=self.bucket, Key=self.key,
                                         **extra)["UploadId"]
        upload_id, offset, number, jobs = self._upload_id, self._sent_bytes(), len(self._parts) + 1, []

        def send(number: int, offset: int, size: int) -> _SentPart:
            data = os.pread(fd, size, offset)  # read by the sender: only parts in flight are in memory
            if len(data) != size:
                msg = f"{self.path.name} shrank while it was uploaded"
                raise OSError(msg)
            answer = self._call("upload_part", Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                                PartNumber=number, Body=data)
            return _SentPart(number, offset, size, zlib.crc32(data), answer["ETag"])

        for size in sizes:
            jobs.append(_SENDERS.submit(send, number, offset, size))
            offset, number = offset + size, number + 1
        wait(jobs)  # all of them, even when one failed: an abort must not race a part still on its way
        self._parts.extend(job.result() for job in jobs)

    # --- once the writer is done (the caller's thread) ---------------------------------------------------------

    def finish(self, final: Path) -> Completed | None:
        """Send the rest of ``final`` (the finished file: ``path`` renamed) and complete the upload; None when
        nothing was sent or what was sent cannot be used (the started upload is then aborted): the caller uploads
        the whole file."""
        self._stop_following()
        try:
            if self._failed is not None or self._fd is None or self._upload_id is None \
                    or not self._sent_parts_match(self._fd, final):
                self._abort_quietly()
                return None
            size = os.fstat(self._fd).st_size
            while sizes := self._next_parts(size, final=True):
                self._send(self._fd, sizes)
            parts = [{"PartNumber": p.number, "ETag": p.etag} for p in self._parts]
            answer = self._call("complete_multipart_upload", Bucket=self.bucket, Key=self.key,
                                UploadId=self._upload_id, MultipartUpload={"Parts": parts})
        except Exception:  # noqa: BLE001 - the whole-file upload is the way that reports a store's failure
            self._abort_quietly()
            return None
        except BaseException:
            self._abort_quietly()
            raise
        finally:
            self._close()
        return Completed(answer.get("ETag"))

    def abandon(self) -> None:
        """The writer failed: stop following and abort what was sent. Safe to call more than once."""
        try:
            self._stop_following()
        finally:
            self._abort_quietly()
            self._close()

    def _stop_following(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sent_parts_match(self, fd: int, final: Path) -> bool:
        """The finished file is the one followed (same device and inode) and still holds every sent part's
        bytes."""
        now, followed = final.stat(), os.fstat(fd)
        if (now.st_dev, now.st_ino) != (followed.st_dev, followed.st_ino):
            return False
        return all(zlib.crc32(os.pread(fd, p.size, p.offset)) == p.crc for p in self._parts)

    def _abort_quietly(self) -> None:
        """Abort the started upload, if any; best effort: the sweep of stale uploads catches what is left."""
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(Exception):
                self._call("abort_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=upload_id)

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
