"""The part sizes of an upload that follows a growing file (utils/streaming_upload.py); the upload itself is tested
against a real S3 server in tests/integration/test_s3_uploads.py."""

from __future__ import annotations

from utils.streaming_upload import next_part_sizes

MiB, GiB, TiB = 2**20, 2**30, 2**40
S3_MAX_PARTS, S3_MAX_PART = 10_000, 5 * GiB


def test_while_the_file_grows_only_whole_parts_go_at_most_so_many_at_a_time():
    assert next_part_sizes(0, 15 * MiB, part_bytes=16 * MiB, at_most=2, final=False) == []
    assert next_part_sizes(0, 40 * MiB, part_bytes=16 * MiB, at_most=2, final=False) == [16 * MiB, 16 * MiB]
    assert next_part_sizes(0, 40 * MiB, part_bytes=16 * MiB, at_most=1, final=False) == [16 * MiB]
    assert next_part_sizes(32 * MiB, 40 * MiB, part_bytes=16 * MiB, at_most=2, final=False) == []


def test_once_the_file_is_complete_the_last_part_may_be_short():
    assert next_part_sizes(32 * MiB, 40 * MiB, part_bytes=16 * MiB, at_most=2, final=True) == [8 * MiB]
    assert next_part_sizes(0, 40 * MiB, part_bytes=16 * MiB, at_most=3, final=True) == [16 * MiB, 16 * MiB,
                                                                                         8 * MiB]
    assert next_part_sizes(40 * MiB, 40 * MiB, part_bytes=16 * MiB, at_most=2, final=True) == []


def test_parts_grow_with_the_file_so_that_the_biggest_object_s3_takes_fits_its_part_limits():
    """16 MiB parts would stop at 10,000 parts (156 GiB); a part is at least 1/1000 of what was sent before it."""
    sent, parts, biggest = 0, 0, 0
    while sizes := next_part_sizes(sent, 5 * TiB, part_bytes=16 * MiB, at_most=2, final=True):
        sent, parts, biggest = sent + sum(sizes), parts + len(sizes), max(biggest, *sizes)
    assert sent == 5 * TiB
    assert parts <= S3_MAX_PARTS and biggest <= S3_MAX_PART
