"""The fan-out benchmark's pure parts: the generated objects' registry entries, the run-summary check, an object
run's phases from the Prefect API's records, growth and the second-machine projection, the table."""

from __future__ import annotations

import pytest

from benchmarks.bench_fanout import (
    MODES,
    check_summary,
    growth,
    leaf_intervals,
    linear_fit,
    object_run_times,
    registry_extra,
    second_machine,
    table,
)
from configs.salesforce_objects import validate_registry
from emulator.generated_objects import custom_object_names, lookup_generated


def test_the_registry_extension_lists_fields_every_generated_object_has():
    names = custom_object_names(3)
    specs = validate_registry(registry_extra(names))
    assert list(specs) == names
    for name, spec in specs.items():
        obj = lookup_generated(name)
        assert obj is not None
        assert all(obj.field(f.split(".")[0].replace("__r", "__c")) is not None for f in spec.fields), name
        assert spec.cursor == "SystemModstamp" and spec.summary_columns()[0] == "Status__c"


def test_a_summary_counts_only_when_every_object_is_ok_with_the_orgs_live_records():
    expected = {"Bench_01__c": 990, "Bench_02__c": 983}
    ok = [{"object": "Bench_01__c", "status": "ok", "replica_rows": 990},
          {"object": "Bench_02__c", "status": "ok", "replica_rows": 983}]
    assert check_summary(ok, expected) == []
    failed = [ok[0], {"object": "Bench_02__c", "status": "failed", "replica_rows": None, "error": "boom"}]
    assert check_summary(failed, expected) == ["Bench_02__c: failed (boom)"]
    assert check_summary([ok[0], {**ok[1], "replica_rows": 1000}], expected) == [
        "Bench_02__c: 1000 replica rows, the org has 983 live records"]
    assert check_summary(ok[:1], expected) == ["objects ['Bench_01__c'], expected ['Bench_01__c', 'Bench_02__c']"]


def _at(seconds: float) -> str:
    return f"2026-12-02T12:00:{seconds:06.3f}+00:00"


def test_an_object_runs_phases_come_from_its_states_and_task_runs():
    run = {"created": _at(0), "start_time": _at(5), "end_time": _at(12)}
    tasks = [{"id": "a", "start_time": _at(6), "end_time": _at(8)}, {"id": "b", "start_time": _at(7),
                                                                      "end_time": _at(10)},
             {"id": "subflow", "start_time": _at(5.5), "end_time": _at(11.5)},  # stands for a subflow: not work
             {"id": "never", "start_time": None, "end_time": None}]
    intervals = leaf_intervals(tasks, {"subflow"})
    assert len(intervals) == 2
    times = object_run_times(run, pending_at=parse(_at(1)), tasks=intervals)
    assert times == {"queue_s": 1.0, "spawn_s": 4.0, "to_first_task_s": 1.0, "startup_s": 5.0, "task_s": 4.0,
                     "tail_s": 2.0, "wall_s": 11.0, "overhead_s": 7.0, "submit_to_start_s": 5.0}


def test_a_run_never_taken_has_no_phases_but_its_queue():
    times = object_run_times({"created": _at(0), "start_time": None, "end_time": None}, pending_at=None, tasks=[])
    assert times["task_s"] == 0.0 and {k for k, v in times.items() if v is not None} == {"task_s"}


def parse(text: str) -> float:
    from benchmarks.bench_fanout import parse_time

    value = parse_time(text)
    assert value is not None
    return value


def _section(walls: dict[int, dict[str, float | None]]) -> dict:
    return {"by_count": {str(n): {"objects": n, "modes": {m: {"wall_s": w} for m, w in modes.items()}}
                         for n, modes in walls.items()}}


def test_growth_is_the_largest_counts_wall_over_the_smallests_per_mode():
    section = _section({5: {"orchestrator": 10.0, "fanout_1w": 40.0}, 20: {"orchestrator": 25.0, "fanout_1w": 160.0}})
    assert growth(section) == {"orchestrator": 2.5, "fanout_1w": 4.0, "fanout_2w": None, "plain": None}
    assert growth(_section({5: {"orchestrator": 1.0}})) == {}


def test_a_second_machine_halves_the_one_worker_lines_slope():
    assert linear_fit({5: 40.0, 20: 160.0}) == (0.0, 8.0)
    assert linear_fit({5: 40.0, 20: None}) is None
    more = second_machine(_section({5: {"fanout_1w": 50.0}, 20: {"fanout_1w": 170.0}}))
    assert more == {"objects": 20, "fixed_s": 10.0, "per_object_s_one_machine": 8.0,
                    "projected_wall_s_two_machines": 90.0, "measured_wall_s_one_machine": 170.0}


@pytest.mark.parametrize("modes", [MODES, ("orchestrator",)])
def test_the_table_has_a_row_per_mode_and_count(modes):
    section = _section({2: {m: 1.0 for m in modes}, 4: {m: 2.0 for m in modes}})
    section["growth"] = growth(section)
    text = table(section)
    assert all(f"{m} x {n}" in text for m in modes for n in (2, 4)) and "2 -> 4 objects" in text
