"""Salesforce record Ids: 15-char key-prefixed ids plus the 3-char case-safe checksum, built vectorised."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
POD = b"EM0"  # instance + reserved chars of the 15-char id; constant for the whole emulated org


def checksum(id15: str) -> str:
    """The 3-char suffix that makes a 15-char id case-insensitively unique (Salesforce's algorithm)."""
    out = []
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]) if "A" <= ch <= "Z")
        out.append(chr(CHECKSUM_ALPHABET[bits]))
    return "".join(out)


def make_ids(prefix: str, numbers: np.ndarray, *, name: str = "Id") -> pl.Series:
    """18-char ids for record numbers (0-based) of the object with key ``prefix``; same number -> same id."""
    vals = np.asarray(numbers, dtype=np.int64) + 1
    n = len(vals)
    head = prefix.encode() + POD  # the 6 fixed chars
    table = np.frombuffer(BASE62, dtype=np.uint8)
    chk = np.frombuffer(CHECKSUM_ALPHABET, dtype=np.uint8)
    out = np.empty((n, 18), dtype=np.uint8)
    out[:, :6] = np.frombuffer(head, dtype=np.uint8)
    out[:, 6:15] = ord("0")
    # checksum chunks: chars 0-4, 5-9, 10-14; a chunk's bit i is set when its char i is upper case
    bits = [np.full(n, sum(1 << i for i, c in enumerate(head[:5]) if 65 <= c <= 90), dtype=np.uint8),
            np.full(n, 1 if 65 <= head[5] <= 90 else 0, dtype=np.uint8), np.zeros(n, dtype=np.uint8)]
    position = 14
    while n and vals.max() > 0:  # only the low digits vary: 62**4 already exceeds 14 million records
        digit = (vals % 62).astype(np.uint8)
        vals = vals // 62
        out[:, position] = table[digit]
        bits[position // 5] |= ((digit >= 10) & (digit < 36)).astype(np.uint8) << (position % 5)
        position -= 1
    for chunk in range(3):
        out[:, 15 + chunk] = chk[bits[chunk]]
    return _fixed_width_strings(name, out)


def _fixed_width_strings(name: str, chars: np.ndarray) -> pl.Series:
    """A String Series from an (n, width) ASCII byte matrix, via a zero-copy Arrow string array."""
    n, width = chars.shape
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int64)
    array = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])
    series = pl.from_arrow(array)
    assert isinstance(series, pl.Series)
    return series.alias(name)


def make_id(prefix: str, number: int) -> str:
    """One 18-char id (see ``make_ids``)."""
    return make_ids(prefix, np.array([number]))[0]
