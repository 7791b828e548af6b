"""Compound address values as a real org without state and country picklists returns them: exactly these keys,
in this order, with no stateCode/countryCode."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration]
ADDRESS_KEYS = ["city", "country", "geocodeAccuracy", "latitude", "longitude", "postalCode", "state", "street"]


def test_billing_address_has_the_real_keys(sf_client):
    records = sf_client.query("SELECT Id, BillingAddress FROM Account WHERE BillingCity != null LIMIT 5")["records"]
    assert records
    for record in records:
        assert list(record["BillingAddress"]) == ADDRESS_KEYS
