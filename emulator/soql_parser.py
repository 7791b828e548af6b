"""SOQL text to a validated query: lexer, syntax parser and binder against the org's catalog."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

import polars as pl

from emulator.web import ApiError

MAX_OFFSET = 2000
MAX_FIELDS_FUNCTION_LIMIT = 200
MAX_RELATIONSHIP_DEPTH = 5
MAX_AGGREGATE_ROWS = 2000  # an aggregate query answers in one batch: no query locator (queryMore) for its rows
AGGREGATE_RESULT = "AggregateResult"  # the sObject type of an aggregate query's rows
POLYMORPHIC_PARENT = "Name"  # what a polymorphic relationship (Owner of a Lead: a User or a queue) reaches

TEXT_TYPES = frozenset({"id", "reference", "string", "textarea", "email", "phone", "url", "picklist",
                        "multipicklist", "combobox", "encryptedstring"})
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})
COMPOUND_TYPES = frozenset({"address", "location"})
# Salesforce's "Support for Field Types in Aggregate Functions" table: SUM/AVG take numbers; COUNT, COUNT_DISTINCT,
# MIN and MAX also take text, ids, dates and datetimes; boolean, multipicklist, encrypted and compound take none.
_SUMMABLE_TYPES = NUMBER_TYPES
_COMPARABLE_TYPES = (TEXT_TYPES | NUMBER_TYPES | {"date", "datetime"}) - {"multipicklist", "encryptedstring"}
# Groupable (describe's ``groupable``): no double/currency/percent, datetime, multipicklist, long text or compound.
_UNGROUPABLE_TYPES = frozenset({"double", "currency", "percent", "datetime", "multipicklist", "encryptedstring"})
# The type names Salesforce prints in "value of filter criterion ... must be of type X".
_CRITERION_TYPE_NAMES = {"boolean": "boolean", "int": "integer", "long": "long", "double": "double",
                         "currency": "double", "percent": "double", "date": "date", "datetime": "dateTime"}

_NO_SUCH_COLUMN_HINT = ("If you are attempting to use a custom field, be sure to append the '__c' after the custom "
                        "field name. Please reference your WSDL or the describe call for the appropriate names.")
_SUPPORTED_SUBSET = ("the emulator supports SELECT <fields | COUNT() | FIELDS() | aggregate functions | "
                     "(SELECT ... FROM ChildRelationship)> FROM <object> [WHERE ...] [GROUP BY fields] [HAVING ...] "
                     "[ORDER BY ...] [LIMIT n] [OFFSET n]; rewrite the query within that subset")


class FieldInfo(Protocol):
    """What the SOQL engine needs to know about one field (a subset of its describe).

    Read-only properties: the engine never writes them, so frozen dataclasses and computed properties qualify."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def reference_to(self) -> tuple[str, ...]: ...

    @property
    def relationship_name(self) -> str | None: ...

    @property
    def compound_field_name(self) -> str | None: ...

    @property
    def filterable(self) -> bool: ...

    @property
    def sortable(self) -> bool: ...


class Catalog(Protocol):
    """The org's objects, their fields in describe order, and their data (all rows incl. soft-deleted).

    ``fields`` and ``frame`` also answer for POLYMORPHIC_PARENT when an object has a polymorphic lookup."""

    def object_names(self) -> list[str]: ...

    # Sequence, not list: a list of the org's own field type must qualify (list is invariant)
    def fields(self, object_name: str) -> Sequence[FieldInfo]: ...

    def frame(self, object_name: str) -> pl.DataFrame: ...


class SoqlError(ApiError):
    """A query Salesforce would reject: ``error_code`` and the Salesforce-style ``message`` (caret block).

    An ApiError (HTTP 400) so that a rejection found while running the query (too many aggregate rows) is
    answered with Salesforce's error body like one found while parsing."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(400, error_code, message)


def format_error_message(text: str, pos: int, detail: str) -> str:
    """Salesforce's error shape: the query row, a caret under the column, 'ERROR at Row:r:Column:c', the text."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start: line_end if line_end >= 0 else len(text)]
    column = pos - line_start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"


# ----------------------------------------------------------------------------------------------- bound query model

@dataclass(frozen=True)
class FieldPath:
    """A resolved field reference: canonical path (relationships then field), its describe type, compound parts."""

    path: tuple[str, ...]
    type: str = ""
    components: tuple[str, ...] = ()  # component field names when the field is compound (e.g. BillingStreet)

    @property
    def column(self) -> str:
        return ".".join(self.path)

    @property
    def prefix(self) -> tuple[str, ...]:
        return self.path[:-1]


@dataclass(frozen=True)
class SelectItem(FieldPath):
    """One column of the SELECT list; ``column`` ("Owner.Name") names it in results and Bulk CSV headers."""


@dataclass(frozen=True)
class Relationship:
    """A child-to-parent hop: ``prefix`` ("Account", "Owner") reached through ``foreign_key`` on the previous object."""

    prefix: tuple[str, ...]
    foreign_key: str
    object_name: str

    @property
    def foreign_key_column(self) -> str:
        return ".".join((*self.prefix[:-1], self.foreign_key))


@dataclass(frozen=True)
class RelativeDate:
    """A relative date literal (TODAY, LAST_N_DAYS:7, ...) as a range rule: kind THIS | LAST_N | NEXT_N | AGO."""

    literal: str
    kind: str
    unit: str  # DAY | WEEK | MONTH | QUARTER | YEAR
    n: int


@dataclass(frozen=True)
class Comparison:
    """``field op value``; value is a Python scalar, a RelativeDate, a LIKE regex, or a tuple for list operators."""

    field: FieldPath
    op: str  # = != < <= > >= LIKE IN NOT_IN INCLUDES EXCLUDES
    value: object


@dataclass(frozen=True)
class Logical:
    """AND / OR over two or more conditions."""

    op: str
    operands: tuple[object, ...]


@dataclass(frozen=True)
class Negation:
    """NOT condition."""

    operand: object


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key."""

    field: FieldPath
    descending: bool
    nulls_last: bool


@dataclass(frozen=True)
class ChildRelationship:
    """A parent-to-child relationship as describe's ``childRelationships`` lists it (Account -> Contacts)."""

    name: str  # relationshipName, what a subquery names in FROM ("Contacts")
    child_object: str  # childSObject ("Contact")
    field: str  # the child's lookup to the parent ("AccountId")


ChildRelationships = Callable[[str], Sequence[ChildRelationship]]  # object name -> its child relationships


@dataclass(frozen=True)
class Measure:
    """One aggregate function over a field of the aggregated rows: COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX."""

    function: str
    field: FieldPath
    picklist: tuple[str, ...] = ()  # MIN/MAX of a picklist follow the picklist's value order, not the alphabet

    @property
    def key(self) -> str:
        """Its column in the grouped rows, e.g. ``SUM(Amount)`` (one per distinct function and field)."""
        return f"{self.function}({self.field.column})"


@dataclass(frozen=True, kw_only=True)
class AggregateColumn(SelectItem):
    """A column of an AggregateResult row: ``path`` is its name (alias, exprN, or a grouped field's own name);
    ``source`` is its column in the grouped rows (the grouped field's path, or the Measure's key)."""

    source: str


@dataclass(frozen=True)
class Aggregation:
    """How an aggregate query's rows are made: ``rows`` (FROM, WHERE, the fields read) grouped and measured."""

    rows: SoqlQuery
    group_by: tuple[FieldPath, ...]
    measures: tuple[Measure, ...]
    having: object | None  # a condition over the grouped rows' columns (grouped paths and Measure keys)


@dataclass(frozen=True, kw_only=True)
class ChildSubquery(SelectItem):
    """``(SELECT ... FROM Contacts)``: ``path`` is the relationship name; ``query`` selects the children, and
    ``foreign_key`` is the child field that points at the parent record."""

    query: SoqlQuery
    foreign_key: str


@dataclass(frozen=True)
class SoqlQuery:
    """A parsed and validated query, ready for ``execute``.

    ``object_name`` is the sObject type of the result records: the FROM object, or AggregateResult for an
    aggregate query, whose FROM object, WHERE and grouping live in ``aggregation`` (``order_by``, ``limit`` and
    ``offset`` then apply to the grouped rows)."""

    object_name: str
    items: tuple[SelectItem, ...]
    is_count: bool
    where: object | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    uses_fields_function: bool
    selects_compound: bool
    relationships: tuple[Relationship, ...] = field(default=())  # every hop used anywhere, parents first
    aggregation: Aggregation | None = None

    @property
    def subqueries(self) -> tuple[ChildSubquery, ...]:
        return tuple(item for item in self.items if isinstance(item, ChildSubquery))

    def relationship_object(self, prefix: str) -> str:
        """The object a relationship prefix ("Account.Owner") points at, for nested records' attributes.type."""
        for rel in self.relationships:
            if ".".join(rel.prefix) == prefix:
                return rel.object_name
        msg = f"{prefix!r} is not a relationship of this query; known: {[r.prefix for r in self.relationships]}"
        raise KeyError(msg)


# ----------------------------------------------------------------------------------------------------------- lexer

@dataclass(frozen=True)
class Token:
    kind: str  # ident | string | number | date | datetime | op | punct | eof
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),.:])
""", re.VERBOSE)
_STRING_RE = re.compile(r"'((?:[^'\\]|\\.)*)'", re.DOTALL)
_STRING_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_LIKE_ONLY_ESCAPES = frozenset("%_")  # \% and \_ are valid only as LIKE wildcard escapes; elsewhere kept verbatim


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "'":
            m = _STRING_RE.match(text, pos)
            if not m:
                detail = f"line {_row(text, pos)}:{pos} mismatched character '<EOF>' expecting '''"
                raise SoqlError("MALFORMED_QUERY", format_error_message(text, pos, detail))
            _check_escapes(text, m.group(1), pos)
            tokens.append(Token("string", m.group(1), pos))
            pos = m.end()
            continue
        m = _TOKEN_RE.match(text, pos)
        if not m:
            detail = f"line {_row(text, pos)}:{pos} no viable alternative at character '{text[pos]}'"
            raise SoqlError("MALFORMED_QUERY", format_error_message(text, pos, detail))
        if m.lastgroup != "ws":
            tokens.append(Token(m.lastgroup or "", m.group(), pos))
        pos = m.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def _row(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _check_escapes(text: str, body: str, pos: int) -> None:
    for m in re.finditer(r"\\(.)", body, re.DOTALL):
        if m.group(1) not in _STRING_ESCAPES and m.group(1) not in _LIKE_ONLY_ESCAPES:
            detail = (f"Invalid string literal '{body}'. Illegal character sequence '\\{m.group(1)}' "
                      "in string literal.")
            raise SoqlError("MALFORMED_QUERY", format_error_message(text, pos, detail))


def decode_string(body: str) -> str:
    """A string literal's value; \\% and \\_ stay as typed (they only mean something in LIKE)."""
    return re.sub(r"\\(.)", lambda m: _STRING_ESCAPES.get(m.group(1), m.group(0)), body, flags=re.DOTALL)


def like_to_regex(body: str) -> str:
    """A LIKE pattern as a case-insensitive regex matching the whole value: % any run, _ one char, \\ escapes."""
    parts: list[str] = []
    for m in re.finditer(r"\\(.)|(%)|(_)|(.)", body, re.DOTALL):
        escaped, percent, underscore, plain = m.groups()
        if escaped is not None:
            parts.append(re.escape(_STRING_ESCAPES.get(escaped, escaped)))
        elif percent:
            parts.append(".*")
        elif underscore:
            parts.append(".")
        else:
            parts.append(re.escape(plain))
    # A leading/trailing % just drops the anchor: cheaper for the regex engine than matching ".*".
    head = "^"
    if parts and parts[0] == ".*":
        head, parts = "", parts[1:]
    tail = "$"
    if parts and parts[-1] == ".*":
        tail, parts = "", parts[:-1]
    return f"(?is){head}{''.join(parts)}{tail}"


# ---------------------------------------------------------------------------------------------------- syntax model

@dataclass(frozen=True)
class _RawPath:
    names: tuple[str, ...]
    pos: int
    alias: tuple[str, int] | None = None  # (alias, pos) after a SELECT item


@dataclass(frozen=True)
class _RawAggregate:
    function: str  # upper case: COUNT | COUNT_DISTINCT | SUM | AVG | MIN | MAX
    path: _RawPath
    pos: int
    alias: tuple[str, int] | None = None


@dataclass(frozen=True)
class _RawCount:
    pos: int


@dataclass(frozen=True)
class _RawFields:
    scope: str
    pos: int


@dataclass(frozen=True)
class _RawLiteral:
    kind: str  # string | number | date | datetime | boolean | null | relative
    value: object
    pos: int


@dataclass(frozen=True)
class _RawComparison:
    path: _RawPath | _RawAggregate  # an aggregate only in HAVING
    op: str
    value: object  # _RawLiteral or tuple of them
    pos: int


@dataclass(frozen=True)
class _RawLogic:
    op: str
    operands: tuple[object, ...]


@dataclass(frozen=True)
class _RawNot:
    operand: object


@dataclass(frozen=True)
class _RawOrder:
    path: _RawPath | _RawAggregate
    descending: bool
    nulls_last: bool | None


@dataclass(frozen=True)
class _RawSubquery:
    query: _RawQuery
    pos: int


_RawSelectItem = _RawPath | _RawCount | _RawFields | _RawAggregate | _RawSubquery


@dataclass
class _RawQuery:
    items: list[_RawSelectItem]
    object_name: str = ""
    object_pos: int = 0
    where: object | None = None
    group_by: list[_RawPath] | None = None  # None: no GROUP BY clause
    group_pos: int = 0
    having: object | None = None
    order_by: list[_RawOrder] = field(default_factory=list)
    limit: tuple[int, int] | None = None  # (value, pos)
    offset: tuple[int, int] | None = None

    @property
    def is_aggregate(self) -> bool:
        """GROUP BY, HAVING or an aggregate function anywhere makes the rows AggregateResults."""
        return (self.group_by is not None or self.having is not None
                or any(isinstance(i, _RawAggregate) for i in self.items)
                or any(isinstance(o.path, _RawAggregate) for o in self.order_by))


_UNSUPPORTED_CLAUSES = {"WITH": "WITH", "FOR": "FOR VIEW/REFERENCE/UPDATE", "UPDATE": "UPDATE TRACKING/VIEWSTAT",
                        "USING": "USING SCOPE", "TYPEOF": "TYPEOF"}
# Words that end a SELECT item or start a clause, so never an alias.
_RESERVED = frozenset({"SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "BY", "LIMIT", "OFFSET", "AND", "OR",
                       "NOT", "LIKE", "IN", "INCLUDES", "EXCLUDES", "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS",
                       "FIRST", "LAST", *_UNSUPPORTED_CLAUSES})
_AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
_COMPARISON_OPS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _SyntaxParser:
    """Recursive descent over the SOQL subset; produces raw (unvalidated) structures with positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.in_having = False  # aggregate functions may stand in a condition only in HAVING

    # token helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def at_keyword(self, *words: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "ident" and tok.upper in words

    def at_punct(self, p: str) -> bool:
        tok = self.peek()
        return tok.kind == "punct" and tok.text == p

    def error(self, tok: Token, detail: str | None = None) -> SoqlError:
        detail = detail or f"unexpected token: '{tok.text}'"
        return SoqlError("MALFORMED_QUERY", format_error_message(self.text, tok.pos, detail))

    def unsupported(self, tok: Token, what: str) -> SoqlError:
        return self.error(tok, f"unexpected token: '{tok.text}' ({what} is not supported: {_SUPPORTED_SUBSET})")

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.error(self.peek())
        return self.advance()

    def expect_punct(self, p: str) -> Token:
        if not self.at_punct(p):
            raise self.error(self.peek())
        return self.advance()

    # grammar
    def parse(self) -> _RawQuery:
        query = self.parse_query()
        if self.peek().kind != "eof":
            raise self.error(self.peek())
        return query

    def parse_query(self) -> _RawQuery:
        """SELECT ... up to the end of the query or of a subquery's parentheses."""
        self.expect_keyword("SELECT")
        query = _RawQuery(items=self.parse_select_list())
        self.expect_keyword("FROM")
        obj = self.advance()
        if obj.kind != "ident":
            raise self.error(obj)
        query.object_name, query.object_pos = obj.text, obj.pos
        self.reject_unsupported_clause()
        if self.at_keyword("WHERE"):
            self.advance()
            query.where = self.parse_condition()
        self.reject_unsupported_clause()
        if self.at_keyword("GROUP"):
            query.group_pos = self.advance().pos
            self.expect_keyword("BY")
            query.group_by = self.parse_group_by()
        if self.at_keyword("HAVING"):
            self.advance()
            self.in_having = True
            query.having = self.parse_condition()
            self.in_having = False
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            query.order_by = self.parse_order_by()
        if self.at_keyword("LIMIT"):
            self.advance()
            query.limit = self.parse_non_negative_int()
        if self.at_keyword("OFFSET"):
            self.advance()
            query.offset = self.parse_non_negative_int()
        self.reject_unsupported_clause()
        return query

    def reject_unsupported_clause(self) -> None:
        tok = self.peek()
        if tok.kind == "ident" and tok.upper in _UNSUPPORTED_CLAUSES:
            raise self.unsupported(tok, _UNSUPPORTED_CLAUSES[tok.upper])

    def parse_select_list(self) -> list[_RawSelectItem]:
        items = [self.parse_select_item()]
        while self.at_punct(","):
            self.advance()
            items.append(self.parse_select_item())
        return items

    def parse_select_item(self) -> _RawSelectItem:
        tok = self.peek()
        if self.at_punct("("):
            self.advance()
            if not self.at_keyword("SELECT"):
                raise self.error(self.peek())
            subquery = _RawSubquery(self.parse_query(), tok.pos)
            self.expect_punct(")")
            return subquery
        if tok.kind != "ident" or tok.upper in ("FROM",):
            raise self.error(tok)
        if tok.upper == "TYPEOF":
            raise self.unsupported(tok, "TYPEOF")
        item: _RawPath | _RawCount | _RawFields | _RawAggregate
        if self.peek(1).kind == "punct" and self.peek(1).text == "(":
            item = self.parse_select_function()
        else:
            item = self.parse_path()
        if isinstance(item, _RawPath | _RawAggregate) and self.peek().kind == "ident" and self.peek().upper != "FROM":
            alias = self.advance()
            # An alias is followed by ',' or FROM; otherwise the word was a misspelt keyword ("SELECT Id FORM X").
            if alias.upper in _RESERVED or not (self.at_punct(",") or self.at_keyword("FROM")):
                raise self.error(alias)
            item = replace(item, alias=(alias.text, alias.pos))
        return item

    def parse_select_function(self) -> _RawCount | _RawFields | _RawAggregate:
        name = self.peek()
        if name.upper == "COUNT" and self.peek(2).kind == "punct" and self.peek(2).text == ")":
            self.i += 3  # COUNT ( )
            return _RawCount(name.pos)
        if name.upper == "FIELDS":
            self.i += 2  # FIELDS (
            scope = self.advance()
            if scope.kind != "ident" or scope.upper not in ("ALL", "STANDARD", "CUSTOM"):
                raise self.error(scope)
            self.expect_punct(")")
            return _RawFields(scope.upper, name.pos)
        return self.parse_aggregate(f"function {name.upper}()")

    def parse_aggregate(self, what: str) -> _RawAggregate:
        """``SUM(Amount)``: an aggregate function over one field path; any other function is not supported."""
        name = self.advance()
        if name.upper not in _AGGREGATES:
            raise self.unsupported(name, what)
        self.expect_punct("(")
        path = self.parse_path()
        self.expect_punct(")")
        return _RawAggregate(name.upper, path, name.pos)

    def parse_group_by(self) -> list[_RawPath]:
        paths = [self.parse_group_item()]
        while self.at_punct(","):
            self.advance()
            paths.append(self.parse_group_item())
        return paths

    def parse_group_item(self) -> _RawPath:
        tok = self.peek()
        if tok.kind == "ident" and self.peek(1).kind == "punct" and self.peek(1).text == "(":
            raise self.unsupported(tok, f"{tok.upper}() in GROUP BY")
        return self.parse_path()

    def parse_path(self) -> _RawPath:
        first = self.advance()
        if first.kind != "ident":
            raise self.error(first)
        names = [first.text]
        while self.at_punct("."):
            self.advance()
            tok = self.advance()
            if tok.kind != "ident":
                raise self.error(tok)
            names.append(tok.text)
        return _RawPath(tuple(names), first.pos)

    # WHERE: Salesforce requires parentheses to mix AND with OR, and NOT only opens a (sub)condition.
    def parse_condition(self) -> object:
        node = self.parse_negatable()
        joiner: str | None = None
        operands = [node]
        while self.at_keyword("AND", "OR"):
            tok = self.advance()
            if joiner is not None and tok.upper != joiner:
                raise self.error(tok)
            joiner = tok.upper
            if self.at_keyword("NOT"):
                raise self.error(self.peek())
            operands.append(self.parse_simple_condition())
        return _RawLogic(joiner, tuple(operands)) if joiner else node

    def parse_negatable(self) -> object:
        if self.at_keyword("NOT"):
            self.advance()
            return _RawNot(self.parse_simple_condition())
        return self.parse_simple_condition()

    def parse_simple_condition(self) -> object:
        if self.at_punct("("):
            self.advance()
            inner = self.parse_condition()
            self.expect_punct(")")
            return inner
        tok = self.peek()
        if tok.kind == "ident" and self.peek(1).kind == "punct" and self.peek(1).text == "(":
            if self.in_having:
                return self.parse_field_expression(self.parse_aggregate(f"function {tok.upper}() in HAVING"))
            raise self.unsupported(tok, f"function {tok.upper}() in WHERE")
        return self.parse_field_expression(self.parse_path())

    def parse_field_expression(self, path: _RawPath | _RawAggregate) -> _RawComparison:
        tok = self.advance()
        if tok.kind == "op":
            return _RawComparison(path, _COMPARISON_OPS[tok.text], self.parse_value(), tok.pos)
        if tok.kind == "ident" and tok.upper == "LIKE":
            return _RawComparison(path, "LIKE", self.parse_value(), tok.pos)
        if tok.kind == "ident" and tok.upper in ("IN", "INCLUDES", "EXCLUDES"):
            return _RawComparison(path, tok.upper, self.parse_value_list(), tok.pos)
        if tok.kind == "ident" and tok.upper == "NOT" and self.at_keyword("IN"):
            self.advance()
            return _RawComparison(path, "NOT_IN", self.parse_value_list(), tok.pos)
        raise self.error(tok)

    def parse_value_list(self) -> tuple[_RawLiteral, ...]:
        self.expect_punct("(")
        if self.at_keyword("SELECT"):
            raise self.unsupported(self.peek(), "a semi-join subquery")
        values = [self.parse_value()]
        while self.at_punct(","):
            self.advance()
            values.append(self.parse_value())
        self.expect_punct(")")
        return tuple(values)

    def parse_value(self) -> _RawLiteral:
        tok = self.advance()
        if tok.kind in ("string", "number", "date", "datetime"):
            return _RawLiteral(tok.kind, tok.text, tok.pos)
        if tok.kind == "punct" and tok.text == ":":
            raise self.unsupported(tok, "an Apex bind variable")
        if tok.kind != "ident":
            raise self.error(tok)
        if tok.upper in ("TRUE", "FALSE"):
            return _RawLiteral("boolean", tok.upper == "TRUE", tok.pos)
        if tok.upper == "NULL":
            return _RawLiteral("null", None, tok.pos)
        return _RawLiteral("relative", self.parse_relative_date(tok), tok.pos)

    def parse_relative_date(self, tok: Token) -> RelativeDate:
        rule = relative_date_rule(tok.upper)
        if rule is None:
            raise self.error(tok)
        kind, unit, n = rule
        if n is not None:
            return RelativeDate(tok.upper, kind, unit, n)
        if not self.at_punct(":"):
            raise self.error(self.peek(), f"unexpected token: '{self.peek().text}' ({tok.upper} needs ':n')")
        self.advance()
        num = self.advance()
        if num.kind != "number" or not num.text.isdigit():
            raise self.error(num)
        return RelativeDate(f"{tok.upper}:{num.text}", kind, unit, int(num.text))

    def parse_order_by(self) -> list[_RawOrder]:
        items = [self.parse_order_item()]
        while self.at_punct(","):
            self.advance()
            items.append(self.parse_order_item())
        return items

    def parse_order_item(self) -> _RawOrder:
        path: _RawPath | _RawAggregate
        if self.peek().kind == "ident" and self.peek(1).kind == "punct" and self.peek(1).text == "(":
            path = self.parse_aggregate(f"function {self.peek().upper}() in ORDER BY")
        else:
            path = self.parse_path()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        nulls_last: bool | None = None
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.error(self.peek())
            nulls_last = self.advance().upper == "LAST"
        return _RawOrder(path, descending, nulls_last)

    def parse_non_negative_int(self) -> tuple[int, int]:
        tok = self.advance()
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.error(tok)
        return int(tok.text), tok.pos


_UNITS = {"DAY": "DAY", "DAYS": "DAY", "WEEK": "WEEK", "WEEKS": "WEEK", "MONTH": "MONTH", "MONTHS": "MONTH",
          "QUARTER": "QUARTER", "QUARTERS": "QUARTER", "YEAR": "YEAR", "YEARS": "YEAR",
          # fiscal periods follow the calendar: the emulated org keeps the default fiscal year (January start)
          "FISCAL_QUARTER": "QUARTER", "FISCAL_QUARTERS": "QUARTER", "FISCAL_YEAR": "YEAR", "FISCAL_YEARS": "YEAR"}
_FIXED_RELATIVE = {"TODAY": ("THIS", "DAY", 1), "YESTERDAY": ("AGO", "DAY", 1), "TOMORROW": ("NEXT_N", "DAY", 1),
                   "LAST_90_DAYS": ("LAST_N", "DAY", 90), "NEXT_90_DAYS": ("NEXT_N", "DAY", 90)}
_PERIOD = r"(FISCAL_QUARTER|FISCAL_YEAR|WEEK|MONTH|QUARTER|YEAR)"
_PERIODS = r"(FISCAL_QUARTERS|FISCAL_YEARS|DAYS|WEEKS|MONTHS|QUARTERS|YEARS)"


def relative_date_rule(name: str) -> tuple[str, str, int | None] | None:
    """(kind, unit, n) for a relative date literal name; n is None when the literal takes ':n'."""
    if name in _FIXED_RELATIVE:
        return _FIXED_RELATIVE[name]
    if m := re.fullmatch(rf"(THIS|LAST|NEXT)_{_PERIOD}", name):
        kind = {"THIS": "THIS", "LAST": "AGO", "NEXT": "NEXT_N"}[m.group(1)]
        return kind, _UNITS[m.group(2)], 1
    if m := re.fullmatch(rf"(LAST|NEXT)_N_{_PERIODS}", name):
        return f"{m.group(1)}_N", _UNITS[m.group(2)], None
    if m := re.fullmatch(rf"N_{_PERIODS}_AGO", name):
        return "AGO", _UNITS[m.group(1)], None
    return None


# ---------------------------------------------------------------------------------------------------------- binder

_DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):?(\d{2}))")


def parse_datetime_literal(text: str) -> datetime:
    """A SOQL datetime literal (Z, +hh:mm, -hh:mm, +hhmm, optional fraction) as an aware UTC datetime."""
    m = _DATETIME_RE.fullmatch(text)
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if m.group(8) != "Z":
        sign = -1 if m.group(9) == "-" else 1
        offset = sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
    return datetime(y, mo, d, h, mi, s, micros, tzinfo=timezone(offset)).astimezone(timezone.utc)


class _Binder:
    """Resolves names against the catalog (canonical casing), checks types and builds the bound query."""

    def __init__(self, text: str, catalog: Catalog, children: ChildRelationships) -> None:
        self.text = text
        self.catalog = catalog
        self.children = children
        self.relationships: dict[tuple[str, ...], Relationship] = {}
        self._objects = {name.lower(): name for name in catalog.object_names()}
        self._field_index: dict[str, tuple[dict[str, FieldInfo], dict[str, FieldInfo], list[FieldInfo]]] = {}

    def for_subquery(self) -> _Binder:
        """A binder for a subquery: its own relationship hops, the same catalog look-ups."""
        binder = _Binder(self.text, self.catalog, self.children)
        binder._field_index = self._field_index
        return binder

    def fail(self, code: str, pos: int, detail: str) -> SoqlError:
        return SoqlError(code, format_error_message(self.text, pos, detail))

    def index(self, object_name: str) -> tuple[dict[str, FieldInfo], dict[str, FieldInfo], list[FieldInfo]]:
        if object_name not in self._field_index:
            fields = list(self.catalog.fields(object_name))
            by_name = {f.name.lower(): f for f in fields}
            by_rel = {f.relationship_name.lower(): f for f in fields
                      if f.relationship_name and f.type == "reference" and f.reference_to}
            self._field_index[object_name] = (by_name, by_rel, fields)
        return self._field_index[object_name]

    def object_name(self, name: str, pos: int) -> str:
        canonical = self._objects.get(name.lower())
        if canonical is None:
            raise self.fail("INVALID_TYPE", pos, (
                f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure "
                "to append the '__c' after the entity name. Please reference your WSDL or the describe call for "
                "the appropriate names."))
        return canonical

    def parent_object(self, ref: FieldInfo) -> str | None:
        """The object a relationship reaches: a polymorphic lookup (several targets) reaches the ``Name`` entity,
        which has the fields its targets share (Lead.Owner.Name, never Lead.Owner.Username)."""
        if len(ref.reference_to) > 1:
            return POLYMORPHIC_PARENT
        return self._objects.get(ref.reference_to[0].lower())

    def resolve(self, root: str, raw: _RawPath) -> tuple[FieldPath, FieldInfo]:
        if len(raw.names) - 1 > MAX_RELATIONSHIP_DEPTH:
            raise self.fail("MALFORMED_QUERY", raw.pos, (
                f"{'.'.join(raw.names)}: a field path can follow at most {MAX_RELATIONSHIP_DEPTH} relationships; "
                "query the deeper parent object separately"))
        obj, canonical = root, []
        for name in raw.names[:-1]:
            ref = self.index(obj)[1].get(name.lower())
            target = self.parent_object(ref) if ref is not None else None
            if ref is None or target is None:
                raise self.fail("INVALID_FIELD", raw.pos, (
                    f"Didn't understand relationship '{name}' in field path. If you are attempting to use a custom "
                    "relationship, be sure to append the '__r' after the custom relationship name. Please "
                    "reference your WSDL or the describe call for the appropriate names."))
            canonical.append(ref.relationship_name or name)
            prefix = tuple(canonical)
            self.relationships.setdefault(prefix, Relationship(prefix, ref.name, target))
            obj = target
        by_name, _, fields = self.index(obj)
        info = by_name.get(raw.names[-1].lower())
        if info is None:
            raise self.fail("INVALID_FIELD", raw.pos,
                            f"No such column '{raw.names[-1]}' on entity '{obj}'. {_NO_SUCH_COLUMN_HINT}")
        components = tuple(f.name for f in fields if f.compound_field_name == info.name and f.name != info.name) \
            if info.type in COMPOUND_TYPES else ()  # Name is compound in describe only: a plain string in SOQL
        return FieldPath((*canonical, info.name), info.type, components), info

    # SELECT
    def select_items(self, root: str, raw: _RawQuery) -> tuple[tuple[SelectItem, ...], bool, bool]:
        count_items = [i for i in raw.items if isinstance(i, _RawCount)]
        if count_items and len(raw.items) > 1:
            other = next(i for i in raw.items if not isinstance(i, _RawCount))
            raise self.fail("MALFORMED_QUERY", other.pos, "COUNT() must be the only item in the SELECT list; "
                                                          "query the fields in a separate query")
        if count_items:
            return (), False, True
        items: list[SelectItem] = []
        seen: set[str] = set()
        for raw_item in raw.items:
            if isinstance(raw_item, _RawPath) and raw_item.alias is not None:
                raise self.fail("MALFORMED_QUERY", raw_item.alias[1], "Only aggregate expressions use field aliasing")
            for item, pos in self.expand_item(root, raw_item):
                if item.column.lower() in seen:
                    raise self.fail("MALFORMED_QUERY", pos, f"duplicate field selected: {item.column}")
                seen.add(item.column.lower())
                items.append(item)
        return tuple(items), any(isinstance(i, _RawFields) for i in raw.items), False

    def expand_item(self, root: str, raw_item: _RawSelectItem) -> list[tuple[SelectItem, int]]:
        if isinstance(raw_item, _RawFields):
            fields = [f for f in self.index(root)[2] if f.type not in COMPOUND_TYPES]
            if raw_item.scope == "CUSTOM":
                fields = [f for f in fields if f.name.endswith("__c")]
            elif raw_item.scope == "STANDARD":
                fields = [f for f in fields if not f.name.endswith("__c")]
            return [(SelectItem((f.name,), f.type), raw_item.pos) for f in fields]
        if isinstance(raw_item, _RawSubquery):
            return [(self.subquery(root, raw_item), raw_item.pos)]
        assert isinstance(raw_item, _RawPath)
        resolved, _ = self.resolve(root, raw_item)
        return [(SelectItem(resolved.path, resolved.type, resolved.components), raw_item.pos)]

    # WHERE
    def condition(self, root: str, node: object) -> object:
        if isinstance(node, _RawComparison):
            return self.comparison(root, node)
        if isinstance(node, _RawNot):
            return Negation(self.condition(root, node.operand))
        assert isinstance(node, _RawLogic)
        return Logical(node.op, tuple(self.condition(root, n) for n in node.operands))

    def comparison(self, root: str, raw: _RawComparison) -> Comparison:
        assert isinstance(raw.path, _RawPath)  # the parser allows aggregates in HAVING only
        path, info = self.resolve(root, raw.path)
        if not info.filterable or info.type in COMPOUND_TYPES:
            raise self.fail("INVALID_FIELD", raw.path.pos,
                            f"field '{path.column}' can not be filtered in a query call")
        return self.compare(path, raw)

    def compare(self, path: FieldPath, raw: _RawComparison) -> Comparison:
        """``raw``'s operator and value checked against ``path``'s type."""
        self.check_operator(path, raw)
        if raw.op == "LIKE":
            lit = raw.value
            assert isinstance(lit, _RawLiteral)
            if lit.kind != "string":
                raise self.criterion_error(path, lit)
            return Comparison(path, "LIKE", like_to_regex(str(lit.value)))
        if isinstance(raw.value, tuple):
            values = tuple(self.literal(path, v) for v in raw.value)
            if raw.op in ("INCLUDES", "EXCLUDES") and None in values:
                raise self.criterion_error(path, raw.value[values.index(None)])
            return Comparison(path, raw.op, values)
        return Comparison(path, raw.op, self.literal(path, raw.value))  # type: ignore[arg-type]

    def check_operator(self, path: FieldPath, raw: _RawComparison) -> None:
        if raw.op in ("INCLUDES", "EXCLUDES") and path.type != "multipicklist":
            raise self.fail("INVALID_FIELD", raw.pos, "includes or excludes operator only valid on multipicklist field")
        ordering = raw.op in ("<", "<=", ">", ">=")
        if (raw.op == "LIKE" and (path.type not in TEXT_TYPES or path.type == "multipicklist")) or (
                ordering and path.type in ("boolean", "multipicklist")):
            raise self.fail("INVALID_FIELD", raw.pos, f"invalid operator on {path.type} field")

    def criterion_error(self, path: FieldPath, lit: _RawLiteral) -> SoqlError:
        if path.type in TEXT_TYPES or path.type not in _CRITERION_TYPE_NAMES:
            detail = f"value of filter criterion for field '{path.column}' must be of type string and should be " \
                     "enclosed in quotes"
        else:
            detail = (f"value of filter criterion for field '{path.column}' must be of type "
                      f"{_CRITERION_TYPE_NAMES[path.type]} and should not be enclosed in quotes")
        return self.fail("INVALID_FIELD", lit.pos, detail)

    def literal(self, path: FieldPath, lit: _RawLiteral) -> object:
        """The literal as a Python value of the field's type, or the Salesforce type error."""
        if lit.kind == "null":
            return None
        t = path.type
        if t == "boolean" and lit.kind == "boolean":
            return lit.value
        if t in NUMBER_TYPES and lit.kind == "number":
            text = str(lit.value)
            return float(text) if "." in text else int(text)
        if t == "date" and lit.kind in ("date", "relative"):
            return self.date_value(lit)
        if t == "datetime" and lit.kind in ("datetime", "relative"):
            return lit.value if lit.kind == "relative" else self.datetime_value(lit)
        if (t in TEXT_TYPES or t not in _CRITERION_TYPE_NAMES) and lit.kind == "string":
            return decode_string(str(lit.value))
        raise self.criterion_error(path, lit)

    def date_value(self, lit: _RawLiteral) -> object:
        if lit.kind == "relative":
            return lit.value
        try:
            return date.fromisoformat(str(lit.value))
        except ValueError:
            raise self.fail("MALFORMED_QUERY", lit.pos, f"invalid date: {lit.value}") from None

    def datetime_value(self, lit: _RawLiteral) -> datetime:
        try:
            return parse_datetime_literal(str(lit.value))
        except ValueError:
            raise self.fail("MALFORMED_QUERY", lit.pos, f"invalid dateTime: {lit.value}") from None

    # ORDER BY
    def order_item(self, root: str, raw: _RawOrder) -> OrderItem:
        assert isinstance(raw.path, _RawPath)  # an aggregate in ORDER BY makes the query an aggregate query
        path, info = self.resolve(root, raw.path)
        if not info.sortable or info.type in COMPOUND_TYPES or info.type == "multipicklist":
            raise self.fail("INVALID_FIELD", raw.path.pos, f"field '{path.column}' can not be sorted in a query call")
        nulls_last = raw.descending if raw.nulls_last is None else raw.nulls_last
        return OrderItem(path, raw.descending, nulls_last)

    # queries
    def bind(self, raw: _RawQuery) -> SoqlQuery:
        root = self.object_name(raw.object_name, raw.object_pos)
        return self.bind_aggregate(root, raw) if raw.is_aggregate else self.bind_rows(root, raw)

    def bind_rows(self, root: str, raw: _RawQuery) -> SoqlQuery:
        """A query of records (no aggregate function): fields, subqueries or COUNT()."""
        items, uses_fields, is_count = self.select_items(root, raw)
        where = self.condition(root, raw.where) if raw.where is not None else None
        order_by = tuple(self.order_item(root, o) for o in raw.order_by)
        if is_count and order_by:
            raise self.fail("MALFORMED_QUERY", raw.order_by[0].path.pos,
                            f"Ordered field must be grouped or aggregated: {order_by[0].field.column}")
        limit = raw.limit[0] if raw.limit else None
        if uses_fields and _needs_fields_limit(raw) and (limit is None or limit > MAX_FIELDS_FUNCTION_LIMIT):
            pos = raw.limit[1] if raw.limit else len(self.text)
            raise self.fail("MALFORMED_QUERY", pos, "The SOQL FIELDS function must have a LIMIT of at most 200")
        self.check_offset(raw)
        return SoqlQuery(
            object_name=root, items=items, is_count=is_count, where=where, order_by=order_by, limit=limit,
            offset=raw.offset[0] if raw.offset else None, uses_fields_function=uses_fields,
            selects_compound=any(i.type in COMPOUND_TYPES for i in items), relationships=self.hops(),
        )

    def hops(self) -> tuple[Relationship, ...]:
        return tuple(sorted(self.relationships.values(), key=lambda r: len(r.prefix)))

    def check_offset(self, raw: _RawQuery) -> None:
        if raw.offset and raw.offset[0] > MAX_OFFSET:
            raise self.fail("NUMBER_OUTSIDE_VALID_RANGE", raw.offset[1],
                            f"Maximum SOQL offset allowed is {MAX_OFFSET}")

    # parent-to-child subqueries
    def subquery(self, root: str, raw: _RawSubquery) -> ChildSubquery:
        sub = raw.query
        relationship = self.child_relationship(root, sub.object_name, sub.object_pos)
        self.check_subquery_shape(sub)
        query = self.for_subquery().bind_rows(relationship.child_object, sub)
        return ChildSubquery((relationship.name,), query=query, foreign_key=relationship.field)

    def child_relationship(self, parent: str, name: str, pos: int) -> ChildRelationship:
        for rel in self.children(parent):
            child = self._objects.get(rel.child_object.lower())
            if rel.name.lower() == name.lower() and child is not None and rel.field.lower() in self.index(child)[0]:
                return ChildRelationship(rel.name, child, self.index(child)[0][rel.field.lower()].name)
        raise self.fail("INVALID_TYPE", pos, (
            f"Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a "
            "custom relationship, be sure to append the '__r' after the custom relationship name. Please reference "
            "your WSDL or the describe call for the appropriate names."))

    def check_subquery_shape(self, sub: _RawQuery) -> None:
        """What the emulator does not run inside a subquery (Salesforce allows some of it in places)."""
        nested = next((i for i in sub.items if isinstance(i, _RawSubquery | _RawCount)), None)
        if nested is not None:
            what = "COUNT()" if isinstance(nested, _RawCount) else "a subquery nested in a subquery"
            raise self.fail("MALFORMED_QUERY", nested.pos, f"{what} is not supported here: {_SUPPORTED_SUBSET}")
        if sub.is_aggregate:
            raise self.fail("MALFORMED_QUERY", sub.group_pos or sub.object_pos,
                            "aggregate functions and GROUP BY are not supported in a parent-to-child subquery; "
                            "aggregate the child object in a query of its own")
        if sub.offset is not None:
            raise self.fail("MALFORMED_QUERY", sub.offset[1],
                            "OFFSET is not supported in a parent-to-child subquery; page the parent query instead")

    # aggregate queries: rows of AggregateResult
    def bind_aggregate(self, root: str, raw: _RawQuery) -> SoqlQuery:
        where = self.condition(root, raw.where) if raw.where is not None else None
        groups = {g.column.lower(): g for g in (self.group_field(root, p) for p in raw.group_by or [])}
        measures: dict[str, Measure] = {}
        scope = _AggregateScope(root, groups, measures)
        columns = self.aggregate_columns(scope, raw)
        having = self.having(scope, raw.having) if raw.having is not None else None
        order_by = tuple(self.aggregate_order_item(scope, o) for o in raw.order_by)
        if raw.limit and raw.group_by is None:
            raise self.fail("MALFORMED_QUERY", raw.limit[1], (
                "You can't use a LIMIT clause in a query that uses an aggregate function but no GROUP BY clause: "
                "without GROUP BY the query returns one row; drop the LIMIT"))
        self.check_offset(raw)
        read = {f.column: SelectItem(f.path, f.type, f.components)
                for f in [*groups.values(), *(m.field for m in measures.values())]}
        rows = SoqlQuery(object_name=root, items=tuple(read.values()), is_count=False, where=where, order_by=(),
                         limit=None, offset=None, uses_fields_function=False, selects_compound=False,
                         relationships=self.hops())
        aggregation = Aggregation(rows, tuple(groups.values()), tuple(measures.values()), having)
        return SoqlQuery(
            object_name=AGGREGATE_RESULT, items=columns, is_count=False, where=None, order_by=order_by,
            limit=raw.limit[0] if raw.limit else None, offset=raw.offset[0] if raw.offset else None,
            uses_fields_function=False, selects_compound=False, aggregation=aggregation)

    def group_field(self, root: str, raw: _RawPath) -> FieldPath:
        path, info = self.resolve(root, raw)
        if not is_groupable(info):
            raise self.fail("INVALID_FIELD", raw.pos, f"field '{path.column}' can not be grouped in a query call")
        return path

    def aggregate_columns(self, scope: _AggregateScope, raw: _RawQuery) -> tuple[AggregateColumn, ...]:
        """The AggregateResult columns in SELECT order: implied aliases expr0, expr1, ... count only the
        aggregate functions without an alias; a grouped field is named by its own field name (Owner.Name: Name)."""
        columns: list[AggregateColumn] = []
        implied = 0
        for item in raw.items:
            if isinstance(item, _RawAggregate):
                measure = self.measure(scope, item)
                name = item.alias[0] if item.alias else f"expr{implied}"
                implied += item.alias is None
                column = AggregateColumn((name,), _result_type(measure), source=measure.key)
            elif isinstance(item, _RawPath):
                grouped = self.grouped(scope, item, "Field must be grouped or aggregated")
                name = item.alias[0] if item.alias else grouped.path[-1]
                column = AggregateColumn((name,), grouped.type, source=grouped.column)
            else:
                raise self.fail("MALFORMED_QUERY", item.pos, _NOT_IN_AGGREGATE[type(item)])
            if any(c.column.lower() == name.lower() for c in columns):
                pos = (item.alias or (name, item.pos))[1]
                raise self.fail("MALFORMED_QUERY", pos, f"duplicate alias: {name}")
            columns.append(column)
        return tuple(columns)

    def measure(self, scope: _AggregateScope, raw: _RawAggregate) -> Measure:
        path, info = self.resolve(scope.root, raw.path)
        if not supports_aggregate(raw.function, info):
            raise self.fail("MALFORMED_QUERY", raw.path.pos,
                            f"field {path.column} does not support aggregate operator {raw.function}")
        picklist = tuple(getattr(info, "picklist", ())) if info.type == "picklist" else ()
        measure = Measure(raw.function, path, picklist)
        return scope.measures.setdefault(measure.key, measure)

    def measured(self, scope: _AggregateScope, raw: _RawPath | _RawAggregate, what: str) -> FieldPath:
        """A HAVING or ORDER BY operand as a column of the grouped rows: a grouped field or a measure."""
        if isinstance(raw, _RawAggregate):
            measure = self.measure(scope, raw)
            return FieldPath((measure.key,), _result_type(measure))
        return self.grouped(scope, raw, what)

    def grouped(self, scope: _AggregateScope, raw: _RawPath, what: str) -> FieldPath:
        path, _ = self.resolve(scope.root, raw)
        grouped = scope.groups.get(path.column.lower())
        if grouped is None:
            raise self.fail("MALFORMED_QUERY", raw.pos, f"{what}: {path.column}")
        return grouped

    def having(self, scope: _AggregateScope, node: object) -> object:
        if isinstance(node, _RawComparison):
            return self.compare(self.measured(scope, node.path, "Field must be grouped or aggregated"), node)
        if isinstance(node, _RawNot):
            return Negation(self.having(scope, node.operand))
        assert isinstance(node, _RawLogic)
        return Logical(node.op, tuple(self.having(scope, n) for n in node.operands))

    def aggregate_order_item(self, scope: _AggregateScope, raw: _RawOrder) -> OrderItem:
        path = self.measured(scope, raw.path, "Ordered field must be grouped or aggregated")
        nulls_last = raw.descending if raw.nulls_last is None else raw.nulls_last
        return OrderItem(path, raw.descending, nulls_last)


@dataclass(frozen=True)
class _AggregateScope:
    """What an aggregate query's SELECT, HAVING and ORDER BY may name: grouped fields and (growing) measures."""

    root: str
    groups: dict[str, FieldPath]  # by lower-case column
    measures: dict[str, Measure]  # by key


_NOT_IN_AGGREGATE = {
    _RawCount: "COUNT() can't be used with GROUP BY or other aggregate functions; use COUNT(fieldName)",
    _RawFields: "FIELDS() can't be used in an aggregate query; select grouped fields and aggregate functions",
    _RawSubquery: "a parent-to-child subquery can't be used with GROUP BY or aggregate functions; "
                  "query the child object in a query of its own",
}


def _result_type(measure: Measure) -> str:
    """The describe type of a measure's values: counts are integers, AVG a double, the rest the field's type."""
    if measure.function in ("COUNT", "COUNT_DISTINCT"):
        return "int"
    return "double" if measure.function == "AVG" else measure.field.type


def _is_long_text(info: FieldInfo) -> bool:
    return info.type == "textarea" and not info.filterable


def is_groupable(info: FieldInfo) -> bool:
    """Whether GROUP BY accepts the field (describe's ``groupable``)."""
    return (info.type not in _UNGROUPABLE_TYPES and info.type not in COMPOUND_TYPES and info.sortable
            and not _is_long_text(info))


def supports_aggregate(function: str, info: FieldInfo) -> bool:
    """Salesforce's field-type support table for aggregate functions (SUM/AVG: numbers only)."""
    if _is_long_text(info):
        return False
    return info.type in (_SUMMABLE_TYPES if function in ("SUM", "AVG") else _COMPARABLE_TYPES)


def parse_soql(text: str, catalog: Catalog, *, child_relationships: ChildRelationships | None = None) -> SoqlQuery:
    """Parse and validate ``text`` against ``catalog``; raise SoqlError exactly where Salesforce would.

    ``child_relationships`` names each object's parent-to-child relationships (describe's ``childRelationships``)
    for subqueries; without it no subquery resolves."""
    raw = _SyntaxParser(text).parse()
    return _Binder(text, catalog, child_relationships or _no_child_relationships).bind(raw)


def _no_child_relationships(_object_name: str) -> Sequence[ChildRelationship]:
    return ()


def _needs_fields_limit(raw: _RawQuery) -> bool:
    """FIELDS(ALL) and FIELDS(CUSTOM) are unbounded and need LIMIT <= 200; FIELDS(STANDARD) does not."""
    return any(isinstance(i, _RawFields) and i.scope in ("ALL", "CUSTOM") for i in raw.items)
