"""Monthly budgets: spend to date from the store, a month-end forecast, and the budget status.

Months are UTC calendar months. The forecast is linear in elapsed time:

    forecast = month_to_date * month_length / elapsed

where ``elapsed`` runs from the first instant of the month to ``now``, counted to the
microsecond (the current, partial day counts as its fraction). Extrapolating a few minutes of
spend to a whole month multiplies noise by tens of thousands, so the forecast is ``None`` until
``MIN_ELAPSED`` (one hour) of the month has passed; callers show "no forecast yet" and rules do
not fire on it. Cloud bills arrive a day or so late, so an early-month forecast is low; that is
a known limit of a linear forecast, documented rather than corrected.

Currencies are never converted (no live FX): ``spend_to_date`` sums the records in the budget's
currency and returns the others separately so the caller can warn.

Error contract: ``ValueError`` for naive datetimes, a non-positive budget amount, or a bad
currency code; database errors propagate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, col, select

from daemon.store.models import CostRecord

logger = logging.getLogger(__name__)

MIN_ELAPSED = timedelta(hours=1)
"""No forecast before this much of the month has passed."""

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Budget:
    """A monthly budget of ``amount`` in ``currency``, optionally for one provider and/or one
    service (``None`` = all). ``ValueError`` for an amount <= 0 or a bad currency code."""

    name: str
    amount: Decimal
    currency: str
    provider: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount <= 0:
            raise ValueError(f"budget {self.name!r}: amount must be a Decimal above 0")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(
                f"budget {self.name!r}: currency must be an ISO 4217 code, got {self.currency!r}"
            )


@dataclass(frozen=True)
class BudgetStatus:
    """Where a budget stands at one instant.

    ``remaining`` is ``amount - spent`` (negative once overspent); ``burn_ratio`` is
    ``forecast / amount`` (above 1: on course to overspend; ``None`` while there is no
    forecast); ``spent_ratio`` is ``spent / amount``.
    """

    spent: Decimal
    forecast: Decimal | None
    remaining: Decimal
    burn_ratio: Decimal | None
    spent_ratio: Decimal


@dataclass(frozen=True)
class SpendToDate:
    """Spend in one currency, and what was skipped because it was billed in another."""

    total: Decimal
    currency: str
    records: int
    other_currency_records: int = 0
    other_currency_totals: dict[str, Decimal] = field(default_factory=dict)


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def month_start(now: datetime) -> datetime:
    """The first instant (UTC) of the month ``now`` falls in."""
    return _utc(now, "now").replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    """The first instant (UTC) of the month after the one ``now`` falls in."""
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def month_forecast(month_to_date: Decimal, now: datetime) -> Decimal | None:
    """Linear month-end forecast (see the module docstring); ``None`` before ``MIN_ELAPSED``.

    ``ValueError`` for a naive ``now``.
    """
    start = month_start(now)
    elapsed = _utc(now, "now") - start
    if elapsed < MIN_ELAPSED:
        return None
    length = next_month_start(now) - start
    return (
        Decimal(month_to_date) * Decimal(length // _MICROSECOND) / Decimal(elapsed // _MICROSECOND)
    )


def budget_status(budget: Budget, month_to_date: Decimal, now: datetime) -> BudgetStatus:
    """The budget's standing given the month's spend so far; ``ValueError`` for a naive ``now``."""
    forecast = month_forecast(month_to_date, now)
    return BudgetStatus(
        spent=month_to_date,
        forecast=forecast,
        remaining=budget.amount - month_to_date,
        burn_ratio=forecast / budget.amount if forecast is not None else None,
        spent_ratio=month_to_date / budget.amount,
    )


def spend_to_date(
    session: Session,
    *,
    month_start: datetime,
    now: datetime,
    currency: str,
    provider: str | None = None,
    service: str | None = None,
) -> SpendToDate:
    """Sum ``CostRecord.billed_cost`` of records charged in [month_start, now).

    Filters by ``provider`` and ``service`` (``service_name``) when given. Records in another
    currency are not converted: they are counted and totalled per currency in the result, and
    logged once at INFO. The sum is done in Python with ``Decimal`` (SQLite's SUM is a float).
    ``ValueError`` for naive datetimes.
    """
    start, end = _utc(month_start, "month_start"), _utc(now, "now")
    query = select(col(CostRecord.billing_currency), col(CostRecord.billed_cost)).where(
        col(CostRecord.charge_period_start) >= start,
        col(CostRecord.charge_period_start) < end,
    )
    if provider is not None:
        query = query.where(col(CostRecord.provider) == provider)
    if service is not None:
        query = query.where(col(CostRecord.service_name) == service)
    total = Decimal(0)
    records = 0
    others: dict[str, Decimal] = defaultdict(Decimal)
    other_count = 0
    for row_currency, amount in session.exec(query.execution_options(yield_per=5000)):
        if row_currency == currency:
            total += Decimal(amount)
            records += 1
        else:
            others[row_currency] += Decimal(amount)
            other_count += 1
    if other_count:
        logger.info(
            "spend to date in %s skips %d record(s) in other currencies (%s): no FX conversion",
            currency,
            other_count,
            ", ".join(sorted(others)),
        )
    return SpendToDate(total, currency, records, other_count, dict(others))
