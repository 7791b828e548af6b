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
    # audit and standard lookups
    ("Account", "CreatedById", "referenceTo", ["User"]),
    ("Account", "CreatedById", "relationshipName", "CreatedBy"),
    ("Case", "LastModifiedById", "relationshipName", "LastModifiedBy"),
    ("User", "CreatedById", "referenceTo", ["User"]),
    ("Account", "ParentId", "referenceTo", ["Account"]),
    ("Account", "ParentId", "relationshipName", "Parent"),
    ("Contact", "MasterRecordId", "referenceTo", ["Contact"]),
    ("Lead", "MasterRecordId", "createable", False),
    ("Opportunity", "LastActivityDate", "type", "date"),
    ("Account", "ShippingLatitude", "scale", 15),
    ("Account", "ShippingStreet", "compoundFieldName", "ShippingAddress"),
    ("Lead", "City", "compoundFieldName", "Address"),
    ("Opportunity", "ExpectedRevenue", "type", "currency"),
    ("Opportunity", "ForecastCategoryName", "type", "picklist"),
    # Lead and Case owners are users or queues
    ("Lead", "OwnerId", "referenceTo", ["Group", "User"]),
    ("Lead", "OwnerId", "polymorphicForeignKey", True),
    ("Lead", "OwnerId", "relationshipName", "Owner"),
    ("Case", "OwnerId", "referenceTo", ["Group", "User"]),
    ("Case", "OwnerId", "polymorphicForeignKey", True),
    ("Account", "OwnerId", "polymorphicForeignKey", False),
    # person names are compound
    ("Contact", "FirstName", "compoundFieldName", "Name"),
    ("Contact", "LastName", "compoundFieldName", "Name"),
    ("Lead", "FirstName", "compoundFieldName", "Name"),
    ("User", "LastName", "compoundFieldName", "Name"),
    # User's Title and Department are text, not picklists
    ("User", "Title", "type", "string"),
    ("User", "Title", "length", 80),
    ("User", "Department", "type", "string"),
    ("User", "Department", "length", 80),
]

# describe(): (object, key, real value)
REAL_OBJECT_FACTS = [
    ("User", "deletable", False),
    ("User", "undeletable", False),
    ("User", "mergeable", False),
    ("Account", "mergeable", True),
    ("Opportunity", "mergeable", False),
    ("Group", "undeletable", False),
]

# (value, label) of Opportunity.ForecastCategory: API values and labels differ
REAL_FORECAST_CATEGORIES = [("Omitted", "Omitted"), ("Pipeline", "Pipeline"), ("BestCase", "Best Case"),
                            ("Forecast", "Commit"), ("Closed", "Closed")]

# Standard fields every real org's describe has (a Developer Edition's, custom fields left out); real describes
# count 68 / 59 / 40 / 54 / 35 fields with custom and feature fields. RecordTypeId is absent: an object exposes it
# only once it has record types besides Master, and the emulated org has none.
REAL_STANDARD_FIELDS = {
    "Account": "Id IsDeleted MasterRecordId Name Type ParentId BillingStreet BillingCity BillingState "
               "BillingPostalCode BillingCountry BillingLatitude BillingLongitude BillingGeocodeAccuracy "
               "BillingAddress ShippingStreet ShippingCity ShippingState ShippingPostalCode ShippingCountry "
               "ShippingLatitude ShippingLongitude ShippingGeocodeAccuracy ShippingAddress Phone Fax AccountNumber "
               "Website PhotoUrl Sic Industry AnnualRevenue NumberOfEmployees Ownership TickerSymbol Description "
               "Rating Site OwnerId CreatedDate CreatedById LastModifiedDate LastModifiedById SystemModstamp "
               "LastActivityDate LastViewedDate LastReferencedDate Jigsaw JigsawCompanyId CleanStatus AccountSource "
               "DunsNumber Tradestyle NaicsCode NaicsDesc YearStarted SicDesc DandbCompanyId OperatingHoursId",
    "Contact": "Id IsDeleted MasterRecordId AccountId LastName FirstName Salutation Name OtherStreet OtherCity "
               "OtherState OtherPostalCode OtherCountry OtherLatitude OtherLongitude OtherGeocodeAccuracy "
               "OtherAddress MailingStreet MailingCity MailingState MailingPostalCode MailingCountry MailingLatitude "
               "MailingLongitude MailingGeocodeAccuracy MailingAddress Phone Fax MobilePhone HomePhone OtherPhone "
               "AssistantPhone ReportsToId Email Title Department AssistantName LeadSource Birthdate Description "
               "OwnerId HasOptedOutOfEmail HasOptedOutOfFax DoNotCall CreatedDate CreatedById LastModifiedDate "
               "LastModifiedById SystemModstamp LastActivityDate LastCURequestDate LastCUUpdateDate LastViewedDate "
               "LastReferencedDate EmailBouncedReason EmailBouncedDate IsEmailBounced PhotoUrl Jigsaw "
               "JigsawContactId CleanStatus IndividualId",
    "Opportunity": "Id IsDeleted AccountId IsPrivate Name Description StageName Amount Probability ExpectedRevenue "
                   "TotalOpportunityQuantity CloseDate Type NextStep LeadSource IsClosed IsWon ForecastCategory "
                   "ForecastCategoryName CampaignId HasOpportunityLineItem Pricebook2Id OwnerId CreatedDate "
                   "CreatedById LastModifiedDate LastModifiedById SystemModstamp LastActivityDate PushCount "
                   "LastStageChangeDate FiscalQuarter FiscalYear Fiscal ContactId LastViewedDate LastReferencedDate "
                   "HasOpenActivity HasOverdueTask LastAmountChangedHistoryId LastCloseDateChangedHistoryId",
    "Lead": "Id IsDeleted MasterRecordId LastName FirstName Salutation Name Title Company Street City State "
            "PostalCode Country Latitude Longitude GeocodeAccuracy Address Phone MobilePhone Fax Email Website "
            "PhotoUrl Description LeadSource Status Industry Rating AnnualRevenue NumberOfEmployees OwnerId "
            "HasOptedOutOfEmail IsConverted ConvertedDate ConvertedAccountId ConvertedContactId "
            "ConvertedOpportunityId IsUnreadByOwner CreatedDate CreatedById LastModifiedDate LastModifiedById "
            "SystemModstamp LastActivityDate DoNotCall HasOptedOutOfFax LastViewedDate LastReferencedDate "
            "LastTransferDate Jigsaw JigsawContactId CleanStatus CompanyDunsNumber DandbCompanyId EmailBouncedReason "
            "EmailBouncedDate IndividualId",
    "Case": "Id IsDeleted MasterRecordId CaseNumber ContactId AccountId AssetId ParentId SuppliedName SuppliedEmail "
            "SuppliedPhone SuppliedCompany Type Status Reason Origin Subject Priority Description IsClosed "
            "ClosedDate IsEscalated OwnerId CreatedDate CreatedById LastModifiedDate LastModifiedById SystemModstamp "
            "ContactPhone ContactMobile ContactEmail ContactFax Comments LastViewedDate LastReferencedDate",
    "Group": "Id Name DeveloperName RelatedId Type Email OwnerId DoesSendEmailToMembers DoesIncludeBosses "
             "CreatedDate CreatedById LastModifiedDate LastModifiedById SystemModstamp",
}


def _fields(sf_client, object_name: str) -> dict[str, dict]:
    return {f["name"]: f for f in getattr(sf_client, object_name).describe()["fields"]}


@pytest.mark.parametrize("object_name", ["Account", "Opportunity", "Contact", "Lead", "Case", "User", "Group"])
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


@pytest.mark.parametrize(("object_name", "key", "value"), REAL_OBJECT_FACTS)
def test_object_properties_match_a_real_org(sf_client, object_name, key, value):
    assert getattr(sf_client, object_name).describe()[key] == value
    entry = next(o for o in sf_client.describe()["sobjects"] if o["name"] == object_name)
    assert entry[key] == value


@pytest.mark.parametrize("object_name", list(REAL_STANDARD_FIELDS))
def test_the_standard_fields_of_a_real_describe_in_its_order(sf_client, object_name):
    assert list(_fields(sf_client, object_name)) == REAL_STANDARD_FIELDS[object_name].split()


def test_user_has_no_is_deleted_field(sf_client):
    assert "IsDeleted" not in _fields(sf_client, "User")


def test_forecast_category_api_values_and_labels(sf_client):
    fields = _fields(sf_client, "Opportunity")
    values = [(v["value"], v["label"]) for v in fields["ForecastCategory"]["picklistValues"]]
    assert values == REAL_FORECAST_CATEGORIES
    names = [v["value"] for v in fields["ForecastCategoryName"]["picklistValues"]]
    assert names == [label for _, label in REAL_FORECAST_CATEGORIES]
