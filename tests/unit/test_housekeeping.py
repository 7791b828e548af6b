"""Housekeeping: orphan sidecars and old run summaries are removed, fresh ones kept."""

from __future__ import annotations

import logging
import os
import time

from utils import housekeeping
from utils.housekeeping import apply_retention


def test_orphan_sidecars_and_old_run_summaries(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    old_orphan = raw / "Lead_20260101-000000_A.schema.json"
    fresh_orphan = raw / "Lead_20260101-000001_B.schema.json"  # its CSV may be about to land
    paired = raw / "Lead_20260101-000002_C.schema.json"
    for p in (old_orphan, fresh_orphan, paired):
        p.write_text("{}")
    (raw / "Lead_20260101-000002_C.csv").write_text('"Id"\n')
    hour_ago = time.time() - 7200
    os.utime(old_orphan, (hour_ago, hour_ago))
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(5):
        (runs / f"2026-01-0{i + 1}T000000Z_R{i}.json").write_text("{}")
    monkeypatch.setattr(housekeeping, "RUN_SUMMARIES_KEPT", 3)
    apply_retention({}, keep_counts={}, max_age_days=None, data_root=tmp_path, run_id="X",
                    logger=logging.getLogger("t"))
    assert not old_orphan.exists() and fresh_orphan.exists() and paired.exists()
    assert sorted(p.name for p in runs.iterdir()) == [f"2026-01-0{i}T000000Z_R{i - 1}.json" for i in (3, 4, 5)]
