from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.base import GpuWindow, RuleConfigError, RuleContext, load_rule_class
from rules.gpu_idle import GIB, GpuIdleRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def _gpu(**overrides: Any) -> GpuWindow:
    base = GpuWindow(
        uuid="GPU-aaaa",
        node="node-7",
        index=3,
        name="NVIDIA H200",
        minutes=10,
        avg_utilization_ratio=0.01,
        max_utilization_ratio=0.03,
        avg_power_watts=90.0,
        power_limit_watts=700.0,
        avg_memory_used_bytes=40 * GIB,
        memory_total_bytes=141 * GIB,
        inference_tokens=0.0,
    )
    return replace(base, **overrides)


def _ctx(*gpus: GpuWindow) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(minutes=10), gpus=gpus)


def test_it_is_registered_in_the_rules_table():
    assert load_rule_class("gpu_idle") is GpuIdleRule
    assert GpuIdleRule.kind == "gpu_idle"


def test_it_has_documented_defaults():
    rule = GpuIdleRule({})
    assert rule.window == timedelta(minutes=10)
    assert rule.utilization_below == 0.05
    assert rule.power_below_ratio == 0.3
    assert rule.min_memory_used_bytes == GIB
    assert rule.min_minutes == 3


def test_it_reports_an_allocated_idle_gpu_with_its_labels_and_value():
    findings = GpuIdleRule({}).evaluate(_ctx(_gpu()))
    assert len(findings) == 1
    assert dict(findings[0].labels) == {
        "node": "node-7",
        "gpu": "3",
        "uuid": "GPU-aaaa",
        "model_name": "NVIDIA H200",
    }
    assert findings[0].value == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("reason", "overrides"),
    [
        ("busy on average", {"avg_utilization_ratio": 0.3, "max_utilization_ratio": 0.6}),
        ("bursty peak", {"max_utilization_ratio": 0.10}),
        ("serving tokens", {"inference_tokens": 1200.0}),
        ("drawing power", {"avg_power_watts": 400.0}),
        ("down", {"down": True}),
        ("too few minutes", {"minutes": 2}),
        ("holds no memory", {"avg_memory_used_bytes": 200 * 1024**2}),
        ("memory unknown", {"avg_memory_used_bytes": None}),
        ("utilization unknown", {"avg_utilization_ratio": None, "max_utilization_ratio": None}),
    ],
)
def test_it_does_not_report_a_gpu_that_is_not_allocated_and_idle(reason, overrides):
    assert GpuIdleRule({}).evaluate(_ctx(_gpu(**overrides))) == [], reason


def test_it_reports_at_exactly_the_minimum_minutes_and_memory():
    gpu = _gpu(minutes=3, avg_memory_used_bytes=float(GIB))
    assert len(GpuIdleRule({}).evaluate(_ctx(gpu))) == 1


def test_it_does_not_need_power_or_inference_sources():
    gpu = _gpu(avg_power_watts=None, power_limit_watts=None, inference_tokens=None)
    assert len(GpuIdleRule({}).evaluate(_ctx(gpu))) == 1


def test_it_accepts_an_unknown_peak_when_the_average_is_idle():
    assert len(GpuIdleRule({}).evaluate(_ctx(_gpu(max_utilization_ratio=None)))) == 1


def test_it_reports_one_finding_per_idle_gpu_in_context_order():
    gpus = (
        _gpu(uuid="GPU-1", index=0),
        _gpu(uuid="GPU-2", index=1, avg_utilization_ratio=0.9, max_utilization_ratio=1.0),
        _gpu(uuid="GPU-3", index=2, node="node-8"),
    )
    findings = GpuIdleRule({}).evaluate(_ctx(*gpus))
    assert [f.labels["uuid"] for f in findings] == ["GPU-1", "GPU-3"]
    assert [f.labels["gpu"] for f in findings] == ["0", "2"]


def test_it_applies_custom_params():
    rule = GpuIdleRule(
        {
            "utilization_below": 0.2,
            "power_below_ratio": 0.6,
            "window": "1h30m",
            "min_memory_used_bytes": 0,
            "min_minutes": 1,
        }
    )
    assert rule.window == timedelta(hours=1, minutes=30)
    gpu = _gpu(
        avg_utilization_ratio=0.15,
        max_utilization_ratio=0.35,
        avg_power_watts=400.0,
        avg_memory_used_bytes=0.0,
        minutes=1,
    )
    assert len(rule.evaluate(_ctx(gpu))) == 1
    assert GpuIdleRule({}).evaluate(_ctx(gpu)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", timedelta(minutes=10)),
        ("45s", timedelta(seconds=45)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_it_parses_window_durations(text, expected):
    assert GpuIdleRule({"window": text}).window == expected


@pytest.mark.parametrize("bad", ["fast", "", "10", "m", "10x", "30m1h", "-5m", "0s", 10, None])
def test_it_rejects_bad_windows_naming_the_key(bad):
    with pytest.raises(RuleConfigError) as info:
        GpuIdleRule({"window": bad})
    assert info.value.path == "window"


def test_it_uses_the_documented_window_error_message():
    with pytest.raises(RuleConfigError) as info:
        GpuIdleRule({"window": "fast"})
    assert info.value.message == 'expected a duration like "10m", got "fast"'


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        GpuIdleRule({"utilisation_below": 0.1})
    assert info.value.path == "utilisation_below"


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("utilization_below", 5),
        ("utilization_below", 0),
        ("utilization_below", "0.05"),
        ("power_below_ratio", 1.2),
        ("power_below_ratio", True),
        ("min_memory_used_bytes", -1),
        ("min_memory_used_bytes", "1GiB"),
        ("min_memory_used_bytes", 1.5),
        ("min_minutes", 0),
        ("min_minutes", 2.5),
    ],
)
def test_it_rejects_bad_values_naming_the_key(key, bad):
    with pytest.raises(RuleConfigError) as info:
        GpuIdleRule({key: bad})
    assert info.value.path == key
