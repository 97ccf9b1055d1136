"""``cache_hit_rate``: a model's prefix-cache hit rate is below a target.

Per group (``by``: each model, or each model on each node) over the window:

- **Counters** (vLLM V1): when the group queried the prefix cache at all (``cache_queries`` > 0),
  the hit rate is ``cache_hits / cache_queries`` summed over the group's instances, judged only
  when at least ``min_queries`` tokens were queried (a quiet model says nothing about its cache).
- **Gauge** (SGLang, vLLM V0): otherwise, the engine's own ``cache_hit_ratio`` gauge,
  averaged over the instances that report it (weighted by their minutes), judged only when
  those instances together have at least ``min_minutes`` per-minute readings. Gauges carry no
  query volume, so ``min_queries`` does not apply to them.

A group is reported when its hit rate is strictly below ``below``; a group with neither
counters nor gauge is never reported.

Params: ``window`` (duration, default ``15m``), ``below`` (ratio in (0, 1], default 0.3),
``min_queries`` (tokens, number >= 0, default 1000), ``min_minutes`` (whole number >= 1,
default 5), ``by`` (``[model]`` (default) or ``[model, node]``).

Finding labels: ``model`` (and ``node`` with ``by: [model, node]``); value: the hit ratio (0-1);
details: ``source`` (``counters`` or ``gauge``), ``queries`` (tokens queried; 0 for gauges).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from rules.base import Finding, ModelWindow, RuleConfigError, RuleContext
from rules.params import duration, merge_params, number, ratio, string_list, whole_number

logger = logging.getLogger(__name__)

GROUP_LABELS = ("model", "node")
"""Labels ``by`` may name; ``model`` is required."""

_DEFAULTS: Mapping[str, Any] = {
    "window": "15m",
    "below": 0.3,
    "min_queries": 1000,
    "min_minutes": 5,
    "by": ["model"],
}


class CacheHitRateRule:
    """Prefix-cache hit rate below a target per model. Constructor raises ``RuleConfigError``
    naming the bad key; ``evaluate`` never raises on a well-formed context."""

    kind: ClassVar[str] = "cache_hit_rate"
    needs: frozenset[str] = frozenset({"models"})
    series_names: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any]) -> None:
        merged = merge_params(params, _DEFAULTS)
        self.window: timedelta = duration("window", merged["window"], example="15m")
        self.below = ratio("below", merged["below"])
        self.min_queries = number("min_queries", merged["min_queries"], minimum=0)
        self.min_minutes = whole_number("min_minutes", merged["min_minutes"], minimum=1)
        by = tuple(dict.fromkeys(string_list("by", merged["by"])))
        for label in by:
            if label not in GROUP_LABELS:
                raise RuleConfigError(
                    "by", f"cannot group by {label!r} (known: {', '.join(GROUP_LABELS)})"
                )
        if "model" not in by:
            raise RuleConfigError("by", "must include 'model' (e.g. [model] or [model, node])")
        self.by: tuple[str, ...] = by

    def _group_key(self, window: ModelWindow) -> tuple[tuple[str, str], ...]:
        values = {"model": window.model, "node": window.node}
        return tuple((label, values[label]) for label in self.by)

    def _judge(self, windows: list[ModelWindow]) -> tuple[float, dict[str, Any]] | None:
        """The group's hit ratio and details when it is below target, else ``None``."""
        queries = sum(w.cache_queries for w in windows)
        if queries > 0:
            if queries < self.min_queries:
                return None
            hit_ratio = sum(w.cache_hits for w in windows) / queries
            details: dict[str, Any] = {"source": "counters", "queries": queries}
        else:
            gauged = [w for w in windows if w.cache_hit_ratio is not None and w.minutes > 0]
            minutes = sum(w.minutes for w in gauged)
            if not gauged or minutes < self.min_minutes:
                return None
            hit_ratio = sum((w.cache_hit_ratio or 0.0) * w.minutes for w in gauged) / minutes
            details = {"source": "gauge", "queries": 0.0}
        if not hit_ratio < self.below:
            return None
        return hit_ratio, details

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """One finding per group below target, groups in order of first appearance."""
        groups: dict[tuple[tuple[str, str], ...], list[ModelWindow]] = {}
        for window in ctx.models:
            groups.setdefault(self._group_key(window), []).append(window)
        findings = []
        for key, windows in groups.items():
            judged = self._judge(windows)
            if judged is not None:
                hit_ratio, details = judged
                findings.append(Finding(labels=dict(key), value=hit_ratio, details=details))
        return findings
