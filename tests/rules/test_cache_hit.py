from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.base import ModelWindow, Rule, RuleConfigError, RuleContext, load_rule_class
from rules.cache_hit import CacheHitRateRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def _counters(
    model: str = "llama", node: str = "node-1", *, queries: float, hits: float
) -> ModelWindow:
    return ModelWindow(
        model=model, node=node, minutes=15, cache_queries=queries, cache_hits=hits, requests=10.0
    )


def _gauge(
    model: str = "qwen", node: str = "node-1", *, ratio: float | None, minutes: int = 15
) -> ModelWindow:
    return ModelWindow(model=model, node=node, minutes=minutes, cache_hit_ratio=ratio)


def _ctx(*models: ModelWindow) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(minutes=15), models=models)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = CacheHitRateRule({})
    assert load_rule_class("cache_hit_rate") is CacheHitRateRule
    assert rule.kind == "cache_hit_rate"
    assert rule.needs == frozenset({"models"})
    assert rule.series_names == frozenset()


def test_it_has_documented_defaults():
    rule = CacheHitRateRule({})
    assert rule.window == timedelta(minutes=15)
    assert rule.below == 0.3
    assert rule.min_queries == 1000
    assert rule.min_minutes == 5
    assert rule.by == ("model",)


def test_it_reports_a_low_counter_hit_rate_per_model_summed_over_nodes():
    models = (
        _counters(node="node-1", queries=1000, hits=100),
        _counters(node="node-2", queries=1000, hits=300),
    )
    findings = CacheHitRateRule({}).evaluate(_ctx(*models))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {"model": "llama"}
    assert findings[0].value == pytest.approx(0.2)
    assert findings[0].details == {"source": "counters", "queries": 2000}


def test_it_does_not_report_a_hit_rate_exactly_at_the_target():
    assert CacheHitRateRule({}).evaluate(_ctx(_counters(queries=1000, hits=300))) == []
    assert len(CacheHitRateRule({}).evaluate(_ctx(_counters(queries=1000, hits=299)))) == 1


def test_it_needs_the_minimum_query_volume_for_counters():
    assert CacheHitRateRule({}).evaluate(_ctx(_counters(queries=999, hits=0))) == []
    assert len(CacheHitRateRule({}).evaluate(_ctx(_counters(queries=1000, hits=0)))) == 1


def test_it_uses_the_gauge_when_there_are_no_counters():
    findings = CacheHitRateRule({}).evaluate(_ctx(_gauge(ratio=0.12)))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {"model": "qwen"}
    assert findings[0].value == pytest.approx(0.12)
    assert findings[0].details == {"source": "gauge", "queries": 0.0}


def test_it_does_not_apply_min_queries_to_gauges_but_needs_min_minutes_of_readings():
    rule = CacheHitRateRule({"min_queries": 10**9})
    assert len(rule.evaluate(_ctx(_gauge(ratio=0.1, minutes=5)))) == 1
    assert rule.evaluate(_ctx(_gauge(ratio=0.1, minutes=4))) == []


def test_it_averages_gauges_by_minutes_and_skips_instances_without_a_reading():
    models = (
        _gauge(node="node-1", ratio=0.1, minutes=10),
        _gauge(node="node-2", ratio=0.4, minutes=5),
        _gauge(node="node-3", ratio=None, minutes=60),
    )
    findings = CacheHitRateRule({}).evaluate(_ctx(*models))
    assert findings[0].value == pytest.approx(0.2)


def test_it_prefers_counters_over_the_gauge_in_the_same_group():
    models = (
        _counters(model="mixed", queries=2000, hits=1800),
        _gauge(model="mixed", node="node-2", ratio=0.0),
    )
    assert CacheHitRateRule({}).evaluate(_ctx(*models)) == []


def test_it_never_reports_a_model_without_cache_data():
    quiet = ModelWindow(model="tiny", node="node-1", minutes=15, requests=50.0)
    assert CacheHitRateRule({}).evaluate(_ctx(quiet)) == []


def test_it_groups_by_model_and_node():
    models = (
        _counters(node="node-1", queries=1000, hits=100),
        _counters(node="node-2", queries=1000, hits=900),
    )
    findings = CacheHitRateRule({"by": ["model", "node"]}).evaluate(_ctx(*models))
    assert [dict(f.labels) for f in findings] == [{"model": "llama", "node": "node-1"}]
    assert findings[0].value == pytest.approx(0.1)


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        CacheHitRateRule({"min_tokens": 5})
    assert info.value.path == "min_tokens"


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("below", 0),
        ("below", "low"),
        ("min_queries", -1),
        ("min_queries", "1k"),
        ("min_minutes", 0),
        ("window", "quarter"),
        ("window", 15),
        ("by", ["node"]),
        ("by", ["model", "gpu"]),
        ("by", {"model": 1}),
    ],
)
def test_it_rejects_bad_values_naming_the_key(key, bad):
    with pytest.raises(RuleConfigError) as info:
        CacheHitRateRule({key: bad})
    assert info.value.path == key
