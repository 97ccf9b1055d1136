"""The store-derived part of the board's overview: spend, 7-day utilization, idle waste, caches.

Everything is aggregated in SQL (one row per source, hour, GPU model or model comes back, never
a row per minute), and history older than the last rolled hour is read from the hourly rollups
only, so the cost of a load does not grow with the fleet's history; with a ``HourlyMemo``
(``daemon.board.overview_cache``) what was read from hour rollups is reused until the next
hour is rolled.

Error contract: ``store_overview`` lets database errors propagate; ``load_store_overview``
catches ``SQLAlchemyError``, logs its type and returns a result whose ``problem`` says the store
could not be read (no URL, no SQL text: they may carry secrets).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from daemon.board.overview_cache import HourlyMemo
from daemon.costs.budget import month_forecast, month_start
from daemon.costs.figures import Money
from daemon.costs.ledger import from_money_sum, money_sum
from daemon.costs.localcost import GpuCostModel
from daemon.store.models import CacheRollup, CostRecord, Gpu, GpuRollup, InferenceRollup

logger = logging.getLogger(__name__)

MINUTE = 60
HOUR = 3600
HOUR_DELTA = timedelta(hours=1)
UTILIZATION_WINDOW = timedelta(days=7)
CACHE_WINDOW = timedelta(hours=1)
SECONDS_PER_HOUR = Decimal(HOUR)
T = TypeVar("T")
BASIS_COUNTERS = "counters"
BASIS_GAUGE = "engine gauge"


@dataclass(frozen=True, slots=True)
class SourceSpend:
    """Cloud spend of one billing source in one currency, from the stored bills."""

    source: str
    """``cost_record.source``: the import or API the lines came from."""
    currency: str
    today: Money
    month_to_date: Money
    lines: int
    data_until: datetime | None
    """End of the latest charge period billed this month: bills arrive late."""


@dataclass(frozen=True, slots=True)
class CurrencySpend:
    """Every source's spend in one currency, with the linear month-end forecast."""

    currency: str
    today: Money
    month_to_date: Money
    forecast: Money | None
    """``None`` during the month's first hour (``daemon.costs.budget.month_forecast``)."""
    sources: list[str]


@dataclass(frozen=True, slots=True)
class UtilizationPoint:
    """The fleet's sample-weighted mean utilization over one hour."""

    hour: datetime
    ratio: float | None
    gpus: int
    """How many GPUs reported in that hour."""


@dataclass(frozen=True, slots=True)
class UtilizationHistory:
    """Hourly fleet utilization since ``since`` (hour rollups, the last hours from minutes)."""

    since: datetime
    points: list[UtilizationPoint]
    average_ratio: float | None
    """Sample-weighted over the whole window; ``None`` when nothing reported."""


@dataclass(frozen=True, slots=True)
class IdleWasteRow:
    """Idle time of every GPU of one model this month and what it cost."""

    gpu_model: str
    gpus: int
    idle_gpu_hours: float
    cost: Money | None
    """Idle hours x (capex + fixed per hour) + the energy drawn while idle; ``None`` when the
    GPU model has no cost model."""


@dataclass(frozen=True, slots=True)
class IdleWaste:
    """Idle GPU time since ``since`` (the month's start) and its cost, per GPU model."""

    since: datetime
    rows: list[IdleWasteRow]
    idle_gpu_hours: float
    totals: list[Money]
    """One total per currency of the priced rows."""
    unpriced: list[str]
    """GPU models with idle time but no cost model (their cost is not in ``totals``)."""


@dataclass(frozen=True, slots=True)
class CacheHitRow:
    """A served model's prefix-cache hit rate over the last hour."""

    model: str
    hit_ratio: float | None
    hits: float
    queries: float
    basis: str
    """``counters`` (hits / queries) or ``engine gauge`` (the engine's own mean ratio)."""


@dataclass(frozen=True, slots=True)
class ResponseCacheRow:
    """A response cache in front of the models over the last hour."""

    name: str
    hit_ratio: float | None
    hits: float
    lookups: float


@dataclass(frozen=True, slots=True)
class StoreOverview:
    """Everything the overview reads from the store, as of ``computed_at``."""

    computed_at: datetime
    spend_by_currency: list[CurrencySpend]
    spend_by_source: list[SourceSpend]
    utilization: UtilizationHistory
    idle_waste: IdleWaste
    cache_hits: list[CacheHitRow]
    response_caches: list[ResponseCacheRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoreOverviewResult:
    """``figures``, or ``None`` with the ``problem`` that kept the store from being read."""

    figures: StoreOverview | None
    problem: str = ""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hour_floor(moment: datetime) -> datetime:
    return _utc(moment).replace(minute=0, second=0, microsecond=0)


def _float(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def rolled_until(session: Session) -> datetime | None:
    """End of the last hour the hourly rollup wrote (``None`` before the first one)."""
    last = session.execute(
        sa_select(func.max(col(GpuRollup.bucket_start))).where(
            col(GpuRollup.resolution_seconds) == HOUR
        )
    ).scalar_one()
    return None if last is None else _utc(last) + HOUR_DELTA


def spend(session: Session, now: datetime) -> tuple[list[CurrencySpend], list[SourceSpend]]:
    """Spend today and this month (UTC) per currency and per (source, currency).

    Lines count by ``charge_period_start`` in [day or month start, ``now``), as the cost figures
    job counts them; sums are exact (``money_sum``).
    """
    now = _utc(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = month_start(now)
    dialect = session.get_bind().dialect.name
    started = col(CostRecord.charge_period_start)
    billed = col(CostRecord.billed_cost)
    rows = session.execute(
        sa_select(
            col(CostRecord.source),
            col(CostRecord.billing_currency),
            money_sum(case((started >= day, billed), else_=0), dialect),
            money_sum(billed, dialect),
            func.count(),
            func.max(col(CostRecord.charge_period_end)),
        )
        .where(started >= month, started < now)
        .group_by(col(CostRecord.source), col(CostRecord.billing_currency))
    ).all()
    sources = [
        SourceSpend(
            source=source,
            currency=currency,
            today=Money(from_money_sum(today, dialect), currency),
            month_to_date=Money(from_money_sum(month_total, dialect), currency),
            lines=int(lines),
            data_until=None if until is None else _utc(until),
        )
        for source, currency, today, month_total, lines, until in rows
    ]
    sources.sort(key=lambda s: (s.currency, s.source))
    by_currency: dict[str, list[SourceSpend]] = defaultdict(list)
    for row in sources:
        by_currency[row.currency].append(row)
    totals = []
    for currency, parts in sorted(by_currency.items()):
        month_to_date = sum((p.month_to_date.amount for p in parts), Decimal(0))
        forecast = month_forecast(month_to_date, now)
        totals.append(
            CurrencySpend(
                currency=currency,
                today=Money(sum((p.today.amount for p in parts), Decimal(0)), currency),
                month_to_date=Money(month_to_date, currency),
                forecast=None if forecast is None else Money(forecast, currency),
                sources=[p.source for p in parts],
            )
        )
    return totals, sources


def _memo(
    memo: HourlyMemo | None,
    kind: str,
    bounds: tuple[datetime, datetime],
    compute: Callable[[], list[T]],
) -> list[T]:
    return compute() if memo is None else memo.get(kind, bounds, compute)


def _utilization_rows(
    session: Session, resolution: int, since: datetime, until: datetime | None
) -> list[tuple[datetime, float, float, int]]:
    ratio = col(GpuRollup.avg_utilization_ratio)
    samples = col(GpuRollup.samples)
    query = (
        sa_select(
            col(GpuRollup.bucket_start),
            func.sum(ratio * samples),
            func.sum(case((ratio.is_not(None), samples), else_=0)),
            func.count(),
        )
        .where(
            col(GpuRollup.resolution_seconds) == resolution, col(GpuRollup.bucket_start) >= since
        )
        .group_by(col(GpuRollup.bucket_start))
    )
    if until is not None:
        query = query.where(col(GpuRollup.bucket_start) < until)
    return [
        (_utc(bucket), _float(weighted), _float(weight), int(gpus))
        for bucket, weighted, weight, gpus in session.execute(query).all()
    ]


def utilization(
    session: Session, now: datetime, split: datetime | None, memo: HourlyMemo | None = None
) -> UtilizationHistory:
    """Hourly fleet utilization over the last 7 days (and the current hour).

    Hours before ``split`` (the end of the last rolled hour) come from hour rollups; later ones
    are folded from minute rollups, so a load reads at most one or two hours of minutes.
    """
    since = _hour_floor(now) - UTILIZATION_WINDOW
    boundary = max(since, split) if split is not None else since
    hours: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    if split is not None:
        rolled = _memo(
            memo,
            "utilization",
            (since, boundary),
            lambda: _utilization_rows(session, HOUR, since, boundary),
        )
        for bucket, weighted, weight, gpus in rolled:
            hours[bucket] = [weighted, weight, float(gpus)]
    for bucket, weighted, weight, gpus in _utilization_rows(session, MINUTE, boundary, None):
        entry = hours[_hour_floor(bucket)]
        entry[0] += weighted
        entry[1] += weight
        entry[2] = max(entry[2], float(gpus))
    points = [
        UtilizationPoint(hour=hour, ratio=w / n if n else None, gpus=int(gpus))
        for hour, (w, n, gpus) in sorted(hours.items())
    ]
    total_weight = sum(entry[1] for entry in hours.values())
    average = sum(entry[0] for entry in hours.values()) / total_weight if total_weight else None
    return UtilizationHistory(since=since, points=points, average_ratio=average)


def _idle_rows(
    session: Session, resolution: int, since: datetime, until: datetime | None
) -> list[tuple[str, str, float, float]]:
    seconds = col(GpuRollup.resolution_seconds)
    idle = col(GpuRollup.idle_seconds)
    joules = func.coalesce(
        col(GpuRollup.energy_joules), func.coalesce(col(GpuRollup.avg_power_watts), 0) * seconds
    )
    query = (
        sa_select(
            col(Gpu.name),
            col(GpuRollup.gpu_uuid),
            func.sum(idle),
            func.sum(joules * idle / seconds),
        )
        .join(Gpu, col(Gpu.uuid) == col(GpuRollup.gpu_uuid))
        .where(seconds == resolution, col(GpuRollup.bucket_start) >= since)
        .group_by(col(Gpu.name), col(GpuRollup.gpu_uuid))
    )
    if until is not None:
        query = query.where(col(GpuRollup.bucket_start) < until)
    return [
        (name, uuid, _float(idle_s), _float(idle_j))
        for name, uuid, idle_s, idle_j in session.execute(query).all()
    ]


def idle_waste(
    session: Session,
    now: datetime,
    split: datetime | None,
    models: Mapping[str, GpuCostModel],
    memo: HourlyMemo | None = None,
) -> IdleWaste:
    """Idle GPU-hours this month (UTC) x each GPU model's hourly cost.

    The hourly cost is capex + fixed cost per hour plus the energy drawn while idle (measured
    joules x idle share of each rollup bucket, x PUE x power price). ``models`` maps the GPU
    name (``gpu.name``) to its cost model; GPUs without one count hours but no cost.
    """
    since = month_start(_utc(now))
    boundary = max(since, split) if split is not None else since
    rows = _idle_rows(session, MINUTE, boundary, None)
    if split is not None:
        rows += _memo(
            memo, "idle", (since, boundary), lambda: _idle_rows(session, HOUR, since, boundary)
        )
    seconds: dict[str, float] = defaultdict(float)
    idle_joules: dict[str, float] = defaultdict(float)
    gpus: dict[str, set[str]] = defaultdict(set)
    for name, uuid, idle_s, idle_j in rows:
        seconds[name] += idle_s
        idle_joules[name] += idle_j
        gpus[name].add(uuid)
    result: list[IdleWasteRow] = []
    totals: dict[str, Decimal] = defaultdict(Decimal)
    unpriced: list[str] = []
    for name in sorted(seconds):
        model = models.get(name)
        cost: Money | None = None
        if model is not None:
            amount = _dec(seconds[name]) / SECONDS_PER_HOUR * (
                model.capex_per_hour + model.fixed_per_hour
            ) + model.energy_cost(max(Decimal(0), _dec(idle_joules[name])))
            cost = Money(amount, model.currency)
            totals[model.currency] += amount
        elif seconds[name] > 0:
            unpriced.append(name)
        result.append(IdleWasteRow(name, len(gpus[name]), seconds[name] / HOUR, cost))
    return IdleWaste(
        since=since,
        rows=result,
        idle_gpu_hours=sum(r.idle_gpu_hours for r in result),
        totals=[Money(amount, currency) for currency, amount in sorted(totals.items())],
        unpriced=unpriced,
    )


def cache_hits(session: Session, now: datetime) -> list[CacheHitRow]:
    """Each served model's prefix-cache hit rate over the last hour (minute rollups).

    Counters (hits / queries summed over the model's instances) when the engine reports them,
    else the mean of the engine's own hit-rate gauge; never an average of ratios of counters.
    """
    since = _utc(now) - CACHE_WINDOW
    rows = session.execute(
        sa_select(
            col(InferenceRollup.model),
            func.sum(col(InferenceRollup.cache_hits)),
            func.sum(col(InferenceRollup.cache_queries)),
            func.avg(col(InferenceRollup.cache_hit_ratio)),
        )
        .where(
            col(InferenceRollup.resolution_seconds) == MINUTE,
            col(InferenceRollup.bucket_start) >= since,
        )
        .group_by(col(InferenceRollup.model))
    ).all()
    result = []
    for model, hits, queries, gauge in sorted(rows, key=lambda r: str(r[0])):
        hits_f, queries_f = _float(hits), _float(queries)
        ratio: float | None
        if queries_f > 0:
            ratio, basis = min(1.0, hits_f / queries_f), BASIS_COUNTERS
        else:
            ratio, basis = (None if gauge is None else float(gauge)), BASIS_GAUGE
        result.append(CacheHitRow(model, ratio, hits_f, queries_f, basis))
    return result


def response_caches(session: Session, now: datetime) -> list[ResponseCacheRow]:
    """Each response cache's hit rate over the last hour (minute rollups)."""
    since = _utc(now) - CACHE_WINDOW
    rows = session.execute(
        sa_select(
            col(CacheRollup.name),
            func.sum(col(CacheRollup.hits)),
            func.sum(col(CacheRollup.lookups)),
        )
        .where(
            col(CacheRollup.resolution_seconds) == MINUTE, col(CacheRollup.bucket_start) >= since
        )
        .group_by(col(CacheRollup.name))
    ).all()
    return [
        ResponseCacheRow(
            name,
            min(1.0, _float(hits) / _float(lookups)) if _float(lookups) > 0 else None,
            _float(hits),
            _float(lookups),
        )
        for name, hits, lookups in sorted(rows, key=lambda r: str(r[0]))
    ]


def store_overview(
    session: Session,
    now: datetime,
    models: Mapping[str, GpuCostModel],
    memo: HourlyMemo | None = None,
) -> StoreOverview:
    """Every store-derived figure of the overview as of ``now``; database errors propagate.

    With a ``memo``, what was read from hour rollups is reused until another hour is rolled.
    """
    now = _utc(now)
    split = rolled_until(session)
    by_currency, by_source = spend(session, now)
    return StoreOverview(
        computed_at=now,
        spend_by_currency=by_currency,
        spend_by_source=by_source,
        utilization=utilization(session, now, split, memo),
        idle_waste=idle_waste(session, now, split, models, memo),
        cache_hits=cache_hits(session, now),
        response_caches=response_caches(session, now),
    )


def load_store_overview(
    engine: Engine,
    now: datetime,
    models: Mapping[str, GpuCostModel],
    memo: HourlyMemo | None = None,
) -> StoreOverviewResult:
    """``store_overview`` in its own session; a database error becomes ``problem``."""
    try:
        with Session(engine) as session:
            return StoreOverviewResult(store_overview(session, now, models, memo))
    except SQLAlchemyError as exc:
        logger.warning("overview: the store could not be read: %s", type(exc).__name__)
        return StoreOverviewResult(
            None, f"the store could not be read ({type(exc).__name__}); see the server log"
        )
