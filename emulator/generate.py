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
# StageName -> (Probability, IsClosed, IsWon, ForecastCategory), as the default sales process defines them
STAGE_FACTS = {
    "Prospecting": (10.0, False, False, "Pipeline"), "Qualification": (10.0, False, False, "Pipeline"),
    "Needs Analysis": (20.0, False, False, "Pipeline"), "Value Proposition": (50.0, False, False, "Pipeline"),
    "Id. Decision Makers": (60.0, False, False, "Pipeline"), "Proposal/Price Quote": (75.0, False, False, "Best Case"),
    "Negotiation/Review": (90.0, False, False, "Commit"), "Closed Won": (100.0, True, True, "Closed"),
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
        # whole multiples of `step` >= 1.0 keep float text identical between json.dumps and the Bulk CSV
        values = self.rng.integers(low, high, self.n) * step
        return self.nulls(pl.Series(name, np.round(values, 2)), null_frac)

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CreatedDate <= LastModifiedDate <= SystemModstamp <= epoch, epoch ms."""
        created = self.epoch_ms - self.rng.integers(_DAY_MS, _HISTORY_MS, self.n)
        modified = created + (self.rng.random(self.n) * (self.epoch_ms - created)).astype(np.int64)
        modstamp = np.minimum(modified + self.rng.integers(0, 60_000, self.n), self.epoch_ms)
        return created, modified, modstamp

    def system_columns(self, prefix: str, owners: int | None) -> list[pl.Series]:
        created, modified, modstamp = self.history()
        deleted = self.mask(0.01) if owners is not None else np.zeros(self.n, dtype=bool)
        cols = [make_ids(prefix, np.arange(self.n)), pl.Series("IsDeleted", deleted)]
        if owners is not None:
            cols.append(self.lookup("OwnerId", "005", owners))
        cols += [_datetimes("CreatedDate", created), _datetimes("LastModifiedDate", modified),
                 _datetimes("SystemModstamp", modstamp)]
        return cols

    def text(self, name: str, parts: Sequence[pl.Series | str], separator: str = "") -> pl.Series:
        exprs = [pl.lit(p) for p in parts]
        return pl.select(pl.concat_str(exprs, separator=separator, ignore_nulls=True).alias(name)).to_series()



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
    sys_cols = d.system_columns("005", None)
    return [*sys_cols[:2], d.text("Username", ["user", num, "@emulator.example"]), name, first, last,
            d.text("Email", ["user", num, "@emulator.example"]), d.text("Alias", ["u", num]),
            d.choice("Title", s.TITLES), d.choice("Department", s.DEPARTMENTS),
            pl.Series("IsActive", ~d.mask(0.1)), *sys_cols[2:]]


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
    closed_ms = np.minimum(created + d.rng.integers(3_600_000, 30 * _DAY_MS, d.n), d.epoch_ms)
    closed_date = pl.select(pl.when(pl.Series(closed)).then(_datetimes("ClosedDate", closed_ms))
                            .otherwise(None).alias("ClosedDate")).to_series()
    escalated = (status == "Escalated").to_numpy() | d.mask(0.05)
    return [*sys_cols, pl.Series(np.arange(1, d.n + 1)).cast(pl.String).str.zfill(8).alias("CaseNumber"),
            d.lookup("AccountId", "001", sizes["Account"], 0.1), d.lookup("ContactId", "003", sizes["Contact"], 0.15),
            d.choice("Subject", SUBJECTS, 0.05), status, d.choice("Priority", s.CASE_PRIORITIES),
            d.choice("Origin", s.CASE_ORIGINS, 0.05), pl.Series("IsClosed", closed),
            pl.Series("IsEscalated", escalated), closed_date, d.choice("Description", DESCRIPTIONS, 0.4)]


_BUILDERS: dict[str, Callable[[_Draw, Mapping[str, int]], list[pl.Series]]] = {
    "User": _users, "Account": _accounts, "Contact": _contacts, "Opportunity": _opportunities, "Lead": _leads,
    "Case": _cases,
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
    obj = s.OBJECTS[object_name]
    schema = {f.name: column_dtype(f.type) for f in obj.fields if not f.is_compound}
    return pl.DataFrame([columns[name].cast(dtype).alias(name) for name, dtype in schema.items()])
