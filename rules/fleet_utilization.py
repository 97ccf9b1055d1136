"""``fleet_utilization``: the fleet (or each node) is busy less than a target on average.

A fleet that averages 18% when it should run toward 70% is money idling; this rule reports it.
Over the window, every GPU that is not down, reported its utilization and has at least
``min_minutes`` per-minute rollups counts; the value is the minute-weighted average of their
utilization ratios (a GPU seen for 60 minutes weighs six times one seen for 10). Down GPUs and
GPUs with too few minutes are left out entirely, they neither lower nor raise the average.

A group is reported when it has at least ``min_gpus`` counted GPUs and its average is strictly
below ``below`` (exactly ``below`` is not reported).

Params: ``window`` (duration, default ``1h``), ``below`` (ratio in (0, 1], default 0.3),
``min_gpus`` (whole number >= 1, default 1), ``min_minutes`` (whole number >= 1, default 10),
``by`` (list of labels among ``node``; default ``[]`` = the whole fleet as one group).

Finding labels: none with ``by: []`` (the alert is the whole fleet), ``node`` with
``by: [node]``; value: the average utilization ratio (0-1); details: ``gpus`` (GPUs counted).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from rules.base import Finding, GpuWindow, RuleConfigError, RuleContext
from rules.params import duration, merge_params, ratio, string_list, whole_number

logger = logging.getLogger(__name__)

GROUP_LABELS = ("node",)
"""Labels ``by`` may name."""

_DEFAULTS: Mapping[str, Any] = {
    "window": "1h",
    "below": 0.3,
    "min_gpus": 1,
    "min_minutes": 10,
    "by": [],
}


class FleetUtilizationRule:
    """Fleet (or per-node) average utilization below a target. Constructor raises
    ``RuleConfigError`` naming the bad key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "fleet_utilization"
    needs: frozenset[str] = frozenset({"gpus"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.window: timedelta = duration("window", merged["window"], example="1h")
        self.below = ratio("below", merged["below"])
        self.min_gpus = whole_number("min_gpus", merged["min_gpus"], minimum=1)
        self.min_minutes = whole_number("min_minutes", merged["min_minutes"], minimum=1)
        by = string_list("by", merged["by"])
        for label in by:
            if label not in GROUP_LABELS:
                raise RuleConfigError(
                    "by", f"cannot group by {label!r} (known: {', '.join(GROUP_LABELS)})"
                )
        self.by: tuple[str, ...] = tuple(dict.fromkeys(by))

    def _counted(self, gpu: GpuWindow) -> bool:
        return (
            not gpu.down
            and gpu.minutes >= self.min_minutes
            and gpu.avg_utilization_ratio is not None
        )

    def _group_key(self, gpu: GpuWindow) -> tuple[tuple[str, str], ...]:
        values = {"node": gpu.node}
        return tuple((label, values[label]) for label in self.by)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per group below target, groups in order of first appearance."""
        groups: dict[tuple[tuple[str, str], ...], list[GpuWindow]] = {}
        for gpu in ctx.gpus:
            if self._counted(gpu):
                groups.setdefault(self._group_key(gpu), []).append(gpu)
        findings = []
        for key, gpus in groups.items():
            if len(gpus) < self.min_gpus:
                continue
            minutes = sum(gpu.minutes for gpu in gpus)
            weighted = sum((gpu.avg_utilization_ratio or 0.0) * gpu.minutes for gpu in gpus)
            average = weighted / minutes
            if average < self.below:
                findings.append(
                    Finding(labels=dict(key), value=average, details={"gpus": len(gpus)})
                )
        return findings
