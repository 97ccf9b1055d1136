from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.base import RollbackView, Rule, RuleConfigError, RuleContext, load_rule_class
from rules.rollback_sla import RollbackSlaRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def _rollback(id_: int = 7, **overrides: Any) -> RollbackView:
    base = RollbackView(
        id=id_,
        service="checkout",
        from_version="v2.4.0",
        to_version="v2.3.9",
        started_at=NOW - timedelta(hours=5),
        restored_at=None,
        sla_target=timedelta(0),
        reason="p99 latency regression",
        owner="alice",
    )
    return replace(base, **overrides)


def _ctx(*rollbacks: RollbackView) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(0), rollbacks=rollbacks)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = RollbackSlaRule({})
    assert load_rule_class("rollback_sla") is RollbackSlaRule
    assert rule.kind == "rollback_sla"
    assert rule.needs == frozenset({"rollbacks"})
    assert rule.series_names == frozenset()
    assert rule.window == timedelta(0)


def test_it_has_documented_defaults():
    rule = RollbackSlaRule({})
    assert rule.default_target == timedelta(hours=4)
    assert rule.services == {}


def test_it_reports_an_open_rollback_past_the_default_target():
    findings = RollbackSlaRule({}).evaluate(_ctx(_rollback()))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {
        "service": "checkout",
        "rollback_id": "7",
        "from_version": "v2.4.0",
        "to_version": "v2.3.9",
    }
    assert findings[0].value == 5 * 3600.0
    assert findings[0].details == {
        "target_seconds": 4 * 3600.0,
        "owner": "alice",
        "reason": "p99 latency regression",
    }


def test_it_does_not_report_a_rollback_open_exactly_as_long_as_its_target():
    at_target = _rollback(started_at=NOW - timedelta(hours=4))
    assert RollbackSlaRule({}).evaluate(_ctx(at_target)) == []
    past = _rollback(started_at=NOW - timedelta(hours=4, seconds=1))
    assert [f.value for f in RollbackSlaRule({}).evaluate(_ctx(past))] == [4 * 3600.0 + 1]


def test_it_never_reports_a_restored_rollback():
    restored = _rollback(restored_at=NOW - timedelta(minutes=1))
    assert RollbackSlaRule({}).evaluate(_ctx(restored)) == []


def test_it_uses_the_rollbacks_own_target_when_set():
    own = _rollback(sla_target=timedelta(hours=6))
    assert RollbackSlaRule({}).evaluate(_ctx(own)) == []
    assert len(RollbackSlaRule({}).evaluate(_ctx(replace(own, sla_target=timedelta(hours=1))))) == 1


def test_it_applies_a_per_service_override_before_the_rollbacks_own_target():
    rule = RollbackSlaRule({"services": {"checkout": "1h", "search": "8h"}})
    checkout = _rollback(1, started_at=NOW - timedelta(hours=2), sla_target=timedelta(hours=4))
    search = _rollback(2, service="search", started_at=NOW - timedelta(hours=5))
    other = _rollback(3, service="ledger", started_at=NOW - timedelta(hours=5))
    findings = rule.evaluate(_ctx(checkout, search, other))
    assert [f.labels["rollback_id"] for f in findings] == ["1", "3"]
    assert findings[0].details["target_seconds"] == 3600.0
    assert rule.target(search) == timedelta(hours=8)


def test_it_uses_a_custom_default_target():
    rule = RollbackSlaRule({"default_target": "6h"})
    assert rule.evaluate(_ctx(_rollback())) == []


def test_it_takes_naive_times_as_utc():
    naive = _rollback(started_at=(NOW - timedelta(hours=5)).replace(tzinfo=None))
    assert len(RollbackSlaRule({}).evaluate(_ctx(naive))) == 1


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        RollbackSlaRule({"target": "4h"})
    assert info.value.path == "target"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"default_target": "four hours"}, "default_target"),
        ({"default_target": "0s"}, "default_target"),
        ({"default_target": 4}, "default_target"),
        ({"services": ["checkout"]}, "services"),
        ({"services": {"checkout": "soon"}}, "services.checkout"),
        ({"services": {"checkout": None}}, "services.checkout"),
        ({"services": {1: "1h"}}, "services"),
    ],
)
def test_it_rejects_bad_values_naming_the_key(params, path):
    with pytest.raises(RuleConfigError) as info:
        RollbackSlaRule(params)
    assert info.value.path == path


def test_it_names_the_duration_example_for_a_bad_target():
    with pytest.raises(RuleConfigError) as info:
        RollbackSlaRule({"services": {"checkout": "soon"}})
    assert info.value.message == 'expected a duration like "4h", got "soon"'
