"""The price book quotes the right row at the right instant, and usage is costed hit/miss/output."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from daemon.costs.pricebook import (
    OffPeakWindow,
    PriceBook,
    PriceQuote,
    TokenPrice,
    TokenUsage,
    parse_hhmm,
    parse_weekdays,
    usage_cost,
    usage_tokens,
)

# Real DeepSeek usage object (reference finops.md §6, QuantumNous/new-api issue #406).
REAL_USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 9,
    "total_tokens": 19,
    "prompt_cache_hit_tokens": 0,
    "prompt_cache_miss_tokens": 10,
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def book() -> PriceBook:
    return PriceBook.default()


def test_it_quotes_the_v3_prices_before_the_v31_switch_and_the_v31_prices_after(book) -> None:
    before = book.quote("deepseek", "deepseek-chat", at("2025-09-05T15:59:59Z"))
    after = book.quote("deepseek", "deepseek-chat", at("2025-09-05T16:00:00Z"))
    assert (before.hit, before.miss, before.output) == (
        Decimal("0.07"),
        Decimal("0.27"),
        Decimal("1.10"),
    )
    assert not before.off_peak
    assert (after.hit, after.miss, after.output) == (
        Decimal("0.07"),
        Decimal("0.56"),
        Decimal("1.68"),
    )
    assert after.effective_from == at("2025-09-05T16:00:00Z")
    reasoner = book.quote("deepseek", "deepseek-reasoner", at("2025-06-02T12:00:00Z"))
    assert (reasoner.hit, reasoner.miss, reasoner.output) == (
        Decimal("0.14"),
        Decimal("0.55"),
        Decimal("2.19"),
    )


def test_it_applies_the_old_night_discount_across_midnight(book) -> None:
    evening = book.quote("deepseek", "deepseek-reasoner", at("2025-06-02T16:30:00Z"))
    after_midnight = book.quote("deepseek", "deepseek-reasoner", at("2025-06-03T00:29:59Z"))
    morning = book.quote("deepseek", "deepseek-reasoner", at("2025-06-03T00:30:00Z"))
    afternoon = book.quote("deepseek", "deepseek-chat", at("2025-06-02T16:29:59Z"))
    for quote in (evening, after_midnight):
        assert quote.off_peak
        assert (quote.hit, quote.miss, quote.output) == (
            Decimal("0.035"),
            Decimal("0.135"),
            Decimal("0.55"),
        )
    assert not morning.off_peak and morning.miss == Decimal("0.55")
    assert not afternoon.off_peak and afternoon.miss == Decimal("0.27")


def test_it_has_no_night_discount_from_v31_on(book) -> None:
    quote = book.quote("deepseek", "deepseek-chat", at("2025-09-06T20:00:00Z"))
    assert not quote.off_peak
    assert quote.miss == Decimal("0.56")


def test_it_quotes_v32_prices_from_december_2025(book) -> None:
    quote = book.quote("deepseek", "deepseek-reasoner", at("2025-12-15T08:00:00Z"))
    assert (quote.hit, quote.miss, quote.output) == (
        Decimal("0.028"),
        Decimal("0.28"),
        Decimal("0.42"),
    )
    assert quote.currency == "USD"


@pytest.mark.parametrize(
    ("moment", "off_peak"),
    [
        ("2026-03-02T00:30:00Z", True),  # Monday 00-01
        ("2026-03-02T01:00:00Z", False),  # Monday 01:00 is peak (end exclusive)
        ("2026-03-02T05:59:00Z", True),  # Monday 04-06
        ("2026-03-02T09:59:00Z", False),  # Monday peak before 10:00
        ("2026-03-02T10:00:00Z", True),  # Monday 10-24
        ("2026-03-06T23:59:59Z", True),  # Friday late
        ("2026-03-07T12:00:00Z", True),  # Saturday
        ("2026-03-08T23:59:00Z", True),  # Sunday
        ("2026-03-03T03:00:00Z", False),  # Tuesday 03:00 is peak
    ],
)
def test_it_applies_the_v4_off_peak_windows(book, moment: str, off_peak: bool) -> None:
    flash = book.quote("deepseek", "deepseek-v4-flash", at(moment))
    pro = book.quote("deepseek", "deepseek-v4-pro", at(moment))
    assert flash.off_peak is off_peak and pro.off_peak is off_peak
    if off_peak:
        assert (flash.hit, flash.miss, flash.output) == (
            Decimal("0.003"),
            Decimal("0.15"),
            Decimal("0.60"),
        )
        assert (pro.hit, pro.miss, pro.output) == (
            Decimal("0.022"),
            Decimal("0.66"),
            Decimal("1.98"),
        )
    else:
        assert (flash.hit, flash.miss, flash.output) == (
            Decimal("0.006"),
            Decimal("0.30"),
            Decimal("1.20"),
        )
        assert (pro.hit, pro.miss, pro.output) == (
            Decimal("0.044"),
            Decimal("1.32"),
            Decimal("3.96"),
        )


def test_it_raises_key_error_for_an_unknown_model_or_a_time_before_any_row(book) -> None:
    with pytest.raises(KeyError, match="no price for deepseek/deepseek-x at 2026-01-01T00:00:00Z"):
        book.quote("deepseek", "deepseek-x", at("2026-01-01T00:00:00Z"))
    with pytest.raises(KeyError, match="deepseek/deepseek-chat at 2024-12-31"):
        book.quote("deepseek", "deepseek-chat", at("2024-12-31T23:59:59Z"))


def test_it_refuses_a_naive_quote_time(book) -> None:
    with pytest.raises(ValueError, match="aware"):
        book.quote("deepseek", "deepseek-chat", datetime(2026, 1, 1))


def test_it_lets_overrides_replace_a_row_and_add_new_ones(book) -> None:
    replacement = TokenPrice(
        "deepseek",
        "deepseek-chat",
        "USD",
        at("2025-12-01T00:00:00Z"),
        Decimal("0.02"),
        Decimal("0.2"),
        Decimal("0.4"),
    )
    added = TokenPrice(
        "openai",
        "gpt-x",
        "USD",
        at("2026-01-01T00:00:00Z"),
        Decimal("0.5"),
        Decimal("1"),
        Decimal("4"),
    )
    merged = book.with_overrides([replacement, added])
    assert merged.quote("deepseek", "deepseek-chat", at("2026-01-05T00:00:00Z")).miss == Decimal(
        "0.2"
    )
    assert merged.quote("openai", "gpt-x", at("2026-02-01T00:00:00Z")).output == Decimal("4")
    assert len(merged.rows) == len(book.rows) + 1
    # the original book is unchanged
    assert book.quote("deepseek", "deepseek-chat", at("2026-01-05T00:00:00Z")).miss == Decimal(
        "0.28"
    )


def test_it_rejects_a_negative_price_naming_the_row() -> None:
    with pytest.raises(
        ValueError,
        match=r"deepseek/deepseek-chat from 2026-01-01T00:00:00Z: "
        r"input_cache_miss must not be negative",
    ):
        TokenPrice(
            "deepseek",
            "deepseek-chat",
            "USD",
            at("2026-01-01T00:00:00Z"),
            Decimal("0.1"),
            Decimal("-0.2"),
            Decimal("1"),
        )


def test_it_rejects_an_empty_window_naming_the_row() -> None:
    with pytest.raises(ValueError, match=r"deepseek/deepseek-v9 from .*empty \(start == end\)"):
        TokenPrice(
            "deepseek",
            "deepseek-v9",
            "USD",
            at("2026-01-01T00:00:00Z"),
            Decimal("0.1"),
            Decimal("0.2"),
            Decimal("1"),
            off_peak=(OffPeakWindow.parse(range(7), "10:00", "10:00"),),
            off_peak_input_cache_hit=Decimal("0"),
            off_peak_input_cache_miss=Decimal("0"),
            off_peak_output=Decimal("0"),
        )


def test_it_rejects_windows_without_off_peak_prices_and_duplicate_rows() -> None:
    with pytest.raises(ValueError, match="need all three off-peak prices"):
        TokenPrice(
            "p",
            "m",
            "USD",
            at("2026-01-01T00:00:00Z"),
            Decimal("1"),
            Decimal("1"),
            Decimal("1"),
            off_peak=(OffPeakWindow.parse([5, 6], "00:00", "24:00"),),
        )
    row = TokenPrice(
        "p", "m", "USD", at("2026-01-01T00:00:00Z"), Decimal("1"), Decimal("1"), Decimal("1")
    )
    with pytest.raises(ValueError, match="p/m from 2026-01-01T00:00:00Z: duplicate"):
        PriceBook([row, row])


def test_it_parses_times_and_weekdays_for_config() -> None:
    assert parse_hhmm("16:30") == 990
    assert parse_hhmm("24:00") == 1440
    for bad in ("24:01", "7", "10:60", "ab:cd"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)
    assert parse_weekdays("mon-fri") == frozenset(range(5))
    assert parse_weekdays("sat,sun") == frozenset({5, 6})
    assert parse_weekdays("daily") == frozenset(range(7))
    assert parse_weekdays(["Tuesday", 0]) == frozenset({0, 1})
    with pytest.raises(ValueError, match="backwards"):
        parse_weekdays("fri-mon")


def test_it_costs_the_real_deepseek_usage_sample_exactly(book) -> None:
    usage = usage_tokens(REAL_USAGE)
    assert usage == TokenUsage(hit=0, miss=10, output=9)
    v31 = book.quote("deepseek", "deepseek-chat", at("2025-10-01T09:00:00Z"))
    # 10 * 0.56 + 9 * 1.68 = 20.72 per million
    assert usage_cost(v31, usage) == Decimal("0.00002072")
    v3 = book.quote("deepseek", "deepseek-chat", at("2025-06-02T09:00:00Z"))
    # 10 * 0.27 + 9 * 1.10 = 12.6 per million
    assert usage_cost(v3, usage) == Decimal("0.0000126")


def test_it_bills_cache_hits_at_the_hit_price_not_the_miss_price(book) -> None:
    usage = usage_tokens(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "prompt_cache_hit_tokens": 800,
            "prompt_cache_miss_tokens": 200,
        }
    )
    assert usage == TokenUsage(hit=800, miss=200, output=100)
    quote = book.quote("deepseek", "deepseek-chat", at("2025-12-15T08:00:00Z"))
    # 800 * 0.028 + 200 * 0.28 + 100 * 0.42 = 22.4 + 56 + 42 = 120.4 per million
    cost = usage_cost(quote, usage)
    assert cost == Decimal("0.0001204")
    # the classic bug: every prompt token at the miss price (1000 * 0.28 + 42 = 322 per million)
    classic_bug = (Decimal(1000) * quote.miss + Decimal(100) * quote.output) / Decimal(1_000_000)
    assert classic_bug == Decimal("0.000322")
    assert cost != classic_bug


def test_it_takes_the_larger_of_the_two_cached_token_fields() -> None:
    both = usage_tokens(
        {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "prompt_cache_hit_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 64},
        }
    )
    assert both == TokenUsage(hit=64, miss=36, output=5)
    details_only = usage_tokens(
        {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 40},
        }
    )
    assert details_only == TokenUsage(hit=40, miss=60, output=5)


def test_it_derives_miss_as_prompt_minus_hit_when_no_miss_count_is_given() -> None:
    assert usage_tokens(
        {"prompt_tokens": 50, "prompt_cache_hit_tokens": 20, "completion_tokens": 7}
    ) == TokenUsage(hit=20, miss=30, output=7)
    # without prompt_tokens the reported miss count is used
    assert usage_tokens({"prompt_cache_hit_tokens": 20, "prompt_cache_miss_tokens": 5}) == (
        TokenUsage(hit=20, miss=5, output=0)
    )


def test_it_bills_reasoning_tokens_once_as_part_of_completion() -> None:
    usage = usage_tokens(
        {
            "prompt_tokens": 10,
            "completion_tokens": 300,
            "completion_tokens_details": {"reasoning_tokens": 250},
        }
    )
    assert usage.output == 300


def test_it_rejects_malformed_usage() -> None:
    with pytest.raises(ValueError, match="cache-hit tokens"):
        usage_tokens({"prompt_tokens": 5, "prompt_cache_hit_tokens": 6})
    with pytest.raises(ValueError, match="negative"):
        usage_tokens({"prompt_tokens": -1})
    with pytest.raises(ValueError, match="whole number"):
        usage_tokens({"completion_tokens": 1.5})
    with pytest.raises(ValueError, match="token count"):
        usage_tokens({"completion_tokens": "12"})


def test_it_costs_a_quote_in_its_own_currency_without_rounding() -> None:
    quote = PriceQuote(
        hit=Decimal("0.5"),
        miss=Decimal("2"),
        output=Decimal("8"),
        currency="CNY",
        off_peak=False,
        effective_from=at("2025-01-01T00:00:00Z"),
    )
    assert usage_cost(quote, TokenUsage(hit=1, miss=1, output=1)) == Decimal("0.0000105")
