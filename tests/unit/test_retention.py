"""Raw retention: keep the newest N per object (and/or drop old ones), never this run's input."""

from __future__ import annotations

from datetime import datetime, timezone

from utils.paths import build_paths
from utils.retention import apply_raw_retention, select_expired

NOW = datetime(2026, 5, 10, 12, 0, 0, tzinfo=timezone.utc)


def _raw(tmp_path, obj, day, run):
    p = build_paths(obj, run, moment=datetime(2026, 5, day, 12, 0, 0, tzinfo=timezone.utc), data_root=tmp_path)
    p.raw_csv.parent.mkdir(parents=True, exist_ok=True)
    p.raw_csv.write_text('"Id"\n')
    p.raw_schema.write_text("{}")
    return p


def test_keep_newest_count(tmp_path):
    paths = [_raw(tmp_path, "Account", d, f"R{d}") for d in (1, 2, 3, 4, 5)]
    other = _raw(tmp_path, "Account_History", 1, "R9")  # another object sharing the prefix: untouched
    removed = apply_raw_retention("Account", keep_count=2, data_root=tmp_path, now=NOW)
    assert removed == [p.raw_csv for p in paths[:3]]
    assert all(not p.raw_csv.exists() and not p.raw_schema.exists() for p in paths[:3])
    assert all(p.raw_csv.exists() and p.raw_schema.exists() for p in paths[3:])
    assert other.raw_csv.exists()


def test_max_age_and_protected_file(tmp_path):
    paths = [_raw(tmp_path, "Lead", d, f"R{d}") for d in (1, 8, 9)]
    expired = select_expired([p.raw_csv for p in paths], keep_count=10, max_age_days=3, now=NOW,
                             protect=[paths[0].raw_csv])
    assert expired == []  # day 1 is old but protected; day 8 and 9 are within 3 days
    expired = select_expired([p.raw_csv for p in paths], keep_count=10, max_age_days=1.5, now=NOW)
    assert expired == [paths[0].raw_csv, paths[1].raw_csv]
