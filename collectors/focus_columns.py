"""What FOCUS columns mean: definitions, cell converters and the row -> ``CostLine`` mapping.

Three parts: ``COLUMNS`` (name, value kind, the version that introduced it, its ``CostLine``
field); the converters, which turn one cell's text into its value or raise ``CellError`` with a
message that names the bad value (the reader adds file, line and column); ``RowMapper``, which
maps one file's rows to ``CostLine``s, a batch at a time column by column (fast) or row by row
(to name the bad cell).

Facts from the FOCUS specification (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, CHANGELOG.md and
``specification/columns/*.md``): 1.0 has 43 columns, 1.1 adds 7, 1.2 adds 7 (57 in all), and
1.3 adds ``ServiceProviderName``/``HostProviderName`` (which deprecate ``ProviderName`` and
``PublisherName``) and the allocation/contract columns. Allowed values are those of 1.2.

Only rules we know are validated. Columns whose value rules we do not know (the 1.3 allocation
and contract columns, ``ServiceCategory`` whose 19 values change between versions,
``PricingCurrency`` which may hold a virtual currency such as ``Token``) are kept as strings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation, getcontext
from enum import Enum
from functools import partial
from itertools import repeat
from operator import lt
from typing import Any

from collectors.base import CostLine

Converter = Callable[[str], Any]


class Kind(Enum):
    """How a column's text is validated and converted."""

    STRING = "string"
    DECIMAL = "decimal"
    DATETIME = "datetime"
    CURRENCY = "currency"
    """ISO 4217: three upper-case ASCII letters."""
    ENUM = "enum"
    KEY_VALUE = "key-value"
    """A JSON object whose values are scalars (FOCUS "Key-Value Format")."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One FOCUS column: its kind, the version that introduced it and its ``CostLine`` field."""

    name: str
    kind: Kind
    since: str
    field: str | None = None
    allowed: tuple[str, ...] = ()


def _spec(
    name: str, kind: Kind, since: str, field: str | None = None, allowed: Iterable[str] = ()
) -> ColumnSpec:
    return ColumnSpec(name, kind, since, field, tuple(allowed))


S, D, T, E, J = Kind.STRING, Kind.DECIMAL, Kind.DATETIME, Kind.ENUM, Kind.KEY_VALUE

_SPECS = (
    # FOCUS 1.0
    _spec("AvailabilityZone", S, "1.0"),
    _spec("BilledCost", D, "1.0", "billed_cost"),
    _spec("BillingAccountId", S, "1.0", "billing_account_id"),
    _spec("BillingAccountName", S, "1.0"),
    _spec("BillingCurrency", Kind.CURRENCY, "1.0", "billing_currency"),
    _spec("BillingPeriodEnd", T, "1.0", "billing_period_end"),
    _spec("BillingPeriodStart", T, "1.0", "billing_period_start"),
    _spec(
        "ChargeCategory",
        E,
        "1.0",
        "charge_category",
        ("Usage", "Purchase", "Tax", "Credit", "Adjustment"),
    ),
    _spec("ChargeClass", E, "1.0", None, ("Correction",)),
    _spec("ChargeDescription", S, "1.0"),
    _spec("ChargeFrequency", E, "1.0", None, ("One-Time", "Recurring", "Usage-Based")),
    _spec("ChargePeriodEnd", T, "1.0", "charge_period_end"),
    _spec("ChargePeriodStart", T, "1.0", "charge_period_start"),
    _spec("CommitmentDiscountCategory", E, "1.0", None, ("Spend", "Usage")),
    _spec("CommitmentDiscountId", S, "1.0"),
    _spec("CommitmentDiscountName", S, "1.0"),
    _spec("CommitmentDiscountStatus", E, "1.0", None, ("Used", "Unused")),
    _spec("CommitmentDiscountType", S, "1.0"),
    _spec("ConsumedQuantity", D, "1.0", "consumed_quantity"),
    _spec("ConsumedUnit", S, "1.0", "consumed_unit"),
    _spec("ContractedCost", D, "1.0"),
    _spec("ContractedUnitPrice", D, "1.0"),
    _spec("EffectiveCost", D, "1.0", "effective_cost"),
    _spec("InvoiceIssuerName", S, "1.0"),
    _spec("ListCost", D, "1.0", "list_cost"),
    _spec("ListUnitPrice", D, "1.0"),
    _spec("PricingCategory", E, "1.0", None, ("Standard", "Dynamic", "Committed", "Other")),
    _spec("PricingQuantity", D, "1.0"),
    _spec("PricingUnit", S, "1.0"),
    _spec("ProviderName", S, "1.0"),
    _spec("PublisherName", S, "1.0"),
    _spec("RegionId", S, "1.0", "region_id"),
    _spec("RegionName", S, "1.0"),
    _spec("ResourceId", S, "1.0", "resource_id"),
    _spec("ResourceName", S, "1.0"),
    _spec("ResourceType", S, "1.0"),
    _spec("ServiceCategory", S, "1.0", "service_category"),
    _spec("ServiceName", S, "1.0", "service_name"),
    _spec("SkuId", S, "1.0", "sku_id"),
    _spec("SkuPriceId", S, "1.0"),
    _spec("SubAccountId", S, "1.0", "sub_account_id"),
    _spec("SubAccountName", S, "1.0"),
    _spec("Tags", J, "1.0", "tags"),
    # FOCUS 1.1
    _spec("CapacityReservationId", S, "1.1"),
    _spec("CapacityReservationStatus", E, "1.1", None, ("Used", "Unused")),
    _spec("CommitmentDiscountQuantity", D, "1.1"),
    _spec("CommitmentDiscountUnit", S, "1.1"),
    _spec("ServiceSubcategory", S, "1.1"),
    _spec("SkuMeter", S, "1.1"),
    _spec("SkuPriceDetails", J, "1.1"),
    # FOCUS 1.2
    _spec("BillingAccountType", S, "1.2"),
    _spec("InvoiceId", S, "1.2"),
    _spec("PricingCurrency", S, "1.2"),
    _spec("PricingCurrencyContractedUnitPrice", D, "1.2"),
    _spec("PricingCurrencyEffectiveCost", D, "1.2"),
    _spec("PricingCurrencyListUnitPrice", D, "1.2"),
    _spec("SubAccountType", S, "1.2"),
    # FOCUS 1.3 (cost_and_usage dataset)
    _spec("ServiceProviderName", S, "1.3"),
    _spec("HostProviderName", S, "1.3"),
    _spec("AllocatedMethodId", S, "1.3"),
    _spec("AllocatedMethodDetails", S, "1.3"),
    _spec("AllocatedResourceId", S, "1.3"),
    _spec("AllocatedResourceName", S, "1.3"),
    _spec("AllocatedTags", S, "1.3"),
    _spec("ContractApplied", S, "1.3"),
)

COLUMNS: Mapping[str, ColumnSpec] = {spec.name: spec for spec in _SPECS}
"""Every known FOCUS column by its (case-sensitive) column ID."""

VERSIONS = ("1.0", "1.1", "1.2", "1.3")

REQUIRED = ("BilledCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd")
"""Columns an import cannot do without (the spec's other mandatory columns are optional here:
its own example files carry only subsets). Their values must not be null either."""

PROVIDER_COLUMNS = ("ServiceProviderName", "ProviderName", "PublisherName")
"""Where ``CostLine.provider`` comes from, first non-null wins (1.3 name first)."""

UNKNOWN_PROVIDER = "unknown"
"""``CostLine.provider`` when none of ``PROVIDER_COLUMNS`` holds a value."""

LEGACY_RENAMES: Mapping[str, str] = {
    "ChargeType": "ChargeCategory",
    "AmortizedCost": "EffectiveCost",
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "Region": "RegionId",
    "UsageQuantity": "ConsumedQuantity",
    "UsageUnit": "ConsumedUnit",
    "ChargeSubcategory": "ChargeClass",
}
"""Pre-1.0 (0.5 and 1.0-preview) column IDs and what replaced them in FOCUS 1.0."""


def detect_version(columns: Iterable[str]) -> str:
    """The oldest FOCUS version that defines every FOCUS column present (``"1.0"`` at least).

    A file cannot prove it is *not* a newer version (every version's example files carry column
    subsets), so this is "at least": a 1.2 file using only 1.0 columns is reported as 1.0.
    """
    newest = VERSIONS[0]
    for name in columns:
        spec = COLUMNS.get(name)
        if spec is not None and VERSIONS.index(spec.since) > VERSIONS.index(newest):
            newest = spec.since
    return newest


def legacy_columns(columns: Iterable[str]) -> list[str]:
    """Pre-1.0 column IDs present in ``columns`` whose 1.0 replacement is absent."""
    present = set(columns)
    return [old for old, new in LEGACY_RENAMES.items() if old in present and new not in present]


# --- cell converters: text -> value, or CellError ----------------------------------------------


class CellError(ValueError):
    """A cell's text is not valid for its column; the message names the value (not the column)."""


def show(value: object, limit: int = 60) -> str:
    """``repr`` of a cell for messages, shortened to about ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


_EDGE = frozenset("+ \t\r\n\x0b\x0c")
_DECIMAL_MSG = "expected a plain decimal number"
_DATETIME_MSG = "expected an ISO 8601 UTC datetime like 2025-01-01T00:00:00Z"


def to_decimal(text: str) -> Decimal:
    """Plain decimal or E-notation, exactly (``Decimal(text)``); no ``$``, ``,``, ``+``, spaces."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CellError(f"{_DECIMAL_MSG}, got {show(text)}") from None
    # Decimal() also takes NaN/Infinity, "1_000", surrounding spaces, a leading "+", non-ASCII
    # digits: FOCUS's numeric format allows none of them.
    if (
        not value.is_finite()
        or not text.isascii()
        or "_" in text
        or text[0] in _EDGE
        or text[-1] in _EDGE
    ):
        raise CellError(f"{_DECIMAL_MSG}, got {show(text)}")
    return value


def to_datetime(text: str) -> datetime:
    """ISO 8601 extended ``YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM)``, returned as aware UTC.

    An explicit offset is required: a naive value is rejected, any offset is converted to UTC.
    """
    if (
        len(text) < 19
        or text[4] != "-"
        or text[7] != "-"
        or text[10] != "T"
        or text[13] != ":"
        or text[16] != ":"
    ):
        raise CellError(f"{_DATETIME_MSG}, got {show(text)}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CellError(f"{_DATETIME_MSG}, got {show(text)}") from None
    if value.tzinfo is None:
        raise CellError(f"{_DATETIME_MSG}, got {show(text)} (no UTC offset)")
    return value.astimezone(UTC)


def to_currency(text: str) -> str:
    """An ISO 4217 code: three upper-case ASCII letters."""
    if len(text) == 3 and text.isascii() and text.isalpha() and text.isupper():
        return text
    raise CellError(f"expected a 3-letter ISO 4217 currency code like USD, got {show(text)}")


def _enum(allowed: tuple[str, ...]) -> Converter:
    values = frozenset(allowed)
    message = "expected one of " + ", ".join(allowed)

    def check(text: str) -> str:
        if text in values:
            return text
        raise CellError(f"{message}, got {show(text)}")

    return check


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CellError(f"expected a JSON object with unique keys, {show(key)} repeats")
            seen.add(key)
    return obj


def to_key_value(text: str) -> dict[str, Any]:
    """A JSON object with unique keys whose values are strings, numbers, booleans or null."""
    try:
        obj = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError:
        raise CellError(f"expected a JSON object, got {show(text)}") from None
    if type(obj) is not dict:
        raise CellError(f"expected a JSON object, got {show(text)}")
    for key, value in obj.items():
        if isinstance(value, dict | list):
            raise CellError(
                "expected a JSON object whose values are strings, numbers, booleans or null,"
                f" got {show(text)} (key {show(key)} holds a {type(value).__name__})"
            )
    return obj


class _Cache:
    """Bounded memo of one column's text -> value (billing files repeat periods and tags)."""

    def __init__(self, convert: Converter, size: int) -> None:
        self.convert = convert
        self.size = size
        self.values: dict[str, Any] = {"": None, "null": None}

    def one(self, text: str) -> Any:
        try:
            return self.values[text]
        except KeyError:
            value = self.convert(text)
            if len(self.values) >= self.size:
                self.values = {"": None, "null": None}
            self.values[text] = value
            return value

    def many(self, texts: Sequence[str]) -> list[Any]:
        try:
            return list(map(self.values.__getitem__, texts))
        except KeyError:  # some text not seen yet (or the cache was just emptied)
            return [self.one(text) for text in texts]


def _strings(texts: Sequence[str]) -> Sequence[str | None]:
    if "" in texts or "null" in texts:
        return [None if (v == "" or v == "null") else v for v in texts]
    return texts


_DECIMAL_CHARS = frozenset("0123456789.-eE")
_strict_decimal = partial(Decimal, context=Context(traps=[InvalidOperation]))


def _decimals(texts: Sequence[str]) -> Sequence[Decimal | None]:
    if "" in texts or "null" in texts:
        return [None if (v == "" or v == "null") else to_decimal(v) for v in texts]
    if _DECIMAL_CHARS.issuperset("".join(texts)):  # no sign, space, letter but E, NaN...
        # Decimal raises InvalidOperation on "1-2", "." ... while the context traps it (the
        # default); otherwise it would return NaN quietly, so use a context that traps
        exact = Decimal if getcontext().traps[InvalidOperation] else _strict_decimal
        return list(map(exact, texts))
    return list(map(to_decimal, texts))


class _Checked:
    """Values checked by a predicate (enums, currencies): the text is the value."""

    def __init__(self, check: Converter, allowed: Iterable[str] = ()) -> None:
        self.check = check
        self.ok = {"", "null", *allowed}

    def one(self, text: str) -> str | None:
        return None if (text == "" or text == "null") else self.check(text)

    def many(self, texts: Sequence[str]) -> Sequence[str | None]:
        if not self.ok.issuperset(texts):
            for text in texts:
                if text not in self.ok:
                    self.check(text)
                    if len(self.ok) < 4096:
                        self.ok.add(text)
        return _strings(texts)


ColumnConverter = Callable[[Sequence[str]], Sequence[Any]]


def converters(spec: ColumnSpec | None) -> tuple[Converter, ColumnConverter]:
    """One file's converters for a column: per cell and per column (nulls become ``None``).

    Both raise ``CellError`` (the column form may also raise ``InvalidOperation``, an
    ``ArithmeticError``); callers locate the bad cell with the per-cell form.
    """
    kind = spec.kind if spec is not None else Kind.STRING
    if kind is Kind.DECIMAL:
        return (lambda t: None if (t == "" or t == "null") else to_decimal(t)), _decimals
    if kind is Kind.DATETIME:
        cache = _Cache(to_datetime, 4096)
        return cache.one, cache.many
    if kind is Kind.KEY_VALUE:
        # parsed objects are shared between lines holding the same text: treat them read-only
        cache = _Cache(to_key_value, 1024)
        return cache.one, cache.many
    if kind is Kind.ENUM and spec is not None:
        checked = _Checked(_enum(spec.allowed), spec.allowed)
        return checked.one, checked.many
    if kind is Kind.CURRENCY:
        checked = _Checked(to_currency)
        return checked.one, checked.many
    return (lambda t: None if (t == "" or t == "null") else t), _strings


# --- one file's rows -> CostLines ----------------------------------------------------------------

_FIELDS = tuple(CostLine.__dataclass_fields__)
_TEXT_KINDS = (Kind.STRING, Kind.ENUM, Kind.CURRENCY)


class BadCell(Exception):
    """One row is bad: ``column`` (``None`` for the row as a whole) and the message."""

    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class BatchFailed(Exception):
    """Some row of a batch is bad: map the batch row by row with ``RowMapper.one``."""


KEY_ORDINAL_DIGITS = 10
"""A row key starts with the row's ordinal in the file in this many decimal digits."""
KEY_FILE_DIGITS = 22
"""...and ends with this many hex digits of the file's digest (32 characters in all)."""
_KEY_ORDINALS = 10**KEY_ORDINAL_DIGITS
NO_FILE_KEY = "0" * KEY_FILE_DIGITS
"""The file part of row keys made without a file (a mapper built on its own)."""


def file_key(file_name: str, chunks: Iterable[bytes]) -> str:
    """The file part of a file's row keys: SHA-256 over ``file_name + "\x1d"`` and the file's
    bytes (``chunks``, as stored: compressed for gzip), its first ``KEY_FILE_DIGITS`` hex digits.

    Identical part files of one export differ by name; the same file always gives the same
    part. Raises what iterating ``chunks`` raises.
    """
    digest = hashlib.sha256(file_name.encode() + b"\x1d")
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:KEY_FILE_DIGITS]


def row_keys(file_part: str, first_ordinal: int, count: int) -> list[str]:
    """Row keys of ``count`` rows from ``first_ordinal`` (1 = the first data row).

    Row key = the ordinal (modulo 10**10) in ``KEY_ORDINAL_DIGITS`` zero-padded decimal digits,
    then ``file_part`` (``file_key``): 32 hex digits in all, distinct for identical rows (they
    differ by ordinal) and ascending through a file, so that storing a file appends to the
    index of the keys instead of writing all over it. Keys do not depend on the batches a file
    is read in, nor on which path (columnar or row) reads it.
    """
    last = first_ordinal + count
    if last <= _KEY_ORDINALS:  # the literal 10 is KEY_ORDINAL_DIGITS (formats fastest)
        return [f"{ordinal:010d}{file_part}" for ordinal in range(first_ordinal, last)]
    return [f"{ordinal % _KEY_ORDINALS:010d}{file_part}" for ordinal in range(first_ordinal, last)]


@dataclass(frozen=True)
class Layout:
    """Where one file's columns go, by index in the header."""

    fields: dict[str, int]
    """``CostLine`` field -> the column that fills it."""
    extra: list[tuple[int, str, bool]]
    """Columns kept in ``extra``: index, name, and whether the value is the text itself."""
    providers: list[int]
    """``PROVIDER_COLUMNS`` present, in priority order."""
    required: list[tuple[int, str]]
    periods: list[tuple[int, int, str, str]]
    """(start index, end index, start name, end name) of the periods present."""

    @classmethod
    def of(cls, columns: Sequence[str]) -> Layout:
        index = {name: i for i, name in enumerate(columns)}
        field_at = {i: COLUMNS[c].field for i, c in enumerate(columns) if c in COLUMNS}
        return cls(
            fields={f: i for i, f in field_at.items() if f is not None},
            extra=[
                (i, c, c not in COLUMNS or COLUMNS[c].kind in _TEXT_KINDS)
                for i, c in enumerate(columns)
                if field_at.get(i) is None
            ],
            providers=[index[c] for c in PROVIDER_COLUMNS if c in index],
            required=[(index[c], c) for c in REQUIRED if c in index],
            periods=[
                (index[start], index[end], start, end)
                for start, end in (
                    ("ChargePeriodStart", "ChargePeriodEnd"),
                    ("BillingPeriodStart", "BillingPeriodEnd"),
                )
                if start in index and end in index
            ],
        )


class RowMapper:
    """Maps one file's rows (cell texts, in header order) to ``CostLine``s.

    Column indexes and converters are worked out once. ``many`` converts a batch column by
    column (the fast path); when any row of it is bad it raises ``BatchFailed`` and the caller
    maps that batch with ``one``, which raises ``BadCell`` naming the column and value. Both
    give identical lines. ``file_part`` (the file's ``file_key``) ends every row key.
    """

    def __init__(
        self, columns: tuple[str, ...], default_currency: str | None, file_part: str = NO_FILE_KEY
    ) -> None:
        self.columns = columns
        pairs = [converters(COLUMNS.get(c)) for c in columns]
        self._one = [one for one, _ in pairs]
        self._many = [many for _, many in pairs]
        layout = Layout.of(columns)
        self._required = layout.required
        self._periods = layout.periods
        self._providers = layout.providers
        self._extra = layout.extra
        self._fields = layout.fields
        self._default_currency = default_currency
        self._file_part = file_part

    def one(self, cells: Sequence[str], ordinal: int) -> CostLine:
        """Map one row; raises ``BadCell`` for the first bad cell or rule."""
        vals: list[Any] = []
        for name, convert, text in zip(self.columns, self._one, cells, strict=True):
            try:
                vals.append(convert(text))
            except CellError as bad:
                raise BadCell(name, str(bad)) from None
        for i, name in self._required:
            if vals[i] is None:
                raise BadCell(name, f"must not be empty or null, got {show(cells[i])}")
        for i_start, i_end, start, end in self._periods:
            first, last = vals[i_start], vals[i_end]
            if first is not None and last is not None and last < first:
                raise BadCell(end, f"{show(cells[i_end])} is before {start} {show(cells[i_start])}")
        provider = next((vals[i] for i in self._providers if vals[i] is not None), None)
        extra = {c: cells[i] for i, c, _ in self._extra if vals[i] is not None}
        return self._lines(
            [[v] for v in vals], row_keys(self._file_part, ordinal, 1), [provider], [extra]
        )[0]

    def many(self, rows: Sequence[Sequence[str]], first_ordinal: int) -> list[CostLine]:
        """Map a batch of rows of the header's width; raises ``BatchFailed`` if any is bad."""
        texts = list(zip(*rows, strict=True))
        try:
            vals = [many(col) for many, col in zip(self._many, texts, strict=True)]
        except (CellError, ArithmeticError):
            raise BatchFailed from None
        for i, _ in self._required:
            if None in vals[i]:
                raise BatchFailed
        for i_start, i_end, _, _ in self._periods:
            firsts, lasts = vals[i_start], vals[i_end]
            if None in firsts or None in lasts:
                pairs = zip(firsts, lasts, strict=True)
                if any(a is not None and b is not None and b < a for a, b in pairs):
                    raise BatchFailed
            elif any(map(lt, lasts, firsts)):
                raise BatchFailed
        providers: Sequence[Any] = [None] * len(rows)
        for i in reversed(self._providers):
            providers = [p if p is not None else q for p, q in zip(vals[i], providers, strict=True)]
        names, extra_cols, holes = [], [], []
        for i, name, is_text in self._extra:
            col = vals[i]
            nulls = col.count(None)
            if nulls == len(col):
                continue  # null in the whole batch
            names.append(name)
            if nulls:
                holes.append((name, col))
            if not is_text:  # keep the validated text, not the Decimal/datetime/dict
                col = texts[i]
            extra_cols.append(col)
        extras = [dict(zip(names, row, strict=True)) for row in zip(*extra_cols, strict=True)]
        if not names:
            extras = [{} for _ in rows]
        for name, col in holes:  # drop the null cells
            for extra, value in zip(extras, col, strict=True):
                if value is None:
                    del extra[name]
        keys = row_keys(self._file_part, first_ordinal, len(rows))
        return self._lines(vals, keys, providers, extras)

    def _lines(
        self,
        vals: Sequence[Sequence[Any]],
        keys: list[str],
        providers: Sequence[Any],
        extras: list[dict[str, Any]],
    ) -> list[CostLine]:
        specials: dict[str, Iterable[Any]] = {
            "row_key": keys,
            "provider": [p if p is not None else UNKNOWN_PROVIDER for p in providers],
            "extra": extras,
        }
        tags_at = self._fields.get("tags")
        if tags_at is not None:
            specials["tags"] = [{} if t is None else t for t in vals[tags_at]]
        else:
            specials["tags"] = [{} for _ in keys]
        if "billing_currency" not in self._fields:
            specials["billing_currency"] = repeat(self._default_currency)
        columns = [
            specials[f]
            if f in specials
            else vals[self._fields[f]]
            if f in self._fields
            else repeat(None)
            for f in _FIELDS
        ]
        return list(map(CostLine, *columns))
