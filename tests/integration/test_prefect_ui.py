"""What the Prefect UI shows for a run, read back through a real Prefect server's API: `make run`'s entry point
(``run_multiple_times.py``) runs twice against the server, as it does when `make ui` is up, and every assertion is
about what a person finds on the run's pages: names, logs, artifacts, the graph's arrows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.prefect_server import PROJECT_ROOT, PrefectServer, api_post, prefect_server  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OBJECTS = ("Account", "Lead", "Opportunity")
QA_STEPS = ("qa-gate", "qa-completeness", "qa-dedup", "qa-profile", "qa-rowcount")
VALIDATOR_STEPS = {"Opportunity": ("qa-custom_amount_non_negative",)}  # the registry's custom validator
RUNS = 2


@dataclass(frozen=True)
class RunTree:
    """One orchestrator run as the server holds it: its flow runs (orchestrator first) and all their task runs."""

    run_id: str
    flow_runs: list[dict[str, Any]]
    task_runs: list[dict[str, Any]]

    @property
    def orchestrator(self) -> dict[str, Any]:
        return self.flow_runs[0]

    def subflow_placeholders(self) -> set[str]:
        """The task runs Prefect creates in the parent to stand for each subflow (not tasks of ours)."""
        return {f["parent_task_run_id"] for f in self.flow_runs[1:]}

    def our_task_runs(self) -> list[dict[str, Any]]:
        placeholders = self.subflow_placeholders()
        return [t for t in self.task_runs if t["id"] not in placeholders]


def _filter(server: PrefectServer, what: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return api_post(server.api_url, f"/{what}/filter", {**body, "limit": 200})


def _run_tree(server: PrefectServer, run_id: str) -> RunTree:
    # by name on the server: the server is shared with test_scheduling.py, whose schedules add many runs of their own
    (orchestrator,) = _filter(server, "flow_runs", {"flow_runs": {"name": {"any_": [f"sf-etl {run_id}"]}}})
    own_tasks = _filter(server, "task_runs", {"flow_runs": {"id": {"any_": [orchestrator["id"]]}}})
    subflows = _filter(server, "flow_runs",
                       {"flow_runs": {"parent_task_run_id": {"any_": [t["id"] for t in own_tasks]}}})
    sub_tasks = _filter(server, "task_runs", {"flow_runs": {"id": {"any_": [f["id"] for f in subflows]}}})
    return RunTree(run_id, [orchestrator, *subflows], own_tasks + sub_tasks)


def _object_of(task_name: str) -> str:
    return task_name.rsplit("-", 1)[1]


@pytest.fixture(scope="module")
def ui_runs(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    """Two runs of the three objects (a backfill, then a delta) reporting to the server; their summaries."""
    data_root = tmp_path_factory.mktemp("ui-data")
    # the suite turns log shipping off (tests/conftest.py); here the logs on each run's page are the subject
    env = {**prefect_server.env, "SF_PIPELINE_DATA_DIR": str(data_root), "PREFECT_LOGGING_TO_API_ENABLED": "true"}
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "run_multiple_times.py"), "--runs", str(RUNS),
                           "--objects", *OBJECTS], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summaries = sorted((json.loads(p.read_text()) for p in (data_root / "runs").glob("*.json")),
                       key=lambda s: s["started_at"])
    assert len(summaries) == RUNS
    trees = [_run_tree(prefect_server, s["run_id"]) for s in summaries]
    return done.stdout, summaries, trees, data_root


def test_flow_runs_are_named_by_the_pipelines_run_id_and_linked_from_the_console(ui_runs, prefect_server):  # noqa: F811
    stdout, summaries, trees, _ = ui_runs
    ui = prefect_server.api_url.removesuffix("/api")
    for summary, tree in zip(summaries, trees, strict=True):
        rid = summary["run_id"]
        assert sorted(f["name"] for f in tree.flow_runs) == sorted([f"sf-etl {rid}", f"phase1 {rid}", f"qa {rid}"])
        assert tree.orchestrator["id"].replace("-", "").upper().startswith(rid)  # the run id is the flow run's
        assert f"{ui}/flow-runs/flow-run/{tree.orchestrator['id']}" in stdout


def test_task_runs_are_named_per_step_and_object(ui_runs):
    _, summaries, trees, _ = ui_runs
    for summary, tree in zip(summaries, trees, strict=True):
        modes = {row["object"]: row["mode"] for row in summary["objects"]}
        expected = set()
        for name in OBJECTS:
            expected |= {f"{'sync' if modes[name] != 'full' else 'extract'}-{name}", f"process-{name}",
                         f"load-{name}"}
            expected |= {f"{step}-{name}" for step in QA_STEPS + VALIDATOR_STEPS.get(name, ())}
        assert sorted(t["name"] for t in tree.our_task_runs()) == sorted(expected)


def test_each_task_run_has_log_lines_of_its_own_naming_its_object(ui_runs, prefect_server):  # noqa: F811
    _, _, trees, _ = ui_runs
    for tree in trees:
        for task_run in tree.our_task_runs():
            logs = _filter(prefect_server, "logs", {"logs": {"task_run_id": {"any_": [task_run["id"]]}}})
            story = [log["message"] for log in logs if not log["message"].startswith("Finished in state")]
            assert any(f"object={_object_of(task_run['name'])}" in line for line in story), \
                (task_run["name"], story)


def test_the_orchestrator_carries_the_run_summary_the_qa_report_and_the_files(ui_runs, prefect_server):  # noqa: F811
    _, summaries, trees, _ = ui_runs
    for summary, tree in zip(summaries, trees, strict=True):
        artifacts = _filter(prefect_server, "artifacts",
                            {"artifacts": {"flow_run_id": {"any_": [tree.orchestrator["id"]]}}})
        by_key = {a["key"]: a for a in artifacts}
        assert {"sf-etl-run-summary", "qa-summary", "sf-etl-files"} <= set(by_key), sorted(by_key)

        table = by_key["sf-etl-run-summary"]["data"]
        rows = json.loads(table) if isinstance(table, str) else table
        assert [r["object"] for r in rows] == list(OBJECTS)
        assert all(len(r) <= 8 and "/" not in r["object"] for r in rows)  # compact: no path columns
        for row in rows:  # the changes add up to the rows the delta brought
            ins, upd, same, dele = (int(n.replace(",", "")) for n in
                                    re.match(r"\+([\d,]+) ~([\d,]+) =([\d,]+) -([\d,]+)",
                                             row["+ins ~upd =same -del"]).groups())
            assert ins + upd + same + dele == int(row["rows"].replace(",", "")), row

        qa = by_key["qa-summary"]["data"]
        assert "{'" not in qa and "| Opportunity | uniqueness_primary_key | pass |" in qa
        assert "reports/" in qa  # where the HTML report with the charts is
        files = by_key["sf-etl-files"]["data"]
        assert f"runs/{summary['started_at'].replace(':', '')}_{summary['run_id']}.json" in files
        assert "| Account | `replica/Account.parquet` | `output/Account/summary.json` |" in files  # relative paths


def test_the_run_summary_adds_up_for_a_backfill_and_a_delta(ui_runs):
    _, summaries, _, _ = ui_runs
    modes = [{row["mode"] for row in s["objects"]} for s in summaries]
    assert modes == [{"backfill"}, {"incremental"}]
    for summary in summaries:
        for row in summary["objects"]:
            counted = row["inserts"] + row["updates"] + row["unchanged"] + row["deletes"] + row["deleted_absent"]
            assert counted == row["rows"], row


def test_no_task_depends_on_another_objects_task(ui_runs):
    _, _, trees, _ = ui_runs
    for tree in trees:
        names = {t["id"]: t["name"] for t in tree.task_runs}
        placeholders = tree.subflow_placeholders()
        for task_run in tree.task_runs:
            upstream = {names[i["id"]] for inputs in task_run["task_inputs"].values() for i in inputs
                        if i.get("input_type") == "task_run" and i["id"] in names}
            if task_run["id"] in placeholders:  # a branch subflow reads every landed dataset, nothing else
                assert upstream == {n for n in names.values() if n.startswith(("sync-", "extract-"))}
            else:
                assert {_object_of(u) for u in upstream} <= {_object_of(task_run["name"])}, \
                    (task_run["name"], upstream)
