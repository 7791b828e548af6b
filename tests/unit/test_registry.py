"""The object registry: the shipped one loads, and each kind of mistake gives one clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from configs.salesforce_objects import (
    SALESFORCE_OBJECTS,
    SALESFORCE_OBJECTS_RAW,
    ObjectSpec,
    RegistryError,
    validate_registry,
)


def _entry(**overrides):
    base = {
        "fields": ("Id", "Name", "Amount", "StageName", "SystemModstamp"),
        "required": ("Id",),
        "group_by": ("StageName",),
        "metrics": {"Amount": ("sum",)},
    }
    base.update(overrides)
    return base


def test_shipped_registry_loads_with_the_five_standard_objects():
    assert set(SALESFORCE_OBJECTS) >= {"Account", "Contact", "Opportunity", "Lead", "Case"}
    for name, spec in SALESFORCE_OBJECTS.items():
        assert isinstance(spec, ObjectSpec)
        assert spec.primary_key in spec.fields and spec.cursor == "SystemModstamp", name
        assert any("." in f for f in spec.fields), f"{name} should carry a relationship field"


def test_specs_are_frozen():
    spec = SALESFORCE_OBJECTS["Account"]
    with pytest.raises(ValidationError):
        spec.fields = ("Id",)  # type: ignore[misc]


@pytest.mark.parametrize(("fields", "cursor_field", "cursor", "mode"), [
    (("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"), None, "SystemModstamp", "incremental"),
    (("Id", "CreatedDate", "LastModifiedDate"), None, "LastModifiedDate", "incremental"),
    (("Id", "CreatedDate", "Field", "NewValue"), None, "CreatedDate", "incremental"),  # a *History object
    (("Id", "Value__c"), None, None, "full"),  # nothing to take a delta on: a full extract every run
    (("Id", "CreatedDate", "SystemModstamp"), "CreatedDate", "CreatedDate", "incremental"),  # named: it wins
])
def test_the_cursor_is_the_first_candidate_listed_unless_named(fields, cursor_field, cursor, mode):
    spec = validate_registry({"Thing__c": {"fields": fields, "cursor_field": cursor_field}})["Thing__c"]
    assert (spec.cursor, spec.effective_sync_mode) == (cursor, mode)
    assert ("cursor field" in spec.qa_required_columns().values()) == (cursor is not None)


def test_summary_columns_follow_group_by_then_metrics_in_registry_order():
    spec = validate_registry({"Opportunity": _entry(metrics={"Amount": ("sum", "max"), "Id": ("count",)},
                                                    fields=("Id", "Amount", "StageName", "SystemModstamp"))})
    assert spec["Opportunity"].summary_columns() == ["StageName", "Amount_sum", "Amount_max", "Id_count"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"metrics": {"Amount": ("avg",)}}, "Opp.metrics['Amount']: unknown aggregation 'avg'; use one of count"),
        ({"group_by": ("Region",)}, "Opp.group_by: 'Region' is not in fields"),
        ({"metrics": {"Revenue": ("sum",)}}, "Opp.metrics: 'Revenue' is not in fields"),
        ({"required": ("Email",)}, "Opp.required: 'Email' is not in fields"),
        ({"fields": ("Id", "Name", "Name", "Amount", "StageName", "SystemModstamp")},
         "Opp.fields: 'Name' is listed twice"),
        ({"fields": (), "required": (), "group_by": (), "metrics": {}}, "Opp.fields: the field list is empty"),
        ({"cursor_field": "LastModifiedDate"}, "Opp.cursor_field: 'LastModifiedDate' is not in fields"),
        ({"primary_key": "ExternalId__c"}, "Opp.primary_key: 'ExternalId__c' is not in fields"),
        ({"fields": ("Id", "Name", "Amount", "StageName"), "sync_mode": "incremental"},
         "Opp.sync_mode: incremental needs a cursor; list one of SystemModstamp, LastModifiedDate, CreatedDate"),
        ({"metrics": {"Amount": ()}}, "Opp.metrics['Amount']: no aggregation listed"),
        ({"colour": "red"}, "Opp.colour: Extra inputs are not permitted"),
        ({"api": "soap"}, "Opp.api: Input should be 'auto', 'rest' or 'bulk2'"),
        ({"validators": ("tasks.validators.amount",)}, "Opp.validators: 'tasks.validators.amount' must look like"),
    ],
)
def test_each_mistake_names_object_and_field(overrides, expected):
    with pytest.raises(RegistryError) as err:
        validate_registry({"Opp": _entry(**overrides)})
    assert expected in str(err.value)


def test_one_error_lists_every_problem_across_objects():
    raw = {
        "Opp": _entry(metrics={"Amount": ("avg",)}),
        "Acct": _entry(group_by=("Nope",), required=("Missing",)),
    }
    with pytest.raises(RegistryError) as err:
        validate_registry(raw)
    text = str(err.value)
    assert "3 problem(s)" in text
    assert "Opp.metrics['Amount']" in text and "Acct.group_by" in text and "Acct.required" in text


def test_empty_registry_is_an_error():
    with pytest.raises(RegistryError, match="no objects configured"):
        validate_registry({})


def test_custom_object_in_one_entry():
    raw = dict(SALESFORCE_OBJECTS_RAW)
    raw["Invoice__c"] = {
        "fields": ("Id", "Name", "Amount__c", "Account__r.Name", "SystemModstamp"),
        "group_by": ("Account__r.Name",),
        "metrics": {"Amount__c": ("sum", "mean")},
    }
    specs = validate_registry(raw)
    assert specs["Invoice__c"].summary_columns() == ["Account__r.Name", "Amount__c_sum", "Amount__c_mean"]


def test_qa_requires_the_registry_required_columns_the_key_and_the_cursor():
    assert SALESFORCE_OBJECTS["Opportunity"].qa_required_columns() == {
        "Id": "required", "Name": "required", "StageName": "required", "CloseDate": "required",
        "SystemModstamp": "cursor field"}
    spec = ObjectSpec(**_entry(required=(), primary_key="Name"))
    assert spec.qa_required_columns() == {"Name": "primary key", "SystemModstamp": "cursor field"}


def _modules_loaded_by(module: str) -> set[str]:
    """Top-level packages a fresh interpreter holds after importing ``module`` (this process has them all)."""
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_registry_imports_neither_polars_nor_prefect():
    assert not {"polars", "prefect"} & _modules_loaded_by("configs.salesforce_objects")


def test_every_field_defers_the_field_checks_to_the_describe():
    spec = validate_registry({"Invoice__c": {"fields": "*", "exclude_fields": ("Notes__c",),
                                             "group_by": ("Status__c",), "metrics": {"Amount__c": ("sum",)}}})
    entry = spec["Invoice__c"]
    assert entry.every_field and entry.fields == ("*",) and entry.exclude_fields == ("Notes__c",)
    assert (entry.cursor, entry.effective_sync_mode) == (None, "incremental")  # the cursor comes with the describe
    resolved = entry.with_fields(("Id", "Status__c", "Amount__c", "LastModifiedDate"))
    assert not resolved.every_field and resolved.cursor == "LastModifiedDate"
    assert entry.cursor_in(["Id", "SystemModstamp"]) == "SystemModstamp"
    with pytest.raises(RegistryError, match=r'Opp\.exclude_fields: only applies to fields "\*"'):
        validate_registry({"Opp": _entry(exclude_fields=("Amount",))})
