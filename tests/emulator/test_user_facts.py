"""User as on real orgs (issue #16): never deleted (no IsDeleted, the REST resource refuses DELETE), Title and
Department free text; checked through the real simple-salesforce client."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from emulator import freeze_clock

pytestmark = pytest.mark.integration


def test_deleting_a_user_is_method_not_allowed(emulator_reset, sf_client):
    user_id = sf_client.query("SELECT Id FROM User ORDER BY Id LIMIT 1")["records"][0]["Id"]
    with pytest.raises(SalesforceGeneralError) as refused:
        sf_client.User.delete(user_id)
    assert refused.value.status == 405
    assert refused.value.content == [{"message": "HTTP Method 'DELETE' not allowed. Allowed are HEAD,GET,PATCH",
                                      "errorCode": "METHOD_NOT_ALLOWED", "fields": []}]
    assert sf_client.User.get(user_id)["Id"] == user_id


@pytest.mark.parametrize("soql", ["SELECT Id, IsDeleted FROM User", "SELECT Id FROM User WHERE IsDeleted = false"])
def test_user_has_no_is_deleted_to_select_or_filter(sf_client, soql):
    with pytest.raises(SalesforceMalformedRequest, match="No such column 'IsDeleted' on entity 'User'"):
        sf_client.query(soql)


def test_query_all_on_user_is_every_user(sf_client):
    live = sf_client.query_all("SELECT Id FROM User")["records"]
    everything = sf_client.query_all("SELECT Id FROM User", include_deleted=True)["records"]
    assert len(everything) == len(live) == 50



@pytest.mark.parametrize("object_name", ["User", "Group"])
def test_replication_of_objects_without_a_recycle_bin(emulator_reset, sf_client, object_name):
    """getUpdated lists a changed user or group; getDeleted has nothing to list (no IsDeleted to soft delete)."""
    record_id = sf_client.query(f"SELECT Id FROM {object_name} ORDER BY Id LIMIT 1")["records"][0]["Id"]
    changed = datetime.now(timezone.utc).replace(microsecond=0)
    freeze_clock(emulator_reset, changed.isoformat())
    getattr(sf_client, object_name).update(record_id, {"Title": "Director"} if object_name == "User" else
                                           {"Name": "Renamed Queue"})
    freeze_clock(emulator_reset, (changed + timedelta(minutes=3)).isoformat())  # the window covers whole minutes
    start, end = changed - timedelta(minutes=2), changed + timedelta(minutes=3)
    assert record_id in getattr(sf_client, object_name).updated(start, end)["ids"]
    assert getattr(sf_client, object_name).deleted(start, end)["deletedRecords"] == []
