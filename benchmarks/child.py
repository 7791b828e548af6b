"""Entry point of one measurement process: ``python -m benchmarks.child '{"target": "mod:fn", "params": {...}}'``.

The target is a setup hook: it does the imports and preparation (untimed) and returns the callable to time,
or ``(work, after)`` where ``after(facts)`` gathers more facts untimed (e.g. task-run durations from Prefect).
``work`` returns a dict of extra facts (rows, bytes, summary values) merged into the printed JSON line.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

from benchmarks.harness import current_rss_mb, peak_rss_mb


def main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    module_name, _, function_name = spec["target"].partition(":")
    setup = getattr(importlib.import_module(module_name), function_name)
    hooks = setup(spec.get("params") or {})
    work, after = hooks if isinstance(hooks, tuple) else (hooks, None)
    rss_before = current_rss_mb()
    started = time.perf_counter()
    facts = work() or {}
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()  # before ``after``: its API reads are not the work's memory
    if after is not None:
        facts = {**facts, **after(facts)}
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_before_work_mb": rss_before, **facts},
                     default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
