"""discover's pure core: describe dicts in, registry entry text out, and the entry passes the registry's checks."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from configs.discover import build_entry, plan_entry, type_comment
from configs.salesforce_objects import validate_registry
from utils.aggregations import find_misfit_metrics


def fld(name: str, sf_type: str, **props: Any) -> dict[str, Any]:
    """One describe field with the defaults most fields have (nillable, createable, not a formula)."""
    return {"name": name, "type": sf_type, "nillable": True, "createable": True, "calculated": False, **props}


def picklist(name: str, active: int, inactive: int = 0, **props: Any) -> dict[str, Any]:
    values = [{"value": f"v{i}", "active": i < active} for i in range(active + inactive)]
    return fld(name, "picklist", length=40, picklistValues=values, **props)


AUDIT = [fld("CreatedDate", "datetime", nillable=False, createable=False),
         fld("LastModifiedDate", "datetime", nillable=False, createable=False),
         fld("SystemModstamp", "datetime", nillable=False, createable=False)]
ID = fld("Id", "id", nillable=False, createable=False)

INVOICE = {"name": "Invoice__c", "fields": [
    ID,
    fld("IsDeleted", "boolean", nillable=False, createable=False),
    fld("Name", "string", length=80, nillable=False, autoNumber=True, createable=False),
    fld("Account__c", "reference", referenceTo=["Account"], relationshipName="Account__r", nillable=False),
    fld("Amount__c", "currency", precision=18, scale=2),
    fld("Discount__c", "percent", precision=5, scale=2),
    fld("Total__c", "currency", precision=18, scale=2, calculated=True, createable=False),  # a formula
    picklist("Status__c", 4, inactive=2),
    picklist("Region__c", 11),                        # too many values to group by
    picklist("Channel__c", 3),                        # the second group_by
    picklist("Tier__c", 2),                           # a third fitting picklist: not suggested
    fld("Tags__c", "multipicklist", picklistValues=[{"value": "a", "active": True}]),
    fld("Paid__c", "boolean", nillable=False),        # never null: not "required"
    fld("Notes__c", "textarea", length=32000),        # long text: only with --all
    fld("Memo__c", "textarea", length=255),           # short text: listed
    fld("Scan__c", "base64"),                         # never listed
    fld("Site__Latitude__s", "double", precision=9, scale=6, compoundFieldName="Site__c"),
    fld("Site__Longitude__s", "double", precision=9, scale=6, compoundFieldName="Site__c"),
    fld("Site__c", "location", createable=False),     # compound parent: its components are listed
    fld("Payload__c", "json"),                        # a type the pipeline cannot read
    fld("Legacy__c", "string", length=10, deprecatedAndHidden=True),
    fld("DueDate__c", "date"),
    fld("Lines__c", "int", digits=9),
    *AUDIT,
]}


def names(describe: dict[str, Any], **options: Any) -> list[str]:
    return [f["name"] for f in plan_entry(describe, **options).fields]


def entry_of(text: str) -> dict[str, Any]:
    """The printed entry as the registry's raw dict (comments and all: it is pasted as Python source)."""
    parsed = ast.literal_eval("{\n" + text + "\n}")
    assert isinstance(parsed, dict)
    return parsed


def test_the_default_list_is_the_useful_subset_in_describe_order():
    assert names(INVOICE) == ["Id", "Name", "Account__c", "Amount__c", "Discount__c", "Total__c", "Status__c",
                              "Region__c", "Channel__c", "Tier__c", "Tags__c", "Paid__c", "Memo__c",
                              "Site__Latitude__s", "Site__Longitude__s", "DueDate__c", "Lines__c", "CreatedDate",
                              "LastModifiedDate", "SystemModstamp"]


def test_all_adds_long_text_and_isdeleted_but_never_base64_compound_parents_hidden_or_unreadable_fields():
    every = names(INVOICE, every_field=True)
    assert {"Notes__c", "IsDeleted"} <= set(every)
    assert not {"Scan__c", "Site__c", "Payload__c", "Legacy__c"} & set(every)
    assert every == [f["name"] for f in INVOICE["fields"] if f["name"] in every]  # describe order


def test_what_is_left_out_is_said_with_the_reason():
    left_out = plan_entry(INVOICE).left_out
    assert left_out["compound (its component fields are listed)"] == ("Site__c",)
    assert "Scan__c" in left_out["base64 (file bodies; Bulk 2.0 cannot select them)"]
    assert left_out["long text (over 255 characters; --all lists it)"] == ("Notes__c",)
    assert "# not listed" in build_entry(INVOICE) and "Notes__c" in build_entry(INVOICE)


@pytest.mark.parametrize(("field", "comment"), [
    (INVOICE["fields"][3], "reference -> Account"),
    (fld("WhoId", "reference", referenceTo=["Contact", "Lead"]), "reference -> Contact, Lead"),
    (INVOICE["fields"][2], "string(80), auto-number"),
    (INVOICE["fields"][6], "formula: currency(18,2)"),
    (picklist("Status__c", 4, inactive=2), "picklist, 4 values"),  # active values only
    (INVOICE["fields"][16], "double(9,6), part of Site__c"),
    (fld("Ext__c", "string", length=20, externalId=True), "string(20), external id"),
    (ID, "id"),
])
def test_each_field_carries_its_type_as_a_comment(field, comment):
    assert type_comment(field) == comment
    if field in INVOICE["fields"]:
        line = next(line for line in build_entry(INVOICE).splitlines() if f'"{field["name"]}",' in line)
        assert line.rstrip().endswith(f"# {comment}")


def test_group_by_is_the_first_two_picklists_with_few_active_values():
    plan = plan_entry(INVOICE)
    assert [f["name"] for f in plan.group_by] == ["Status__c", "Channel__c"]
    assert '"group_by": ("Status__c", "Channel__c"),  # picklists with 4 and 3 active values' in build_entry(INVOICE)


def test_metrics_count_ids_and_aggregate_numbers_but_not_coordinates():
    metrics = plan_entry(INVOICE).metrics
    assert metrics == {"Id": ("count",), "Amount__c": ("sum", "mean", "max"), "Discount__c": ("mean", "max"),
                       "Total__c": ("sum", "mean", "max"), "Lines__c": ("sum", "mean", "max")}
    types = {f["name"]: f["type"] for f in INVOICE["fields"]}
    assert find_misfit_metrics("Invoice__c", metrics, types) == []  # the describe-time check a run applies


def test_required_are_the_createable_non_nillable_fields_except_booleans():
    assert plan_entry(INVOICE).required == ("Account__c",)  # Name is an auto-number: not createable


def test_the_registry_picks_the_cursor_from_the_listed_fields():
    """No entry names a cursor_field: the registry takes SystemModstamp, else LastModifiedDate, else CreatedDate
    from the fields (ObjectSpec.cursor); the printout says which when it is not SystemModstamp."""
    assert "cursor_field" not in entry_of(build_entry(INVOICE))["Invoice__c"]
    assert validate_registry(entry_of(build_entry(INVOICE)))["Invoice__c"].cursor == "SystemModstamp"
    no_modstamp = {"name": "Thing__c", "fields": [ID, *AUDIT[:2]]}
    assert "# incremental on LastModifiedDate: this object has no SystemModstamp" in build_entry(no_modstamp)
    assert validate_registry(entry_of(build_entry(no_modstamp)))["Thing__c"].cursor == "LastModifiedDate"
    history = {"name": "Invoice__History", "fields": [
        ID, fld("ParentId", "reference", referenceTo=["Invoice__c"], createable=False),
        fld("Field", "picklist", picklistValues=[]), fld("OldValue", "anyType"), fld("NewValue", "anyType"),
        AUDIT[0]]}
    spec = validate_registry(entry_of(build_entry(history)))["Invoice__History"]
    assert (spec.cursor, spec.effective_sync_mode) == ("CreatedDate", "incremental")


def test_an_object_without_any_cursor_is_pulled_in_full():
    entry = entry_of(build_entry({"name": "Setting__c", "fields": [ID, fld("Value__c", "string", length=40)]}))
    assert entry["Setting__c"]["sync_mode"] == "full" and "cursor_field" not in entry["Setting__c"]
    assert validate_registry(entry)["Setting__c"].cursor is None


@pytest.mark.parametrize("every_field", [False, True])
@pytest.mark.parametrize("describe", [
    INVOICE,
    {"name": "Thing__c", "fields": [ID, *AUDIT[:2]]},
    {"name": "Setting__c", "fields": [ID, fld("Value__c", "string", length=40)]},
    {"name": "Minimal__c", "fields": [ID]},
], ids=["custom", "no-modstamp", "no-cursor", "only-id"])
def test_the_printed_entry_passes_the_registry_validation(describe, every_field):
    entry = entry_of(build_entry(describe, every_field=every_field))
    specs = validate_registry(entry)  # raises RegistryError listing every problem
    assert list(specs) == [describe["name"]]
    spec = specs[describe["name"]]
    assert list(spec.fields) == names(describe, every_field=every_field)


def test_the_entry_is_indented_to_paste_into_the_registry():
    first, *_, last = build_entry(INVOICE).splitlines()
    assert first == '    "Invoice__c": {' and last == "    },"
