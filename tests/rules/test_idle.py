from __future__ import annotations

import math

import pytest

from rules.idle import DEFAULT_IDLE_POLICY, IdlePolicy


def _idle(
    policy: IdlePolicy = DEFAULT_IDLE_POLICY,
    *,
    util: float | None = 0.01,
    power: float | None = 80.0,
    limit: float | None = 700.0,
    tokens: float | None = 0.0,
) -> bool | None:
    return policy.is_idle(
        utilization_ratio=util, power_watts=power, power_limit_watts=limit, inference_tokens=tokens
    )


def test_it_calls_a_quiet_low_power_gpu_idle():
    assert _idle() is True


def test_it_answers_unknown_when_utilization_is_unknown():
    assert _idle(util=None) is None
    assert _idle(util=math.nan) is None


def test_it_is_not_idle_at_or_above_the_utilization_threshold():
    assert _idle(util=0.05) is False
    assert _idle(util=0.5) is False
    assert _idle(util=0.0499) is True


def test_it_is_not_idle_while_serving_tokens():
    assert _idle(tokens=1.0) is False


def test_it_treats_unknown_inference_as_no_evidence():
    assert _idle(tokens=None) is True


def test_it_is_not_idle_when_power_draw_is_high_despite_zero_utilization():
    assert _idle(util=0.0, power=0.3 * 700.0, limit=700.0) is False
    assert _idle(util=0.0, power=500.0, limit=700.0) is False
    assert _idle(util=0.0, power=209.0, limit=700.0) is True


@pytest.mark.parametrize(
    ("power", "limit"),
    [(None, 700.0), (500.0, None), (None, None), (500.0, 0.0), (math.nan, 700.0)],
)
def test_it_skips_the_power_check_when_power_or_limit_is_unknown(power, limit):
    assert _idle(util=0.0, power=power, limit=limit) is True


def test_it_uses_custom_thresholds():
    policy = IdlePolicy(utilization_below=0.2, power_below_ratio=0.5)
    assert _idle(policy, util=0.15, power=300.0, limit=700.0) is True
    assert _idle(policy, util=0.15, power=400.0, limit=700.0) is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"utilization_below": 0.0},
        {"utilization_below": 1.5},
        {"power_below_ratio": -0.1},
        {"power_below_ratio": "0.3"},
        {"utilization_below": True},
    ],
)
def test_it_rejects_thresholds_outside_zero_to_one(kwargs):
    with pytest.raises(ValueError):
        IdlePolicy(**kwargs)
