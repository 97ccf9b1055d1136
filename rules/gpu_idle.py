"""``gpu_idle``: GPUs that hold memory but do no work over the window (allocated but idle).

A GPU is reported when, over the window, it is idle by ``rules.idle.IdlePolicy`` (average
utilization, average power against the power limit, inference tokens: never one signal alone),
its peak utilization stayed below twice the threshold (a bursty GPU is not idle), it is not
down, it has at least ``min_minutes`` per-minute rollups, and its average used memory is at
least ``min_memory_used_bytes`` (unknown memory: not reported, we cannot say it is allocated).

Finding labels: ``node``, ``gpu`` (index), ``uuid``, ``model_name`` (GPU name); value: average
utilization ratio.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from rules.base import Finding, GpuWindow, RuleContext
from rules.idle import IdlePolicy
from rules.params import duration, merge_params, ratio, whole_number

logger = logging.getLogger(__name__)

GIB = 1024**3
_BURST_FACTOR = 2.0

_DEFAULTS: Mapping[str, Any] = {
    "utilization_below": 0.05,
    "power_below_ratio": 0.3,
    "window": "10m",
    "min_memory_used_bytes": GIB,
    "min_minutes": 3,
}


class GpuIdleRule:
    """Allocated-but-idle GPUs. Constructor raises ``RuleConfigError`` naming the bad key
    (unknown keys included); ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "gpu_idle"
    needs: frozenset[str] = frozenset({"gpus"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.utilization_below = ratio("utilization_below", merged["utilization_below"])
        self.power_below_ratio = ratio("power_below_ratio", merged["power_below_ratio"])
        self.window: timedelta = duration("window", merged["window"])
        self.min_memory_used_bytes = whole_number(
            "min_memory_used_bytes", merged["min_memory_used_bytes"], minimum=0
        )
        self.min_minutes = whole_number("min_minutes", merged["min_minutes"], minimum=1)
        self.policy = IdlePolicy(
            utilization_below=self.utilization_below, power_below_ratio=self.power_below_ratio
        )

    def _is_idle(self, gpu: GpuWindow) -> bool:
        if gpu.down or gpu.minutes < self.min_minutes:
            return False
        if gpu.avg_memory_used_bytes is None:
            return False
        if gpu.avg_memory_used_bytes < self.min_memory_used_bytes:
            return False
        idle = self.policy.is_idle(
            utilization_ratio=gpu.avg_utilization_ratio,
            power_watts=gpu.avg_power_watts,
            power_limit_watts=gpu.power_limit_watts,
            inference_tokens=gpu.inference_tokens,
        )
        if idle is not True:
            return False
        peak = gpu.max_utilization_ratio
        return peak is None or peak < self.utilization_below * _BURST_FACTOR

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per allocated-but-idle GPU, in the order of ``ctx.gpus``."""
        findings = []
        for gpu in ctx.gpus:
            if not self._is_idle(gpu):
                continue
            labels = {
                "node": gpu.node,
                "gpu": str(gpu.index),
                "uuid": gpu.uuid,
                "model_name": gpu.name,
            }
            value = gpu.avg_utilization_ratio if gpu.avg_utilization_ratio is not None else 0.0
            findings.append(Finding(labels=labels, value=value))
        return findings
