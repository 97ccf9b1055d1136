"""Self-hosted costs as FOCUS lines, so local and cloud costs land in one FinOps tool.

``self_hosted_lines`` reads the stored rollups and yields, per UTC day:

* one **GPU line** per GPU: ``ConsumedQuantity`` = GPU-hours observed (number of rollup buckets
  times the bucket length), ``ConsumedUnit`` ``Hours``, ``BilledCost`` = capex + fixed share +
  energy from ``localcost.gpu_cost`` for those hours and the measured joules (``avg_power_watts``
  times the bucket length for buckets without joules), and the ``x_`` columns ``x_GpuHours``,
  ``x_IdleHours`` (idle seconds / 3600), ``x_EnergyJoules`` (empty when no bucket knew its
  energy), ``x_CapexCost``, ``x_FixedCost``, ``x_EnergyCost``;
* one **token line** per model instance: ``ConsumedQuantity`` = prompt + generation tokens,
  ``ConsumedUnit`` ``Tokens``, ``BilledCost`` 0 (the cost of serving them is on the GPU lines;
  counting it twice would double the bill), and ``x_PromptTokens``, ``x_GenerationTokens``,
  ``x_CachedTokens`` (prefix-cache hits), ``x_Requests``.

Rollup resolution: for each GPU (or model instance) and hour, the hourly row is used when one
exists and lies wholly inside [start, end); otherwise that hour's minute rows are. Nothing is
counted twice, and ranges whose minute rows retention has removed still export from hours.
Time the monitor did not observe (the daemon was down) is not billed: the GPU lines are a
floor, not an invoice.

A GPU's cost model is looked up by its exact name (``gpu.name``, e.g. ``NVIDIA H100 80GB
HBM3``) in ``models``, else ``default_model``; a GPU with neither, or whose model is in another
currency than the export (no FX), is skipped, logged at WARNING and appended to ``skipped``.

Money is rounded half-even to 8 decimal places (the store's scale), quantities to 10.

Error contract: ``ValueError`` for naive or reversed datetimes and for a ``default_model`` name
missing from ``models``; database errors propagate. ``write_focus_csv`` raises only what the
text stream raises.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TextIO

from sqlmodel import Session, col, select

from collectors.base import CostLine
from daemon.costs.localcost import GpuCostModel, gpu_cost
from daemon.store.models import Gpu, GpuRollup, InferenceRollup, Node

logger = logging.getLogger(__name__)

PROVIDER = "self-hosted"
SERVICE_NAME = "Self-hosted inference"
SERVICE_CATEGORY = "AI and Machine Learning"
MINUTE, HOUR = 60, 3600
MONEY_QUANTUM = Decimal("0.00000001")
QUANTITY_QUANTUM = Decimal("0.0000000001")
SECONDS_PER_HOUR = Decimal(HOUR)
DAY = timedelta(days=1)

GPU_X_COLUMNS = (
    "x_GpuHours",
    "x_IdleHours",
    "x_EnergyJoules",
    "x_CapexCost",
    "x_FixedCost",
    "x_EnergyCost",
)
TOKEN_X_COLUMNS = ("x_PromptTokens", "x_GenerationTokens", "x_CachedTokens", "x_Requests")


@dataclass(frozen=True)
class SkippedGpu:
    """A GPU left out of the export, and why."""

    uuid: str
    gpu_model: str
    reason: str


@dataclass
class _GpuDay:
    seconds: int = 0
    idle_seconds: Decimal = Decimal(0)
    energy_joules: Decimal = Decimal(0)
    energy_known: bool = False


@dataclass
class _ModelDay:
    prompt: Decimal = Decimal(0)
    generation: Decimal = Decimal(0)
    cached: Decimal = Decimal(0)
    requests: Decimal = Decimal(0)
    engine: str = ""
    gpus: set[str] = field(default_factory=set)


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _dec(value: float | None) -> Decimal | None:
    """A stored float as the Decimal of its shortest repr (no binary expansion noise)."""
    return None if value is None else Decimal(repr(value))


def _plain(value: Decimal) -> str:
    """``value`` as plain decimal text (never E-notation), integral values without a point."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


def _money(value: Decimal) -> Decimal:
    """Rounded half-even to 8 places, trailing zeros dropped (the value is unchanged)."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()


def _quantity(value: Decimal) -> Decimal:
    """Rounded half-even to 10 places, trailing zeros dropped."""
    return value.quantize(QUANTITY_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()


def _key(*parts: str) -> str:
    return "sh-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _month_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = (
        start.replace(year=start.year + 1, month=1)
        if day.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def _day_period(day: date, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return max(first, start), min(first + DAY, end)


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _buckets(
    session: Session, table: Any, start: datetime, end: datetime, key: Any
) -> Iterator[Any]:
    """Rows of ``table`` in [start, end): hourly rows wholly inside, else the minute rows of the
    hours no hourly row covers. ``key(row)`` identifies the series (GPU or model instance)."""
    covered: set[tuple[Any, datetime]] = set()
    hourly = session.exec(
        select(table).where(
            col(table.resolution_seconds) == HOUR,
            col(table.bucket_start) >= start,
            col(table.bucket_start) <= end - timedelta(seconds=HOUR),
        )
    )
    for row in hourly:
        covered.add((key(row), _utc(row.bucket_start, "bucket_start")))
        yield row
    minutes = session.exec(
        select(table)
        .where(
            col(table.resolution_seconds) == MINUTE,
            col(table.bucket_start) >= start,
            col(table.bucket_start) < end,
        )
        .execution_options(yield_per=5000)
    )
    for row in minutes:
        if (key(row), _hour_floor(_utc(row.bucket_start, "bucket_start"))) not in covered:
            yield row


def _gpu_days(session: Session, start: datetime, end: datetime) -> dict[tuple[str, date], _GpuDay]:
    days: dict[tuple[str, date], _GpuDay] = defaultdict(_GpuDay)
    for row in _buckets(session, GpuRollup, start, end, lambda r: r.gpu_uuid):
        acc = days[(row.gpu_uuid, _utc(row.bucket_start, "bucket_start").date())]
        acc.seconds += row.resolution_seconds
        acc.idle_seconds += _dec(row.idle_seconds) or Decimal(0)
        joules = _dec(row.energy_joules)
        if joules is None and row.avg_power_watts is not None:
            joules = (_dec(row.avg_power_watts) or Decimal(0)) * row.resolution_seconds
        if joules is not None:
            acc.energy_joules += joules
            acc.energy_known = True
    return days


def _model_days(
    session: Session, start: datetime, end: datetime
) -> dict[tuple[str, str, str, date], _ModelDay]:
    days: dict[tuple[str, str, str, date], _ModelDay] = defaultdict(_ModelDay)
    rows = _buckets(session, InferenceRollup, start, end, lambda r: (r.node, r.model, r.instance))
    for row in rows:
        day = _utc(row.bucket_start, "bucket_start").date()
        acc = days[(row.node, row.model, row.instance, day)]
        acc.prompt += _dec(row.prompt_tokens) or Decimal(0)
        acc.generation += _dec(row.generation_tokens) or Decimal(0)
        acc.cached += _dec(row.cache_hits) or Decimal(0)
        acc.requests += _dec(row.requests) or Decimal(0)
        acc.engine = row.engine or acc.engine
        acc.gpus.update(row.gpu_uuids or [])
    return days


def _resolve_default(
    models: Mapping[str, GpuCostModel], default_model: GpuCostModel | str | None
) -> GpuCostModel | None:
    if isinstance(default_model, str):
        if default_model not in models:
            raise ValueError(
                f"default GPU cost model {default_model!r} is not one of {sorted(models)}"
            )
        return models[default_model]
    return default_model


def self_hosted_lines(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    models: Mapping[str, GpuCostModel],
    currency: str,
    default_model: GpuCostModel | str | None = None,
    skipped: list[SkippedGpu] | None = None,
) -> Iterator[CostLine]:
    """GPU lines, then token lines, per UTC day in [start, end) (see the module docstring).

    ``default_model`` is a cost model, or the name of one in ``models``. Skipped GPUs are
    appended to ``skipped`` when given. ``ValueError`` for naive datetimes, ``end <= start``
    or an unknown ``default_model`` name.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    fallback = _resolve_default(models, default_model)
    gpus = {
        gpu.uuid: (gpu, node)
        for gpu, node in session.exec(select(Gpu, Node).where(col(Gpu.node_id) == col(Node.id)))
    }
    reported: set[str] = set()
    for (uuid, day), acc in sorted(_gpu_days(session, start, end).items()):
        gpu_node = gpus.get(uuid)
        name = gpu_node[0].name if gpu_node else ""
        model = models.get(name, fallback)
        reason = None
        if model is None:
            reason = f"no cost model for GPU model {name!r} and no default"
        elif model.currency != currency:
            reason = f"cost model {model.gpu_model!r} is in {model.currency}, not {currency}"
        if reason is not None or model is None:
            if uuid not in reported:
                reported.add(uuid)
                logger.warning("self-hosted export skips GPU %s: %s", uuid, reason)
                if skipped is not None:
                    skipped.append(SkippedGpu(uuid, name, reason or ""))
            continue
        yield _gpu_line(uuid, day, acc, model, gpu_node, start, end)
    for (node, served, instance, day), usage in sorted(_model_days(session, start, end).items()):
        yield _token_line(node, served, instance, day, usage, currency, start, end)


def _gpu_line(
    uuid: str,
    day: date,
    acc: _GpuDay,
    model: GpuCostModel,
    gpu_node: tuple[Gpu, Node] | None,
    start: datetime,
    end: datetime,
) -> CostLine:
    hours = Decimal(acc.seconds) / SECONDS_PER_HOUR
    cost = gpu_cost(
        model, hours=hours, energy_joules=acc.energy_joules if acc.energy_known else None
    )
    if not cost.energy_known:
        logger.debug("GPU %s on %s has no energy reading: energy cost counted as 0", uuid, day)
    charge_start, charge_end = _day_period(day, start, end)
    billing_start, billing_end = _month_bounds(day)
    total = _money(cost.total)
    tags: dict[str, Any] = {"gpu_model": model.gpu_model}
    if gpu_node is not None:
        tags.update(node=gpu_node[1].name, gpu_index=gpu_node[0].index)
    return CostLine(
        row_key=_key("gpu", uuid, day.isoformat()),
        provider=PROVIDER,
        billed_cost=total,
        billing_currency=model.currency,
        charge_period_start=charge_start,
        charge_period_end=charge_end,
        billing_period_start=billing_start,
        billing_period_end=billing_end,
        effective_cost=total,
        list_cost=total,
        charge_category="Usage",
        service_name=SERVICE_NAME,
        service_category=SERVICE_CATEGORY,
        resource_id=uuid,
        sku_id=gpu_node[0].name if gpu_node else model.gpu_model,
        billing_account_id=PROVIDER,
        consumed_quantity=_quantity(hours),
        consumed_unit="Hours",
        tags=tags,
        extra={
            "x_GpuHours": _plain(_quantity(hours)),
            "x_IdleHours": _plain(_quantity(acc.idle_seconds / SECONDS_PER_HOUR)),
            "x_EnergyJoules": _plain(acc.energy_joules) if acc.energy_known else None,
            "x_CapexCost": _plain(_money(cost.capex)),
            "x_FixedCost": _plain(_money(cost.fixed)),
            "x_EnergyCost": _plain(_money(cost.energy)),
        },
    )


def _token_line(
    node: str,
    served: str,
    instance: str,
    day: date,
    usage: _ModelDay,
    currency: str,
    start: datetime,
    end: datetime,
) -> CostLine:
    charge_start, charge_end = _day_period(day, start, end)
    billing_start, billing_end = _month_bounds(day)
    zero = _money(Decimal(0))
    tags: dict[str, Any] = {"node": node, "model": served}
    if usage.engine:
        tags["engine"] = usage.engine
    if usage.gpus:
        tags["gpus"] = ",".join(sorted(usage.gpus))
    return CostLine(
        row_key=_key("tokens", node, served, instance, day.isoformat()),
        provider=PROVIDER,
        billed_cost=zero,
        billing_currency=currency,
        charge_period_start=charge_start,
        charge_period_end=charge_end,
        billing_period_start=billing_start,
        billing_period_end=billing_end,
        effective_cost=zero,
        list_cost=zero,
        charge_category="Usage",
        service_name=SERVICE_NAME,
        service_category=SERVICE_CATEGORY,
        resource_id=instance,
        sku_id=served,
        billing_account_id=PROVIDER,
        consumed_quantity=_quantity(usage.prompt + usage.generation),
        consumed_unit="Tokens",
        tags=tags,
        extra={
            "x_PromptTokens": _plain(usage.prompt),
            "x_GenerationTokens": _plain(usage.generation),
            "x_CachedTokens": _plain(usage.cached),
            "x_Requests": _plain(usage.requests),
        },
    )


FOCUS_COLUMNS: tuple[str, ...] = (
    "BillingAccountId",
    "BillingAccountName",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingCurrency",
    "PricingQuantity",
    "PricingUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "InvoiceIssuerName",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "InvoiceId",
    "ResourceId",
    "RegionId",
    "SkuId",
    "SubAccountId",
    "Tags",
)
"""FOCUS 1.2 columns ``write_focus_csv`` writes, before the ``x_`` columns: the 21 mandatory
ones, ``ChargeFrequency``, ``ServiceSubcategory`` and ``InvoiceId`` (recommended; ``InvoiceId``
is new in 1.2 and null here, as nothing is invoiced), and the conditional ones we fill."""


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else _utc(moment, "period").strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def _focus_row(line: CostLine, x_columns: Sequence[str]) -> list[str]:
    list_cost = line.list_cost if line.list_cost is not None else line.billed_cost
    effective = line.effective_cost if line.effective_cost is not None else line.billed_cost
    quantity = _num(line.consumed_quantity)
    values = {
        "BillingAccountId": line.billing_account_id or line.provider,
        "BillingPeriodStart": _iso(line.billing_period_start),
        "BillingPeriodEnd": _iso(line.billing_period_end),
        "ChargePeriodStart": _iso(line.charge_period_start),
        "ChargePeriodEnd": _iso(line.charge_period_end),
        "ChargeCategory": line.charge_category or "Usage",
        "ChargeFrequency": "Usage-Based",
        "BilledCost": _num(line.billed_cost),
        "EffectiveCost": _num(effective),
        "ListCost": _num(list_cost),
        "ContractedCost": _num(list_cost),
        "BillingCurrency": line.billing_currency,
        "PricingQuantity": quantity,
        "PricingUnit": line.consumed_unit or "",
        "ConsumedQuantity": quantity,
        "ConsumedUnit": line.consumed_unit or "",
        "InvoiceIssuerName": line.provider,
        "ProviderName": line.provider,
        "PublisherName": line.provider,
        "ServiceCategory": line.service_category or "",
        "ServiceName": line.service_name or "",
        "ServiceSubcategory": "Generative AI" if line.service_name == SERVICE_NAME else "",
        "ResourceId": line.resource_id or "",
        "RegionId": line.region_id or "",
        "SkuId": line.sku_id or "",
        "SubAccountId": line.sub_account_id or "",
        "Tags": json.dumps(dict(line.tags), sort_keys=True, separators=(",", ":"))
        if line.tags
        else "",
    }
    row = [values.get(name, "") for name in FOCUS_COLUMNS]
    for name in x_columns:
        value = line.extra.get(name)
        row.append("" if value is None else str(value))
    return row


def write_focus_csv(
    lines: Iterable[CostLine], out: TextIO, *, x_columns: Sequence[str] | None = None
) -> int:
    """Write ``lines`` as a FOCUS 1.2 CSV (``FOCUS_COLUMNS`` then ``x_`` columns); return the
    number of rows written.

    ``x_columns`` defaults to every ``x_`` key found in the lines' ``extra`` (which means the
    lines are read into memory first; pass the columns to stream). Other ``extra`` keys are not
    written. Datetimes are ``YYYY-MM-DDTHH:MM:SSZ``; numbers plain decimals; Tags a JSON object.
    Open ``out`` with ``newline=""``.
    """
    if x_columns is None:
        lines = list(lines)
        found = {key for line in lines for key in line.extra if key.startswith("x_")}
        ordered = [c for c in (*GPU_X_COLUMNS, *TOKEN_X_COLUMNS) if c in found]
        x_columns = ordered + sorted(found - set(ordered))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FOCUS_COLUMNS, *x_columns])
    count = 0
    for line in lines:
        writer.writerow(_focus_row(line, x_columns))
        count += 1
    return count
