"""Cloud LLM API prices per million tokens, by date, with off-peak windows, and usage costs.

A price row (``TokenPrice``) holds what one provider charged for one model from its
``effective_from`` instant on, in its own currency, per 1,000,000 tokens: input served from the
context cache (``input_cache_hit``), input not in the cache (``input_cache_miss``) and output.
A row may carry off-peak windows (UTC) with their discounted prices. ``PriceBook.quote`` picks the
latest row with ``effective_from <= at`` and applies the off-peak prices when ``at`` falls in one
of that row's windows.

The cost of one usage record is ``hit * P_hit + miss * P_miss + output * P_output`` divided by
1,000,000, where ``prompt_tokens = hit + miss``: billing every prompt token at the miss price is
the most common bug in LLM cost tools, so ``usage_tokens`` always splits the prompt.

Money is ``Decimal`` parsed from strings, never from binary floats.

Error contract: building a row or a book with bad data (negative price, empty window, duplicate
row, off-peak windows without off-peak prices) raises ``ValueError`` naming the row; ``quote``
raises ``KeyError`` when no row applies and ``ValueError`` for a naive datetime;
``usage_tokens`` raises ``ValueError`` for a malformed usage object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

logger = logging.getLogger(__name__)

MINUTES_PER_DAY = 24 * 60
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_WEEK = frozenset(range(7))
WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})


@dataclass(frozen=True)
class OffPeakWindow:
    """A daily UTC time range on some weekdays, as minutes of the day.

    ``weekdays`` are the days (0 = Monday) on which the window *starts*. ``start_minute`` and
    ``end_minute`` are minutes after 00:00 UTC in 0..1440 (1440 = 24:00, the end of the day); the
    range is [start, end). When ``end_minute < start_minute`` the window crosses midnight and its
    early part belongs to the next day (16:30-00:30 started on Monday covers Tuesday 00:10).
    ``start_minute == end_minute`` is an empty window and is rejected by ``TokenPrice``.
    """

    weekdays: frozenset[int]
    start_minute: int
    end_minute: int

    @classmethod
    def parse(cls, weekdays: Iterable[int], start: str, end: str) -> OffPeakWindow:
        """A window from ``"HH:MM"`` strings (``"24:00"`` allowed for the end of the day)."""
        return cls(frozenset(weekdays), parse_hhmm(start), parse_hhmm(end))

    def problem(self) -> str | None:
        """Why this window is invalid, or ``None``."""
        if not self.weekdays:
            return "off-peak window has no weekdays"
        if any(day not in ALL_WEEK for day in self.weekdays):
            return f"off-peak weekdays must be 0 (Monday)..6, got {sorted(self.weekdays)}"
        for minute in (self.start_minute, self.end_minute):
            if not 0 <= minute <= MINUTES_PER_DAY:
                return f"off-peak time {minute} is not a minute of the day in 0..1440"
        if self.start_minute == self.end_minute:
            return f"off-peak window {self} is empty (start == end)"
        return None

    def covers(self, at: datetime) -> bool:
        """Whether the aware datetime ``at`` falls inside this window."""
        utc = at.astimezone(UTC)
        minute = utc.hour * 60 + utc.minute
        day = utc.weekday()
        if self.start_minute < self.end_minute:
            return day in self.weekdays and self.start_minute <= minute < self.end_minute
        if day in self.weekdays and minute >= self.start_minute:
            return True
        return (day - 1) % 7 in self.weekdays and minute < self.end_minute

    def __str__(self) -> str:
        days = ",".join(WEEKDAY_NAMES[d] for d in sorted(self.weekdays) if d in ALL_WEEK)
        return f"{days} {_hhmm(self.start_minute)}-{_hhmm(self.end_minute)} UTC"


def parse_hhmm(text: str) -> int:
    """Minutes of the day of ``"HH:MM"`` (00:00..24:00); ``ValueError`` otherwise."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected a time like 16:30, got {text!r}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > MINUTES_PER_DAY:
        raise ValueError(f"expected a time between 00:00 and 24:00, got {text!r}")
    return value


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True)
class TokenPrice:
    """One price row: USD (or ``currency``) per 1,000,000 tokens from ``effective_from`` on.

    Off-peak prices apply inside any of ``off_peak``; all three are required when windows are
    given. ``ValueError`` (naming the row) for negative prices, naive ``effective_from``, an
    invalid window, or windows without prices.
    """

    provider: str
    model: str
    currency: str
    effective_from: datetime
    input_cache_hit: Decimal
    input_cache_miss: Decimal
    output: Decimal
    off_peak: tuple[OffPeakWindow, ...] = ()
    off_peak_input_cache_hit: Decimal | None = None
    off_peak_input_cache_miss: Decimal | None = None
    off_peak_output: Decimal | None = None

    @property
    def label(self) -> str:
        """``provider/model from <ISO instant>``, used in error messages."""
        moment = (
            _iso(self.effective_from)
            if self.effective_from.tzinfo is not None
            else self.effective_from.isoformat()
        )
        return f"{self.provider}/{self.model} from {moment}"

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"price row {self.label}: {problem}")

    def _problem(self) -> str | None:
        if not self.provider or not self.model:
            return "provider and model must not be empty"
        if len(self.currency) != 3 or not self.currency.isalpha():
            return f"currency must be an ISO 4217 code like USD, got {self.currency!r}"
        if self.effective_from.tzinfo is None:
            return "effective_from must be an aware (UTC) datetime"
        prices = {
            "input_cache_hit": self.input_cache_hit,
            "input_cache_miss": self.input_cache_miss,
            "output": self.output,
            "off_peak_input_cache_hit": self.off_peak_input_cache_hit,
            "off_peak_input_cache_miss": self.off_peak_input_cache_miss,
            "off_peak_output": self.off_peak_output,
        }
        for name, value in prices.items():
            if value is None:
                continue
            if not isinstance(value, Decimal) or not value.is_finite():
                return f"{name} must be a finite Decimal, got {value!r}"
            if value < 0:
                return f"{name} must not be negative, got {value}"
        for window in self.off_peak:
            window_problem = window.problem()
            if window_problem is not None:
                return window_problem
        if self.off_peak and any(
            value is None
            for value in (
                self.off_peak_input_cache_hit,
                self.off_peak_input_cache_miss,
                self.off_peak_output,
            )
        ):
            return "off-peak windows need all three off-peak prices"
        return None


@dataclass(frozen=True)
class PriceQuote:
    """Prices per 1,000,000 tokens that apply at one instant."""

    hit: Decimal
    miss: Decimal
    output: Decimal
    currency: str
    off_peak: bool
    effective_from: datetime
    provider: str = ""
    model: str = ""


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one usage record: prompt split into cache hit and miss, plus output."""

    hit: int
    miss: int
    output: int

    @property
    def prompt(self) -> int:
        """All input tokens (hit + miss)."""
        return self.hit + self.miss


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PriceBook:
    """Price rows indexed by (provider, model), each history sorted by ``effective_from``.

    Provider and model names match exactly (they are what the API reports).
    """

    def __init__(self, prices: Iterable[TokenPrice]) -> None:
        history: dict[tuple[str, str], dict[datetime, TokenPrice]] = {}
        for price in prices:
            rows = history.setdefault((price.provider, price.model), {})
            moment = price.effective_from.astimezone(UTC)
            if moment in rows:
                raise ValueError(f"price row {price.label}: duplicate row for the same instant")
            rows[moment] = price
        self._history = {
            key: sorted(rows.values(), key=lambda p: p.effective_from)
            for key, rows in history.items()
        }

    @classmethod
    def default(cls) -> PriceBook:
        """The shipped DeepSeek history (USD per 1M tokens); see ``DEEPSEEK_PRICES``."""
        return cls(DEEPSEEK_PRICES)

    @property
    def rows(self) -> list[TokenPrice]:
        """Every row, by provider, model and date."""
        return [price for key in sorted(self._history) for price in self._history[key]]

    def with_overrides(self, prices: Iterable[TokenPrice]) -> PriceBook:
        """A new book where each given row replaces the row of the same provider, model and
        ``effective_from`` (or is added when there is none)."""
        merged = {(p.provider, p.model, p.effective_from.astimezone(UTC)): p for p in self.rows}
        for price in prices:
            merged[(price.provider, price.model, price.effective_from.astimezone(UTC))] = price
        return PriceBook(merged.values())

    def price_at(self, provider: str, model: str, at: datetime) -> TokenPrice:
        """The row in force at ``at``; ``KeyError`` when none is."""
        moment = _utc(at, "quote time")
        current: TokenPrice | None = None
        for price in self._history.get((provider, model), []):
            if price.effective_from <= moment:
                current = price
            else:
                break
        if current is None:
            raise KeyError(f"no price for {provider}/{model} at {_iso(moment)}")
        return current

    def quote(self, provider: str, model: str, at: datetime) -> PriceQuote:
        """Prices for ``provider``/``model`` at ``at``, off-peak applied when in a window.

        ``KeyError("no price for provider/model at ...")`` when no row applies;
        ``ValueError`` for a naive ``at``.
        """
        price = self.price_at(provider, model, at)
        off_peak = any(window.covers(at) for window in price.off_peak)
        hit, miss, output = (
            (price.off_peak_input_cache_hit, price.off_peak_input_cache_miss, price.off_peak_output)
            if off_peak
            else (price.input_cache_hit, price.input_cache_miss, price.output)
        )
        # TokenPrice validation guarantees all three off-peak prices exist when windows do.
        assert hit is not None and miss is not None and output is not None
        return PriceQuote(
            hit=hit,
            miss=miss,
            output=output,
            currency=price.currency,
            off_peak=off_peak,
            effective_from=price.effective_from,
            provider=provider,
            model=model,
        )


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"usage {key} must be a token count, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"usage {key} must be a whole number of tokens, got {value!r}")
    if value < 0:
        raise ValueError(f"usage {key} must not be negative, got {value!r}")
    return int(value)


def usage_tokens(usage: Mapping[str, Any]) -> TokenUsage:
    """Split an OpenAI-compatible (DeepSeek) ``usage`` object into hit, miss and output tokens.

    * hit = the larger of ``prompt_cache_hit_tokens`` and ``prompt_tokens_details.cached_tokens``
      (some responses carry only one of them, some both);
    * miss = ``prompt_tokens - hit`` when ``prompt_tokens`` is given (DeepSeek guarantees
      ``prompt_tokens = hit + miss``), else ``prompt_cache_miss_tokens``, else 0;
    * output = ``completion_tokens``; reasoning (chain-of-thought) tokens are part of it and are
      billed as output, never added a second time.

    ``ValueError`` for negative or non-integer counts, or more hits than prompt tokens.
    """
    details = usage.get("prompt_tokens_details")
    cached = _count(details, "cached_tokens") if isinstance(details, Mapping) else None
    reported_hit = _count(usage, "prompt_cache_hit_tokens")
    hit = max(reported_hit or 0, cached or 0)
    prompt = _count(usage, "prompt_tokens")
    reported_miss = _count(usage, "prompt_cache_miss_tokens")
    if prompt is not None:
        if hit > prompt:
            raise ValueError(
                f"usage reports {hit} cache-hit tokens but only {prompt} prompt tokens"
            )
        miss = prompt - hit
        if reported_miss is not None and reported_miss != miss:
            logger.debug(
                "usage miss count %d disagrees with prompt %d - hit %d; using %d",
                reported_miss,
                prompt,
                hit,
                miss,
            )
    else:
        miss = reported_miss or 0
    output = _count(usage, "completion_tokens") or 0
    return TokenUsage(hit=hit, miss=miss, output=output)


def usage_cost(quote: PriceQuote, usage: TokenUsage) -> Decimal:
    """``(hit * P_hit + miss * P_miss + output * P_output) / 1,000,000`` in ``quote.currency``.

    Exact (no rounding): the result has at most six more decimal places than the prices.
    """
    per_million = (
        Decimal(usage.hit) * quote.hit
        + Decimal(usage.miss) * quote.miss
        + Decimal(usage.output) * quote.output
    )
    return per_million.scaleb(-6)


def parse_weekdays(spec: str | Iterable[int | str]) -> frozenset[int]:
    """Weekdays from ``"daily"``, ``"mon-fri"``, ``"sat,sun"`` or a list of names or 0..6 ints."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("daily", "all", "*"):
            return ALL_WEEK
        days: set[int] = set()
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            lo = _weekday(first)
            hi = _weekday(last) if dash else lo
            if hi < lo:
                raise ValueError(f"weekday range {part.strip()!r} runs backwards")
            days.update(range(lo, hi + 1))
        return frozenset(days)
    return frozenset(_weekday(day) for day in spec)


def _weekday(day: int | str) -> int:
    if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
        return day
    if isinstance(day, str) and day.strip().lower()[:3] in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(day.strip().lower()[:3])
    raise ValueError(f"expected a weekday (mon..sun or 0..6), got {day!r}")


def _utc_at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# Off-peak windows of the DeepSeek V4 models (UTC): Monday to Friday 00:00-01:00, 04:00-06:00 and
# 10:00-24:00, and the whole weekend. Source: LiteLLM 1.110.2 price map, ``off_peak_pricing``.
V4_OFF_PEAK = (
    OffPeakWindow(WEEKDAYS, 0, 60),
    OffPeakWindow(WEEKDAYS, 4 * 60, 6 * 60),
    OffPeakWindow(WEEKDAYS, 10 * 60, MINUTES_PER_DAY),
    OffPeakWindow(WEEKEND, 0, MINUTES_PER_DAY),
)

# The old nightly discount, every day 16:30-00:30 UTC (crosses midnight). Cancelled with V3.1.
LEGACY_NIGHT = (OffPeakWindow(ALL_WEEK, 16 * 60 + 30, 30),)

_NO_OFF_PEAK: tuple[tuple[OffPeakWindow, ...], tuple[str, str, str] | None] = ((), None)
_LEGACY_OFF_PEAK = (LEGACY_NIGHT, ("0.035", "0.135", "0.55"))

# (model, effective from (UTC), cache hit, cache miss, output, (windows, off-peak prices)),
# USD per 1M tokens.
_DEEPSEEK_TABLE: tuple[
    tuple[
        str, datetime, str, str, str, tuple[tuple[OffPeakWindow, ...], tuple[str, str, str] | None]
    ],
    ...,
] = (
    # V3 / R1 list prices, in force until 2025-09-05 16:00 UTC. Source: api-docs.deepseek.com
    # quick_start/pricing (old snapshot), reference finops.md §6. The reference gives no start
    # date: the book starts on 2025-01-01 (earlier usage has no price). Off-peak 16:30-00:30 UTC
    # daily at 0.035/0.135/0.55 for both models (V3 at 50 % off and R1 at 75 % off landed on the
    # same prices); the discount began in late February 2025, which the book does not model.
    ("deepseek-chat", _utc_at(2025, 1, 1), "0.07", "0.27", "1.10", _LEGACY_OFF_PEAK),
    ("deepseek-reasoner", _utc_at(2025, 1, 1), "0.14", "0.55", "2.19", _LEGACY_OFF_PEAK),
    # V3.1 from 2025-09-05 16:00 UTC, the same prices for chat and reasoner, night discount
    # cancelled. Source: the same pricing page.
    ("deepseek-chat", _utc_at(2025, 9, 5, 16), "0.07", "0.56", "1.68", _NO_OFF_PEAK),
    ("deepseek-reasoner", _utc_at(2025, 9, 5, 16), "0.07", "0.56", "1.68", _NO_OFF_PEAK),
    # V3.2, APPROXIMATE date: the reference dates it "~2025-12" (LiteLLM map
    # deepseek/deepseek-chat, deprecation_date 2026-07-24; RooCodeInc/Roo-Code deepseek.ts);
    # 2025-12-01 is our pick. Override in config if your invoices show another date.
    ("deepseek-chat", _utc_at(2025, 12, 1), "0.028", "0.28", "0.42", _NO_OFF_PEAK),
    ("deepseek-reasoner", _utc_at(2025, 12, 1), "0.028", "0.28", "0.42", _NO_OFF_PEAK),
    # V4, APPROXIMATE date 2026-01-01 (the reference says "2026"; these model names had no
    # earlier prices). Peak and off-peak prices and windows: LiteLLM 1.110.2 ``off_peak_pricing``.
    (
        "deepseek-v4-flash",
        _utc_at(2026, 1, 1),
        "0.006",
        "0.30",
        "1.20",
        (V4_OFF_PEAK, ("0.003", "0.15", "0.60")),
    ),
    (
        "deepseek-v4-pro",
        _utc_at(2026, 1, 1),
        "0.044",
        "1.32",
        "3.96",
        (V4_OFF_PEAK, ("0.022", "0.66", "1.98")),
    ),
)


def _deepseek_row(
    model: str,
    since: datetime,
    hit: str,
    miss: str,
    out: str,
    off_peak: tuple[tuple[OffPeakWindow, ...], tuple[str, str, str] | None],
) -> TokenPrice:
    windows, off = off_peak
    return TokenPrice(
        "deepseek",
        model,
        "USD",
        since,
        Decimal(hit),
        Decimal(miss),
        Decimal(out),
        off_peak=windows,
        off_peak_input_cache_hit=Decimal(off[0]) if off else None,
        off_peak_input_cache_miss=Decimal(off[1]) if off else None,
        off_peak_output=Decimal(off[2]) if off else None,
    )


DEEPSEEK_PRICES: tuple[TokenPrice, ...] = tuple(_deepseek_row(*row) for row in _DEEPSEEK_TABLE)
"""The shipped default price history (USD per 1M tokens); each row's source is noted above."""
