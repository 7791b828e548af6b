"""Describe facts measured on real orgs (issue #16), as data, checked through simple-salesforce's describe()."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

# Every key of a real REST field describe (API v59), captured from Account, Opportunity, Contact, Lead and Case.
REAL_FIELD_KEYS = frozenset({
    "aggregatable", "aiPredictionField", "autoNumber", "byteLength", "calculated", "calculatedFormula",
    "cascadeDelete", "caseSensitive", "compoundFieldName", "controllerName", "createable", "custom", "defaultValue",
    "defaultValueFormula", "defaultedOnCreate", "dependentPicklist", "deprecatedAndHidden", "digits",
    "displayLocationInDecimal", "encrypted", "externalId", "extraTypeInfo", "filterable", "filteredLookupInfo",
    "formulaTreatNullNumberAsZero", "groupable", "highScaleNumber", "htmlFormatted", "idLookup", "inlineHelpText",
    "label", "length", "mask", "maskType", "name", "nameField", "namePointing", "nillable", "permissionable",
    "picklistValues", "polymorphicForeignKey", "precision", "queryByDistance", "referenceTargetField",
    "referenceTo", "relationshipName", "relationshipOrder", "restrictedDelete", "restrictedPicklist", "scale",
    "searchPrefilterable", "soapType", "sortable", "type", "unique", "updateable", "writeRequiresMasterRead",
})

# (object, field, describe key, real value)
REAL_FIELD_FACTS = [
    ("Account", "AnnualRevenue", "scale", 0),
    ("Opportunity", "Amount", "scale", 2),
    ("Account", "Id", "byteLength", 18),
    ("Opportunity", "AccountId", "byteLength", 18),
    ("Opportunity", "StageName", "length", 40),
    ("Opportunity", "StageName", "byteLength", 120),
    ("Account", "CreatedDate", "groupable", False),
    ("Opportunity", "IsWon", "aggregatable", False),
    ("Opportunity", "Amount", "groupable", False),
    ("Account", "Industry", "groupable", True),
    ("Account", "Id", "aggregatable", True),
]


def _fields(sf_client, object_name: str) -> dict[str, dict]:
    return {f["name"]: f for f in getattr(sf_client, object_name).describe()["fields"]}


@pytest.mark.parametrize("object_name", ["Account", "Opportunity", "Contact", "Lead", "Case"])
def test_every_field_has_exactly_the_keys_of_a_real_describe(sf_client, object_name):
    for name, described in _fields(sf_client, object_name).items():
        assert set(described) == REAL_FIELD_KEYS, (name, sorted(set(described) ^ REAL_FIELD_KEYS))


@pytest.mark.parametrize(("object_name", "field", "key", "value"), REAL_FIELD_FACTS)
def test_field_properties_match_a_real_org(sf_client, object_name, field, key, value):
    assert _fields(sf_client, object_name)[field][key] == value


def test_every_object_lists_the_master_record_type(sf_client):
    for object_name in ("Account", "Opportunity", "Contact", "Lead", "Case"):
        (master,) = getattr(sf_client, object_name).describe()["recordTypeInfos"]
        assert (master["recordTypeId"], master["master"], master["developerName"]) == \
            ("012000000000000AAA", True, "Master")


def test_describe_and_soql_agree_on_grouping(sf_client):
    """A field describe calls groupable is accepted by GROUP BY, and one it does not is refused."""
    fields = _fields(sf_client, "Opportunity")
    for name in ("StageName", "CloseDate", "Amount", "CreatedDate"):
        soql = f"SELECT {name}, COUNT(Id) FROM Opportunity GROUP BY {name} LIMIT 5"
        if fields[name]["groupable"]:
            assert sf_client.query(soql)["done"] is True
        else:
            with pytest.raises(Exception, match="can not be grouped"):
                sf_client.query(soql)
