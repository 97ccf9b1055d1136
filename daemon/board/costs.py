"""The costs page as data: cloud bills by provider, service and account over a period, daily
trends, the self-hosted cost of the same period, and this month's budgets.

Pure functions over the caller's ``Session``; the clock comes in as ``now``; nothing commits.

- **Periods** are whole UTC days, ``first`` to ``last`` inclusive; a bill line counts on the
  day its charge period starts (as everywhere in tcowatch).
- **Cloud bills** come from ``cost_record``; every sum goes through
  ``daemon.costs.ledger.money_sum`` so it stays exact on SQLite too. A line's account is its
  sub-account, else its billing account, else empty (as the cost rules see it). Amounts are
  never added across currencies: every total is per currency, and every row names the
  ``source`` values (``focus:<file>``, ``aws_ce:<name>``, ...) its lines came from.
- **Local cost** is the cost model (``costs.gpu_models``) applied to the GPU rollups of the
  period: hour rollups for the hours already rolled, minute rollups after them. Each bucket
  charges the GPU's capex and fixed share for its length plus the measured energy
  (``daemon.costs.windows.window_cost``); the idle share is the part charged to idle seconds.
  GPUs whose model has no cost entry are listed, never guessed.
- **Budgets** are monthly (UTC calendar months): month to date and the linear month-end
  forecast of ``daemon.costs.budget``, whatever period the page shows.

Error contract: ``InputError`` (a ``ValueError`` with ``field`` and ``reason``) for a bad
period; database errors propagate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from daemon.board.errors import InputError
from daemon.costs.budget import Budget
from daemon.costs.ledger import from_money_sum, money_sum
from daemon.costs.localcost import GpuCostModel
from daemon.costs.windows import GpuUsage, window_cost
from daemon.hourly import HOUR_RESOLUTION, MINUTE_RESOLUTION
from daemon.rule_context import ContextBuilder, utc_day
from daemon.store.models import CostRecord, Gpu, GpuRollup, InferenceRollup

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
HOUR = Decimal(3600)
MAX_DAYS = 400
"""Longest period a page may ask for (hour rollups are kept 400 days by default)."""
LOCAL_SOURCE = "cost model (config)"
"""The ``source`` of every self-hosted figure: ``costs.gpu_models`` over the GPU rollups."""
CENT = Decimal("0.01")
"""Local cost estimates are rounded per day and currency to this; totals add the rounded days."""
RATIO = Decimal("0.0001")
"""Budget ratios are rounded to this."""
TAG_SAMPLE = 500
"""How many of the period's newest bill lines are read to list the tag keys on offer."""
EMPTY = ""


@dataclass(frozen=True, slots=True)
class CostQuery:
    """What the costs page shows: the days ``first`` to ``last`` (inclusive, UTC) and the
    optional exact filters. ``tag`` is a tag key to break the bills down by."""

    first: date
    last: date
    provider: str | None = None
    service: str | None = None
    account: str | None = None
    tag: str | None = None

    @property
    def start(self) -> datetime:
        """Midnight UTC at the start of ``first``."""
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        """Midnight UTC after ``last`` (exclusive end)."""
        return datetime.combine(self.last, time(), UTC) + DAY

    @property
    def days(self) -> tuple[date, ...]:
        """Every day of the period, oldest first."""
        count = (self.last - self.first).days + 1
        return tuple(self.first + timedelta(days=i) for i in range(count))


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_day(name: str, text: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value (``None`` or empty: not given); ``InputError(name, ...)``
    for anything else."""
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(name, f"expected a day as YYYY-MM-DD, got {text!r}") from None


def cost_query(
    *,
    now: datetime,
    first: date | None = None,
    last: date | None = None,
    provider: str | None = None,
    service: str | None = None,
    account: str | None = None,
    tag: str | None = None,
) -> CostQuery:
    """The query for a page request: by default this UTC month up to today.

    ``first`` alone runs to today (or to itself when it is later); ``last`` alone starts on the
    first of its month. Empty filters mean "all". Raises ``InputError("from", ...)`` when
    ``first`` is after ``last`` and ``InputError("to", ...)`` for a period over ``MAX_DAYS``.
    """
    today = now.astimezone(UTC).date()
    if first is None and last is None:
        first, last = today.replace(day=1), today
    elif first is None:
        assert last is not None
        first = last.replace(day=1)
    elif last is None:
        last = max(first, today)
    if first > last:
        raise InputError("from", f"{first.isoformat()} is after the last day {last.isoformat()}")
    if (last - first).days + 1 > MAX_DAYS:
        raise InputError("to", f"a period covers at most {MAX_DAYS} days")
    return CostQuery(
        first=first,
        last=last,
        provider=_clean(provider),
        service=_clean(service),
        account=_clean(account),
        tag=_clean(tag),
    )


@dataclass(frozen=True, slots=True)
class BillRow:
    """Cloud spend of one provider / service / account in one currency over the period."""

    provider: str
    service: str
    account: str
    currency: str
    amount: Decimal
    lines: int
    sources: list[str]


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """All matching cloud spend in one currency, and where it came from."""

    currency: str
    amount: Decimal
    lines: int
    sources: list[str]


@dataclass(frozen=True, slots=True)
class TagRow:
    """Spend of the lines whose tag ``key`` has ``value`` (empty: lines without the tag)."""

    value: str
    currency: str
    amount: Decimal
    lines: int


@dataclass(frozen=True, slots=True)
class DayAmount:
    """One day of a trend."""

    day: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Trend:
    """A daily series of one ``kind`` (``cloud`` or ``local``) in one currency, zero-filled
    over the period, with the sources behind it."""

    kind: str
    currency: str
    sources: list[str]
    points: list[DayAmount]

    @property
    def total(self) -> Decimal:
        """The sum of the points."""
        return sum((p.amount for p in self.points), Decimal(0))


@dataclass(frozen=True, slots=True)
class LocalTotal:
    """Self-hosted cost in one currency over the period (``idle`` is part of ``amount``)."""

    currency: str
    amount: Decimal
    idle: Decimal
    gpu_hours: Decimal
    idle_hours: Decimal
    gpus: int
    source: str = LOCAL_SOURCE

    @property
    def idle_ratio(self) -> Decimal | None:
        """The idle share of the cost (``None`` for no cost)."""
        return self.idle / self.amount if self.amount > 0 else None


@dataclass(frozen=True, slots=True)
class LocalCost:
    """The self-hosted cost of the period: totals and daily series per currency, and the GPU
    models (with their GPU-hours) that have no cost model and so are not counted."""

    totals: list[LocalTotal]
    trends: list[Trend]
    unpriced: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """A monthly budget: month to date, the month-end forecast and their ratios to the amount."""

    name: str
    currency: str
    amount: Decimal
    month_to_date: Decimal
    forecast: Decimal | None
    forecast_ratio: Decimal | None
    spent_ratio: Decimal
    provider: str | None
    service: str | None


def _account() -> Any:
    return func.coalesce(
        func.nullif(col(CostRecord.sub_account_id), EMPTY),
        func.nullif(col(CostRecord.billing_account_id), EMPTY),
        EMPTY,
    )


def _where(query: Any, q: CostQuery) -> Any:
    """``query`` limited to the period and the filters of ``q``."""
    query = query.where(
        col(CostRecord.charge_period_start) >= q.start,
        col(CostRecord.charge_period_start) < q.end,
    )
    if q.provider is not None:
        query = query.where(col(CostRecord.provider) == q.provider)
    if q.service is not None:
        query = query.where(func.coalesce(col(CostRecord.service_name), EMPTY) == q.service)
    if q.account is not None:
        query = query.where(_account() == q.account)
    return query


def plain(amount: Decimal) -> Decimal:
    """``amount`` without trailing zeros and never in exponent form: PostgreSQL sums read back
    as ``100.10000000`` where SQLite's scaled sum gives ``100.1``; both become ``100.1``."""
    value = amount.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def bill_rows(session: Session, q: CostQuery) -> list[BillRow]:
    """Spend per provider / service / account / currency, largest first (then by name)."""
    dialect = _dialect(session)
    service = func.coalesce(col(CostRecord.service_name), EMPTY)
    account = _account()
    keys = (col(CostRecord.provider), service, account, col(CostRecord.billing_currency))
    query = sa_select(
        *keys,
        col(CostRecord.source),
        money_sum(col(CostRecord.billed_cost), dialect),
        func.count(),
    ).group_by(*keys, col(CostRecord.source))
    amounts: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    lines: dict[tuple[str, str, str, str], int] = defaultdict(int)
    sources: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for provider, service_name, account_id, currency, source, total, count in session.execute(
        _where(query, q)
    ):
        key = (provider, service_name or EMPTY, account_id or EMPTY, currency)
        amounts[key] += from_money_sum(total, dialect)
        lines[key] += int(count)
        sources[key].add(source)
    rows = [
        BillRow(*key, amount=plain(amount), lines=lines[key], sources=sorted(sources[key]))
        for key, amount in amounts.items()
    ]
    rows.sort(key=lambda r: (r.currency, -r.amount, r.provider, r.service, r.account))
    return rows


def currency_totals(rows: Iterable[BillRow]) -> list[CurrencyTotal]:
    """The rows summed per currency (never across currencies), by currency code."""
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    lines: dict[str, int] = defaultdict(int)
    sources: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        amounts[row.currency] += row.amount
        lines[row.currency] += row.lines
        sources[row.currency].update(row.sources)
    return [
        CurrencyTotal(
            currency, plain(amounts[currency]), lines[currency], sorted(sources[currency])
        )
        for currency in sorted(amounts)
    ]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def cloud_trends(session: Session, q: CostQuery) -> list[Trend]:
    """Daily cloud spend per currency over the period (days without bills are 0)."""
    dialect = _dialect(session)
    day = utc_day(col(CostRecord.charge_period_start), dialect)
    currency = col(CostRecord.billing_currency)
    query = sa_select(
        currency, day, col(CostRecord.source), money_sum(col(CostRecord.billed_cost), dialect)
    ).group_by(currency, day, col(CostRecord.source))
    per_day: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    sources: dict[str, set[str]] = defaultdict(set)
    for code, when, source, total in session.execute(_where(query, q)):
        per_day[code][_as_date(when)] += from_money_sum(total, dialect)
        sources[code].add(source)
    return [
        Trend(
            kind="cloud",
            currency=code,
            sources=sorted(sources[code]),
            points=[DayAmount(d, plain(per_day[code].get(d, Decimal(0)))) for d in q.days],
        )
        for code in sorted(per_day)
    ]


def tag_keys(session: Session, q: CostQuery, *, sample: int = TAG_SAMPLE) -> list[str]:
    """Tag keys seen on the period's ``sample`` newest matching bill lines, sorted."""
    query = _where(select(CostRecord.tags), q)
    query = query.order_by(col(CostRecord.charge_period_start).desc()).limit(sample)
    keys: set[str] = set()
    for tags in session.exec(query):
        if isinstance(tags, dict):
            keys.update(str(k) for k in tags)
    return sorted(keys)


def tag_rows(session: Session, q: CostQuery, key: str) -> list[TagRow]:
    """Spend per value of tag ``key`` and currency (lines without it under ``""``), largest
    first. The tag value is read in the database (JSON path), so no line is loaded."""
    dialect = _dialect(session)
    value = col(CostRecord.tags)[key].as_string()
    currency = col(CostRecord.billing_currency)
    query = sa_select(
        value, currency, money_sum(col(CostRecord.billed_cost), dialect), func.count()
    ).group_by(value, currency)
    rows = [
        TagRow(
            value=EMPTY if tag is None else str(tag),
            currency=code,
            amount=plain(from_money_sum(total, dialect)),
            lines=int(count),
        )
        for tag, code, total, count in session.execute(_where(query, q))
    ]
    rows.sort(key=lambda r: (r.currency, -r.amount, r.value))
    return rows


@dataclass(frozen=True, slots=True)
class Dimensions:
    """The providers, services and accounts billed in a period (for the filter inputs)."""

    providers: list[str]
    services: list[str]
    accounts: list[str]


def dimensions(session: Session, q: CostQuery) -> Dimensions:
    """Distinct providers, services and accounts of the period (ignoring the filters)."""
    period = CostQuery(first=q.first, last=q.last)
    found: list[list[str]] = []
    for column in (
        col(CostRecord.provider),
        func.coalesce(col(CostRecord.service_name), EMPTY),
        _account(),
    ):
        values = session.execute(_where(sa_select(column).distinct(), period)).scalars()
        found.append(sorted(v for v in values if v))
    return Dimensions(*found)


def rolled_until(session: Session, model: type[GpuRollup] | type[InferenceRollup]) -> datetime:
    """The end of the last hour rolled up for ``model`` (its hour rows stop there and its
    minute rows carry on); the distant past when nothing is rolled yet."""
    last = session.exec(
        select(func.max(model.bucket_start)).where(model.resolution_seconds == HOUR_RESOLUTION)
    ).one()
    if last is None:
        return datetime.min.replace(tzinfo=UTC)
    moment = last if last.tzinfo else last.replace(tzinfo=UTC)
    return moment.astimezone(UTC) + timedelta(hours=1)


def rollup_spans(
    start: datetime, end: datetime, rolled: datetime
) -> list[tuple[int, datetime, datetime]]:
    """``(resolution, from, to)`` spans that cover ``[start, end)`` once: hour rows before
    ``rolled``, minute rows from it on (empty spans left out)."""
    spans = [
        (HOUR_RESOLUTION, start, min(end, rolled)),
        (MINUTE_RESOLUTION, max(start, rolled), end),
    ]
    return [(resolution, lo, hi) for resolution, lo, hi in spans if lo < hi]


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def _gpu_day_usage(
    session: Session, start: datetime, end: datetime
) -> Iterable[tuple[str, date, GpuUsage]]:
    """Per GPU and UTC day: covered time, energy, idle time and idle energy in the period."""
    dialect = _dialect(session)
    seconds = col(GpuRollup.resolution_seconds)
    joules = func.coalesce(
        col(GpuRollup.energy_joules), func.coalesce(col(GpuRollup.avg_power_watts), 0) * seconds
    )
    day = utc_day(col(GpuRollup.bucket_start), dialect)
    for resolution, lo, hi in rollup_spans(start, end, rolled_until(session, GpuRollup)):
        query = (
            sa_select(
                col(GpuRollup.gpu_uuid),
                day,
                func.sum(seconds),
                func.sum(joules),
                func.sum(col(GpuRollup.idle_seconds)),
                func.sum(joules * col(GpuRollup.idle_seconds) / seconds),
            )
            .where(
                col(GpuRollup.resolution_seconds) == resolution,
                col(GpuRollup.bucket_start) >= lo,
                col(GpuRollup.bucket_start) < hi,
            )
            .group_by(col(GpuRollup.gpu_uuid), day)
        )
        for uuid, when, covered, energy, idle, idle_energy in session.execute(query):
            usage = GpuUsage(
                seconds=_dec(covered),
                joules=_dec(energy),
                idle_seconds=_dec(idle),
                idle_weighted_joules=_dec(idle_energy),
                avg_power_watts=None,
            )
            yield uuid, _as_date(when), usage


def local_cost(session: Session, q: CostQuery, models: Mapping[str, GpuCostModel]) -> LocalCost:
    """The self-hosted cost of the period from the GPU cost ``models`` (keyed by GPU name).

    Daily amounts are rounded to ``CENT`` per currency; totals add the rounded days, so the
    trend and the totals agree exactly. Never raises for missing data.
    """
    names = dict(session.exec(select(Gpu.uuid, Gpu.name)).all())
    cost: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    idle: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    hours: dict[str, Decimal] = defaultdict(Decimal)
    idle_hours: dict[str, Decimal] = defaultdict(Decimal)
    gpus: dict[str, set[str]] = defaultdict(set)
    unpriced: dict[str, Decimal] = defaultdict(Decimal)
    for uuid, day, usage in _gpu_day_usage(session, q.start, q.end):
        name = names.get(uuid, EMPTY)
        model = models.get(name)
        if model is None:
            unpriced[name or uuid] += usage.seconds / HOUR
            continue
        total, busy = window_cost(model, usage)
        code = model.currency
        cost[code][day] += total
        idle[code][day] += total - busy
        hours[code] += usage.seconds / HOUR
        idle_hours[code] += usage.idle_seconds / HOUR
        gpus[code].add(uuid)
    totals: list[LocalTotal] = []
    trends: list[Trend] = []
    for code in sorted(cost):
        points = [DayAmount(d, cost[code].get(d, Decimal(0)).quantize(CENT)) for d in q.days]
        idle_total = sum((v.quantize(CENT) for v in idle[code].values()), Decimal(0))
        trend = Trend("local", code, [LOCAL_SOURCE], points)
        trends.append(trend)
        totals.append(
            LocalTotal(
                currency=code,
                amount=trend.total,
                idle=idle_total,
                gpu_hours=hours[code].quantize(CENT),
                idle_hours=idle_hours[code].quantize(CENT),
                gpus=len(gpus[code]),
            )
        )
    if unpriced:
        logger.debug("local cost leaves out GPUs without a cost model: %s", sorted(unpriced))
    return LocalCost(
        totals=totals,
        trends=trends,
        unpriced={name: value.quantize(CENT) for name, value in sorted(unpriced.items())},
    )


def budget_rows(session: Session, budgets: Sequence[Budget], now: datetime) -> list[BudgetRow]:
    """Each budget's month to date (bills in its currency, no FX) and month-end forecast."""
    views = ContextBuilder(session, now, budgets=budgets).budget_views()
    rows = []
    for view in views:
        forecast = None if view.forecast is None else plain(view.forecast.quantize(CENT))
        rows.append(
            BudgetRow(
                name=view.name,
                currency=view.currency,
                amount=view.amount,
                month_to_date=plain(view.month_to_date),
                forecast=forecast,
                forecast_ratio=None
                if view.forecast is None
                else (view.forecast / view.amount).quantize(RATIO),
                spent_ratio=(view.month_to_date / view.amount).quantize(RATIO),
                provider=view.provider,
                service=view.service,
            )
        )
    return rows
