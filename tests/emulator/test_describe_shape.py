"""The shape of an object describe on a real org (issue #16), as data: its ``urls`` and the keys of every
``childRelationships`` entry, read through simple-salesforce's describe() and describe global."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

OBJECTS = ("Account", "Contact", "Opportunity", "Lead", "Case", "User")
# an sObject describe's urls, in the order a real org writes them (API v59-v61); the ui* ones on the instance
REAL_DESCRIBE_URLS = ["compactLayouts", "rowTemplate", "approvalLayouts", "uiDetailTemplate", "uiEditTemplate",
                      "listviews", "describe", "uiNewRecord", "quickActions", "layouts", "sobject"]
# (url key, path after /services/data/v59.0/sobjects/<Object> or after the instance URL)
REAL_URL_SUFFIXES = [("compactLayouts", "/describe/compactLayouts"), ("approvalLayouts", "/describe/approvalLayouts"),
                     ("listviews", "/listviews"), ("quickActions", "/quickActions"), ("layouts", "/describe/layouts"),
                     ("rowTemplate", "/{ID}"), ("describe", "/describe"), ("sobject", "")]
REAL_UI_URLS = [("uiDetailTemplate", "/{ID}"), ("uiEditTemplate", "/{ID}/e"), ("uiNewRecord", "/{prefix}/e")]
# describe global keeps three
REAL_GLOBAL_URLS = ["rowTemplate", "describe", "sobject"]
# every childRelationships entry, keys in the real (alphabetical) order
REAL_CHILD_RELATIONSHIP_KEYS = ["cascadeDelete", "childSObject", "deprecatedAndHidden", "field", "junctionIdListNames",
                                "junctionReferenceTo", "relationshipName", "restrictedDelete"]


@pytest.mark.parametrize("object_name", OBJECTS)
def test_describe_urls_are_the_real_eleven(emulator, sf_client, object_name):
    described = getattr(sf_client, object_name).describe()
    urls = described["urls"]
    assert list(urls) == REAL_DESCRIBE_URLS
    base = f"/services/data/v59.0/sobjects/{object_name}"
    for key, suffix in REAL_URL_SUFFIXES:
        assert urls[key] == base + suffix, key
    for key, suffix in REAL_UI_URLS:
        assert urls[key] == emulator.instance_url + suffix.replace("{prefix}", described["keyPrefix"]), key


def test_describe_global_keeps_three_urls(sf_client):
    for entry in sf_client.describe()["sobjects"]:
        assert list(entry["urls"]) == REAL_GLOBAL_URLS, entry["name"]


@pytest.mark.parametrize("object_name", ["Account", "Contact", "User"])  # the objects others look up
def test_child_relationships_have_the_real_keys(sf_client, object_name):
    relationships = getattr(sf_client, object_name).describe()["childRelationships"]
    assert relationships
    for relationship in relationships:
        assert list(relationship) == REAL_CHILD_RELATIONSHIP_KEYS, relationship
        assert relationship["junctionIdListNames"] == [] and relationship["junctionReferenceTo"] == []


def test_account_lists_its_contacts_relationship(sf_client):
    (contacts,) = [r for r in sf_client.Account.describe()["childRelationships"] if r["relationshipName"] == "Contacts"]
    assert (contacts["childSObject"], contacts["field"], contacts["junctionIdListNames"],
            contacts["junctionReferenceTo"]) == ("Contact", "AccountId", [], [])
