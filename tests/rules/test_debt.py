from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rules.base import DebtView, Rule, RuleConfigError, RuleContext, load_rule_class
from rules.debt import DebtOverdueRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def _item(id_: int = 12, **overrides: Any) -> DebtView:
    base = DebtView(
        id=id_,
        title="Pin vLLM to a tested version",
        status="planned",
        owner="bob",
        severity="high",
        monthly_cost=Decimal("1200.00"),
        currency="USD",
        due_date=NOW - timedelta(days=1, hours=12),
    )
    return replace(base, **overrides)


def _ctx(*items: DebtView) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(0), debts=items)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = DebtOverdueRule({})
    assert load_rule_class("debt_overdue") is DebtOverdueRule
    assert rule.kind == "debt_overdue"
    assert rule.needs == frozenset({"debts"})
    assert rule.series_names == frozenset()
    assert rule.window == timedelta(0)


def test_it_has_documented_defaults():
    assert DebtOverdueRule({}).min_severity == "low"


def test_it_reports_an_overdue_item_with_days_overdue():
    findings = DebtOverdueRule({}).evaluate(_ctx(_item()))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {
        "debt_id": "12",
        "title": "Pin vLLM to a tested version",
        "owner": "bob",
        "severity": "high",
    }
    assert findings[0].value == pytest.approx(1.5)
    assert findings[0].details == {
        "status": "planned",
        "monthly_cost": "1200.00",
        "currency": "USD",
    }


def test_it_does_not_report_an_item_due_exactly_now_or_later():
    assert DebtOverdueRule({}).evaluate(_ctx(_item(due_date=NOW))) == []
    assert DebtOverdueRule({}).evaluate(_ctx(_item(due_date=NOW + timedelta(days=3)))) == []
    late = _item(due_date=NOW - timedelta(seconds=1))
    assert len(DebtOverdueRule({}).evaluate(_ctx(late))) == 1


def test_it_never_reports_done_items_or_items_without_a_due_date():
    items = (_item(1, status="done"), _item(2, due_date=None), _item(3, status="in_progress"))
    findings = DebtOverdueRule({}).evaluate(_ctx(*items))
    assert [f.labels["debt_id"] for f in findings] == ["3"]


@pytest.mark.parametrize(
    ("min_severity", "reported"),
    [
        ("low", ["1", "2", "3", "4"]),
        ("medium", ["2", "3", "4"]),
        ("high", ["3", "4"]),
        ("critical", ["4"]),
    ],
)
def test_it_filters_by_minimum_severity(min_severity, reported):
    items = (
        _item(1, severity="low"),
        _item(2, severity="medium"),
        _item(3, severity="High"),
        _item(4, severity="critical"),
        _item(5, severity="cosmetic"),
    )
    findings = DebtOverdueRule({"min_severity": min_severity}).evaluate(_ctx(*items))
    assert [f.labels["debt_id"] for f in findings] == reported


def test_it_lower_cases_the_severity_label():
    findings = DebtOverdueRule({}).evaluate(_ctx(_item(severity="CRITICAL")))
    assert findings[0].labels["severity"] == "critical"


def test_it_takes_naive_due_dates_as_utc():
    naive = _item(due_date=(NOW - timedelta(days=2)).replace(tzinfo=None))
    assert DebtOverdueRule({}).evaluate(_ctx(naive))[0].value == pytest.approx(2.0)


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        DebtOverdueRule({"severity": "high"})
    assert info.value.path == "severity"


@pytest.mark.parametrize("bad", ["urgent", "", 3, None, ["high"]])
def test_it_rejects_bad_severities_naming_the_key(bad):
    with pytest.raises(RuleConfigError) as info:
        DebtOverdueRule({"min_severity": bad})
    assert info.value.path == "min_severity"
