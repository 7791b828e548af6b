"""The emulated org's objects and fields, and the describe / describeGlobal JSON built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from emulator.soql_parser import is_groupable, supports_aggregate

_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "double": "xsd:double",
    "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime",
    "address": "urn:address",
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

    @property
    def is_long_text(self) -> bool:
        """Long text areas (over 255 chars) can be neither filtered nor sorted in SOQL."""
        return self.type == "textarea" and (self.length or _TEXT_LENGTHS["textarea"]) > 255

    @property
    def filterable(self) -> bool:
        return not (self.is_long_text or self.is_compound)

    @property
    def sortable(self) -> bool:
        return not (self.is_long_text or self.is_compound)

    @property
    def is_compound(self) -> bool:
        return self.type == "address"


@dataclass(frozen=True)
class ObjectDef:
    """One sObject: name, key prefix, label and fields in describe order."""

    name: str
    key_prefix: str
    label_plural: str
    fields: tuple[FieldDef, ...]
    required_on_create: tuple[str, ...] = ()
    _by_name: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        return self._by_name.get(name.lower())


def _system_fields(owned: bool) -> tuple[FieldDef, ...]:
    owner = (FieldDef("OwnerId", "reference", ("User",), "Owner", nillable=False),) if owned else ()
    return (
        FieldDef("Id", "id", nillable=False, writable=False),
        FieldDef("IsDeleted", "boolean", nillable=False, writable=False),
        *owner,
        FieldDef("CreatedDate", "datetime", nillable=False, writable=False),
        FieldDef("LastModifiedDate", "datetime", nillable=False, writable=False),
        FieldDef("SystemModstamp", "datetime", nillable=False, writable=False),
    )


def _pick(name: str, values: tuple[str, ...], **kw: Any) -> FieldDef:
    return FieldDef(name, "picklist", picklist=values, **kw)


def _money(name: str, scale: int = 2) -> FieldDef:
    return FieldDef(name, "currency", precision=18, scale=scale)


def _address(prefix: str) -> tuple[FieldDef, ...]:
    compound = f"{prefix}Address"
    parts = [FieldDef(f"{prefix}{p}", t, compound_field_name=compound, length=n)
             for p, t, n in (("Street", "textarea", 255), ("City", "string", 40), ("State", "string", 80),
                             ("PostalCode", "string", 20), ("Country", "string", 80))]
    return (*parts, FieldDef(compound, "address", writable=False))


INDUSTRIES = ("Agriculture", "Banking", "Biotechnology", "Construction", "Consulting", "Education", "Energy",
              "Finance", "Healthcare", "Manufacturing", "Media", "Retail", "Technology", "Telecommunications")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Trade Show", "Other")
RATINGS = ("Hot", "Warm", "Cold")
ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")
OPP_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
              "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost")
FORECAST_CATEGORIES = ("Pipeline", "Best Case", "Commit", "Closed", "Omitted")
OPP_TYPES = ("New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
CASE_STATUSES = ("New", "Working", "Escalated", "Closed")
CASE_PRIORITIES = ("High", "Medium", "Low")
CASE_ORIGINS = ("Phone", "Email", "Web")
DEPARTMENTS = ("Sales", "Support", "Marketing", "Finance", "Engineering")
TITLES = ("Account Executive", "Sales Manager", "Support Engineer", "VP Sales", "Marketing Lead", "CFO")

OBJECTS: dict[str, ObjectDef] = {o.name: o for o in (
    ObjectDef("User", "005", "Users", (
        *_system_fields(owned=False)[:2],
        FieldDef("Username", "string", nillable=False, length=80), FieldDef("Name", "string", writable=False),
        FieldDef("FirstName", "string", length=40), FieldDef("LastName", "string", nillable=False, length=80),
        FieldDef("Email", "email", nillable=False), FieldDef("Alias", "string", nillable=False, length=8),
        _pick("Title", TITLES), _pick("Department", DEPARTMENTS), FieldDef("IsActive", "boolean", nillable=False),
        *_system_fields(owned=False)[2:],
    ), required_on_create=("Username", "LastName", "Email", "Alias")),
    ObjectDef("Account", "001", "Accounts", (
        *_system_fields(owned=True),
        FieldDef("Name", "string", nillable=False), _pick("Type", ACCOUNT_TYPES), _pick("Industry", INDUSTRIES),
        *_address("Billing"), FieldDef("Phone", "phone"), FieldDef("Website", "url"), _money("AnnualRevenue", scale=0),
        FieldDef("NumberOfEmployees", "int", precision=8), _pick("Rating", RATINGS),
        FieldDef("Description", "textarea"),
    ), required_on_create=("Name",)),
    ObjectDef("Contact", "003", "Contacts", (
        *_system_fields(owned=True),
        FieldDef("AccountId", "reference", ("Account",), "Account"),
        FieldDef("FirstName", "string", length=40), FieldDef("LastName", "string", nillable=False, length=80),
        FieldDef("Name", "string", nillable=False, writable=False), FieldDef("Email", "email"),
        FieldDef("Title", "string", length=128), _pick("LeadSource", LEAD_SOURCES),
        FieldDef("MailingCountry", "string", length=80), FieldDef("Birthdate", "date"),
        FieldDef("HasOptedOutOfEmail", "boolean", nillable=False), FieldDef("Description", "textarea"),
    ), required_on_create=("LastName",)),
    ObjectDef("Opportunity", "006", "Opportunities", (
        *_system_fields(owned=True),
        FieldDef("AccountId", "reference", ("Account",), "Account"), FieldDef("Name", "string", nillable=False),
        _pick("StageName", OPP_STAGES, nillable=False), _money("Amount"),
        FieldDef("Probability", "percent", precision=3, scale=0), FieldDef("CloseDate", "date", nillable=False),
        FieldDef("IsClosed", "boolean", nillable=False, writable=False),
        FieldDef("IsWon", "boolean", nillable=False, writable=False),
        _pick("ForecastCategory", FORECAST_CATEGORIES, nillable=False, writable=False),
        _pick("LeadSource", LEAD_SOURCES), _pick("Type", OPP_TYPES), FieldDef("NextStep", "string"),
    ), required_on_create=("Name", "StageName", "CloseDate")),
    ObjectDef("Lead", "00Q", "Leads", (
        *_system_fields(owned=True),
        FieldDef("FirstName", "string", length=40), FieldDef("LastName", "string", nillable=False, length=80),
        FieldDef("Name", "string", nillable=False, writable=False), FieldDef("Company", "string", nillable=False),
        _pick("Status", LEAD_STATUSES, nillable=False), _pick("LeadSource", LEAD_SOURCES),
        _pick("Industry", INDUSTRIES), _pick("Rating", RATINGS), _money("AnnualRevenue", scale=0),
        FieldDef("IsConverted", "boolean", nillable=False, writable=False), FieldDef("Email", "email"),
        FieldDef("Country", "string", length=80),
    ), required_on_create=("LastName", "Company")),
    ObjectDef("Case", "500", "Cases", (
        *_system_fields(owned=True),
        FieldDef("CaseNumber", "string", nillable=False, writable=False, length=30),
        FieldDef("AccountId", "reference", ("Account",), "Account"),
        FieldDef("ContactId", "reference", ("Contact",), "Contact"), FieldDef("Subject", "string"),
        _pick("Status", CASE_STATUSES), _pick("Priority", CASE_PRIORITIES), _pick("Origin", CASE_ORIGINS),
        FieldDef("IsClosed", "boolean", nillable=False, writable=False),
        FieldDef("IsEscalated", "boolean", nillable=False), FieldDef("ClosedDate", "datetime", writable=False),
        FieldDef("Description", "textarea"),
    )),
)}
KEY_PREFIXES = {o.key_prefix: o.name for o in OBJECTS.values()}


def lookup_object(name: str) -> ObjectDef | None:
    """The object for an API name written in any casing (Salesforce names are case-insensitive)."""
    for obj in OBJECTS.values():
        if obj.name.lower() == name.lower():
            return obj
    return None


def _label(name: str) -> str:
    if name == "Id":
        return "Record ID"
    base = name[:-2] + " ID" if name.endswith("Id") and len(name) > 2 else name
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base)


def _sobject_urls(name: str, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def describe_global_entry(obj: ObjectDef, version: str) -> dict[str, Any]:
    """One entry of describeGlobal's ``sobjects`` list."""
    flags = dict.fromkeys(("queryable", "retrieveable", "replicateable", "searchable", "createable", "updateable",
                           "deletable", "undeletable", "mergeable", "layoutable", "triggerable", "feedEnabled",
                           "mruEnabled"), True)
    return {"name": obj.name, "label": obj.name, "labelPlural": obj.label_plural, "keyPrefix": obj.key_prefix,
            "custom": False, "customSetting": False, **flags, "activateable": False, "deprecatedAndHidden": False,
            "urls": _sobject_urls(obj.name, version)}


def describe_global(version: str) -> dict[str, Any]:
    """The describeGlobal body: ``GET /services/data/vXX.X/sobjects``."""
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [describe_global_entry(o, version) for o in OBJECTS.values()]}


def describe_field(f: FieldDef) -> dict[str, Any]:
    """One entry of an sObject describe's ``fields`` list, with real Salesforce keys and types."""
    numeric = f.type in ("int", "double", "currency", "percent")
    length = 0 if numeric or f.type in ("boolean", "date", "datetime", "address") else (
        f.length or _TEXT_LENGTHS.get(f.type, 255))
    return {
        "name": f.name, "label": f.label or _label(f.name), "type": f.type,
        "soapType": _SOAP_TYPES.get(f.type, "xsd:string"), "length": length,
        "byteLength": length if f.type in ("id", "reference") else length * 3,  # ids are ASCII: 18 bytes
        "digits": f.precision if f.type == "int" else 0, "precision": 0 if f.type == "int" else f.precision,
        "scale": f.scale, "nillable": f.nillable, "calculated": False, "calculatedFormula": None,
        "autoNumber": f.name == "CaseNumber", "custom": False, "defaultedOnCreate": not f.writable,
        "createable": f.writable, "updateable": f.writable, "filterable": f.filterable, "sortable": f.sortable,
        # one rule for describe and SOQL: what GROUP BY and the aggregate functions accept
        "groupable": is_groupable(f), "aggregatable": supports_aggregate("COUNT", f),
        "externalId": False, "idLookup": f.type == "id",
        "unique": f.type == "id", "caseSensitive": False, "nameField": f.name == "Name",
        "referenceTo": list(f.reference_to), "relationshipName": f.relationship_name,
        "polymorphicForeignKey": False, "cascadeDelete": False, "restrictedDelete": False,
        "compoundFieldName": f.compound_field_name,
        "picklistValues": [{"active": True, "defaultValue": False, "label": v, "value": v, "validFor": None}
                           for v in f.picklist],
        "restrictedPicklist": False, "dependentPicklist": False, "controllerName": None,
        "encrypted": False, "deprecatedAndHidden": False,
        # the rest of a real field describe's keys, at the values a standard field has
        "aiPredictionField": False, "defaultValue": False if f.type == "boolean" else None,
        "defaultValueFormula": None, "displayLocationInDecimal": False,
        "extraTypeInfo": "plaintextarea" if f.type == "textarea" else None, "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False, "highScaleNumber": False, "htmlFormatted": False,
        "inlineHelpText": None, "mask": None, "maskType": None, "namePointing": len(f.reference_to) > 1,
        "permissionable": f.nillable and f.writable and f.type != "id", "queryByDistance": False,
        "referenceTargetField": None, "relationshipOrder": None, "searchPrefilterable": False,
        "writeRequiresMasterRead": False,
    }


def child_relationships(obj: ObjectDef) -> list[dict[str, Any]]:
    """The describe ``childRelationships`` of ``obj``: every lookup from another object to it."""
    out = []
    for child in OBJECTS.values():
        for f in child.fields:
            if obj.name in f.reference_to:
                out.append({"childSObject": child.name, "field": f.name, "cascadeDelete": False,
                            "relationshipName": child.label_plural if f.name != "OwnerId" else None,
                            "deprecatedAndHidden": False, "restrictedDelete": False})
    return out


MASTER_RECORD_TYPE_ID = "012000000000000AAA"  # every object has it, record types or not


def master_record_type(obj: ObjectDef, version: str) -> dict[str, Any]:
    """The Master record type every real describe lists in ``recordTypeInfos``."""
    return {"active": True, "available": True, "defaultRecordTypeMapping": True, "developerName": "Master",
            "master": True, "name": "Master", "recordTypeId": MASTER_RECORD_TYPE_ID,
            "urls": {"layout": f"/services/data/v{version}/sobjects/{obj.name}/describe/layouts/"
                               f"{MASTER_RECORD_TYPE_ID}"}}


def describe_sobject(obj: ObjectDef, version: str) -> dict[str, Any]:
    """The sObject describe body: ``GET /services/data/vXX.X/sobjects/{Object}/describe``."""
    return {**describe_global_entry(obj, version), "fields": [describe_field(f) for f in obj.fields],
            "childRelationships": child_relationships(obj), "recordTypeInfos": [master_record_type(obj, version)],
            "supportedScopes": [],
            "namedLayoutInfos": [], "networkScopeFieldName": None, "listviewable": None, "lookupLayoutFieldName": None,
            "searchLayoutable": True, "compactLayoutable": True, "hasSubtypes": False, "isSubtype": False,
            "isInterface": False, "associateEntityType": None, "associateParentEntity": None,
            "defaultImplementation": None, "extendedBy": None, "extendsInterfaces": None, "implementedBy": None,
            "implementsInterfaces": None, "sobjectDescribeOption": "FULL", "actionOverrides": []}
