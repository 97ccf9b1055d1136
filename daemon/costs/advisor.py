"""Placement advisor: local, cloud or hybrid for one workload, with the reasons.

A transparent score. Each factor adds a signed weight (positive pulls towards owned GPUs,
negative towards the cloud) and one line of reason with the numbers behind it:

============================  =====================================================
factor                        weight
============================  =====================================================
data sensitivity              regulated +3, internal +1, public 0
latency need                  interactive +2, batch 0
request volatility            > 30% daily std/mean -3, otherwise +1, unmeasured 0
GPU utilization               < 30% -2, otherwise +1, unmeasured 0
break-even                    local (allocation basis) cheaper per million +2,
                              dearer -2, equal or unmeasured 0
team readiness                -1 per unmet item (certified Kubernetes engineers,
                              24/7 monitoring procedure, passed DR drills), met 0
============================  =====================================================

Placement: *hybrid* when both sides pull with at least ``conflict_weight`` (2) and neither
pulls at least twice as hard as the other (for example regulated data with a volatile load:
keep the baseline local, burst to the cloud); otherwise the sign of the score, and a score of
zero is hybrid too. Thresholds live in :class:`AdvisorPolicy`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

logger = logging.getLogger(__name__)

Placement = Literal["local", "cloud", "hybrid"]
LatencyNeed = Literal["interactive", "batch"]
DataSensitivity = Literal["public", "internal", "regulated"]


@dataclass(frozen=True)
class Workload:
    """A workload as declared in the config: what it needs, not what it measures."""

    name: str
    latency_need: LatencyNeed = "batch"
    data_sensitivity: DataSensitivity = "internal"
    model: str | None = None
    """The served model name its measurements are read under; default ``name``."""

    def __post_init__(self) -> None:
        """Raises ``ValueError`` naming the field for a value outside its choices."""
        if self.latency_need not in ("interactive", "batch"):
            raise ValueError(
                f"latency_need: expected interactive or batch, got {self.latency_need!r}"
            )
        if self.data_sensitivity not in ("public", "internal", "regulated"):
            raise ValueError(
                "data_sensitivity: expected public, internal or regulated, "
                f"got {self.data_sensitivity!r}"
            )


@dataclass(frozen=True)
class Readiness:
    """The source analysis's team readiness checklist for self-hosting (declared)."""

    k8s_certified_engineers: bool = False
    monitoring_24x7: bool = False
    dr_drills_passed: bool = False

    def unmet(self) -> list[str]:
        """Each unmet item as a phrase, in checklist order."""
        items = (
            (self.k8s_certified_engineers, "no certified Kubernetes engineers on staff"),
            (self.monitoring_24x7, "no 24/7 monitoring procedure"),
            (self.dr_drills_passed, "no passed disaster-recovery drills"),
        )
        return [text for met, text in items if not met]


@dataclass(frozen=True)
class AdvisorPolicy:
    """Thresholds and weights of the scoring; the defaults follow the source analysis."""

    volatility_threshold: float = 0.30
    low_utilization: float = 0.30
    conflict_weight: int = 2


@dataclass(frozen=True)
class Factor:
    """One factor's signed weight (+ local, - cloud) and its reason."""

    name: str
    weight: int
    reason: str


@dataclass(frozen=True)
class Advice:
    """The placement, the score behind it and one reason per factor (plus the verdict)."""

    workload: str
    placement: Placement
    score: int
    factors: list[Factor] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "workload": self.workload,
            "placement": self.placement,
            "score": self.score,
            "factors": [
                {"name": f.name, "weight": f.weight, "reason": f.reason} for f in self.factors
            ],
            "reasons": list(self.reasons),
        }


def daily_volatility(daily_requests: Sequence[float]) -> float | None:
    """Population standard deviation over mean of daily request counts.

    None with fewer than two days or a zero mean (nothing to compare). Raises ``ValueError``
    for a negative or non-finite count.
    """
    for value in daily_requests:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"daily_requests: expected non-negative counts, got {value}")
    if len(daily_requests) < 2:
        return None
    mean = math.fsum(daily_requests) / len(daily_requests)
    if mean == 0:
        return None
    variance = math.fsum((v - mean) ** 2 for v in daily_requests) / len(daily_requests)
    return math.sqrt(variance) / mean


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


def _money(amount: Decimal, currency: str | None) -> str:
    cents = amount.quantize(Decimal("0.01"))
    text = f"{cents:f}" if cents == amount else f"{amount.normalize():f}"
    return f"{currency} {text}" if currency else text


def _sensitivity(workload: Workload) -> Factor:
    if workload.data_sensitivity == "regulated":
        return Factor("data_sensitivity", 3, "regulated data: owned hardware keeps it in house")
    if workload.data_sensitivity == "internal":
        return Factor("data_sensitivity", 1, "internal data: a mild preference for owned hardware")
    return Factor("data_sensitivity", 0, "public data: no constraint on where it runs")


def _latency(workload: Workload) -> Factor:
    if workload.latency_need == "interactive":
        return Factor(
            "latency", 2, "interactive latency: local (or hybrid) avoids the cloud round trip"
        )
    return Factor("latency", 0, "batch latency: it can run anywhere")


def _volatility(volatility: float | None, policy: AdvisorPolicy) -> Factor:
    limit = _pct(policy.volatility_threshold)
    if volatility is None:
        return Factor("volatility", 0, "no request volatility measured yet (needs 2+ days)")
    if volatility > policy.volatility_threshold:
        return Factor(
            "volatility",
            -3,
            f"request volatility {_pct(volatility)} > {limit}: elastic cloud absorbs peaks",
        )
    return Factor(
        "volatility",
        1,
        f"request volatility {_pct(volatility)} <= {limit}: steady load suits owned GPUs",
    )


def _utilization(utilization: float | None, policy: AdvisorPolicy) -> Factor:
    limit = _pct(policy.low_utilization)
    if utilization is None:
        return Factor("utilization", 0, "no utilization measured yet")
    if utilization < policy.low_utilization:
        return Factor(
            "utilization",
            -2,
            f"GPU utilization {_pct(utilization)} < {limit}: bought GPUs would sit idle",
        )
    return Factor(
        "utilization",
        1,
        f"GPU utilization {_pct(utilization)} >= {limit}: owned GPUs are kept busy",
    )


def _break_even(local: Decimal | None, cloud: Decimal | None, currency: str | None) -> Factor:
    if local is None:
        return Factor("break_even", 0, "no local cost per million tokens measured yet")
    if cloud is None:
        return Factor("break_even", 0, "no cloud price per million tokens to compare with")
    here, there = _money(local, currency), _money(cloud, currency)
    if local < cloud:
        return Factor(
            "break_even",
            2,
            f"local {here}/M tokens (allocation basis) < cloud {there}/M: local is cheaper",
        )
    if local > cloud:
        return Factor(
            "break_even",
            -2,
            f"local {here}/M tokens (allocation basis) > cloud {there}/M: the cloud is cheaper",
        )
    return Factor("break_even", 0, f"local and cloud both cost {here}/M tokens: no difference")


def _readiness(readiness: Readiness) -> list[Factor]:
    unmet = readiness.unmet()
    if not unmet:
        return [
            Factor(
                "readiness",
                0,
                "team readiness met: certified Kubernetes engineers, 24/7 monitoring, DR drills",
            )
        ]
    return [Factor("readiness", -1, f"{item}: weighs against self-hosting") for item in unmet]


def _verdict(local_pull: int, cloud_pull: int, policy: AdvisorPolicy) -> tuple[Placement, str]:
    score = local_pull - cloud_pull
    tally = f"score {score:+d} (local {local_pull} vs cloud {cloud_pull})"
    low, high = min(local_pull, cloud_pull), max(local_pull, cloud_pull)
    if low >= policy.conflict_weight and high < 2 * low:
        return "hybrid", f"{tally}: strong reasons both ways: baseline local, burst to the cloud"
    if score > 0:
        return "local", f"{tally}: local"
    if score < 0:
        return "cloud", f"{tally}: cloud"
    return "hybrid", f"{tally}: no side outweighs the other: keep both options"


def advise(
    workload: Workload,
    *,
    volatility: float | None,
    utilization: float | None,
    local_cost_per_million: Decimal | None,
    cloud_price_per_million: Decimal | None,
    readiness: Readiness,
    currency: str | None = None,
    policy: AdvisorPolicy | None = None,
) -> Advice:
    """Score ``workload`` and place it. Missing measurements (None) become reasons, not errors.

    ``volatility`` is daily std/mean (see :func:`daily_volatility`), ``utilization`` a ratio
    0..1, ``local_cost_per_million`` the self-hosted cost on the allocation basis and
    ``cloud_price_per_million`` today's API price, both in ``currency``. Raises ``ValueError``
    for a negative measurement.
    """
    policy = policy or AdvisorPolicy()
    for name, value in (("volatility", volatility), ("utilization", utilization)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"{name}: expected a non-negative ratio, got {value}")
    for name, money in (
        ("local_cost_per_million", local_cost_per_million),
        ("cloud_price_per_million", cloud_price_per_million),
    ):
        if money is not None and (not money.is_finite() or money < 0):
            raise ValueError(f"{name}: expected a non-negative amount, got {money}")
    factors = [
        _sensitivity(workload),
        _latency(workload),
        _volatility(volatility, policy),
        _utilization(utilization, policy),
        _break_even(local_cost_per_million, cloud_price_per_million, currency),
        *_readiness(readiness),
    ]
    local_pull = sum(f.weight for f in factors if f.weight > 0)
    cloud_pull = -sum(f.weight for f in factors if f.weight < 0)
    placement, verdict = _verdict(local_pull, cloud_pull, policy)
    logger.debug("advice for %s: %s (%s)", workload.name, placement, verdict)
    return Advice(
        workload=workload.name,
        placement=placement,
        score=local_pull - cloud_pull,
        factors=factors,
        reasons=[f.reason for f in factors] + [verdict],
    )
