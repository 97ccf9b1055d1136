"""Rule contexts from the store: for one rule at one ``now``, only the fields it ``needs``.

A ``ContextBuilder`` lives for one evaluation tick. Every field is computed once per
(field, window) and shared by the rules of that tick, so two rules over the same window cost
one query. Models, bills, budgets and daily requests are aggregated in the database
(``GROUP BY``), never row by row in Python: a year of bills is millions of rows. ``gpus``
reuses ``daemon.persist.gpu_windows`` (minute rows of the window, averaged in Python);
``series`` are the stored points themselves.

Windows: minute fields (``gpus``, ``models``, ``series``) cover the per-minute buckets that
start in ``[window_start(now, window), now)`` (``gpus`` comes from
``daemon.persist.gpu_windows``, which has no upper bound: the store holds no unfinished
minute). Day fields (``costs``, ``daily_requests``, the ``tcowatch_cloud_cost`` series) cover
complete UTC days: the window's length rounded up to whole days, counted back from yesterday
(a ``29d`` window is the 29 days before today).

Money stays exact: sums go through ``daemon.costs.ledger.money_sum`` (SQLite would add floats).

Error contract: ``ContextBuilder`` raises ``ValueError`` for a naive ``now``; ``build`` raises
``ValueError`` for a rule that needs an unknown field or series name; database errors propagate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import Date, and_, func, literal_column, or_, tuple_
from sqlalchemy import cast as sql_cast
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnClause
from sqlmodel import Session, col, select

from daemon.costs.budget import Budget, month_forecast, month_start
from daemon.costs.ledger import from_money_sum, money_sum
from daemon.persist import gpu_windows, window_start
from daemon.store.models import (
    CacheRollup,
    CostRecord,
    DebtItem,
    Gpu,
    GpuRollup,
    InferenceRollup,
    Node,
    Rollback,
    as_utc,
)
from rules.base import (
    NEEDS,
    BudgetView,
    CostSeries,
    DebtView,
    GpuWindow,
    ModelWindow,
    RollbackView,
    Rule,
    RuleContext,
    Series,
)
from rules.series import SERIES

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TOP_VALUES = 10
"""``CostSeries.by_dimension`` keeps this many values per dimension (largest totals)."""
COST_DIMENSIONS = ("region_id", "sku_id", "resource_id", "charge_category")
EMPTY: ColumnClause[str] = literal_column("''")
"""A literal, not a bound parameter: PostgreSQL matches GROUP BY expressions textually."""

_GPU_COLUMNS = {
    "tcowatch_gpu_utilization_ratio": "avg_utilization_ratio",
    "tcowatch_gpu_power_watts": "avg_power_watts",
    "tcowatch_gpu_memory_used_bytes": "avg_memory_used_bytes",
    "tcowatch_gpu_energy_joules": "energy_joules",
    "tcowatch_gpu_idle_seconds": "idle_seconds",
}
_GPU_INVENTORY = ("tcowatch_gpu_power_limit_watts", "tcowatch_gpu_memory_total_bytes")
_MODEL_COLUMNS = {
    "tcowatch_llm_prompt_tokens": "prompt_tokens",
    "tcowatch_llm_generation_tokens": "generation_tokens",
    "tcowatch_llm_requests": "requests",
    "tcowatch_llm_cache_queries": "cache_queries",
    "tcowatch_llm_cache_hits": "cache_hits",
    "tcowatch_llm_cache_hit_ratio": "cache_hit_ratio",
}
_CACHE_COLUMNS = {
    "tcowatch_response_cache_hits": "hits",
    "tcowatch_response_cache_lookups": "lookups",
}
CLOUD_COST = "tcowatch_cloud_cost"

T = TypeVar("T")
CostKey = tuple[str, str, str, str]
"""(provider, service, account, currency) of one cost series."""


def complete_days(now: datetime, window: timedelta) -> tuple[date, ...]:
    """The complete UTC days a window covers: its length rounded up to whole days (at least
    one), ending yesterday, ascending."""
    count = max(1, -(-window // DAY))
    today = now.astimezone(UTC).date()
    return tuple(today - timedelta(days=back) for back in range(count, 0, -1))


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(), UTC)


def utc_day(column: Any, dialect: str) -> Any:
    """A SQL expression for the UTC calendar day of a timestamp column."""
    if dialect == "postgresql":
        return sql_cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _money(value: Any, dialect: str) -> Decimal:
    """A ``money_sum`` result without trailing zeros, the same text on every backend
    (PostgreSQL returns ``100.10000000`` where SQLite's scaled sum gives ``100.1``)."""
    amount = from_money_sum(value, dialect).normalize()
    exponent = amount.as_tuple().exponent
    return amount.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else amount


def _float(value: Any) -> float:
    return float(value) if value is not None else 0.0


class ContextBuilder:
    """Builds ``RuleContext`` objects for one tick at ``now`` (see the module docstring).

    ``down`` and ``power_limits`` come from the live state (GPUs that stopped reporting, and
    the enforced power limits, which the store does not keep); ``budgets`` from the config.
    """

    def __init__(
        self,
        session: Session,
        now: datetime,
        *,
        down: frozenset[str] = frozenset(),
        power_limits: Mapping[str, float | None] | None = None,
        budgets: Sequence[Budget] = (),
    ) -> None:
        if now.tzinfo is None:
            raise ValueError(f"now must be an aware datetime, got naive {now.isoformat()}")
        self.session = session
        self.now = now.astimezone(UTC)
        self.down = down
        self.power_limits = dict(power_limits or {})
        self.budgets = tuple(budgets)
        bind = session.get_bind()
        self.dialect = bind.dialect.name
        self._cache: dict[tuple[Any, ...], Any] = {}
        self.computed = 0
        """How many results were computed rather than taken from the tick's cache (a field,
        or the daily cost sums that ``costs`` and the cloud cost series share)."""

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        if key not in self._cache:
            self.computed += 1
            self._cache[key] = compute()
        return cast(T, self._cache[key])

    def build(self, rule: Rule) -> RuleContext:
        """The context for ``rule``: only the fields in ``rule.needs``, over ``rule.window``."""
        unknown = set(rule.needs) - NEEDS
        if unknown:
            raise ValueError(f"rule kind {rule.kind!r} needs unknown fields: {sorted(unknown)}")
        window = rule.window
        fields: dict[str, Any] = {}
        if "gpus" in rule.needs:
            fields["gpus"] = self._cached(("gpus", window), lambda: self.gpus(window))
        if "models" in rule.needs:
            fields["models"] = self._cached(("models", window), lambda: self.models(window))
        if "costs" in rule.needs:
            days = complete_days(self.now, window)
            fields["costs"] = self._cached(("costs", days), lambda: self.costs(days))
        if "budgets" in rule.needs:
            fields["budgets"] = self._cached(("budgets",), self.budget_views)
        if "rollbacks" in rule.needs:
            fields["rollbacks"] = self._cached(
                ("rollbacks", window), lambda: self.rollbacks(window)
            )
        if "debts" in rule.needs:
            fields["debts"] = self._cached(("debts",), self.debts)
        if "daily_requests" in rule.needs:
            days = complete_days(self.now, window)
            fields["daily_requests"] = self._cached(
                ("daily_requests", days), lambda: self.daily_requests(days)
            )
        if "series" in rule.needs:
            fields["series"] = tuple(
                one for name in sorted(rule.series_names) for one in self._one_series(name, window)
            )
        return RuleContext(now=self.now, window=window, **fields)

    def _one_series(self, name: str, window: timedelta) -> tuple[Series, ...]:
        return self._cached(("series", name, window), lambda: self.series(name, window))

    # -- minute windows ---------------------------------------------------------------------

    def _since(self, window: timedelta) -> datetime:
        return window_start(self.now, window)

    def gpus(self, window: timedelta) -> tuple[GpuWindow, ...]:
        """Every known GPU over the window (``daemon.persist.gpu_windows``)."""
        return gpu_windows(
            self.session,
            since=self._since(window),
            down=self.down,
            power_limits=dict(self.power_limits),
        )

    def models(self, window: timedelta) -> tuple[ModelWindow, ...]:
        """One ``ModelWindow`` per (model, node): sums of the minute rows, the minutes that
        have rows, and the engine's hit-rate gauge of the latest minute that reported one
        (averaged over the node's instances in that minute)."""
        ir = InferenceRollup
        where = (
            col(ir.resolution_seconds) == 60,
            col(ir.bucket_start) >= self._since(window),
            col(ir.bucket_start) < self.now,
        )
        sums = self.session.execute(
            sa_select(
                col(ir.model),
                col(ir.node),
                func.count(func.distinct(col(ir.bucket_start))),
                func.sum(col(ir.prompt_tokens)),
                func.sum(col(ir.generation_tokens)),
                func.sum(col(ir.requests)),
                func.sum(col(ir.cache_queries)),
                func.sum(col(ir.cache_hits)),
            )
            .where(*where)
            .group_by(col(ir.model), col(ir.node))
            .order_by(col(ir.model), col(ir.node))
        ).all()
        gauged = (*where, col(ir.cache_hit_ratio).is_not(None))
        latest = (
            sa_select(
                col(ir.model).label("model"),
                col(ir.node).label("node"),
                func.max(col(ir.bucket_start)).label("last"),
            )
            .where(*gauged)
            .group_by(col(ir.model), col(ir.node))
            .subquery()
        )
        gauges: dict[tuple[str, str], float] = {
            (model, node): float(ratio)
            for model, node, ratio in self.session.execute(
                sa_select(col(ir.model), col(ir.node), func.avg(col(ir.cache_hit_ratio)))
                .join(
                    latest,
                    and_(
                        col(ir.model) == latest.c.model,
                        col(ir.node) == latest.c.node,
                        col(ir.bucket_start) == latest.c.last,
                    ),
                )
                .where(*gauged)
                .group_by(col(ir.model), col(ir.node))
            ).all()
        }
        return tuple(
            ModelWindow(
                model=model,
                node=node,
                minutes=int(minutes),
                prompt_tokens=_float(prompt),
                generation_tokens=_float(generation),
                requests=_float(requests),
                cache_queries=_float(queries),
                cache_hits=_float(hits),
                cache_hit_ratio=gauges.get((model, node)),
            )
            for model, node, minutes, prompt, generation, requests, queries, hits in sums
        )

    def series(self, name: str, window: timedelta) -> tuple[Series, ...]:
        """The stored series ``name`` (see ``rules.series.SERIES``) over the window, one
        ``Series`` per label set, points ascending; readings that are not known are left out.
        Inventory series (power limit, memory size) get a point at every minute the GPU
        reported."""
        if name not in SERIES:
            raise ValueError(f"unknown series {name!r} (known: {', '.join(sorted(SERIES))})")
        if name == CLOUD_COST:
            return self._cloud_cost_series(complete_days(self.now, window))
        since = self._since(window)
        points: dict[tuple[tuple[str, str], ...], list[tuple[datetime, float]]] = defaultdict(list)
        for labels, moment, value in self._series_rows(name, since):
            points[labels].append((as_utc(moment), float(value)))
        return tuple(
            Series(name=name, labels=dict(labels), points=tuple(values))
            for labels, values in sorted(points.items())
        )

    def _series_rows(
        self, name: str, since: datetime
    ) -> Iterable[tuple[tuple[tuple[str, str], ...], datetime, Any]]:
        if name in _GPU_COLUMNS or name in _GPU_INVENTORY:
            column = (
                getattr(GpuRollup, _GPU_COLUMNS[name])
                if name in _GPU_COLUMNS
                else col(Gpu.memory_total_bytes)
            )
            query = (
                sa_select(col(GpuRollup.gpu_uuid), col(Gpu.index), col(Node.name),
                          col(GpuRollup.bucket_start), column)
                .join(Gpu, col(Gpu.uuid) == col(GpuRollup.gpu_uuid))
                .join(Node, col(Node.id) == col(Gpu.node_id))
                .where(col(GpuRollup.resolution_seconds) == 60,
                       col(GpuRollup.bucket_start) >= since,
                       col(GpuRollup.bucket_start) < self.now)
                .order_by(col(GpuRollup.gpu_uuid), col(GpuRollup.bucket_start))
            )  # fmt: skip
            limit_series = name == "tcowatch_gpu_power_limit_watts"
            for uuid, index, node, moment, value in self.session.execute(query):
                if limit_series:
                    value = self.power_limits.get(uuid)
                if value is not None:
                    yield (("gpu", str(index)), ("node", node), ("uuid", uuid)), moment, value
            return
        if name in _MODEL_COLUMNS:
            ir = InferenceRollup
            column = getattr(ir, _MODEL_COLUMNS[name])
            for node, model, instance, moment, value in self.session.execute(
                sa_select(col(ir.node), col(ir.model), col(ir.instance), col(ir.bucket_start),
                          column)
                .where(col(ir.resolution_seconds) == 60, col(ir.bucket_start) >= since,
                       col(ir.bucket_start) < self.now, column.is_not(None))
                .order_by(col(ir.node), col(ir.model), col(ir.instance), col(ir.bucket_start))
            ):  # fmt: skip
                yield (("instance", instance), ("model", model), ("node", node)), moment, value
            return
        column = getattr(CacheRollup, _CACHE_COLUMNS[name])
        for cache, moment, value in self.session.execute(
            sa_select(col(CacheRollup.name), col(CacheRollup.bucket_start), column)
            .where(col(CacheRollup.resolution_seconds) == 60,
                   col(CacheRollup.bucket_start) >= since,
                   col(CacheRollup.bucket_start) < self.now)
            .order_by(col(CacheRollup.name), col(CacheRollup.bucket_start))
        ):  # fmt: skip
            yield (("cache", cache),), moment, value

    # -- days ---------------------------------------------------------------------------------

    def _cost_rows(self, days: tuple[date, ...]) -> Any:
        """One row per bill line in the days: series key, day, cost and the dimensions."""
        cr = CostRecord
        account = func.coalesce(
            func.nullif(col(cr.sub_account_id), EMPTY),
            func.nullif(col(cr.billing_account_id), EMPTY),
            EMPTY,
        )
        return (
            sa_select(
                col(cr.provider).label("provider"),
                func.coalesce(col(cr.service_name), EMPTY).label("service"),
                account.label("account"),
                col(cr.billing_currency).label("currency"),
                utc_day(col(cr.charge_period_start), self.dialect).label("day"),
                col(cr.billed_cost).label("cost"),
                *(func.coalesce(getattr(cr, d), EMPTY).label(d) for d in COST_DIMENSIONS),
            )
            .where(
                col(cr.charge_period_start) >= day_start(days[0]),
                col(cr.charge_period_start) < day_start(days[-1]) + DAY,
            )
            .subquery()
        )

    def _daily_costs(self, days: tuple[date, ...]) -> dict[CostKey, dict[date, Decimal]]:
        rows = self._cost_rows(days)
        keys = (rows.c.provider, rows.c.service, rows.c.account, rows.c.currency)
        daily: dict[CostKey, dict[date, Decimal]] = defaultdict(dict)
        for provider, service, account, currency, day, amount in self.session.execute(
            sa_select(*keys, rows.c.day, money_sum(rows.c.cost, self.dialect)).group_by(
                *keys, rows.c.day
            )
        ):
            daily[(provider, service, account, currency)][_as_date(day)] = _money(
                amount, self.dialect
            )
        return dict(daily)

    def _dimension_costs(
        self, days: tuple[date, ...], dimension: str
    ) -> dict[CostKey, dict[str, dict[date, Decimal]]]:
        """Daily costs of the ``TOP_VALUES`` values of ``dimension`` with the largest totals
        in each series. The database ranks each series' values by total (a window function
        over one row per value) and sums per day only the lines of the top values (a row-value
        ``IN``, looked up through an index): two passes over the lines, no join. Lines without
        a value are left out: a missing region or SKU is not a root cause."""
        rows = self._cost_rows(days)
        value = rows.c[dimension]
        keys = (rows.c.provider, rows.c.service, rows.c.account, rows.c.currency)
        totals = (
            sa_select(*keys, value.label("value"), money_sum(rows.c.cost, self.dialect).label("t"))
            .where(value != EMPTY)
            .group_by(*keys, value)
            .subquery()
        )
        series = (totals.c.provider, totals.c.service, totals.c.account, totals.c.currency)
        ranked = sa_select(
            *series,
            totals.c.value,
            func.row_number()
            .over(partition_by=series, order_by=(totals.c.t.desc(), totals.c.value))
            .label("rank"),
        ).subquery()
        top = sa_select(
            ranked.c.provider, ranked.c.service, ranked.c.account, ranked.c.currency,
            ranked.c.value,
        ).where(ranked.c.rank <= TOP_VALUES)  # fmt: skip
        result: dict[CostKey, dict[str, dict[date, Decimal]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for provider, service, account, currency, name, day, amount in self.session.execute(
            sa_select(*keys, value, rows.c.day, money_sum(rows.c.cost, self.dialect))
            .where(tuple_(*keys, value).in_(top))
            .group_by(*keys, value, rows.c.day)
        ):
            key = (provider, service, account, currency)
            result[key][name][_as_date(day)] = _money(amount, self.dialect)
        return result

    def _series_days(self, days: tuple[date, ...]) -> dict[CostKey, tuple[date, ...]]:
        """Each series' days: from its first day with a bill line to yesterday."""
        daily = self._cached(("daily_costs", days), lambda: self._daily_costs(days))
        spans = {}
        for key, by_day in daily.items():
            first = min(by_day)
            spans[key] = tuple(d for d in days if d >= first)
        return spans

    @staticmethod
    def _labels(keys: Iterable[CostKey]) -> dict[CostKey, dict[str, str]]:
        """Series labels ``provider``, ``service``, ``account``; ``currency`` is added only
        where one series is billed in several currencies (label sets must stay distinct)."""
        keys = list(keys)
        currencies: dict[tuple[str, str, str], int] = defaultdict(int)
        for key in keys:
            currencies[key[:3]] += 1
        labels = {}
        for key in keys:
            provider, service, account, currency = key
            labels[key] = {"provider": provider, "service": service, "account": account}
            if currencies[key[:3]] > 1:
                labels[key]["currency"] = currency
        return labels

    def costs(self, days: tuple[date, ...]) -> tuple[CostSeries, ...]:
        """One ``CostSeries`` per provider / service / account / currency (account: the
        sub-account, else the billing account, else ``""``), days zero-filled from the
        series' first bill line to the last of ``days``; each line counts on the UTC day its
        charge period starts. ``by_dimension`` leaves out a dimension without values, and one
        whose only value carries the whole series (one region, one charge category): it
        explains nothing."""
        daily = self._cached(("daily_costs", days), lambda: self._daily_costs(days))
        spans = self._series_days(days)
        dimensions = {d: self._dimension_costs(days, d) for d in COST_DIMENSIONS}
        labels = self._labels(daily)
        zero = Decimal(0)
        result = []
        for key in sorted(daily):
            span = spans[key]
            costs = tuple(daily[key].get(d, zero) for d in span)
            by_dimension = {}
            for dimension, values in dimensions.items():
                breakdown = {
                    value: tuple(per_day.get(d, zero) for d in span)
                    for value, per_day in sorted(values.get(key, {}).items())
                }
                if breakdown and list(breakdown.values()) != [costs]:  # one value: says nothing
                    by_dimension[dimension] = breakdown
            result.append(
                CostSeries(
                    labels=labels[key],
                    currency=key[3],
                    days=span,
                    costs=costs,
                    by_dimension=by_dimension,
                )
            )
        return tuple(result)

    def _cloud_cost_series(self, days: tuple[date, ...]) -> tuple[Series, ...]:
        daily = self._cached(("daily_costs", days), lambda: self._daily_costs(days))
        spans = self._series_days(days)
        result = []
        for key in sorted(daily):
            provider, service, account, currency = key
            labels = {"provider": provider, "service": service, "account": account}
            labels["currency"] = currency
            points = tuple((day_start(d), float(daily[key].get(d, Decimal(0)))) for d in spans[key])
            result.append(Series(name=CLOUD_COST, labels=labels, points=points))
        return tuple(result)

    def daily_requests(self, days: tuple[date, ...]) -> dict[str, tuple[float, ...]]:
        """Requests per model per day, ascending, for the days with stored rows (a day not
        observed is left out, not counted as zero). Hours already rolled into hour rows are
        read from those (minute rows are retired after two weeks), later minutes from the
        minute rows."""
        ir = InferenceRollup
        start, end = day_start(days[0]), day_start(days[-1]) + DAY
        last_hour = self.session.exec(
            select(func.max(col(ir.bucket_start))).where(col(ir.resolution_seconds) == 3600)
        ).one()
        split = start if last_hour is None else min(max(as_utc(last_hour) + HOUR, start), end)
        day = utc_day(col(ir.bucket_start), self.dialect)
        totals: dict[str, dict[date, float]] = defaultdict(dict)
        for resolution, lower, upper in ((3600, start, split), (60, split, end)):
            if lower >= upper:
                continue
            for model, when, requests in self.session.execute(
                sa_select(col(ir.model), day, func.sum(col(ir.requests)))
                .where(
                    col(ir.resolution_seconds) == resolution,
                    col(ir.bucket_start) >= lower,
                    col(ir.bucket_start) < upper,
                )
                .group_by(col(ir.model), day)
            ):
                by_day = totals[model]
                key = _as_date(when)
                by_day[key] = by_day.get(key, 0.0) + _float(requests)
        return {
            model: tuple(by_day[d] for d in sorted(by_day))
            for model, by_day in sorted(totals.items())
        }

    # -- records ------------------------------------------------------------------------------

    def budget_views(self) -> tuple[BudgetView, ...]:
        """Each configured budget with its month to date (bills charged since the first of the
        month, in the budget's currency, no FX) and linear month-end forecast."""
        if not self.budgets:
            return ()
        cr = CostRecord
        spend = self.session.execute(
            sa_select(
                col(cr.provider),
                col(cr.service_name),
                col(cr.billing_currency),
                money_sum(col(cr.billed_cost), self.dialect),
            )
            .where(
                col(cr.charge_period_start) >= month_start(self.now),
                col(cr.charge_period_start) < self.now,
            )
            .group_by(col(cr.provider), col(cr.service_name), col(cr.billing_currency))
        ).all()
        views = []
        for budget in self.budgets:
            spent = sum(
                (
                    _money(amount, self.dialect)
                    for provider, service, currency, amount in spend
                    if currency == budget.currency
                    and budget.provider in (None, provider)
                    and budget.service in (None, service)
                ),
                Decimal(0),
            )
            views.append(
                BudgetView(
                    name=budget.name,
                    currency=budget.currency,
                    amount=budget.amount,
                    month_to_date=spent,
                    forecast=month_forecast(spent, self.now),
                    provider=budget.provider,
                    service=budget.service,
                )
            )
        return tuple(views)

    def rollbacks(self, window: timedelta) -> tuple[RollbackView, ...]:
        """Open rollbacks, and those restored within the window, oldest first."""
        rows = self.session.exec(
            select(Rollback)
            .where(
                or_(
                    col(Rollback.restored_at).is_(None),
                    col(Rollback.restored_at) >= self.now - window,
                )
            )
            .order_by(col(Rollback.started_at), col(Rollback.id))
        ).all()
        return tuple(
            RollbackView(
                id=row.id or 0,
                service=row.service,
                from_version=row.from_version,
                to_version=row.to_version,
                started_at=as_utc(row.started_at),
                restored_at=as_utc(row.restored_at) if row.restored_at else None,
                sla_target=timedelta(seconds=row.sla_target_seconds),
                reason=row.reason,
                owner=row.owner or row.created_by,
            )
            for row in rows
        )

    def debts(self) -> tuple[DebtView, ...]:
        """Debt items that are not ``done``."""
        rows = self.session.exec(
            select(DebtItem).where(col(DebtItem.status) != "done").order_by(col(DebtItem.id))
        ).all()
        return tuple(
            DebtView(
                id=row.id or 0,
                title=row.title,
                status=row.status,
                owner=row.owner,
                severity=row.severity,
                monthly_cost=Decimal(row.monthly_cost),
                currency=row.currency,
                due_date=as_utc(row.due_date) if row.due_date else None,
            )
            for row in rows
        )
