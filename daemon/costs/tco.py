"""Total cost of ownership: N-year local (self-hosted GPUs) versus cloud, by category.

The categories are those of the source analysis: hardware depreciation, operations staff,
disaster recovery, upgrades/migration and cloud usage. Every yearly figure is a constant cost
per year; upgrades are ``upgrades`` events of ``upgrade_cost_per_event`` over the whole
horizon, spread evenly over its years in the cumulative per-year view (the horizon total is
exact either way). With the analysis's inputs (the defaults of :class:`TcoInputs`) the
five-year totals are exactly 2,350,000 local and 690,000 cloud.

All money is :class:`decimal.Decimal`; nothing goes through ``float``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Final, Literal

logger = logging.getLogger(__name__)

MONEY_FIELDS: Final = (
    "hardware_depreciation_per_year",
    "ops_staff_per_year",
    "dr_per_year",
    "upgrade_cost_per_event",
    "upgrades",
    "cloud_ops_per_year",
    "cloud_dr_per_year",
    "cloud_usage_per_year",
)
"""The numeric inputs of :class:`TcoInputs` (``upgrades`` is a count, the rest money)."""

CATEGORY_LABELS: Final = {
    "hardware_depreciation": "Hardware depreciation",
    "operations_staff": "Operations staff",
    "disaster_recovery": "Disaster recovery",
    "upgrades_migration": "Upgrades / migration",
    "cloud_usage": "Cloud usage",
}
"""Row keys of :class:`TcoResult` in display order, with their labels."""

HOURS_PER_YEAR: Final = Decimal(8760)
MAX_INPUT: Final = Decimal("1e15")
"""Every numeric input stays below this, so the arithmetic stays exact and in range."""
_MILLION: Final = Decimal(1_000_000)


def _as_decimal(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ValueError(f"{name}: expected a Decimal or int, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if number < 0:
        raise ValueError(f"{name}: must not be negative, got {value}")
    if number >= MAX_INPUT:
        raise ValueError(f"{name}: must be below 1e15, got {value}")
    return number


@dataclass(frozen=True)
class TcoInputs:
    """The inputs of a TCO comparison; the defaults are the source analysis's numbers (CNY).

    Construction raises ``ValueError`` naming the field for a negative, non-finite, float or
    too large (>= 1e15) value (ints are accepted and stored as ``Decimal``) and for ``years``
    below 1.
    ``measured`` names the fields that came from tcowatch's measurements rather than guesses.
    """

    currency: str = "CNY"
    years: int = 5
    hardware_depreciation_per_year: Decimal = Decimal(80_000)
    ops_staff_per_year: Decimal = Decimal(240_000)
    dr_per_year: Decimal = Decimal(120_000)
    upgrade_cost_per_event: Decimal = Decimal(50_000)
    upgrades: Decimal = Decimal(3)
    """Upgrade/migration events over the whole horizon (not per year)."""
    cloud_ops_per_year: Decimal = Decimal(60_000)
    cloud_dr_per_year: Decimal = Decimal(30_000)
    cloud_usage_per_year: Decimal = Decimal(48_000)
    measured: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if isinstance(self.years, bool) or not isinstance(self.years, int) or self.years < 1:
            raise ValueError(f"years: expected a whole number of at least 1, got {self.years!r}")
        if not self.currency.strip():
            raise ValueError("currency: must not be empty")
        for name in MONEY_FIELDS:
            object.__setattr__(self, name, _as_decimal(name, getattr(self, name)))
        unknown = set(self.measured) - set(MONEY_FIELDS)
        if unknown:
            raise ValueError(f"measured: unknown fields {sorted(unknown)}")
        object.__setattr__(self, "measured", frozenset(self.measured))

    def as_dict(self) -> dict[str, str | int | list[str]]:
        """The inputs as JSON-ready values (Decimals as strings)."""
        out: dict[str, str | int | list[str]] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "measured":
                out[f.name] = sorted(value)
            elif isinstance(value, Decimal):
                out[f.name] = str(value)
            else:
                out[f.name] = value
        return out


@dataclass(frozen=True)
class TcoRow:
    """One category's total over the horizon on each side (0 where it does not apply)."""

    category: str
    local: Decimal
    cloud: Decimal

    @property
    def label(self) -> str:
        """The category's display label."""
        return CATEGORY_LABELS.get(self.category, self.category)


@dataclass(frozen=True)
class TcoYear:
    """Cumulative cost at the end of ``year`` (1-based) on each side, for the board's chart."""

    year: int
    local: Decimal
    cloud: Decimal


@dataclass(frozen=True)
class TcoResult:
    """A computed comparison; ``rows`` follow :data:`CATEGORY_LABELS` order."""

    rows: list[TcoRow]
    local_total: Decimal
    cloud_total: Decimal
    currency: str
    years: int = 5
    yearly: list[TcoYear] = field(default_factory=list)
    break_even_year: int | None = None
    """First year whose cumulative local cost is at most the cloud's; None if none is."""

    @property
    def difference(self) -> Decimal:
        """Local minus cloud over the horizon: positive means the cloud is cheaper."""
        return self.local_total - self.cloud_total

    @property
    def cheaper(self) -> Literal["local", "cloud", "equal"]:
        """Which side costs less over the horizon."""
        if self.local_total == self.cloud_total:
            return "equal"
        return "local" if self.local_total < self.cloud_total else "cloud"

    def as_dict(self) -> dict[str, object]:
        """The result as JSON-ready values (Decimals as strings)."""
        return {
            "currency": self.currency,
            "years": self.years,
            "rows": [
                {
                    "category": r.category,
                    "label": r.label,
                    "local": str(r.local),
                    "cloud": str(r.cloud),
                }
                for r in self.rows
            ],
            "local_total": str(self.local_total),
            "cloud_total": str(self.cloud_total),
            "difference": str(self.difference),
            "cheaper": self.cheaper,
            "yearly": [
                {"year": y.year, "local": str(y.local), "cloud": str(y.cloud)} for y in self.yearly
            ],
            "break_even_year": self.break_even_year,
        }


def _horizon_rows(inputs: TcoInputs, years: Decimal) -> list[TcoRow]:
    zero = Decimal(0)
    upgrades_total = inputs.upgrade_cost_per_event * inputs.upgrades * years / inputs.years
    return [
        TcoRow("hardware_depreciation", inputs.hardware_depreciation_per_year * years, zero),
        TcoRow(
            "operations_staff", inputs.ops_staff_per_year * years, inputs.cloud_ops_per_year * years
        ),
        TcoRow("disaster_recovery", inputs.dr_per_year * years, inputs.cloud_dr_per_year * years),
        TcoRow("upgrades_migration", upgrades_total, zero),
        TcoRow("cloud_usage", zero, inputs.cloud_usage_per_year * years),
    ]


def compute_tco(inputs: TcoInputs) -> TcoResult:
    """Compare local and cloud over ``inputs.years``; pure and exact, it raises nothing.

    The per-year cumulative view spreads the upgrade events evenly, so its last year equals
    the horizon totals.
    """
    rows = _horizon_rows(inputs, Decimal(inputs.years))
    local_total = sum((r.local for r in rows), Decimal(0))
    cloud_total = sum((r.cloud for r in rows), Decimal(0))
    yearly: list[TcoYear] = []
    for year in range(1, inputs.years + 1):
        partial = _horizon_rows(inputs, Decimal(year))
        yearly.append(
            TcoYear(
                year,
                sum((r.local for r in partial), Decimal(0)),
                sum((r.cloud for r in partial), Decimal(0)),
            )
        )
    break_even = next((y.year for y in yearly if y.local <= y.cloud), None)
    return TcoResult(
        rows=rows,
        local_total=local_total,
        cloud_total=cloud_total,
        currency=inputs.currency,
        years=inputs.years,
        yearly=yearly,
        break_even_year=break_even,
    )


def inputs_from_measurements(
    base: TcoInputs,
    *,
    tokens_per_month: Decimal | None = None,
    cloud_price_per_million: Decimal | None = None,
    gpus: int | None = None,
    gpu_capex_per_year: Decimal | None = None,
    gpu_capex_per_hour: Decimal | None = None,
    utilization: Decimal | None = None,
    cloud_gpu_price_per_hour: Decimal | None = None,
) -> TcoInputs:
    """``base`` with its guesses replaced by what tcowatch measured; the result's ``measured``
    names the replaced fields.

    - Cloud usage on the API basis: ``tokens_per_month * 12 * cloud_price_per_million / 1e6``
      (both needed).
    - Or cloud usage on the rented-GPU basis: an elastic cloud pays only for busy hours,
      ``gpus * utilization * 8760 * cloud_gpu_price_per_hour`` (all three needed;
      ``utilization`` is a ratio 0..1).
    - Hardware depreciation: ``gpus * gpu_capex_per_year``, or ``gpus * gpu_capex_per_hour *
      8760`` (the capex share of the local cost model's hourly cost, never its energy or ops).

    Raises ``ValueError`` naming the field for a negative value, a utilization above 1, a half
    given pair, a utilization without a cloud GPU price, both cloud bases at once, or both
    capex forms at once.
    """
    given = {
        "tokens_per_month": tokens_per_month,
        "cloud_price_per_million": cloud_price_per_million,
        "gpu_capex_per_year": gpu_capex_per_year,
        "gpu_capex_per_hour": gpu_capex_per_hour,
        "utilization": utilization,
        "cloud_gpu_price_per_hour": cloud_gpu_price_per_hour,
    }
    values = {k: _as_decimal(k, v) for k, v in given.items() if v is not None}
    if gpus is not None:
        _as_decimal("gpus", gpus)
    if "utilization" in values and values["utilization"] > 1:
        raise ValueError(f"utilization: expected a ratio between 0 and 1, got {utilization}")
    changes: dict[str, Decimal] = {}

    api = [k for k in ("tokens_per_month", "cloud_price_per_million") if k in values]
    if len(api) == 1:
        missing = "cloud_price_per_million" if api[0] == "tokens_per_month" else "tokens_per_month"
        raise ValueError(f"{missing}: needed together with {api[0]}")
    rented = "cloud_gpu_price_per_hour" in values
    if rented and api:
        raise ValueError(
            "cloud_gpu_price_per_hour: give either the API basis (tokens_per_month) "
            "or the rented-GPU basis, not both"
        )
    if api:
        changes["cloud_usage_per_year"] = (
            values["tokens_per_month"] * 12 * values["cloud_price_per_million"] / _MILLION
        )
    if "utilization" in values and not rented:
        raise ValueError("utilization: only used with cloud_gpu_price_per_hour")
    if rented:
        if gpus is None or "utilization" not in values:
            raise ValueError("cloud_gpu_price_per_hour: needs gpus and utilization")
        changes["cloud_usage_per_year"] = (
            Decimal(gpus)
            * values["utilization"]
            * HOURS_PER_YEAR
            * values["cloud_gpu_price_per_hour"]
        )

    if "gpu_capex_per_year" in values and "gpu_capex_per_hour" in values:
        raise ValueError("gpu_capex_per_hour: give either gpu_capex_per_year or it, not both")
    per_year = values.get("gpu_capex_per_year")
    if "gpu_capex_per_hour" in values:
        per_year = values["gpu_capex_per_hour"] * HOURS_PER_YEAR
    if per_year is not None:
        if gpus is None:
            raise ValueError("gpus: needed to derive hardware depreciation from per-GPU capex")
        changes["hardware_depreciation_per_year"] = Decimal(gpus) * per_year

    logger.debug("TCO inputs replaced by measurements: %s", sorted(changes))
    updates: dict[str, Any] = {**changes, "measured": base.measured | frozenset(changes)}
    return replace(base, **updates)
