"""Two runs' outputs compared value by value, floats to 1e-12 relative: a float sum or mean over many records depends
on the order parallel threads add partial sums in (Polars' engines: measured, 10 runs of one aggregation over 3M
records gave 10 different last digits; a layered replica makes two sources, so small runs vary too), so two runs
never promise the same last bits. Everything else must be equal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

REL_TOL = 1e-12


def assert_same_summary(there: Path, here: Path) -> None:
    """Phase 1's summaries of the same records (a CSV or a JSON file each): equal, floats to ``REL_TOL``."""
    if here.suffix == ".csv":
        assert_frame_equal(pl.read_csv(there), pl.read_csv(here), check_exact=False, rel_tol=REL_TOL, abs_tol=0)
        return
    assert close(json.loads(there.read_text()), json.loads(here.read_text())), here.name


def close(a: object, b: object) -> bool:
    """Whether two JSON values are equal, floats (anywhere inside) to ``REL_TOL`` relative."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=REL_TOL)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return a == b
