from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.base import GpuWindow, Rule, RuleConfigError, RuleContext, load_rule_class
from rules.fleet_utilization import FleetUtilizationRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def _gpu(uuid: str = "GPU-1", **overrides: Any) -> GpuWindow:
    base = GpuWindow(
        uuid=uuid,
        node="node-1",
        index=0,
        name="NVIDIA H200",
        minutes=60,
        avg_utilization_ratio=0.18,
        max_utilization_ratio=0.9,
        avg_power_watts=300.0,
        power_limit_watts=700.0,
        avg_memory_used_bytes=1e10,
        memory_total_bytes=141 * 1024**3,
        inference_tokens=1000.0,
    )
    return replace(base, **overrides)


def _ctx(*gpus: GpuWindow) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(hours=1), gpus=gpus)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = FleetUtilizationRule({})
    assert load_rule_class("fleet_utilization") is FleetUtilizationRule
    assert rule.kind == "fleet_utilization"
    assert rule.needs == frozenset({"gpus"})
    assert rule.series_names == frozenset()


def test_it_has_documented_defaults():
    rule = FleetUtilizationRule({})
    assert rule.window == timedelta(hours=1)
    assert rule.below == 0.3
    assert rule.min_gpus == 1
    assert rule.min_minutes == 10
    assert rule.by == ()


def test_it_reports_a_fleet_below_target_with_no_labels_and_the_weighted_average():
    gpus = (
        _gpu("GPU-1", minutes=60, avg_utilization_ratio=0.1),
        _gpu("GPU-2", minutes=20, avg_utilization_ratio=0.5),
    )
    findings = FleetUtilizationRule({}).evaluate(_ctx(*gpus))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {}
    # (0.1 * 60 + 0.5 * 20) / 80 = 0.2
    assert findings[0].value == pytest.approx(0.2)
    assert findings[0].details == {"gpus": 2}


def test_it_does_not_report_a_fleet_exactly_at_the_target():
    gpus = (_gpu("GPU-1", avg_utilization_ratio=0.2), _gpu("GPU-2", avg_utilization_ratio=0.4))
    assert FleetUtilizationRule({}).evaluate(_ctx(*gpus)) == []
    assert len(FleetUtilizationRule({"below": 0.31}).evaluate(_ctx(*gpus))) == 1


def test_it_ignores_down_gpus():
    busy = _gpu("GPU-1", avg_utilization_ratio=0.8)
    down = _gpu("GPU-2", avg_utilization_ratio=0.0, down=True)
    assert FleetUtilizationRule({}).evaluate(_ctx(busy, down)) == []
    idle = _gpu("GPU-3", avg_utilization_ratio=0.1)
    down_busy = _gpu("GPU-4", avg_utilization_ratio=0.9, down=True)
    findings = FleetUtilizationRule({}).evaluate(_ctx(idle, down_busy))
    assert [f.value for f in findings] == [pytest.approx(0.1)]


def test_it_ignores_gpus_with_too_few_minutes_or_no_utilization():
    idle = _gpu("GPU-1", avg_utilization_ratio=0.1)
    short = _gpu("GPU-2", avg_utilization_ratio=0.9, minutes=9)
    unknown = _gpu("GPU-3", avg_utilization_ratio=None)
    findings = FleetUtilizationRule({}).evaluate(_ctx(idle, short, unknown))
    assert findings[0].value == pytest.approx(0.1)
    assert findings[0].details == {"gpus": 1}
    assert FleetUtilizationRule({}).evaluate(_ctx(short, unknown)) == []


def test_it_counts_a_gpu_at_exactly_min_minutes():
    findings = FleetUtilizationRule({}).evaluate(_ctx(_gpu(minutes=10)))
    assert len(findings) == 1


def test_it_needs_min_gpus_counted_gpus():
    gpus = (_gpu("GPU-1"), _gpu("GPU-2"), _gpu("GPU-3", down=True))
    assert FleetUtilizationRule({"min_gpus": 3}).evaluate(_ctx(*gpus)) == []
    assert len(FleetUtilizationRule({"min_gpus": 2}).evaluate(_ctx(*gpus))) == 1


def test_it_groups_by_node():
    gpus = (
        _gpu("GPU-1", node="node-1", avg_utilization_ratio=0.1),
        _gpu("GPU-2", node="node-2", avg_utilization_ratio=0.9),
        _gpu("GPU-3", node="node-3", avg_utilization_ratio=0.2),
    )
    findings = FleetUtilizationRule({"by": ["node"]}).evaluate(_ctx(*gpus))
    assert [dict(f.labels) for f in findings] == [{"node": "node-1"}, {"node": "node-3"}]
    assert [f.value for f in findings] == [pytest.approx(0.1), pytest.approx(0.2)]


def test_it_reports_nothing_for_an_empty_fleet():
    assert FleetUtilizationRule({}).evaluate(_ctx()) == []


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        FleetUtilizationRule({"threshold": 0.3})
    assert info.value.path == "threshold"


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("below", 30),
        ("below", "0.3"),
        ("min_gpus", 0),
        ("min_gpus", 1.5),
        ("min_minutes", "10"),
        ("window", "an hour"),
        ("window", "0s"),
        ("by", ["gpu"]),
        ("by", [1]),
    ],
)
def test_it_rejects_bad_values_naming_the_key(key, bad):
    with pytest.raises(RuleConfigError) as info:
        FleetUtilizationRule({key: bad})
    assert info.value.path == key


def test_it_names_the_duration_example_for_a_bad_window():
    with pytest.raises(RuleConfigError) as info:
        FleetUtilizationRule({"window": "soon"})
    assert info.value.message == 'expected a duration like "1h", got "soon"'
