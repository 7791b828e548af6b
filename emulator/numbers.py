"""Doubles as Salesforce writes them: Java's ``Double.toString``, in REST JSON, Bulk CSV and Bulk JSON alike.

Java writes a double of magnitude 1e-3 <= |x| < 1e7 (and zero) in plain decimal notation with at least one digit after
the point (``465590.0``, ``0.001``), and anything else in computerized scientific notation: one digit, a point, at
least one more digit, ``E`` and the exponent without a plus sign (``4.6559E8``, ``1.0E7``, ``-1.23456789E8``,
``1.0E-4``). The digits are the shortest that round-trip (Java 19 and later; Python's ``repr`` has the same digits).

Two forms of the one rule: ``java_double`` for a Python float, ``java_double_expr`` for a Polars Float64 column
(vectorised: it rewrites Polars' own shortest text, so the digits are exact, never recomputed by arithmetic).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import polars as pl

PLAIN_MIN, PLAIN_MAX = 1e-3, 1e7  # Java's plain-notation range for |x|


def needs_exponent(value: float) -> bool:
    """Whether Java writes this double in scientific notation."""
    return value != 0 and math.isfinite(value) and not PLAIN_MIN <= abs(value) < PLAIN_MAX


def java_double(value: float) -> str:
    """``Double.toString(value)``: ``465590.0``, ``4.6559E8``, ``1.0E-4``, ``-0.0``, ``NaN``, ``Infinity``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if not needs_exponent(value):
        return repr(value)  # Python writes this range in plain notation, with Java's digits
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = "".join(map(str, digit_tuple))
    power = len(digits) - 1 + exponent
    digits = digits.rstrip("0")
    return f"{'-' if sign else ''}{digits[0]}.{digits[1:] or '0'}E{power}"


def exponent_mask(col: pl.Expr) -> pl.Expr:
    """True where Java writes the value in scientific notation (null stays null)."""
    magnitude = col.abs()
    return (col != 0) & col.is_finite() & ((magnitude < PLAIN_MIN) | (magnitude >= PLAIN_MAX))


def java_double_series(values: pl.Series) -> pl.Series:
    """A Float64 Series as Java's text (Utf8), null for null.

    Polars writes the shortest round-trip digits: in Java's plain range that text is already Java's. Only the values
    outside it are rewritten, from Polars' plain (``465590000.0``, ``0.0001234``) or exponent form (``1.5e+300``,
    ``1e-7``): digits and decimal exponent reassembled as Java writes them, with literal string operations on
    materialised Series (no regex, nothing computed twice)."""
    text = values.cast(pl.Utf8)
    where = pl.select(exponent_mask(pl.lit(values)).fill_null(False)).to_series().arg_true()
    if where.len() == 0:
        return text
    chosen = text.gather(where)
    negative = chosen.str.starts_with("-")
    body = chosen.str.strip_prefix("-").str.split_exact("e", 1)
    shift = body.struct.field("field_1").cast(pl.Int64).fill_null(0)  # "+300", "-7"
    mantissa = body.struct.field("field_0").str.split_exact(".", 1)
    whole = mantissa.struct.field("field_0")
    digits = whole + mantissa.struct.field("field_1").fill_null("")
    significant = digits.str.strip_chars_start("0")
    # digits before the point raise the exponent, zeros after it (0.000123) lower it
    power = (whole.str.len_chars().cast(pl.Int64) - 1 + shift
             - (digits.str.len_chars() - significant.str.len_chars()).cast(pl.Int64))
    significant = significant.str.strip_chars_end("0")
    rest = significant.str.slice(1)
    scientific = pl.select(pl.concat_str([
        pl.when(pl.lit(negative)).then(pl.lit("-")).otherwise(pl.lit("")), pl.lit(significant.str.slice(0, 1)),
        pl.lit("."), pl.when(pl.lit(rest) == "").then(pl.lit("0")).otherwise(pl.lit(rest)), pl.lit("E"),
        pl.lit(power.cast(pl.Utf8))])).to_series()
    return text.scatter(where, scientific)


def java_double_expr(col: pl.Expr) -> pl.Expr:
    """A Float64 expression as Java's text (Utf8): ``java_double_series`` on each batch, so usable inside struct
    and list expressions."""
    return col.map_batches(java_double_series, return_dtype=pl.Utf8)


# --- JSON: a double as a number token in Java's text --------------------------------------------------------------
# JSON encoders (Polars' json_encode, json.dumps) write floats their own way (465590000.0). A value Java writes with an
# exponent is therefore encoded as a string marked by a leading U+0001, which every JSON encoder escapes as \u0001,
# and the quotes and mark are then dropped from the encoded text: "\u00014.6559E8" -> 4.6559E8. Only a stored string
# that is exactly U+0001 followed by a number could be mistaken for one, and it would still be valid JSON.
MARK = "\x01"
_MARKED = r'"\\u0001(-?[0-9][0-9.E-]*)"'
_MARKED_RE = re.compile(_MARKED)
_MARK_JSON = "\\u0001"


def marked_double_expr(col: pl.Expr) -> pl.Expr:
    """A Float64 expression as a marked string for a JSON encoder (null stays null); see ``unmark_json``."""
    return pl.concat_str([pl.lit(MARK), java_double_expr(col)])


def unmark_json(encoded: pl.Series) -> pl.Series:
    """Encoded JSON texts with every marked double turned back into a bare number token in Java's text."""
    if not encoded.str.contains(_MARK_JSON, literal=True).any():
        return encoded
    return encoded.str.replace_all(_MARKED, "$1")


def _marked(value: Any) -> tuple[Any, bool]:
    if isinstance(value, float) and needs_exponent(value):
        return MARK + java_double(value), True
    if isinstance(value, dict):
        pairs = [(k, _marked(v)) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, any(found for _, (_, found) in pairs)
    if isinstance(value, (list, tuple)):
        items = [_marked(v) for v in value]
        return [v for v, _ in items], any(found for _, found in items)
    return value, False


def dumps_json(payload: Any) -> bytes:
    """Compact JSON (no spaces, UTF-8 rather than ``\\u`` escapes) with doubles as Java writes them."""
    marked, found = _marked(payload)
    text = json.dumps(marked, ensure_ascii=False, separators=(",", ":"))
    return (_MARKED_RE.sub(r"\1", text) if found else text).encode()


def exponent_columns(frame: pl.DataFrame) -> frozenset[str]:
    """The float columns of ``frame`` holding at least one value Java writes with an exponent."""
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    if not floats:
        return frozenset()
    found = frame.select(exponent_mask(pl.col(name)).any().alias(name) for name in floats).row(0, named=True)
    return frozenset(name for name, any_found in found.items() if any_found)
