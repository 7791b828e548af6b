"""The emulated org's objects and fields, and the describe / describeGlobal JSON built from them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emulator.soql_parser import is_groupable, supports_aggregate

_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "double": "xsd:double",
    "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime",
    "address": "urn:address", "location": "urn:location", "anyType": "xsd:anyType",
}
_TEXT_LENGTHS = {"id": 18, "reference": 18, "textarea": 32000, "email": 80, "phone": 40, "url": 255,
                 "picklist": 40, "string": 255}  # picklists: 40 characters on real orgs (byteLength 120)


@dataclass(frozen=True)
class FieldDef:
    """One field of an object: what describe reports, and what the SOQL engine needs (its Catalog FieldInfo)."""

    name: str
    type: str
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    compound_field_name: str | None = None
    picklist: tuple[str, ...] = ()
    nillable: bool = True
    writable: bool = True  # createable and updateable through the sObject endpoints
    precision: int = 0
    scale: int = 0
    length: int | None = None
    label: str | None = None
    picklist_labels: tuple[str, ...] = ()  # when a picklist's labels differ from its API values (ForecastCategory)
    formula: str | None = None  # a formula field (describe ``calculated``): its value is computed when read
    auto_number: bool = False  # Name of an auto-number custom object (INV-000001)
    master_detail: bool = False  # a master-detail lookup (cascadeDelete, the master owns the record)
    child_relationship: str | None = None  # the relationship name on the parent (Invoices__r), else its plural

    @property
    def is_polymorphic(self) -> bool:
        """A lookup to several objects (Lead.OwnerId: Group or User); SOQL reaches its parent as a ``Name``."""
        return len(self.reference_to) > 1

    @property
    def is_long_text(self) -> bool:
        """Long text areas (over 255 chars) can be neither filtered nor sorted in SOQL."""
        return self.type == "textarea" and (self.length or _TEXT_LENGTHS["textarea"]) > 255

    @property
    def filterable(self) -> bool:
        return not (self.is_long_text or self.is_compound or self.type == "anyType")  # history Old/NewValue

    @property
    def sortable(self) -> bool:
        return not (self.is_long_text or self.is_compound)

    @property
    def is_compound(self) -> bool:
        return self.type in ("address", "location")

    @property
    def is_custom(self) -> bool:
        return self.name.endswith("__c")


@dataclass(frozen=True)
class ObjectDef:
    """One sObject: name, key prefix, label and fields in describe order."""

    name: str
    key_prefix: str
    label_plural: str
    fields: tuple[FieldDef, ...]
    required_on_create: tuple[str, ...] = ()
    deletable: bool = True
    undeletable: bool = True  # soft deletes to the recycle bin (the object has IsDeleted)
    mergeable: bool = False
    # describeGlobal flags that differ from a standard object's (a History object is neither createable nor ...)
    describe_flags: tuple[tuple[str, bool], ...] = ()
    bulk_query: bool = True  # False: the Bulk APIs refuse the entity (INVALIDENTITY / InvalidEntity)
    query_all: bool = True   # False: queryAll is refused on every API (REST, Bulk 2.0, Bulk 1.0); query works
    _by_name: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False, init=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        return self._by_name.get(name.lower())

    @property
    def formulas(self) -> tuple[FieldDef, ...]:
        return tuple(f for f in self.fields if f.formula is not None)


def query_all_refusal(name: str) -> tuple[int, str, str]:
    """(HTTP status, errorCode, message) of a queryAll an object refuses (REST ``queryAll``, a Bulk 2.0 ``queryAll``
    job). No Salesforce document gives the exact answer: the code is the one tap-salesforce records (its
    Blacklisting.md) for objects whose queryAll fails, ``INVALID_TYPE_FOR_OPERATION: entity type ... does not support
    query``, with HTTP 400 as every REST query error; the message naming queryAll is the emulator's [unverified]."""
    return 400, "INVALID_TYPE_FOR_OPERATION", f"entity type {name} does not support queryAll"


_ID = FieldDef("Id", "id", nillable=False, writable=False)
_IS_DELETED = FieldDef("IsDeleted", "boolean", nillable=False, writable=False)


def _ref(name: str, *targets: str, rel: str | None = None, **kw: Any) -> FieldDef:
    """A lookup; its relationship is the field name without ``Id`` (``ParentId`` -> ``Parent``)."""
    return FieldDef(name, "reference", targets, rel or name[:-2], **kw)


def _owner(*targets: str) -> FieldDef:
    return _ref("OwnerId", *(targets or ("User",)), rel="Owner", nillable=False)


def _read_only(name: str, type_: str, **kw: Any) -> FieldDef:
    return FieldDef(name, type_, writable=False, **kw)


def _flag(name: str, *, writable: bool = True) -> FieldDef:
    return FieldDef(name, "boolean", nillable=False, writable=writable)


def _text(name: str, length: int, **kw: Any) -> FieldDef:
    return FieldDef(name, "string", length=length, **kw)


def _audit() -> tuple[FieldDef, ...]:
    """The audit fields every object has, in describe order; the two Ids name the User who wrote."""
    return (_read_only("CreatedDate", "datetime", nillable=False),
            _ref("CreatedById", "User", rel="CreatedBy", nillable=False, writable=False),
            _read_only("LastModifiedDate", "datetime", nillable=False),
            _ref("LastModifiedById", "User", rel="LastModifiedBy", nillable=False, writable=False),
            _read_only("SystemModstamp", "datetime", nillable=False))


def _recently_viewed() -> tuple[FieldDef, ...]:
    return _read_only("LastViewedDate", "datetime"), _read_only("LastReferencedDate", "datetime")


def _master_record(object_name: str) -> FieldDef:
    """The surviving record of a merge, set on the records a merge deleted (objects that merge only)."""
    return _ref("MasterRecordId", object_name, rel="MasterRecord", writable=False)


def _pick(name: str, values: tuple[str, ...], **kw: Any) -> FieldDef:
    return FieldDef(name, "picklist", picklist=values, **kw)


def _money(name: str, scale: int = 2, **kw: Any) -> FieldDef:
    return FieldDef(name, "currency", precision=18, scale=scale, **kw)


def _address(prefix: str) -> tuple[FieldDef, ...]:
    """An address's components (compoundFieldName ``<prefix>Address``), then the compound field itself."""
    compound = f"{prefix}Address"
    parts = [FieldDef(f"{prefix}{p}", t, compound_field_name=compound, length=n)
             for p, t, n in (("Street", "textarea", 255), ("City", "string", 40), ("State", "string", 80),
                             ("PostalCode", "string", 20), ("Country", "string", 80))]
    geo = [FieldDef(f"{prefix}{p}", "double", compound_field_name=compound, precision=18, scale=15)
           for p in ("Latitude", "Longitude")]
    accuracy = _pick(f"{prefix}GeocodeAccuracy", GEOCODE_ACCURACIES, compound_field_name=compound)
    return (*parts, *geo, accuracy, FieldDef(compound, "address", writable=False))


def _person_name(*, first_nillable: bool = True) -> tuple[FieldDef, ...]:
    """LastName, FirstName (components of the compound ``Name``) and Salutation."""
    return (_text("LastName", 80, nillable=False, compound_field_name="Name"),
            _text("FirstName", 40, nillable=first_nillable, compound_field_name="Name"),
            _pick("Salutation", SALUTATIONS, compound_field_name="Name"))


def _full_name() -> FieldDef:
    return _text("Name", 121, nillable=False, writable=False)


INDUSTRIES = ("Agriculture", "Banking", "Biotechnology", "Construction", "Consulting", "Education", "Energy",
              "Finance", "Healthcare", "Manufacturing", "Media", "Retail", "Technology", "Telecommunications")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Trade Show", "Other")
ACCOUNT_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
RATINGS = ("Hot", "Warm", "Cold")
ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")
OWNERSHIPS = ("Public", "Private", "Subsidiary", "Other")
GEOCODE_ACCURACIES = ("Address", "NearAddress", "Block", "Street", "ExtendedZip", "Zip", "Neighborhood", "City",
                      "County", "State", "Unknown")
CLEAN_STATUSES = ("Matched", "Different", "Acknowledged", "NotFound", "Inactive", "Pending", "SelectMatch",
                  "Skipped")
SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
OPP_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
              "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost")
# ForecastCategory's API values and their labels differ (BestCase is "Best Case", Forecast is "Commit");
# ForecastCategoryName carries the labels as its values.
FORECAST_CATEGORIES = ("Omitted", "Pipeline", "BestCase", "Forecast", "Closed")
FORECAST_CATEGORY_NAMES = ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")
OPP_TYPES = ("New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
CASE_STATUSES = ("New", "Working", "Escalated", "Closed")
CASE_PRIORITIES = ("High", "Medium", "Low")
CASE_ORIGINS = ("Phone", "Email", "Web")
CASE_TYPES = ("Mechanical", "Electrical", "Electronic", "Structural", "Other")
CASE_REASONS = ("Installation", "Equipment Complexity", "Performance", "Breakdown", "Equipment Design", "Feedback",
                "Other")
DEPARTMENTS = ("Sales", "Support", "Marketing", "Finance", "Engineering")
TITLES = ("Account Executive", "Sales Manager", "Support Engineer", "VP Sales", "Marketing Lead", "CFO")
USER_TYPES = ("Standard", "PowerPartner", "PowerCustomerSuccess", "CustomerSuccess", "Guest", "CspLitePortal",
              "CsnOnly", "SelfService")
TIME_ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "Europe/Berlin",
              "Asia/Tokyo")
LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "ja_JP")
LANGUAGES = ("en_US", "fr", "de", "ja")
EMAIL_ENCODINGS = ("UTF-8", "ISO-8859-1", "Shift_JIS")
GROUP_TYPES = ("AllCustomerPortal", "Manager", "ManagerAndSubordinatesInternal", "Organization", "PRMOrganization",
               "Queue", "Regular", "Role", "RoleAndSubordinates", "RoleAndSubordinatesInternal", "Territory",
               "TerritoryAndSubordinates")
QUEUE_OWNED = ("Group", "User")  # Lead and Case owners: a user or a queue (a Group of Type 'Queue')

OBJECTS: dict[str, ObjectDef] = {o.name: o for o in (
    # User: no IsDeleted (users are deactivated, never deleted) and neither deletable nor undeletable.
    ObjectDef("User", "005", "Users", (
        _ID, _text("Username", 80, nillable=False),
        _text("LastName", 80, nillable=False, compound_field_name="Name"),
        _text("FirstName", 40, compound_field_name="Name"), _full_name(), _text("CompanyName", 80),
        _text("Department", 80), _text("Title", 80), FieldDef("Email", "email", nillable=False, length=128),
        FieldDef("Phone", "phone"), FieldDef("MobilePhone", "phone"), _text("Alias", 8, nillable=False),
        _text("CommunityNickname", 40), _flag("IsActive"), _pick("TimeZoneSidKey", TIME_ZONES),
        _ref("UserRoleId", "UserRole"), _pick("LocaleSidKey", LOCALES), _pick("EmailEncodingKey", EMAIL_ENCODINGS),
        _ref("ProfileId", "Profile"), _pick("UserType", USER_TYPES, writable=False),
        _pick("LanguageLocaleKey", LANGUAGES), _ref("ManagerId", "User"), _read_only("LastLoginDate", "datetime"),
        *_audit(), *_recently_viewed(),
    ), required_on_create=("Username", "LastName", "Email", "Alias"), deletable=False, undeletable=False),
    # Group: a queue is a Group of Type 'Queue'. No IsDeleted: a deleted group does not go to the recycle bin.
    ObjectDef("Group", "00G", "Groups", (
        _ID, _text("Name", 40, nillable=False), _text("DeveloperName", 80), _ref("RelatedId", "User", "UserRole"),
        _pick("Type", GROUP_TYPES, nillable=False), FieldDef("Email", "email", length=255),
        _ref("OwnerId", "Organization", "User", rel="Owner", nillable=False, writable=False),
        _flag("DoesSendEmailToMembers"), _flag("DoesIncludeBosses"), *_audit(),
    ), required_on_create=("Name", "Type"), undeletable=False),
    ObjectDef("Account", "001", "Accounts", (
        _ID, _IS_DELETED, _master_record("Account"), FieldDef("Name", "string", nillable=False),
        _pick("Type", ACCOUNT_TYPES), _ref("ParentId", "Account"), *_address("Billing"), *_address("Shipping"),
        FieldDef("Phone", "phone"), FieldDef("Fax", "phone"), _text("AccountNumber", 40), FieldDef("Website", "url"),
        _read_only("PhotoUrl", "url"), _text("Sic", 20), _pick("Industry", INDUSTRIES),
        _money("AnnualRevenue", scale=0), FieldDef("NumberOfEmployees", "int", precision=8),
        _pick("Ownership", OWNERSHIPS), _text("TickerSymbol", 20), FieldDef("Description", "textarea"),
        _pick("Rating", RATINGS), _text("Site", 80), _owner(), *_audit(), _read_only("LastActivityDate", "date"),
        *_recently_viewed(), _text("Jigsaw", 20), _read_only("JigsawCompanyId", "string", length=20),
        _pick("CleanStatus", CLEAN_STATUSES), _pick("AccountSource", ACCOUNT_SOURCES), _text("DunsNumber", 9),
        _text("Tradestyle", 255), _text("NaicsCode", 8), _text("NaicsDesc", 120), _text("YearStarted", 4),
        _text("SicDesc", 80), _ref("DandbCompanyId", "DandBCompany"), _ref("OperatingHoursId", "OperatingHours"),
    ), required_on_create=("Name",), mergeable=True),
    ObjectDef("Contact", "003", "Contacts", (
        _ID, _IS_DELETED, _master_record("Contact"), _ref("AccountId", "Account"), *_person_name(), _full_name(),
        *_address("Other"), *_address("Mailing"), FieldDef("Phone", "phone"), FieldDef("Fax", "phone"),
        FieldDef("MobilePhone", "phone"), FieldDef("HomePhone", "phone"), FieldDef("OtherPhone", "phone"),
        FieldDef("AssistantPhone", "phone"), _ref("ReportsToId", "Contact"), FieldDef("Email", "email"),
        _text("Title", 128), _text("Department", 80), _text("AssistantName", 40), _pick("LeadSource", LEAD_SOURCES),
        FieldDef("Birthdate", "date"), FieldDef("Description", "textarea"), _owner(), _flag("HasOptedOutOfEmail"),
        _flag("HasOptedOutOfFax"), _flag("DoNotCall"), *_audit(), _read_only("LastActivityDate", "date"),
        _read_only("LastCURequestDate", "datetime"), _read_only("LastCUUpdateDate", "datetime"),
        *_recently_viewed(), _text("EmailBouncedReason", 255), FieldDef("EmailBouncedDate", "datetime"),
        _flag("IsEmailBounced", writable=False), _read_only("PhotoUrl", "url"), _text("Jigsaw", 20),
        _read_only("JigsawContactId", "string", length=20), _pick("CleanStatus", CLEAN_STATUSES),
        _ref("IndividualId", "Individual"),
    ), required_on_create=("LastName",), mergeable=True),
    ObjectDef("Opportunity", "006", "Opportunities", (
        _ID, _IS_DELETED, _ref("AccountId", "Account"), _flag("IsPrivate"), FieldDef("Name", "string", nillable=False),
        FieldDef("Description", "textarea"), _pick("StageName", OPP_STAGES, nillable=False), _money("Amount"),
        FieldDef("Probability", "percent", precision=3, scale=0), _money("ExpectedRevenue", writable=False),
        FieldDef("TotalOpportunityQuantity", "double", precision=18, scale=2),
        FieldDef("CloseDate", "date", nillable=False), _pick("Type", OPP_TYPES), _text("NextStep", 255),
        _pick("LeadSource", LEAD_SOURCES), _flag("IsClosed", writable=False), _flag("IsWon", writable=False),
        _pick("ForecastCategory", FORECAST_CATEGORIES, picklist_labels=FORECAST_CATEGORY_NAMES, nillable=False,
              writable=False),
        _pick("ForecastCategoryName", FORECAST_CATEGORY_NAMES), _ref("CampaignId", "Campaign"),
        _flag("HasOpportunityLineItem", writable=False), _ref("Pricebook2Id", "Pricebook2"), _owner(), *_audit(),
        _read_only("LastActivityDate", "date"), _read_only("PushCount", "int", precision=9),
        _read_only("LastStageChangeDate", "datetime"), _read_only("FiscalQuarter", "int", precision=2),
        _read_only("FiscalYear", "int", precision=4), _read_only("Fiscal", "string", length=6),
        _ref("ContactId", "Contact"), *_recently_viewed(), _flag("HasOpenActivity", writable=False),
        _flag("HasOverdueTask", writable=False),
        _ref("LastAmountChangedHistoryId", "OpportunityHistory", writable=False),
        _ref("LastCloseDateChangedHistoryId", "OpportunityHistory", writable=False),
    ), required_on_create=("Name", "StageName", "CloseDate")),
    ObjectDef("Lead", "00Q", "Leads", (
        _ID, _IS_DELETED, _master_record("Lead"), *_person_name(), _full_name(), _text("Title", 128),
        FieldDef("Company", "string", nillable=False), *_address(""), FieldDef("Phone", "phone"),
        FieldDef("MobilePhone", "phone"), FieldDef("Fax", "phone"), FieldDef("Email", "email"),
        FieldDef("Website", "url"), _read_only("PhotoUrl", "url"), FieldDef("Description", "textarea"),
        _pick("LeadSource", LEAD_SOURCES), _pick("Status", LEAD_STATUSES, nillable=False),
        _pick("Industry", INDUSTRIES), _pick("Rating", RATINGS), _money("AnnualRevenue", scale=0),
        FieldDef("NumberOfEmployees", "int", precision=8), _owner(*QUEUE_OWNED), _flag("HasOptedOutOfEmail"),
        _flag("IsConverted", writable=False), _read_only("ConvertedDate", "date"),
        _ref("ConvertedAccountId", "Account", writable=False), _ref("ConvertedContactId", "Contact", writable=False),
        _ref("ConvertedOpportunityId", "Opportunity", writable=False), _flag("IsUnreadByOwner"), *_audit(),
        _read_only("LastActivityDate", "date"), _flag("DoNotCall"), _flag("HasOptedOutOfFax"), *_recently_viewed(),
        _read_only("LastTransferDate", "date"), _text("Jigsaw", 20), _read_only("JigsawContactId", "string", length=20),
        _pick("CleanStatus", CLEAN_STATUSES), _text("CompanyDunsNumber", 9), _ref("DandbCompanyId", "DandBCompany"),
        _text("EmailBouncedReason", 255), FieldDef("EmailBouncedDate", "datetime"), _ref("IndividualId", "Individual"),
    ), required_on_create=("LastName", "Company"), mergeable=True),
    ObjectDef("Case", "500", "Cases", (
        _ID, _IS_DELETED, _master_record("Case"),
        FieldDef("CaseNumber", "string", nillable=False, writable=False, length=30),
        _ref("ContactId", "Contact"), _ref("AccountId", "Account"), _ref("AssetId", "Asset"), _ref("ParentId", "Case"),
        _text("SuppliedName", 80), FieldDef("SuppliedEmail", "email"), _text("SuppliedPhone", 40),
        _text("SuppliedCompany", 80), _pick("Type", CASE_TYPES), _pick("Status", CASE_STATUSES),
        _pick("Reason", CASE_REASONS), _pick("Origin", CASE_ORIGINS), FieldDef("Subject", "string"),
        _pick("Priority", CASE_PRIORITIES), FieldDef("Description", "textarea"), _flag("IsClosed", writable=False),
        _read_only("ClosedDate", "datetime"), _flag("IsEscalated"), _owner(*QUEUE_OWNED), *_audit(),
        _read_only("ContactPhone", "phone"), _read_only("ContactMobile", "phone"),
        _read_only("ContactEmail", "email"), _read_only("ContactFax", "phone"),
        FieldDef("Comments", "textarea", length=4000), *_recently_viewed(),
    ), mergeable=True),
)}
KEY_PREFIXES = {o.key_prefix: o.name for o in OBJECTS.values()}
STANDARD_OBJECT_NAMES = tuple(OBJECTS)

# What a polymorphic lookup reaches in SOQL (Lead.Owner, Case.Owner): the ``Name`` entity, the fields its target
# objects share; on a queue's row, Type is 'Queue'. Not an object of its own: no FROM Name, no describe.
POLYMORPHIC_PARENT = ObjectDef("Name", "", "Names", (
    _ID, _text("Name", 121), _text("LastName", 80), _text("FirstName", 40), _pick("Type", ("Queue", "User")),
    _text("Alias", 8), _ref("UserRoleId", "UserRole"), FieldDef("IsActive", "boolean"), _ref("ProfileId", "Profile"),
    _text("Title", 80), FieldDef("Email", "email"), FieldDef("Phone", "phone"), _text("NameOrAlias", 121),
    _text("Username", 80),
))


class Schema:
    """The objects one org serves, in describe order: the standard ones, plus those asked for (custom objects...).

    Each org has its own (an admin may change its fields at runtime: ``with_object``); describe, SOQL, renders and
    writes look objects up here."""

    def __init__(self, objects: Iterable[ObjectDef]):
        self.objects: dict[str, ObjectDef] = {o.name: o for o in objects}
        self.key_prefixes = {o.key_prefix: o.name for o in self.objects.values()}

    def lookup(self, name: str) -> ObjectDef | None:
        """The object for an API name written in any casing (Salesforce names are case-insensitive)."""
        for obj in self.objects.values():
            if obj.name.lower() == name.lower():
                return obj
        return None

    def with_object(self, obj: ObjectDef) -> Schema:
        """This schema with ``obj`` replacing the object of its name (same place in describe order)."""
        return Schema({**self.objects, obj.name: obj}.values())

    def parent_object(self, f: FieldDef) -> ObjectDef | None:
        """The object a lookup's relationship reaches in SOQL: its target, ``Name`` for a polymorphic lookup, None
        for a target the emulator does not serve (Campaign, Profile...)."""
        return POLYMORPHIC_PARENT if f.is_polymorphic else self.objects.get(f.reference_to[0]) if f.reference_to \
            else None

    def child_relationships(self, obj: ObjectDef) -> list[dict[str, Any]]:
        """The describe ``childRelationships`` of ``obj``: every lookup from another object to it."""
        out = []
        for child in self.objects.values():
            for f in child.fields:
                if obj.name in f.reference_to:
                    name = f.child_relationship or (child.label_plural if f.name != "OwnerId" else None)
                    out.append({"cascadeDelete": f.master_detail, "childSObject": child.name,
                                "deprecatedAndHidden": False, "field": f.name, "junctionIdListNames": [],
                                "junctionReferenceTo": [], "relationshipName": name, "restrictedDelete": False})
        return out

    def describe_global(self, version: str) -> dict[str, Any]:
        """The describeGlobal body: ``GET /services/data/vXX.X/sobjects``."""
        return {"encoding": "UTF-8", "maxBatchSize": 200,
                "sobjects": [describe_global_entry(o, version) for o in self.objects.values()]}

    def describe_sobject(self, obj: ObjectDef, version: str, instance_url: str = "") -> dict[str, Any]:
        """The sObject describe body: ``GET /services/data/vXX.X/sobjects/{Object}/describe``; ``instance_url``
        (the server's ``https://host:port``) for its ``ui*`` urls."""
        return _describe_sobject(obj, version, instance_url, self.child_relationships(obj))


def parent_object(f: FieldDef) -> ObjectDef | None:
    """``Schema.parent_object`` in the standard org."""
    return STANDARD.parent_object(f)


def lookup_object(name: str) -> ObjectDef | None:
    """``Schema.lookup`` in the standard org."""
    return STANDARD.lookup(name)


def _label(name: str) -> str:
    if name == "Id":
        return "Record ID"
    base = name[:-2] + " ID" if name.endswith("Id") and len(name) > 2 else name
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base)


def _sobject_urls(obj: ObjectDef, version: str, instance_url: str | None = None) -> dict[str, str]:
    """An object's ``urls``: describeGlobal's three, or with ``instance_url`` the eleven of an sObject describe (the
    ``ui*`` pages on the instance), each in the order real orgs write them."""
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    if instance_url is None:
        return {"rowTemplate": f"{base}/{{ID}}", "describe": f"{base}/describe", "sobject": base}
    return {"compactLayouts": f"{base}/describe/compactLayouts", "rowTemplate": f"{base}/{{ID}}",
            "approvalLayouts": f"{base}/describe/approvalLayouts", "uiDetailTemplate": f"{instance_url}/{{ID}}",
            "uiEditTemplate": f"{instance_url}/{{ID}}/e", "listviews": f"{base}/listviews",
            "describe": f"{base}/describe", "uiNewRecord": f"{instance_url}/{obj.key_prefix}/e",
            "quickActions": f"{base}/quickActions", "layouts": f"{base}/describe/layouts", "sobject": base}


def describe_global_entry(obj: ObjectDef, version: str) -> dict[str, Any]:
    """One entry of describeGlobal's ``sobjects`` list."""
    per_object = {"deletable": obj.deletable, "undeletable": obj.undeletable, "mergeable": obj.mergeable,
                  **dict(obj.describe_flags)}
    flags = {key: per_object.get(key, True) for key in (
        "queryable", "retrieveable", "replicateable", "searchable", "createable", "updateable", "deletable",
        "undeletable", "mergeable", "layoutable", "triggerable", "feedEnabled", "mruEnabled")}
    return {"name": obj.name, "label": obj.name, "labelPlural": obj.label_plural, "keyPrefix": obj.key_prefix,
            "custom": obj.name.endswith("__c"), "customSetting": False, **flags, "activateable": False,
            "deprecatedAndHidden": False,
            "urls": _sobject_urls(obj, version)}


def describe_global(version: str) -> dict[str, Any]:
    """``Schema.describe_global`` of the standard org."""
    return STANDARD.describe_global(version)


def describe_field(f: FieldDef) -> dict[str, Any]:
    """One entry of an sObject describe's ``fields`` list, with real Salesforce keys and types."""
    numeric = f.type in ("int", "double", "currency", "percent")
    length = 0 if numeric or f.type in ("boolean", "date", "datetime", "address", "location") else (
        f.length or _TEXT_LENGTHS.get(f.type, 255))
    return {
        "name": f.name, "label": f.label or _label(f.name), "type": f.type,
        "soapType": _SOAP_TYPES.get(f.type, "xsd:string"), "length": length,
        "byteLength": length if f.type in ("id", "reference") else length * 3,  # ids are ASCII: 18 bytes
        "digits": f.precision if f.type == "int" else 0, "precision": 0 if f.type == "int" else f.precision,
        "scale": f.scale, "nillable": f.nillable, "calculated": f.formula is not None, "calculatedFormula": f.formula,
        "autoNumber": f.auto_number or f.name == "CaseNumber", "custom": f.is_custom,
        "defaultedOnCreate": not f.writable and f.formula is None,
        "createable": f.writable, "updateable": f.writable, "filterable": f.filterable, "sortable": f.sortable,
        # one rule for describe and SOQL: what GROUP BY and the aggregate functions accept
        "groupable": is_groupable(f), "aggregatable": supports_aggregate("COUNT", f),
        "externalId": False, "idLookup": f.type == "id",
        "unique": f.type == "id", "caseSensitive": False, "nameField": f.name == "Name",
        "referenceTo": list(f.reference_to), "relationshipName": f.relationship_name,
        "polymorphicForeignKey": f.is_polymorphic, "cascadeDelete": f.master_detail, "restrictedDelete": False,
        "compoundFieldName": f.compound_field_name,
        "picklistValues": [{"active": True, "defaultValue": False, "label": label, "value": v, "validFor": None}
                           for v, label in zip(f.picklist, f.picklist_labels or f.picklist, strict=True)],
        "restrictedPicklist": False, "dependentPicklist": False, "controllerName": None,
        "encrypted": False, "deprecatedAndHidden": False,
        # the rest of a real field describe's keys, at the values a standard field has
        "aiPredictionField": False, "defaultValue": False if f.type == "boolean" else None,
        "defaultValueFormula": None, "displayLocationInDecimal": False,
        "extraTypeInfo": "plaintextarea" if f.type == "textarea" else None, "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False, "highScaleNumber": False, "htmlFormatted": False,
        "inlineHelpText": None, "mask": None, "maskType": None, "namePointing": len(f.reference_to) > 1,
        "permissionable": (f.nillable and f.writable or f.formula is not None) and f.type != "id",
        "queryByDistance": False, "referenceTargetField": None,
        "relationshipOrder": 0 if f.master_detail else None, "searchPrefilterable": False,
        "writeRequiresMasterRead": False,
    }


def child_relationships(obj: ObjectDef) -> list[dict[str, Any]]:
    """``Schema.child_relationships`` in the standard org."""
    return STANDARD.child_relationships(obj)


MASTER_RECORD_TYPE_ID = "012000000000000AAA"  # every object has it, record types or not


def master_record_type(obj: ObjectDef, version: str) -> dict[str, Any]:
    """The Master record type every real describe lists in ``recordTypeInfos``."""
    return {"active": True, "available": True, "defaultRecordTypeMapping": True, "developerName": "Master",
            "master": True, "name": "Master", "recordTypeId": MASTER_RECORD_TYPE_ID,
            "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/"
                               f"{MASTER_RECORD_TYPE_ID}"}}


def describe_sobject(obj: ObjectDef, version: str, instance_url: str = "") -> dict[str, Any]:
    """``Schema.describe_sobject`` in the standard org."""
    return STANDARD.describe_sobject(obj, version, instance_url)


def _describe_sobject(obj: ObjectDef, version: str, instance_url: str,
                      children: list[dict[str, Any]]) -> dict[str, Any]:
    return {**describe_global_entry(obj, version), "urls": _sobject_urls(obj, version, instance_url),
            "fields": [describe_field(f) for f in obj.fields],
            "childRelationships": children, "recordTypeInfos": [master_record_type(obj, version)],
            "supportedScopes": [],
            "namedLayoutInfos": [], "networkScopeFieldName": None, "listviewable": None, "lookupLayoutFieldName": None,
            "searchLayoutable": True, "compactLayoutable": True, "hasSubtypes": False, "isSubtype": False,
            "isInterface": False, "associateEntityType": None, "associateParentEntity": None,
            "defaultImplementation": None, "extendedBy": None, "extendsInterfaces": None, "implementedBy": None,
            "implementsInterfaces": None, "sobjectDescribeOption": "FULL", "actionOverrides": []}


STANDARD = Schema(OBJECTS.values())  # the default org's objects (every org starts from them)
