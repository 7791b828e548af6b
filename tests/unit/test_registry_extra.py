"""The registry extended at deploy time: ``$SF_PIPELINE_REGISTRY_EXTRA`` names a JSON file of more entries, which
every process (a worker, each flow run it starts) adds at import, validated like the built-in ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs.salesforce_objects import (
    REGISTRY_EXTRA_ENV,
    SALESFORCE_OBJECTS_RAW,
    RegistryError,
    load_registry_extra,
    validate_registry,
    with_registry_extra,
)

BUILT_IN = validate_registry(SALESFORCE_OBJECTS_RAW)
INVOICE = {"fields": ["Id", "Name", "Status__c", "Amount__c", "SystemModstamp"], "required": ["Id", "Name"],
           "group_by": ["Status__c"], "metrics": {"Id": ["count"], "Amount__c": ["sum", "mean"]}}


def _file(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "objects.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_unset_or_empty_leaves_the_built_in_registry():
    assert with_registry_extra(BUILT_IN, env={}) is BUILT_IN
    assert with_registry_extra(BUILT_IN, env={REGISTRY_EXTRA_ENV: " "}) is BUILT_IN


def test_entries_are_added_after_the_built_in_ones_as_frozen_specs(tmp_path):
    path = _file(tmp_path, {"Invoice__c": INVOICE})
    registry = with_registry_extra(BUILT_IN, env={REGISTRY_EXTRA_ENV: str(path)})
    assert list(registry) == [*BUILT_IN, "Invoice__c"]
    spec = registry["Invoice__c"]
    assert spec.fields == ("Id", "Name", "Status__c", "Amount__c", "SystemModstamp")  # JSON lists become tuples
    assert spec.summary_columns() == ["Status__c", "Id_count", "Amount__c_sum", "Amount__c_mean"]
    assert (spec.cursor, spec.effective_sync_mode) == ("SystemModstamp", "incremental")


def test_an_entry_named_like_a_built_in_one_replaces_it_in_its_place(tmp_path):
    lead = {"fields": ["Id", "Status", "SystemModstamp"], "group_by": ["Status"], "metrics": {"Id": ["count"]}}
    registry = with_registry_extra(BUILT_IN, env={REGISTRY_EXTRA_ENV: str(_file(tmp_path, {"Lead": lead}))})
    assert list(registry) == list(BUILT_IN)
    assert registry["Lead"].fields == ("Id", "Status", "SystemModstamp") and registry["Lead"].metrics == {
        "Id": ("count",)}


def test_a_bad_entry_is_one_line_naming_the_file_the_entry_and_the_field(tmp_path):
    path = _file(tmp_path, {"Invoice__c": {**INVOICE, "metrics": {"Amount__c": ["avg"]}}})
    with pytest.raises(RegistryError) as err:
        load_registry_extra(path)
    assert str(err.value) == (
        f"invalid registry extra {path} (${REGISTRY_EXTRA_ENV}): Invoice__c.metrics['Amount__c']: unknown "
        "aggregation 'avg'; use one of count, n_unique, sum, mean, median, min, max, std, null_count")


def test_every_problem_of_the_file_is_listed_in_one_error(tmp_path):
    path = _file(tmp_path, {"Invoice__c": {**INVOICE, "group_by": ["Region__c"], "colour": "red"},
                            "Bad Name": {"fields": ["Id"]}, "Thing__c": ["Id"]})
    with pytest.raises(RegistryError) as err:
        load_registry_extra(path)
    text = str(err.value)
    assert text.startswith(f"invalid registry extra {path} (${REGISTRY_EXTRA_ENV}) (3 problem(s)):")
    assert "Invoice__c.colour: Extra inputs are not permitted" in text
    assert "Bad Name: not a valid Salesforce API name" in text
    assert "Thing__c: the entry must be an object of registry keys" in text


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot read it (No such file or directory); point SF_PIPELINE_REGISTRY_EXTRA at a JSON file"),
    ('{"Invoice__c": {"fields": ["Id",]}}', "not JSON (Expecting value: line 1 column 33 (char 32))"),
    ([INVOICE], "the file holds a JSON array, not an object of object name -> entry"),
    ({}, "registry: no objects configured; add at least one entry"),
])
def test_a_file_that_is_not_a_registry_is_one_line_naming_it(tmp_path, content, expected):
    path = tmp_path / "missing.json" if content is None else _file(tmp_path, content)
    with pytest.raises(RegistryError) as err:
        with_registry_extra(BUILT_IN, env={REGISTRY_EXTRA_ENV: str(path)})
    text = str(err.value)
    assert text.startswith(f"invalid registry extra {path} (${REGISTRY_EXTRA_ENV}): ") and expected in text
    assert "\n" not in text


def _python(code: str, extra: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, REGISTRY_EXTRA_ENV: str(extra)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2])


def test_a_new_process_with_the_variable_has_the_entries_everywhere_the_registry_is_read(tmp_path):
    """What a worker's flow-run process does: import the registry, plan an extract of the new object."""
    code = ("from configs.salesforce_objects import SALESFORCE_OBJECTS, spec_for\n"
            "from tasks.extract_plan import resolve_extract_plan\n"
            "(item,) = resolve_extract_plan(['Invoice__c'])\n"
            "print(list(SALESFORCE_OBJECTS)[-1], spec_for('Invoice__c').group_by, item.object_name)")
    done = _python(code, _file(tmp_path, {"Invoice__c": INVOICE}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Invoice__c", "('Status__c',)", "Invoice__c"]


def test_a_process_with_a_bad_file_stops_at_import_with_the_files_error(tmp_path):
    path = _file(tmp_path, {"Invoice__c": {**INVOICE, "group_by": ["Region__c"]}})
    done = _python("import configs.salesforce_objects", path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"configs.salesforce_objects.RegistryError: invalid registry extra {path} (${REGISTRY_EXTRA_ENV}): "
        "Invoice__c.group_by: 'Region__c' is not in fields; add it to fields")
