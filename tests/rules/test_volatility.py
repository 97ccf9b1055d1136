from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.base import Rule, RuleConfigError, RuleContext, load_rule_class
from rules.volatility import RequestVolatilityRule, coefficient_of_variation

NOW = datetime(2026, 8, 20, 0, 30, tzinfo=UTC)

# mean 1000, population standard deviation 300 -> coefficient of variation 0.3 exactly
AT_LIMIT = (700.0, 1300.0) * 7
STEADY = (1000.0,) * 14


def _ctx(**daily: tuple[float, ...]) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(days=14), daily_requests=daily)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = RequestVolatilityRule({})
    assert load_rule_class("request_volatility") is RequestVolatilityRule
    assert rule.kind == "request_volatility"
    assert rule.needs == frozenset({"daily_requests"})
    assert rule.series_names == frozenset()


def test_it_has_documented_defaults():
    rule = RequestVolatilityRule({})
    assert rule.lookback_days == 14
    assert rule.window == timedelta(days=14)
    assert rule.min_days == 7
    assert rule.above == 0.3
    assert rule.min_mean_requests == 100


def test_it_reports_a_volatile_model_with_its_coefficient_of_variation():
    spiky = (500.0, 1500.0) * 7
    findings = RequestVolatilityRule({}).evaluate(_ctx(llama=spiky, qwen=STEADY))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {"model": "llama"}
    assert findings[0].value == pytest.approx(0.5)
    assert findings[0].details == {"days": 14, "mean": pytest.approx(1000.0)}


def test_it_does_not_report_exactly_at_the_limit():
    assert coefficient_of_variation(AT_LIMIT) == pytest.approx(0.3)
    assert RequestVolatilityRule({}).evaluate(_ctx(llama=AT_LIMIT)) == []
    assert len(RequestVolatilityRule({"above": 0.29}).evaluate(_ctx(llama=AT_LIMIT))) == 1


def test_it_only_judges_the_last_lookback_days():
    calm_recently = (10.0, 5000.0) * 10 + STEADY
    assert RequestVolatilityRule({}).evaluate(_ctx(llama=calm_recently)) == []
    assert len(RequestVolatilityRule({"lookback_days": 30}).evaluate(_ctx(llama=calm_recently)))


def test_it_needs_min_days():
    spiky = (500.0, 1500.0) * 4
    assert RequestVolatilityRule({}).evaluate(_ctx(llama=spiky[:6])) == []
    assert len(RequestVolatilityRule({}).evaluate(_ctx(llama=spiky[:7]))) == 1


def test_it_needs_the_minimum_mean_volume():
    quiet = (50.0, 150.0) * 7  # mean exactly 100
    assert len(RequestVolatilityRule({}).evaluate(_ctx(llama=quiet))) == 1
    quieter = (49.0, 150.0) * 7
    assert RequestVolatilityRule({}).evaluate(_ctx(llama=quieter)) == []


def test_it_skips_a_model_without_requests_or_with_bad_numbers():
    zeros = (0.0,) * 14
    broken = (float("nan"),) * 14
    rule = RequestVolatilityRule({"min_mean_requests": 0})
    assert rule.evaluate(_ctx(idle=zeros, broken=broken)) == []


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        RequestVolatilityRule({"days": 14})
    assert info.value.path == "days"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"lookback_days": 1}, "lookback_days"),
        ({"lookback_days": "2w"}, "lookback_days"),
        ({"min_days": 15}, "min_days"),
        ({"min_days": 1}, "min_days"),
        ({"above": -0.1}, "above"),
        ({"above": "30%"}, "above"),
        ({"min_mean_requests": None}, "min_mean_requests"),
    ],
)
def test_it_rejects_bad_values_naming_the_key(params, path):
    with pytest.raises(RuleConfigError) as info:
        RequestVolatilityRule(params)
    assert info.value.path == path
