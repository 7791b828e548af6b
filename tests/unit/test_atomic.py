"""Atomic writes: all or nothing, and crashed writers' leftovers are cleaned."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from utils.atomic import atomic_path, clean_stale_temp_files, is_temp_path, write_text_atomic


def test_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "f.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.csv"]


def test_stale_temp_of_dead_process_is_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".f.csv.tmp-{pid}-abcd1234"
    live = tmp_path / f".g.csv.tmp-{os.getpid()}-abcd1234"
    stale.write_text("x")
    live.write_text("y")
    assert is_temp_path(stale)
    assert clean_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and not stale.exists()
