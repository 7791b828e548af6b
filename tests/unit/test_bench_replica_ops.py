"""The replica operations benchmark's pure parts: the synthetic records, what each operation must produce, and the
checks that turn a wrong result into an error."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from benchmarks.bench_replica_ops import (
    ADDED_FIELD,
    CHANGE_EVERY,
    COLUMN_TYPES,
    KEY,
    MISSING,
    check_compare_keys,
    check_refresh,
    check_schema_change,
    expected_changed_values,
    expected_missing,
    expected_refresh_overlay,
    expected_vanished,
    key_expr,
    key_of,
    number_of,
    numbers,
    records_of,
    scatter_multiplier,
    type_of,
    verdicts,
)
from utils.replica_layers import HASHES, IN_BASE, TOMBSTONE, hashes


def test_an_id_is_the_same_in_python_and_polars_and_gives_its_number_back():
    frame = pl.DataFrame({"n": [0, 7, 1_234_567]}).select(key_expr(pl.col("n")).alias(KEY))
    assert frame[KEY].to_list() == [key_of(0), key_of(7), key_of(1_234_567)]
    assert all(len(k) == 18 for k in frame[KEY])
    assert frame.select(number_of(pl.col(KEY)))[KEY].to_list() == [0, 7, 1_234_567]


@pytest.mark.parametrize("rows", [1, 10, 1_000, 1_500_000])
def test_the_scattered_order_is_a_permutation_without_neighbours_side_by_side(rows):
    scattered = numbers(rows, scattered=True).collect()["n"]
    assert scattered.sort().to_list() == list(range(rows))
    assert (scattered.diff().abs() > 1).all()  # consecutive records never next to each other


def test_the_scatter_multiplier_is_coprime_with_the_record_count():
    assert all(math.gcd(scatter_multiplier(rows), rows) == 1 for rows in (2, 1_000, 20_000_000, 2**20, 3**13))


def test_records_come_sorted_by_id_with_the_registry_columns():
    records = records_of(numbers(2_500, scattered=False)).collect()
    assert records.columns == list(COLUMN_TYPES)
    assert records[KEY].is_sorted() and records[KEY].n_unique() == 2_500


def test_vanished_and_missing_ids_spread_over_the_base_and_only_the_vanished_are_in_it():
    rows = 20_000_000
    vanished, missing = expected_vanished(rows), expected_missing(rows)
    assert len(vanished) == 1_000 and len(set(vanished)) == 1_000 and len(set(missing)) == MISSING
    assert vanished[0] < key_of(rows // 10) and vanished[-1] > key_of(rows - rows // 10)  # not bunched up
    assert not set(missing) & {key_of(n) for n in range(0, rows, rows // MISSING)}
    assert missing[0] > key_of(0) and missing[0] < key_of(1)  # right after the base Id of the same number


def test_the_refresh_changes_account_names_and_fewer_owner_names():
    """More values than records change: a count of records would be caught."""
    assert expected_changed_values(20_000_000) == 20_000 + 4_000
    assert expected_changed_values(CHANGE_EVERY + 1) == 3  # record 0: both names; record 1,000: its Account.Name
    overlay = expected_refresh_overlay(3 * CHANGE_EVERY)
    assert overlay[KEY].to_list() == [key_of(0), key_of(CHANGE_EVERY), key_of(2 * CHANGE_EVERY)]
    assert overlay["Account.Name"].str.ends_with(" renamed").all()
    assert overlay["Owner.Name"].str.ends_with(" renamed").to_list() == [True, False, False]


# --- the checks ---------------------------------------------------------------------------------------------------


def _evolved_base(path: Path, rows: int, *, break_row: int | None = None, column: str = ADDED_FIELD,
                  stale_hash: bool = False) -> Path:
    columns = [*COLUMN_TYPES, ADDED_FIELD]
    frame = records_of(numbers(rows, scattered=False)).with_columns(type_of(number_of(pl.col(KEY))))
    hashed = frame.with_columns(hashes(columns, KEY))
    if break_row is not None:  # defect: one record's value of ``column`` is not the pull's or its own
        broken = (pl.when(number_of(pl.col(KEY)) == break_row).then(pl.lit("wrong")).otherwise(pl.col(column))
                  .alias(column))
        # a rewrite that hashed before it broke the value leaves a stale hash; else the hash is of the broken record
        hashed = (hashed.with_columns(broken) if stale_hash
                  else frame.with_columns(broken).with_columns(hashes(columns, KEY)))
    hashed.collect().write_parquet(path)
    return path


def test_a_schema_change_passes_with_every_value_and_key_right(tmp_path):
    facts = check_schema_change(_evolved_base(tmp_path / "ok.parquet", 1_000), 1_000)
    assert facts["records"] == 1_000 and facts["nulls"] == 100
    assert list(pl.read_parquet_schema(tmp_path / "ok.parquet"))[-2:] == list(HASHES)


def test_a_schema_change_with_one_wrong_value_or_a_record_lost_is_an_error(tmp_path):
    with pytest.raises(AssertionError, match="1 records with another Type"):
        check_schema_change(_evolved_base(tmp_path / "bad.parquet", 1_000, break_row=17), 1_000)
    with pytest.raises(AssertionError, match="1,000 records, not 1,001"):
        check_schema_change(_evolved_base(tmp_path / "ok.parquet", 1_000), 1_001)


def test_a_schema_change_that_changed_another_column_or_left_a_stale_hash_is_an_error(tmp_path):
    with pytest.raises(AssertionError, match="1 values of other columns changed"):
        check_schema_change(_evolved_base(tmp_path / "name.parquet", 1_000, break_row=17, column="Name"), 1_000)
    with pytest.raises(AssertionError, match="1 row hashes not of their record's values"):
        check_schema_change(_evolved_base(tmp_path / "hash.parquet", 1_000, break_row=17, stale_hash=True), 1_000)


def _overlay(rows: int) -> pl.DataFrame:
    return expected_refresh_overlay(rows).with_columns(pl.lit(False).alias(TOMBSTONE), pl.lit(True).alias(IN_BASE))


def test_a_refresh_passes_with_the_changed_records_whole_and_their_count():
    assert check_refresh(_overlay(5_000), 6, 5_000) == {"changed_values": 6, "overlay_records": 5}


def test_a_refresh_with_a_wrong_count_a_record_lost_or_a_stale_value_is_an_error():
    with pytest.raises(AssertionError, match="5 changed values"):  # the changed records counted, not the values
        check_refresh(_overlay(5_000), 5, 5_000)
    with pytest.raises(AssertionError, match="overlay records differ"):
        check_refresh(_overlay(5_000).slice(1), 6, 5_000)
    stale = _overlay(5_000).with_columns(pl.lit("Account 0").alias("Account.Name"))  # defect: the old value kept
    with pytest.raises(AssertionError, match="overlay records differ"):
        check_refresh(stale, 6, 5_000)


def test_a_key_comparison_must_find_exactly_the_vanished_and_the_missing():
    rows = 100_000
    vanished, missing = expected_vanished(rows), expected_missing(rows)
    assert check_compare_keys(vanished, missing, rows) == {"vanished": 1_000, "missing": MISSING}
    with pytest.raises(AssertionError, match="vanished: 999 Ids"):
        check_compare_keys(vanished[1:], missing, rows)
    with pytest.raises(AssertionError, match="missing: 501 Ids"):
        check_compare_keys(vanished, [*missing, key_of(5, "AAZ")], rows)


def test_verdicts_hold_each_operations_highest_peak_under_the_limit():
    section = {"rows": 20_000_000, "operations": {"schema_change": {"peak_rss_mb": 866.0},
                                                  "refresh": {"peak_rss_mb": 1_500.0},
                                                  "compare_keys": {"peak_rss_mb": None}}}
    assert [v["ok"] for v in verdicts(section)] == [True, False, None]


def test_the_synthetic_records_have_the_registry_s_opportunity_columns():
    from configs.salesforce_objects import SALESFORCE_OBJECTS

    assert list(COLUMN_TYPES) == list(SALESFORCE_OBJECTS["Opportunity"].fields)
