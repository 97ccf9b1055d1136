from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rules.base import BudgetView, Rule, RuleConfigError, RuleContext, load_rule_class
from rules.budget_forecast import BudgetForecastRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
D = Decimal


def _budget(name: str = "gpu-cloud", **overrides: Any) -> BudgetView:
    base = BudgetView(
        name=name,
        currency="USD",
        amount=D("10000"),
        month_to_date=D("6000"),
        forecast=D("12500"),
    )
    return replace(base, **overrides)


def _ctx(*budgets: BudgetView) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(0), budgets=budgets)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = BudgetForecastRule({})
    assert load_rule_class("budget_forecast") is BudgetForecastRule
    assert rule.kind == "budget_forecast"
    assert rule.needs == frozenset({"budgets"})
    assert rule.series_names == frozenset()
    assert rule.window == timedelta(0)


def test_it_has_documented_defaults():
    rule = BudgetForecastRule({})
    assert rule.above_ratio == D("1.0")
    assert rule.budgets == frozenset()
    assert rule.basis == "forecast"


def test_it_reports_a_budget_forecast_above_its_amount():
    findings = BudgetForecastRule({}).evaluate(_ctx(_budget()))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {"budget": "gpu-cloud", "currency": "USD"}
    assert findings[0].value == pytest.approx(1.25)
    assert findings[0].details == {"basis": "forecast", "amount": "10000", "compared": "12500"}


def test_it_does_not_report_a_forecast_exactly_at_the_ratio():
    assert BudgetForecastRule({}).evaluate(_ctx(_budget(forecast=D("10000")))) == []
    assert len(BudgetForecastRule({}).evaluate(_ctx(_budget(forecast=D("10000.01"))))) == 1


def test_it_reports_nothing_without_a_forecast():
    assert BudgetForecastRule({}).evaluate(_ctx(_budget(forecast=None))) == []


def test_it_compares_month_to_date_with_basis_spent():
    over_spent = _budget(month_to_date=D("10500"), forecast=D("9000"))
    under_spent = _budget(month_to_date=D("6000"), forecast=D("20000"))
    rule = BudgetForecastRule({"basis": "spent"})
    findings = rule.evaluate(_ctx(over_spent, under_spent))
    assert [f.value for f in findings] == [pytest.approx(1.05)]
    assert findings[0].details["compared"] == "10500"
    assert rule.evaluate(_ctx(_budget(forecast=None, month_to_date=D("11000"))))
    assert BudgetForecastRule({}).evaluate(_ctx(over_spent)) == []


def test_it_applies_a_custom_ratio():
    rule = BudgetForecastRule({"above_ratio": 0.8})
    assert len(rule.evaluate(_ctx(_budget(forecast=D("8500"))))) == 1
    assert rule.evaluate(_ctx(_budget(forecast=D("8000")))) == []


def test_it_filters_budgets_by_name():
    budgets = (_budget("gpu-cloud"), _budget("storage"))
    findings = BudgetForecastRule({"budgets": ["storage"]}).evaluate(_ctx(*budgets))
    assert [f.labels["budget"] for f in findings] == ["storage"]
    assert len(BudgetForecastRule({}).evaluate(_ctx(*budgets))) == 2


def test_it_adds_provider_and_service_labels_when_the_budget_is_scoped():
    budget = _budget(provider="aws", service="Amazon EC2", currency="EUR")
    findings = BudgetForecastRule({}).evaluate(_ctx(budget))
    assert dict(findings[0].labels) == {
        "budget": "gpu-cloud",
        "currency": "EUR",
        "provider": "aws",
        "service": "Amazon EC2",
    }


def test_it_ignores_budgets_without_a_positive_amount():
    assert BudgetForecastRule({}).evaluate(_ctx(_budget(amount=D("0")))) == []


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        BudgetForecastRule({"ratio": 1.0})
    assert info.value.path == "ratio"


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("above_ratio", 0),
        ("above_ratio", -1),
        ("above_ratio", "100%"),
        ("budgets", [1, 2]),
        ("budgets", {"a": 1}),
        ("basis", "actual"),
    ],
)
def test_it_rejects_bad_values_naming_the_key(key, bad):
    with pytest.raises(RuleConfigError) as info:
        BudgetForecastRule({key: bad})
    assert info.value.path == key
