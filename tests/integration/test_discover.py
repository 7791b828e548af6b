"""``python -m configs discover`` against the emulator through the pipeline's own source and client: the entries it
prints for standard objects pass the registry's validation and name only fields the org has; an unknown object is one
line and exit code 2. ``main()`` runs in-process: the command imports no Prefect; a subprocess only adds start-up."""

from __future__ import annotations

import ast

import pytest

from configs.__main__ import main
from configs.salesforce_objects import validate_registry
from emulator import run_emulator
from tests.emulator_fixtures import point_pipeline_at
from tests.sync_helpers import connect
from utils.aggregations import find_misfit_metrics

pytestmark = [pytest.mark.integration]
TINY = {"Account": 5, "Contact": 5, "Opportunity": 5, "Lead": 5, "Case": 5}  # describe does not depend on rows


def test_discover_prints_valid_entries_for_standard_objects_and_one_line_for_an_unknown_one(monkeypatch, capsys):
    with run_emulator(rows=TINY, in_process=True) as info:
        point_pipeline_at(info, monkeypatch)  # the access-token flow, as with a real org's .env
        status = main(["discover", "Account", "Opportunity", "Nope__c"])
        describes = {name: connect(info).sf.__getattr__(name).describe() for name in ("Account", "Opportunity")}
    out, err = capsys.readouterr()
    assert status == 2
    (line,) = err.splitlines()
    assert line.startswith("Nope__c: the org has no object of that name") and "integration user" in line
    specs = validate_registry(ast.literal_eval("{" + out + "}"))
    assert list(specs) == ["Account", "Opportunity"]
    for name, spec in specs.items():
        types = {f["name"]: f["type"] for f in describes[name]["fields"]}
        assert set(spec.fields) <= set(types), "only fields the org describes"
        assert find_misfit_metrics(name, spec.metrics, types) == []
        assert spec.cursor == "SystemModstamp" and spec.effective_sync_mode == "incremental"
    assert "BillingCity" in specs["Account"].fields and "BillingAddress" not in specs["Account"].fields
    assert specs["Opportunity"].group_by[0] == "StageName"
    assert {"Amount", "Probability"} <= set(specs["Opportunity"].metrics)
