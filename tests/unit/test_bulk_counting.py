"""Counting CSV records in streamed chunks: quoted newlines and doubled quotes are not record ends."""

from __future__ import annotations

import csv
import io

import pytest

from tasks.extract import count_records

ROWS = [["a", 'say "hi"\nthere', ""], ["b", "x,y", 'end"\n"'], ["c", "", "\n\n"]]


def _csv() -> bytes:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(ROWS)
    return buf.getvalue().encode()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1000])
def test_records_are_counted_across_any_chunking(chunk_size):
    data = _csv()
    total, in_quotes = 0, False
    for start in range(0, len(data), chunk_size):
        found, in_quotes = count_records(data[start:start + chunk_size], in_quotes)
        total += found
    assert (total, in_quotes) == (len(ROWS), False)


def test_a_page_cut_inside_a_value_ends_in_quotes():
    data = _csv()
    cut = data.index(b"there")
    found, in_quotes = count_records(data[:cut], False)
    assert (found, in_quotes) == (0, True)


def _reference_count(data: bytes) -> int:
    """Records as Python's csv module reads them."""
    return sum(1 for _ in csv.reader(io.StringIO(data.decode(), newline="")))


@pytest.mark.parametrize("seed", range(20))
def test_random_csv_in_random_chunks_matches_the_csv_module(seed):
    import random

    rng = random.Random(seed)
    alphabet = ['"', "\n", ",", "a", "é", " "]
    rows = [["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(3)]
            for _ in range(rng.randint(1, 40))]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode()
    total, in_quotes, start = 0, False, 0
    while start < len(data):
        size = rng.randint(1, 50)
        found, in_quotes = count_records(data[start:start + size], in_quotes)
        total, start = total + found, start + size
    assert (total, in_quotes) == (_reference_count(data), False) == (len(rows), False)
