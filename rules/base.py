"""The rule seam: what a rule sees (``RuleContext``), what it returns (``Finding``), the table.

Rules are pure judges: ``evaluate(ctx) -> list[Finding]`` does no I/O and reads the time only
from ``ctx.now``, so tests feed literal data and a fixed clock.

Error contract: a rule's constructor raises ``RuleConfigError`` (with the key path of the bad
parameter, relative to ``params``) for bad parameters; ``evaluate`` must not raise for any
well-formed context. A rule that raises anyway is logged and counted by the daemon, and its
alerts keep their previous state for that tick.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class GpuWindow:
    """One GPU over the rule's window, from the per-minute rollups plus the latest sample.

    Every ``None`` means "not reported in the window", never zero.
    """

    uuid: str
    node: str
    index: int
    name: str
    minutes: int
    """Number of per-minute rollup buckets in the window that have samples."""
    avg_utilization_ratio: float | None
    max_utilization_ratio: float | None
    avg_power_watts: float | None
    power_limit_watts: float | None
    avg_memory_used_bytes: float | None
    memory_total_bytes: int | None
    inference_tokens: float | None
    """Tokens processed in the window by the model instances on this GPU (or, when the
    instance-to-GPU mapping is unknown, on its node). ``None`` = no inference source known."""
    down: bool = False


@dataclass(frozen=True, slots=True)
class ModelWindow:
    """One model on one node over the rule's window (sums of per-minute counter increases).

    ``cache_queries``/``cache_hits`` are prefix-cache token counts (vLLM V1 counters);
    ``cache_hit_ratio`` is the engine's own gauge for engines without counters (SGLang, vLLM V0),
    ``None`` when not reported.
    """

    model: str
    node: str
    minutes: int
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    requests: float = 0.0
    cache_queries: float = 0.0
    cache_hits: float = 0.0
    cache_hit_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class CostSeries:
    """Daily cost of one series (one provider / service / account), complete UTC days only.

    ``days`` and ``costs`` are aligned and ascending; a day without records inside the series'
    history is present with cost 0. ``by_dimension`` breaks each day down by FOCUS dimension
    (``region_id``, ``sku_id``, ``resource_id``, ``charge_category``, ``sub_account_id``):
    dimension -> value -> daily costs aligned with ``days`` (the builder keeps the biggest
    values only). Money in ``currency``, never converted.
    """

    labels: Mapping[str, str]
    currency: str
    days: tuple[date, ...]
    costs: tuple[Decimal, ...]
    by_dimension: Mapping[str, Mapping[str, tuple[Decimal, ...]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BudgetView:
    """A monthly budget and the month so far (``forecast`` is ``None`` early in the month)."""

    name: str
    currency: str
    amount: Decimal
    month_to_date: Decimal
    forecast: Decimal | None
    provider: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class RollbackView:
    """A rollback; open while ``restored_at`` is ``None``."""

    id: int
    service: str
    from_version: str
    to_version: str
    started_at: datetime
    restored_at: datetime | None
    sla_target: timedelta
    reason: str = ""
    owner: str = ""


@dataclass(frozen=True, slots=True)
class DebtView:
    """A technical-debt item."""

    id: int
    title: str
    status: str
    """``backlog``, ``planned``, ``in_progress`` or ``done``."""
    owner: str
    severity: str
    monthly_cost: Decimal
    currency: str
    due_date: datetime | None


@dataclass(frozen=True, slots=True)
class Series:
    """One stored series (a name from ``rules.series.SERIES``): labels and ascending points."""

    name: str
    labels: Mapping[str, str]
    points: tuple[tuple[datetime, float], ...]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may look at. Built by the daemon for each evaluation.

    The daemon fills only what the rule declares in ``needs`` (see ``Rule``); the rest stays
    empty. ``daily_requests`` maps a model to its requests per complete UTC day (ascending).
    """

    now: datetime
    window: timedelta
    gpus: tuple[GpuWindow, ...] = ()
    models: tuple[ModelWindow, ...] = ()
    costs: tuple[CostSeries, ...] = ()
    budgets: tuple[BudgetView, ...] = ()
    rollbacks: tuple[RollbackView, ...] = ()
    debts: tuple[DebtView, ...] = ()
    daily_requests: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    series: tuple[Series, ...] = ()


NEEDS = frozenset(
    {"gpus", "models", "costs", "budgets", "rollbacks", "debts", "daily_requests", "series"}
)
"""What a rule can ask the daemon to build (``Rule.needs``); ``series`` also needs
``Rule.series_names``."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One series the rule's condition holds for: its labels (without ``alertname``) and value."""

    labels: Mapping[str, str]
    value: float
    details: Mapping[str, Any] = field(default_factory=dict)
    """Extra facts the daemon records (``cost_anomaly``: ``day``, ``expected``, ``actual``,
    ``impact``, ``currency``, ``root_causes``); not part of the alert's identity."""


class RuleConfigError(ValueError):
    """A bad rule parameter; ``path`` is the key path inside ``params`` (e.g. ``"threshold"``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Rule(Protocol):
    """A built-in rule kind. See the module docstring for the error contract."""

    kind: ClassVar[str]
    window: timedelta
    """How much history the rule needs; the daemon builds the context over this window."""
    needs: frozenset[str]
    """Which ``RuleContext`` fields to build (a subset of ``NEEDS``)."""
    series_names: frozenset[str]
    """For ``"series"`` in ``needs``: which ``rules.series.SERIES`` names to load."""

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """Return the findings for this tick; pure, must not raise on a well-formed context."""
        ...


RULES: Mapping[str, str] = {
    "gpu_idle": "rules.gpu_idle.GpuIdleRule",
    "fleet_utilization": "rules.fleet_utilization.FleetUtilizationRule",
    "cache_hit_rate": "rules.cache_hit.CacheHitRateRule",
    "cost_anomaly": "rules.cost_anomaly.CostAnomalyRule",
    "budget_forecast": "rules.budget_forecast.BudgetForecastRule",
    "rollback_sla": "rules.rollback_sla.RollbackSlaRule",
    "debt_overdue": "rules.debt.DebtOverdueRule",
    "request_volatility": "rules.volatility.RequestVolatilityRule",
    "threshold": "rules.threshold.ThresholdRule",
}
"""Built-in rule kinds as dotted paths, imported on first use."""


def load_rule_class(kind: str) -> Any:
    """Import the rule class for ``kind``; ``KeyError`` names the known kinds."""
    if kind not in RULES:
        known = ", ".join(sorted(RULES))
        raise KeyError(f"unknown rule kind {kind!r} (known: {known})")
    return pkgutil.resolve_name(RULES[kind])
