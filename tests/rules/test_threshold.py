from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.base import Rule, RuleConfigError, RuleContext, Series, load_rule_class
from rules.threshold import ThresholdRule

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
UTIL = "tcowatch_gpu_utilization_ratio"


def _labels(node: str, gpu: str) -> dict[str, str]:
    return {"node": node, "gpu": gpu, "uuid": f"GPU-{node}-{gpu}"}


def _series(
    values: list[float], *, node: str = "node-1", gpu: str = "0", name: str = UTIL
) -> Series:
    """One point a minute, the last one at ``NOW``."""
    count = len(values)
    points = tuple(
        (NOW - timedelta(minutes=count - 1 - i), value) for i, value in enumerate(values)
    )
    return Series(name=name, labels=_labels(node, gpu), points=points)


def _ctx(*series: Series) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(minutes=5), series=series)


def _rule(**params: Any) -> ThresholdRule:
    return ThresholdRule({"series": UTIL, "op": ">", "value": 0.5, **params})


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = _rule()
    assert load_rule_class("threshold") is ThresholdRule
    assert rule.kind == "threshold"
    assert rule.needs == frozenset({"series"})
    assert rule.series_names == frozenset({UTIL})


def test_it_has_documented_defaults():
    rule = _rule()
    assert rule.aggregation == "avg"
    assert rule.window == timedelta(minutes=5)
    assert rule.by == ()


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("avg", 0.5),
        ("min", 0.2),
        ("max", 0.9),
        ("sum", 2.5),
        ("count", 5.0),
        ("last", 0.3),
    ],
)
def test_it_aggregates_the_points_inside_the_window(aggregation, expected):
    # 7 points a minute apart: the first two (at now-6m and now-5m) are outside "5m"
    series = _series([100.0, 100.0, 0.2, 0.9, 0.6, 0.5, 0.3])
    rule = _rule(aggregation=aggregation, op=">=", value=0)
    findings = rule.evaluate(_ctx(series))
    assert len(findings) == 1
    assert dict(findings[0].labels) == _labels("node-1", "0")
    assert findings[0].value == pytest.approx(expected)
    assert findings[0].details == {"points": 5}


@pytest.mark.parametrize(
    ("op", "threshold", "fires"),
    [
        (">", 0.5, False),
        (">", 0.49, True),
        (">=", 0.5, True),
        (">=", 0.51, False),
        ("<", 0.5, False),
        ("<", 0.51, True),
        ("<=", 0.5, True),
        ("<=", 0.49, False),
        ("==", 0.5, True),
        ("==", 0.4, False),
        ("!=", 0.4, True),
        ("!=", 0.5, False),
    ],
)
def test_it_compares_with_each_operator(op, threshold, fires):
    series = _series([0.5, 0.5, 0.5])
    findings = _rule(op=op, value=threshold).evaluate(_ctx(series))
    assert bool(findings) is fires


def test_it_judges_each_series_on_its_own_by_default():
    busy = _series([0.9, 0.9], gpu="0")
    idle = _series([0.1, 0.1], gpu="1")
    findings = _rule().evaluate(_ctx(busy, idle))
    assert [f.labels["gpu"] for f in findings] == ["0"]


def test_it_pools_series_by_the_given_labels():
    series = (
        _series([0.9, 0.9], node="node-1", gpu="0"),
        _series([0.3, 0.3], node="node-1", gpu="1"),
        _series([0.1, 0.1], node="node-2", gpu="0"),
    )
    findings = _rule(by=["node"]).evaluate(_ctx(*series))
    assert [dict(f.labels) for f in findings] == [{"node": "node-1"}]
    assert findings[0].value == pytest.approx(0.6)
    counted = _rule(by=["node"], aggregation="count", op=">", value=0).evaluate(_ctx(*series))
    assert [(f.labels["node"], f.value) for f in counted] == [("node-1", 4.0), ("node-2", 2.0)]


def test_it_ignores_other_series_and_series_without_points_in_the_window():
    other = _series([0.9, 0.9], name="tcowatch_gpu_power_watts")
    old = Series(UTIL, _labels("node-1", "0"), ((NOW - timedelta(hours=1), 0.9),))
    future = Series(UTIL, _labels("node-1", "1"), ((NOW + timedelta(minutes=1), 0.9),))
    counted = _rule(aggregation="count", op=">=", value=0)
    assert counted.evaluate(_ctx(other, old, future)) == []


def test_it_takes_naive_times_as_utc():
    naive = Series(UTIL, _labels("node-1", "0"), ((NOW.replace(tzinfo=None), 0.9),))
    assert len(_rule().evaluate(_ctx(naive))) == 1


@pytest.mark.parametrize("missing", ["series", "op", "value"])
def test_it_requires_series_op_and_value(missing):
    params: dict[str, Any] = {"series": UTIL, "op": ">", "value": 0.5}
    del params[missing]
    with pytest.raises(RuleConfigError) as info:
        ThresholdRule(params)
    assert info.value.path == missing


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        _rule(threshold=3)
    assert info.value.path == "threshold"


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("series", "gpu_utilization"),
        ("series", 3),
        ("aggregation", "median"),
        ("window", "5 minutes"),
        ("window", "0m"),
        ("op", "=>"),
        ("value", "high"),
        ("value", None),
        ("by", ["model"]),
        ("by", "instance"),
    ],
)
def test_it_rejects_bad_values_naming_the_key(key, bad):
    with pytest.raises(RuleConfigError) as info:
        _rule(**{key: bad})
    assert info.value.path == key
