"""Deterministic, vectorised synthetic rows for each emulated object (numpy draws, Polars columns)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from emulator import schema as s
from emulator.ids import make_ids

DATETIME = pl.Datetime("ms", "UTC")
_DAY_MS = 86_400_000
_HISTORY_MS = 3 * 365 * _DAY_MS  # records were created within three years before the epoch

FIRST_NAMES = ("Zoë", "José", "François", "Łukasz", "Søren", "Märta", "Ana", "John", "Mary", "Wei", "Aiko",
               "Olivia", "Liam", "Noah", "Emma", "Ava", "Sophia", "Jürgen", "Renée", "Chloé", "Raj", "Fatima")
LAST_NAMES = ("Ångström", "O'Brien", "Smith", "Müller", "García", "Nguyen", "Kowalski", "Dubois", "Rossi",
              "Tanaka", "Johnson", "Brown", "Silva", "Novák", "Øvergaard", "van der Berg", "Lee", "Patel", "Khan",
              "Williams", "山田", "D'Angelo")
COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Soylent", "Hooli", "Vandelay",
                 "Wonka", "株式会社 山田", "Müller & Söhne", 'Café "Le Petit"', "Blue Sky, Ltd.", "Nordlys",
                 "Zoë's", "Pied Piper", "Cyberdyne", "Tyrell", "Oscorp")
COMPANY_SLUGS = ("acme", "globex", "initech", "umbrella", "stark", "wayne", "soylent", "hooli", "vandelay",
                 "wonka", "yamada", "mueller", "lepetit", "bluesky", "nordlys", "zoes", "piedpiper",
                 "cyberdyne", "tyrell", "oscorp")
COMPANY_SECTORS = ("Systems", "Foods", "Logistics", "Bank", "Energy", "Solutions", "Pharma", "Media", "Motors",
                   "Labs")
COMPANY_SUFFIXES = ("Inc.", "LLC", "GmbH", "Ltd.", "S.A.", "Corp.", "Group", "K.K.")
PLACES = (("Paris", None, "France", "75001"), ("Berlin", None, "Germany", "10115"),
          ("Tokyo", None, "Japan", "100-0001"), ("New York", "NY", "United States", "10001"),
          ("São Paulo", "SP", "Brazil", "01000-000"), ("Zürich", None, "Switzerland", "8001"),
          ("London", None, "United Kingdom", "EC1A 1BB"), ("Toronto", "ON", "Canada", "M5H 2N2"),
          ("Austin", "TX", "United States", "73301"), ("Mumbai", "MH", "India", "400001"))
STREETS = ("Main St", "Rue de Rivoli", "Bahnhofstraße", "Market Street", "Avenida Paulista", "Queen St W")
DESCRIPTIONS = (
    "Key account, renewal due in Q3.",
    'Customer said "great service", wants a follow-up.',
    "Line one\nLine two, with a comma",
    'Multi-line notes:\n- item "A"\n- item B, C',
    "Größter Kunde in der Region; 日本語のメモ",
    "Emoji 🚀 and a tab\tinside",
    "Plain text",
)
SUBJECTS = ("Cannot log in", "Invoice question", 'Error "E42" on export', "Shipment delayed, please advise",
            "Feature request: dark mode", "Données manquantes")
PRODUCTS = ("Platform licence", "Support renewal", "Consulting, phase 2", "Hardware refresh", "Training")
NEXT_STEPS = ("Send proposal", "Call back next week", 'Review "final" quote', None)
# StageName -> (Probability, IsClosed, IsWon, ForecastCategory API value), as the default sales process defines them
STAGE_FACTS = {
    "Prospecting": (10.0, False, False, "Pipeline"), "Qualification": (10.0, False, False, "Pipeline"),
    "Needs Analysis": (20.0, False, False, "Pipeline"), "Value Proposition": (50.0, False, False, "Pipeline"),
    "Id. Decision Makers": (60.0, False, False, "Pipeline"), "Proposal/Price Quote": (75.0, False, False, "BestCase"),
    "Negotiation/Review": (90.0, False, False, "Forecast"), "Closed Won": (100.0, True, True, "Closed"),
    "Closed Lost": (0.0, True, False, "Omitted"),
}


def object_seed(seed: int, object_name: str) -> int:
    """A per-object seed, so one object's size or draws never shift another object's data."""
    digest = hashlib.sha256(f"{seed}:{object_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def epoch_for(seed: int) -> datetime:
    """The fixed "now" the synthetic history ends at: derived from the seed, never from the wall clock."""
    return datetime(2025, 1, 1, tzinfo=timezone.utc) - timedelta(days=seed % 365)


class _Draw:
    """Column builders over one object's random stream."""

    def __init__(self, seed: int, object_name: str, n: int, epoch: datetime):
        self.rng = np.random.default_rng(object_seed(seed, object_name))
        self.n = n
        self.epoch_ms = int(epoch.timestamp() * 1000)

    def mask(self, frac: float) -> np.ndarray:
        return self.rng.random(self.n) < frac

    def choice(self, name: str, values: Sequence[str | None], null_frac: float = 0.0) -> pl.Series:
        return self.pick(name, values, self.rng.integers(0, len(values), self.n), null_frac)

    def pick(self, name: str, values: Sequence[Any], idx: np.ndarray, null_frac: float = 0.0) -> pl.Series:
        """``values[idx]``; a null index gives a null value (cheaper than masking strings afterwards)."""
        positions = pl.Series(idx, dtype=pl.UInt32)
        if null_frac:
            positions = self.nulls(positions, null_frac)
        return pl.Series(name, list(values)).gather(positions)

    def combo(self, name: str, parts: Sequence[Sequence[str]], separator: str, null_frac: float = 0.0) -> pl.Series:
        """Text joined from one random value of each part, drawn as a single index into their product."""
        combos = [separator.join(c) for c in itertools.product(*parts)]
        return self.pick(name, combos, self.rng.integers(0, len(combos), self.n), null_frac)

    def nulls(self, series: pl.Series, frac: float) -> pl.Series:
        if not frac:
            return series
        keep = pl.Series(~self.mask(frac))
        return pl.select(pl.when(keep).then(series).otherwise(None).alias(series.name)).to_series()

    def lookup(self, name: str, prefix: str, parents: int, null_frac: float = 0.0) -> pl.Series:
        if parents == 0:
            return pl.Series(name, [None] * self.n, dtype=pl.String)
        parent_ids = make_ids(prefix, np.arange(parents), name=name)
        return self.nulls(parent_ids.gather(self.rng.integers(0, parents, self.n)), null_frac)

    def money(self, name: str, low: int, high: int, step: float, null_frac: float = 0.0) -> pl.Series:
        # whole multiples of `step`: a currency value has at most two decimals (REST and Bulk write it alike,
        # in Java's Double.toString text: emulator/numbers.py)
        values = self.rng.integers(low, high, self.n) * step
        return self.nulls(pl.Series(name, np.round(values, 2)), null_frac)

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CreatedDate <= LastModifiedDate <= SystemModstamp <= epoch, epoch ms in whole seconds (as Salesforce
        stores every datetime: ``.000`` milliseconds)."""
        created = _whole_seconds(self.epoch_ms - self.rng.integers(_DAY_MS, _HISTORY_MS, self.n))
        modified = _whole_seconds(created + (self.rng.random(self.n) * (self.epoch_ms - created)).astype(np.int64))
        modstamp = _whole_seconds(np.minimum(modified + self.rng.integers(0, 60_000, self.n), self.epoch_ms))
        return created, modified, modstamp

    def system_columns(self, prefix: str, owners: int | None) -> list[pl.Series]:
        """Id, IsDeleted and OwnerId (for an owned object, ``owners`` users), the three timestamps. An object
        without owners (User) has no IsDeleted either: it is never soft deleted."""
        created, modified, modstamp = self.history()
        cols = [make_ids(prefix, np.arange(self.n))]
        if owners is not None:
            cols += [pl.Series("IsDeleted", self.mask(0.01)), self.lookup("OwnerId", "005", owners)]
        cols += [_datetimes("CreatedDate", created), _datetimes("LastModifiedDate", modified),
                 _datetimes("SystemModstamp", modstamp)]
        return cols

    def text(self, name: str, parts: Sequence[pl.Series | str], separator: str = "") -> pl.Series:
        exprs = [pl.lit(p) for p in parts]
        return pl.select(pl.concat_str(exprs, separator=separator, ignore_nulls=True).alias(name)).to_series()



def _whole_seconds(epoch_ms: np.ndarray) -> np.ndarray:
    return epoch_ms // 1000 * 1000


def _datetimes(name: str, epoch_ms: np.ndarray) -> pl.Series:
    return pl.Series(name, epoch_ms).cast(DATETIME)


def _dates(name: str, epoch_ms: np.ndarray) -> pl.Series:
    return pl.Series(name, epoch_ms).cast(DATETIME).dt.date()


def _names(d: _Draw) -> tuple[pl.Series, pl.Series, pl.Series]:
    firsts = (*FIRST_NAMES, None)  # about 4% of people have no first name
    first_idx = d.rng.integers(0, len(firsts), d.n)
    last_idx = d.rng.integers(0, len(LAST_NAMES), d.n)
    full = [" ".join(p for p in (f, last) if p) for f in firsts for last in LAST_NAMES]
    return (d.pick("FirstName", firsts, first_idx), d.pick("LastName", LAST_NAMES, last_idx),
            d.pick("Name", full, first_idx * len(LAST_NAMES) + last_idx))


def _users(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:  # noqa: ARG001 - every builder's signature
    first, last, name = _names(d)
    num = pl.Series(np.arange(1, d.n + 1)).cast(pl.String).str.zfill(4)
    return [*d.system_columns("005", None), d.text("Username", ["user", num, "@emulator.example"]), name, first,
            last, d.text("Email", ["user", num, "@emulator.example"]), d.text("Alias", ["u", num]),
            d.choice("Title", s.TITLES), d.choice("Department", s.DEPARTMENTS), pl.Series("IsActive", ~d.mask(0.1))]


def _accounts(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    company = d.rng.integers(0, len(COMPANY_WORDS), d.n)
    names = [" ".join(p) for p in itertools.product(COMPANY_WORDS, COMPANY_SECTORS, COMPANY_SUFFIXES)]
    tail = len(COMPANY_SECTORS) * len(COMPANY_SUFFIXES)
    name = d.pick("Name", names, company * tail + d.rng.integers(0, tail, d.n))
    place = d.rng.integers(0, len(PLACES), d.n)
    city, state, country, postal = (pl.Series([p[i] for p in PLACES], dtype=pl.String).gather(place)
                                    for i in range(4))
    street = d.combo("BillingStreet", [[str(i) for i in range(1, 400)], STREETS], " ", null_frac=0.05)
    website = d.pick("Website", [f"https://www.{slug}.example.com" for slug in COMPANY_SLUGS], company)
    return [*d.system_columns("001", sizes["User"]), name, d.choice("Type", s.ACCOUNT_TYPES, 0.05),
            d.choice("Industry", s.INDUSTRIES, null_frac=0.1), street,
            city.alias("BillingCity"), state.alias("BillingState"), postal.alias("BillingPostalCode"),
            country.alias("BillingCountry"), d.combo("Phone", [["+1 555 01"], [str(i) for i in range(10, 100)]], ""),
            website,
            d.money("AnnualRevenue", 5, 50_000, 10_000.0, null_frac=0.1),
            d.nulls(pl.Series("NumberOfEmployees", d.rng.integers(1, 250_000, d.n)), 0.1),
            d.choice("Rating", s.RATINGS, null_frac=0.2), d.choice("Description", DESCRIPTIONS, null_frac=0.3)]


def _contacts(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    first, last, name = _names(d)
    email = d.text("Email", ["contact", pl.Series(np.arange(d.n)).cast(pl.String), "@",
                             d.choice("", COMPANY_SLUGS), ".example.com"])
    birth_ms = d.epoch_ms - d.rng.integers(18 * 365, 70 * 365, d.n) * _DAY_MS
    return [*d.system_columns("003", sizes["User"]), d.lookup("AccountId", "001", sizes["Account"], 0.05),
            first, last, name, d.nulls(email, 0.1), d.choice("Title", s.TITLES, 0.2),
            d.choice("LeadSource", s.LEAD_SOURCES, 0.15), d.choice("MailingCountry", [p[2] for p in PLACES], 0.1),
            d.nulls(_dates("Birthdate", birth_ms), 0.3), pl.Series("HasOptedOutOfEmail", d.mask(0.2)),
            d.choice("Description", DESCRIPTIONS, null_frac=0.5)]


def _opportunities(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    sys_cols = d.system_columns("006", sizes["User"])
    stage_idx = d.rng.integers(0, len(s.OPP_STAGES), d.n)
    facts = [STAGE_FACTS[st] for st in s.OPP_STAGES]
    created = sys_cols[3].cast(pl.Int64).to_numpy()
    close_ms = created + d.rng.integers(0, 180, d.n) * _DAY_MS
    name = d.combo("Name", [COMPANY_WORDS, PRODUCTS], " - ")
    return [*sys_cols, d.lookup("AccountId", "001", sizes["Account"], 0.03), name,
            pl.Series("StageName", s.OPP_STAGES).gather(stage_idx), d.money("Amount", 100, 5_000_000, 0.5, 0.05),
            pl.Series("Probability", [f[0] for f in facts]).gather(stage_idx), _dates("CloseDate", close_ms),
            pl.Series("IsClosed", [f[1] for f in facts]).gather(stage_idx),
            pl.Series("IsWon", [f[2] for f in facts]).gather(stage_idx),
            pl.Series("ForecastCategory", [f[3] for f in facts]).gather(stage_idx),
            d.choice("LeadSource", s.LEAD_SOURCES, 0.1), d.choice("Type", s.OPP_TYPES, 0.1),
            d.choice("NextStep", NEXT_STEPS)]


def _leads(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    first, last, name = _names(d)
    status = d.choice("Status", s.LEAD_STATUSES)
    company = d.combo("Company", [COMPANY_WORDS, COMPANY_SUFFIXES], " ")
    email = d.text("Email", ["lead", pl.Series(np.arange(d.n)).cast(pl.String), "@example.org"])
    return [*d.system_columns("00Q", sizes["User"]), first, last, name, company, status,
            d.choice("LeadSource", s.LEAD_SOURCES, 0.1), d.choice("Industry", s.INDUSTRIES, 0.2),
            d.choice("Rating", s.RATINGS, 0.3), d.money("AnnualRevenue", 1, 10_000, 5_000.0, 0.25),
            (status == "Closed - Converted").alias("IsConverted"), d.nulls(email, 0.1),
            d.choice("Country", [p[2] for p in PLACES], 0.1)]


def _cases(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    sys_cols = d.system_columns("500", sizes["User"])
    status = d.choice("Status", s.CASE_STATUSES)
    closed = (status == "Closed").to_numpy()
    created = sys_cols[3].cast(pl.Int64).to_numpy()
    closed_ms = _whole_seconds(np.minimum(created + d.rng.integers(3_600_000, 30 * _DAY_MS, d.n), d.epoch_ms))
    closed_date = pl.select(pl.when(pl.Series(closed)).then(_datetimes("ClosedDate", closed_ms))
                            .otherwise(None).alias("ClosedDate")).to_series()
    escalated = (status == "Escalated").to_numpy() | d.mask(0.05)
    return [*sys_cols, pl.Series(np.arange(1, d.n + 1)).cast(pl.String).str.zfill(8).alias("CaseNumber"),
            d.lookup("AccountId", "001", sizes["Account"], 0.1), d.lookup("ContactId", "003", sizes["Contact"], 0.15),
            d.choice("Subject", SUBJECTS, 0.05), status, d.choice("Priority", s.CASE_PRIORITIES),
            d.choice("Origin", s.CASE_ORIGINS, 0.05), pl.Series("IsClosed", closed),
            pl.Series("IsEscalated", escalated), closed_date, d.choice("Description", DESCRIPTIONS, 0.4)]


# ------------------------------------------------------------------------------------ the other standard fields
# Drawn from a second stream per object (``object_seed(seed, "<Object>/standard")``), after the columns above, so
# adding them left every earlier column's values as they were. Most are null, as on real orgs.

QUEUE_NAMES = ("Lead Intake", "Web Leads", "Support Tier 1", "Support Tier 2", "Partner Leads", "Escalations")
REGULAR_GROUP_NAMES = ("All Sales", "Support Managers", "Marketing Team")
# BillingCity -> (latitude, longitude), four decimals (the same float text in REST JSON and Bulk CSV)
COORDINATES = {"Paris": (48.8566, 2.3522), "Berlin": (52.52, 13.405), "Tokyo": (35.6762, 139.6503),
               "New York": (40.7128, -74.006), "São Paulo": (-23.5505, -46.6333), "Zürich": (47.3769, 8.5417),
               "London": (51.5072, -0.1276), "Toronto": (43.6532, -79.3832), "Austin": (30.2672, -97.7431),
               "Mumbai": (19.076, 72.8777)}
SIC_CODES = (("7372", "Prepackaged Software"), ("6021", "National Commercial Banks"),
             ("2834", "Pharmaceutical Preparations"), ("5411", "Grocery Stores"), ("4911", "Electric Services"))
SITES = ("Headquarters", "Branch Office", "Warehouse")
PHOTO_URL = "/services/images/photo/"  # + the record's Id, on every Account, Contact and Lead
PROFILE_PREFIX = "00e"


def is_queue(group_numbers: np.ndarray) -> np.ndarray:
    """Which Group records are queues (the rest are public groups): every fourth group is a Regular one."""
    return group_numbers % 4 != 3


def _where(mask: np.ndarray, then: pl.Series, otherwise: pl.Series | None = None) -> pl.Series:
    """``then`` where ``mask``, else ``otherwise`` (or null)."""
    expr = pl.when(pl.Series(mask)).then(then)
    return pl.select((expr.otherwise(otherwise) if otherwise is not None else expr).alias(then.name)).to_series()


def _ms(column: pl.Series) -> np.ndarray:
    return column.cast(pl.Int64).to_numpy()


def _between(d: _Draw, start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
    return _whole_seconds(start_ms + (d.rng.random(d.n) * (end_ms - start_ms)).astype(np.int64))


def _phone(d: _Draw, name: str, null_frac: float) -> pl.Series:
    return d.combo(name, [["+1 555 0"], [str(i) for i in range(100, 1000)]], "", null_frac=null_frac)


def _self_lookup(d: _Draw, name: str, prefix: str, frac: float) -> pl.Series:
    """A lookup to an earlier record of the same object (a hierarchy without cycles): ParentId, ReportsToId."""
    numbers = np.arange(d.n)
    parent = (d.rng.random(d.n) * numbers).astype(np.int64)
    return _where(d.mask(frac) & (numbers > 0), make_ids(prefix, parent, name=name))


def _master_record(d: _Draw, prefix: str, deleted: pl.Series) -> pl.Series:
    """On about a third of the deleted records, the record a merge kept (another record of the object)."""
    numbers = np.arange(d.n)
    other = d.rng.integers(0, max(d.n - 1, 1), d.n)
    other = np.minimum(other + (other >= numbers), max(d.n - 1, 0))
    merged = deleted.to_numpy() & d.mask(0.3) & (d.n > 1)
    return _where(merged, make_ids(prefix, other, name="MasterRecordId"))


def _audit_ids(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    return [d.lookup("CreatedById", "005", sizes["User"]), d.lookup("LastModifiedById", "005", sizes["User"])]


def _recently_viewed(d: _Draw, columns: Mapping[str, pl.Series], viewed_frac: float = 0.1) -> list[pl.Series]:
    stamp = _ms(columns["SystemModstamp"])
    viewed = _where(d.mask(viewed_frac), _datetimes("LastViewedDate", _between(d, stamp, np.full(d.n, d.epoch_ms))))
    return [viewed, viewed.alias("LastReferencedDate")]


def _last_activity(d: _Draw, columns: Mapping[str, pl.Series]) -> pl.Series:
    created = _ms(columns["CreatedDate"])
    return _where(d.mask(0.45), _dates("LastActivityDate", _between(d, created, np.full(d.n, d.epoch_ms))))


def _nulls(name: str, n: int, dtype: pl.DataType = pl.String()) -> pl.Series:
    return _constant(name, None, n, dtype)


def _constant(name: str, value: str | None, n: int, dtype: pl.DataType = pl.String()) -> pl.Series:
    return pl.select(pl.repeat(value, n, dtype=dtype).alias(name)).to_series()


def _falses(name: str, n: int) -> pl.Series:
    return pl.Series(name, np.zeros(n, dtype=bool))


def _photo_urls(columns: Mapping[str, pl.Series]) -> pl.Series:
    return pl.select(pl.concat_str(pl.lit(PHOTO_URL), pl.lit(columns["Id"])).alias("PhotoUrl")).to_series()


def _place_parts(prefix: str, country: pl.Series, keep: np.ndarray) -> list[pl.Series]:
    """Street/City/State/PostalCode of a place in ``country`` (the first one listed), where ``keep``."""
    first: dict[str, tuple[str, str | None, str]] = {}
    for city, state, place_country, postal in PLACES:
        first.setdefault(place_country, (city, state, postal))
    parts = []
    for i, part in enumerate(("City", "State", "PostalCode")):
        mapping = {c: v[i] for c, v in first.items()}
        values = country.replace_strict(mapping, default=None, return_dtype=pl.String)
        parts.append(_where(keep, values.alias(f"{prefix}{part}")))
    numbers = pl.Series(np.arange(len(keep)))
    street = pl.select(pl.concat_str((numbers % 90 + 10).cast(pl.String), pl.lit(pl.Series(STREETS)).gather(
        numbers % len(STREETS)), separator=" ").alias(f"{prefix}Street")).to_series()
    return [_where(keep & country.is_not_null().to_numpy(), street), *parts]


def _empty_address(prefix: str, n: int, *, keep: tuple[str, ...] = ()) -> list[pl.Series]:
    names = ("Street", "City", "State", "PostalCode", "Country", "GeocodeAccuracy")
    return [*(_nulls(f"{prefix}{p}", n) for p in names if p not in keep),
            *(_nulls(f"{prefix}{p}", n, pl.Float64()) for p in ("Latitude", "Longitude"))]


def _more_users(d: _Draw, columns: Mapping[str, pl.Series], sizes: Mapping[str, int]) -> list[pl.Series]:
    stamp = _ms(columns["SystemModstamp"])
    logged_in = columns["IsActive"].to_numpy() & d.mask(0.8)
    nickname = columns["Username"].str.split("@").list.first().alias("CommunityNickname")
    return [
        *_audit_ids(d, sizes), d.choice("CompanyName", ["Emulated Org Inc."], null_frac=0.1), _phone(d, "Phone", 0.4),
        _phone(d, "MobilePhone", 0.7), nickname, d.choice("TimeZoneSidKey", s.TIME_ZONES),
        _nulls("UserRoleId", d.n), d.choice("LocaleSidKey", s.LOCALES), d.choice("EmailEncodingKey", ["UTF-8"]),
        make_ids(PROFILE_PREFIX, d.rng.integers(0, 4, d.n), name="ProfileId"),
        _constant("UserType", "Standard", d.n), d.choice("LanguageLocaleKey", s.LANGUAGES),
        _self_lookup(d, "ManagerId", "005", 0.6),
        _where(logged_in, _datetimes("LastLoginDate", _between(d, stamp, np.full(d.n, d.epoch_ms)))),
        *_recently_viewed(d, columns),
    ]


def _groups(d: _Draw, sizes: Mapping[str, int]) -> list[pl.Series]:
    """Queues (Type 'Queue') that own Leads and Cases, and a few public groups."""
    numbers = np.arange(d.n)
    queue = is_queue(numbers)
    names = [QUEUE_NAMES[i % len(QUEUE_NAMES)] if q else REGULAR_GROUP_NAMES[i % len(REGULAR_GROUP_NAMES)]
             for i, q in zip(numbers, queue, strict=True)]
    name = pl.Series("Name", [f"{n} {i + 1}" if i >= 6 else n for i, n in enumerate(names)], dtype=pl.String)
    created, modified, modstamp = d.history()
    return [make_ids("00G", numbers), name, name.str.replace_all(" ", "_").alias("DeveloperName"),
            _nulls("RelatedId", d.n), pl.Series("Type", np.where(queue, "Queue", "Regular")),
            _where(queue & d.mask(0.5), d.text("Email", ["queue", pl.Series(numbers).cast(pl.String),
                                                         "@emulator.example"])),
            make_ids("005", np.zeros(d.n, dtype=np.int64), name="OwnerId"),
            pl.Series("DoesSendEmailToMembers", queue & d.mask(0.5)), pl.Series("DoesIncludeBosses", ~queue),
            _datetimes("CreatedDate", created), _datetimes("LastModifiedDate", modified),
            _datetimes("SystemModstamp", modstamp), *_audit_ids(d, sizes)]


def _queue_owned(d: _Draw, owners: pl.Series, groups: int, frac: float) -> pl.Series:
    """``owners`` with about ``frac`` of the records owned by a queue instead of a user."""
    queues = np.flatnonzero(is_queue(np.arange(groups)))
    if len(queues) == 0:
        return owners
    queue_ids = make_ids("00G", queues[d.rng.integers(0, len(queues), d.n)], name="OwnerId")
    return _where(d.mask(frac), queue_ids, owners)


def _more_accounts(d: _Draw, columns: Mapping[str, pl.Series], sizes: Mapping[str, int]) -> list[pl.Series]:
    city = columns["BillingCity"]
    lat, lon = (city.replace_strict({c: xy[i] for c, xy in COORDINATES.items()}, default=None,
                                    return_dtype=pl.Float64) for i in range(2))
    geocoded = d.mask(0.4)
    billing_geo = [_where(geocoded, lat.alias("BillingLatitude")), _where(geocoded, lon.alias("BillingLongitude")),
                   _where(geocoded, d.choice("BillingGeocodeAccuracy", ("Address", "Street", "Zip", "City")))]
    shipped = d.mask(0.5)
    billing = [columns[f"Billing{p}"] for p in ("Street", "City", "State", "PostalCode", "Country")] + billing_geo
    shipping = [_where(shipped, b, None).alias(b.name.replace("Billing", "Shipping")) for b in billing]
    sic = d.rng.integers(0, len(SIC_CODES), d.n)
    has_sic = d.mask(0.2)
    return [
        _master_record(d, "001", columns["IsDeleted"]), _self_lookup(d, "ParentId", "001", 0.08), *billing_geo,
        *shipping, _phone(d, "Fax", 0.75),
        d.combo("AccountNumber", [["CD"], [str(i) for i in range(100000, 999999, 7)]], "", null_frac=0.65),
        _photo_urls(columns), _where(has_sic, d.pick("Sic", [c for c, _ in SIC_CODES], sic)),
        _where(has_sic, d.pick("SicDesc", [t for _, t in SIC_CODES], sic)),
        d.choice("Ownership", s.OWNERSHIPS, null_frac=0.7),
        d.choice("TickerSymbol", [slug[:4].upper() for slug in COMPANY_SLUGS], null_frac=0.92),
        d.choice("Site", SITES, null_frac=0.9), *_audit_ids(d, sizes), _last_activity(d, columns),
        *_recently_viewed(d, columns), _nulls("Jigsaw", d.n), _nulls("JigsawCompanyId", d.n),
        _constant("CleanStatus", "Pending", d.n),
        d.choice("AccountSource", s.ACCOUNT_SOURCES, null_frac=0.6), _nulls("DunsNumber", d.n),
        _nulls("Tradestyle", d.n), _nulls("NaicsCode", d.n), _nulls("NaicsDesc", d.n),
        d.choice("YearStarted", [str(y) for y in range(1950, 2021)], null_frac=0.85),
        _nulls("DandbCompanyId", d.n), _nulls("OperatingHoursId", d.n),
    ]


def _more_contacts(d: _Draw, columns: Mapping[str, pl.Series], sizes: Mapping[str, int]) -> list[pl.Series]:
    firsts = columns["FirstName"].is_not_null().to_numpy()
    return [
        _master_record(d, "003", columns["IsDeleted"]),
        _where(firsts & d.mask(0.5), d.choice("Salutation", s.SALUTATIONS)),
        *_empty_address("Other", d.n), *_place_parts("Mailing", columns["MailingCountry"], d.mask(0.8)),
        *(_nulls(f"Mailing{p}", d.n, pl.Float64()) for p in ("Latitude", "Longitude")),
        _nulls("MailingGeocodeAccuracy", d.n), _phone(d, "Phone", 0.3), _phone(d, "Fax", 0.9),
        _phone(d, "MobilePhone", 0.5), _phone(d, "HomePhone", 0.9), _phone(d, "OtherPhone", 0.95),
        _phone(d, "AssistantPhone", 0.95), _self_lookup(d, "ReportsToId", "003", 0.1),
        d.choice("Department", s.DEPARTMENTS, null_frac=0.6),
        d.choice("AssistantName", FIRST_NAMES, null_frac=0.95), pl.Series("HasOptedOutOfFax", d.mask(0.05)),
        pl.Series("DoNotCall", d.mask(0.05)), *_audit_ids(d, sizes), _last_activity(d, columns),
        _nulls("LastCURequestDate", d.n, DATETIME), _nulls("LastCUUpdateDate", d.n, DATETIME),
        *_recently_viewed(d, columns), _nulls("EmailBouncedReason", d.n), _nulls("EmailBouncedDate", d.n, DATETIME),
        _falses("IsEmailBounced", d.n), _photo_urls(columns), _nulls("Jigsaw", d.n), _nulls("JigsawContactId", d.n),
        _constant("CleanStatus", "Pending", d.n), _nulls("IndividualId", d.n),
    ]


def forecast_category_name(api_values: pl.Series) -> pl.Series:
    """ForecastCategoryName (the category's label) from ForecastCategory (its API value)."""
    labels = dict(zip(s.FORECAST_CATEGORIES, s.FORECAST_CATEGORY_NAMES, strict=True))
    return api_values.replace_strict(labels, default=None, return_dtype=pl.String).alias("ForecastCategoryName")


def fiscal_columns(close_dates: pl.Series) -> list[pl.Series]:
    """FiscalYear, FiscalQuarter and Fiscal ('2024 3') of a close date (fiscal year = calendar year)."""
    year = close_dates.dt.year().cast(pl.Int64).alias("FiscalYear")
    quarter = close_dates.dt.quarter().cast(pl.Int64).alias("FiscalQuarter")
    fiscal = pl.select(pl.concat_str(pl.lit(year).cast(pl.String), pl.lit(quarter).cast(pl.String),
                                     separator=" ").alias("Fiscal")).to_series()
    return [year, quarter, fiscal]


def expected_revenue(amount: pl.Series, probability: pl.Series) -> pl.Series:
    return (amount * probability / 100).round(2).alias("ExpectedRevenue")


def _more_opportunities(d: _Draw, columns: Mapping[str, pl.Series], sizes: Mapping[str, int]) -> list[pl.Series]:
    created, modified = _ms(columns["CreatedDate"]), _ms(columns["LastModifiedDate"])
    return [
        _falses("IsPrivate", d.n), d.choice("Description", DESCRIPTIONS, null_frac=0.6),
        expected_revenue(columns["Amount"], columns["Probability"]),
        d.nulls(pl.Series("TotalOpportunityQuantity", d.rng.integers(1, 500, d.n).astype(np.float64)), 0.8),
        forecast_category_name(columns["ForecastCategory"]), _nulls("CampaignId", d.n),
        _falses("HasOpportunityLineItem", d.n), _nulls("Pricebook2Id", d.n), *_audit_ids(d, sizes),
        _last_activity(d, columns),
        pl.Series("PushCount", np.where(d.mask(0.8), 0, d.rng.integers(1, 4, d.n))),
        _where(d.mask(0.7), _datetimes("LastStageChangeDate", _between(d, created, modified))),
        *fiscal_columns(columns["CloseDate"]), d.lookup("ContactId", "003", sizes["Contact"], null_frac=0.7),
        *_recently_viewed(d, columns), pl.Series("HasOpenActivity", d.mask(0.1)),
        pl.Series("HasOverdueTask", d.mask(0.05)), _nulls("LastAmountChangedHistoryId", d.n),
        _nulls("LastCloseDateChangedHistoryId", d.n),
    ]


def _more_leads(d: _Draw, columns: Mapping[str, pl.Series], sizes: Mapping[str, int]) -> list[pl.Series]:
    created, modified = _ms(columns["CreatedDate"]), _ms(columns["LastModifiedDate"])
    converted = columns["IsConverted"].to_numpy()
    firsts = columns["FirstName"].is_not_null().to_numpy()
    return [
        _master_record(d, "00Q", columns["IsDeleted"]),
        _where(firsts & d.mask(0.5), d.choice("Salutation", s.SALUTATIONS)),
        d.choice("Title", s.TITLES, null_frac=0.5), *_place_parts("", columns["Country"], d.mask(0.7)),
        *(_nulls(p, d.n, pl.Float64()) for p in ("Latitude", "Longitude")), _nulls("GeocodeAccuracy", d.n),
        _phone(d, "Phone", 0.3), _phone(d, "MobilePhone", 0.7), _phone(d, "Fax", 0.95),
        d.choice("Website", [f"https://www.{slug}.example.com" for slug in COMPANY_SLUGS], null_frac=0.7),
        _photo_urls(columns), d.choice("Description", DESCRIPTIONS, null_frac=0.7),
        d.nulls(pl.Series("NumberOfEmployees", d.rng.integers(1, 10_000, d.n)), 0.6),
        _queue_owned(d, columns["OwnerId"], sizes["Group"], 0.3), pl.Series("HasOptedOutOfEmail", d.mask(0.1)),
        _where(converted, _dates("ConvertedDate", _between(d, created, modified))),
        _where(converted, d.lookup("ConvertedAccountId", "001", sizes["Account"])),
        _where(converted, d.lookup("ConvertedContactId", "003", sizes["Contact"])),
        pl.Series("IsUnreadByOwner", ~converted & d.mask(0.1)), *_audit_ids(d, sizes), _last_activity(d, columns),
        pl.Series("DoNotCall", d.mask(0.05)), pl.Series("HasOptedOutOfFax", d.mask(0.05)),
        *_recently_viewed(d, columns), _where(d.mask(0.2), _dates("LastTransferDate", _between(d, created, modified))),
        _nulls("Jigsaw", d.n), _nulls("JigsawContactId", d.n),
        _constant("CleanStatus", "Pending", d.n), _nulls("CompanyDunsNumber", d.n),
        _nulls("DandbCompanyId", d.n), _nulls("EmailBouncedReason", d.n), _nulls("EmailBouncedDate", d.n, DATETIME),
        _nulls("IndividualId", d.n), _converted_opportunities(d, converted, sizes["Opportunity"]),
    ]


def _converted_opportunities(d: _Draw, converted: np.ndarray, opportunities: int) -> pl.Series:
    """The opportunity most converted leads created. Drawn last, as floats, so that the Opportunity count changes
    this column alone (integer draws of another range can consume another number of random bits)."""
    picked = (d.rng.random(d.n) * opportunities).astype(np.int64)
    keep = converted & d.mask(0.7) & (opportunities > 0)
    return _where(keep, make_ids("006", picked, name="ConvertedOpportunityId"))


def _more_cases(d: _Draw, columns: Mapping[str, pl.Series], sizes: Mapping[str, int]) -> list[pl.Series]:
    web = (columns["Origin"] == "Web").fill_null(False).to_numpy() & d.mask(0.8)
    first, last, name = _names(d)
    numbers = pl.Series(np.arange(d.n)).cast(pl.String)
    return [
        _master_record(d, "500", columns["IsDeleted"]), _nulls("AssetId", d.n),
        _self_lookup(d, "ParentId", "500", 0.05),
        _where(web, name.alias("SuppliedName")),
        _where(web, d.text("SuppliedEmail", ["web", numbers, "@example.net"])),
        _where(web, _phone(d, "SuppliedPhone", 0.0)),
        _where(web, d.combo("SuppliedCompany", [COMPANY_WORDS, COMPANY_SUFFIXES], " ")),
        d.choice("Type", s.CASE_TYPES, null_frac=0.4), d.choice("Reason", s.CASE_REASONS, null_frac=0.5),
        _queue_owned(d, columns["OwnerId"], sizes["Group"], 0.35), *_audit_ids(d, sizes),
        # the contact's own phone and email (formulas on real orgs): not derived here, so left null
        _nulls("ContactPhone", d.n), _nulls("ContactMobile", d.n), _nulls("ContactEmail", d.n),
        _nulls("ContactFax", d.n), _nulls("Comments", d.n), *_recently_viewed(d, columns),
    ]


_STANDARD_BUILDERS: dict[str, Callable[[_Draw, Mapping[str, pl.Series], Mapping[str, int]], list[pl.Series]]] = {
    "User": _more_users, "Account": _more_accounts, "Contact": _more_contacts, "Opportunity": _more_opportunities,
    "Lead": _more_leads, "Case": _more_cases,
}


_BUILDERS: dict[str, Callable[[_Draw, Mapping[str, int]], list[pl.Series]]] = {
    "User": _users, "Group": _groups, "Account": _accounts, "Contact": _contacts, "Opportunity": _opportunities,
    "Lead": _leads, "Case": _cases,
}


def empty_frame(object_name: str) -> pl.DataFrame:
    """A zero-row frame with the object's column schema (every non-compound field)."""
    return generate_object(object_name, 0, seed=0, sizes={k: 0 for k in _BUILDERS})


def column_dtype(field_type: str) -> pl.DataType:
    """The Polars dtype of a column of describe type ``field_type``."""
    return {"boolean": pl.Boolean(), "int": pl.Int64(), "double": pl.Float64(), "currency": pl.Float64(),
            "percent": pl.Float64(), "date": pl.Date(), "datetime": DATETIME}.get(field_type, pl.String())


def generate_object(object_name: str, n: int, *, seed: int, sizes: Mapping[str, int]) -> pl.DataFrame:
    """``n`` synthetic rows of one object; lookups point at record numbers below ``sizes[parent]``."""
    d = _Draw(seed, object_name, n, epoch_for(seed))
    columns = {c.name: c for c in _BUILDERS[object_name](d, sizes)}
    if object_name in _STANDARD_BUILDERS:
        more = _Draw(seed, f"{object_name}/standard", n, epoch_for(seed))
        columns.update((c.name, c) for c in _STANDARD_BUILDERS[object_name](more, columns, sizes))
    obj = s.OBJECTS[object_name]
    schema = {f.name: column_dtype(f.type) for f in obj.fields if not f.is_compound}
    return pl.DataFrame([columns[name].cast(dtype).alias(name) for name, dtype in schema.items()])
