"""utils/jsonio: every value type's JSON form, strictness, and atomic writes."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum

import numpy as np
import polars as pl
import pytest

from utils.atomic import is_temp_path
from utils.jsonio import dumps_json, dumps_records, format_datetime_utc, to_jsonable, write_json_atomic


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (False, False),
        (0, 0),
        (-(2**63), -(2**63)),
        (10**30, 10**30),  # Python ints are unbounded; JSON numbers are too
        (1.5, 1.5),
        (-0.0, -0.0),
        ("", ""),
        ("Zoë, \"quoted\"\nline", "Zoë, \"quoted\"\nline"),
    ],
)
def test_plain_json_values_pass_through(value, expected):
    out = to_jsonable(value)
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")])
def test_nan_and_infinity_become_null(value):
    assert to_jsonable(value) is None


def test_date_is_iso_day():
    assert to_jsonable(date(2024, 2, 29)) == "2024-02-29"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 1, 12, 0, 0), "2024-01-01T12:00:00Z"),  # naive = UTC
        (datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc), "2024-01-01T12:00:00Z"),
        (datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=timezone.utc), "2024-01-01T12:00:00.123Z"),
        (datetime(2024, 1, 1, 12, 0, 0, 5000), "2024-01-01T12:00:00.005Z"),
        (datetime(2024, 1, 1, 12, 0, 0, 123456), "2024-01-01T12:00:00.123456Z"),  # sub-ms kept, not cut
        # aware, non-UTC: converted (crossing midnight and the year)
        (datetime(2024, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), "2023-12-31T23:30:00Z"),
        (datetime(2024, 6, 1, 8, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-5))),
         "2024-06-01T13:00:00.250Z"),
    ],
)
def test_datetime_is_iso_utc_with_z(value, expected):
    assert to_jsonable(value) == expected
    assert format_datetime_utc(value) == expected


@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        (Decimal("1500"), 1500, int),
        (Decimal("1500.00"), 1500, int),  # integral despite the scale
        (Decimal("1E+3"), 1000, int),
        (Decimal("-12.25"), -12.25, float),
        (Decimal("0.1"), 0.1, float),
    ],
)
def test_decimal_becomes_int_when_integral_else_float(value, expected, kind):
    out = to_jsonable(value)
    assert out == expected
    assert type(out) is kind


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_decimal_becomes_null(value):
    assert to_jsonable(value) is None


@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        (np.int64(-7), -7, int),
        (np.uint32(7), 7, int),
        (np.int8(3), 3, int),
        (np.float64(2.5), 2.5, float),
        (np.float32(0.5), 0.5, float),
        (np.bool_(True), True, bool),
        (np.bool_(False), False, bool),
    ],
)
def test_numpy_scalars_become_python_scalars(value, expected, kind):
    out = to_jsonable(value)
    assert out == expected
    assert type(out) is kind


def test_polars_values_become_python_values():
    frame = pl.DataFrame({"n": [1], "f": [0.25], "b": [True], "d": [date(2024, 1, 2)]})
    row = frame.row(0, named=True)
    assert to_jsonable(row) == {"n": 1, "f": 0.25, "b": True, "d": "2024-01-02"}
    assert to_jsonable(pl.Series([1, None, 3])) == [1, None, 3]


def test_bytes_become_base64_text():
    assert to_jsonable(b"\x00\xffhi") == "AP9oaQ=="
    assert to_jsonable(bytearray(b"abc")) == "YWJj"


def test_containers_are_converted_recursively():
    value = {"a": [1, (np.int64(2), {"d": date(2024, 1, 1)})], "b": {"c": [math.nan, Decimal("2")]}}
    assert to_jsonable(value) == {"a": [1, [2, {"d": "2024-01-01"}]], "b": {"c": [None, 2]}}


class _Colour(Enum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1, 2}, "set"), (time(12, 0), "time"), (_Colour.RED, "_Colour"), (object(), "object"),
     (timedelta(seconds=1), "timedelta"), ([1, {"x": frozenset()}], "frozenset")],
)
def test_unknown_types_raise_type_error_naming_the_type(value, type_name):
    with pytest.raises(TypeError, match=type_name):
        to_jsonable(value)


def test_non_string_dict_keys_are_refused():
    with pytest.raises(TypeError, match="keys must be str"):
        to_jsonable({1: "a"})


def test_dumps_records_is_strict_utf8_json_array_keeping_key_order():
    records = [{"z": 1, "a": "Müller 東京", "n": math.nan}, {"z": 2, "a": None, "n": 1.0}]
    text = dumps_records(records)
    assert "Müller 東京" in text  # ensure_ascii=False
    assert "NaN" not in text
    parsed = json.loads(text)
    assert parsed == [{"z": 1, "a": "Müller 東京", "n": None}, {"z": 2, "a": None, "n": 1.0}]
    assert list(parsed[0]) == ["z", "a", "n"]
    assert dumps_records([]).strip() == "[]"


def test_dumps_json_never_emits_non_standard_tokens():
    # The conversion already nulls non-finite floats; allow_nan=False backs it up for anything that slips by.
    text = dumps_json({"values": [math.inf, -math.inf, math.nan]})
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard token {token}"))


def test_write_json_atomic_writes_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "summary.json"
    write_json_atomic(target, [{"a": date(2024, 1, 1)}])
    assert json.loads(target.read_text(encoding="utf-8")) == [{"a": "2024-01-01"}]
    assert [p for p in target.parent.iterdir() if is_temp_path(p)] == []


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    write_json_atomic(target, [{"a": 1}])
    before = target.read_bytes()
    with pytest.raises(TypeError, match="set"):
        write_json_atomic(target, [{"a": {1, 2}}])
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
