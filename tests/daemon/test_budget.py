"""Monthly budgets: a linear forecast guarded early in the month, and spend summed from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session

from collectors.base import CostLine
from daemon.costs.budget import (
    Budget,
    BudgetStatus,
    budget_status,
    month_forecast,
    month_start,
    next_month_start,
    spend_to_date,
)
from daemon.costs.ledger import add_lines
from daemon.store.db import open_store

D = Decimal


def test_it_forecasts_linearly_with_the_elapsed_fraction_of_the_month() -> None:
    # 30-day November, 10 days elapsed: 100 * 30 / 10
    assert month_forecast(D("100"), datetime(2026, 11, 11, tzinfo=UTC)) == D("300")
    # half a day counts as half a day: 1.5 days of 30
    assert month_forecast(D("3"), datetime(2026, 11, 2, 12, tzinfo=UTC)) == D("60")


def test_it_uses_29_days_for_february_in_a_leap_year() -> None:
    assert month_forecast(D("140"), datetime(2024, 2, 15, tzinfo=UTC)) == D("290")
    assert month_forecast(D("140"), datetime(2026, 2, 15, tzinfo=UTC)) == D("280")


def test_it_treats_the_last_instant_of_a_month_as_almost_all_of_it() -> None:
    forecast = month_forecast(D("310"), datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert forecast is not None
    assert D("310") < forecast < D("310.01")
    assert next_month_start(datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


def test_it_gives_no_forecast_in_the_first_hour_of_a_month() -> None:
    first_instant = datetime(2026, 3, 1, tzinfo=UTC)
    assert month_forecast(D("5"), first_instant) is None
    assert month_forecast(D("5"), first_instant + timedelta(minutes=1)) is None
    assert month_forecast(D("5"), first_instant + timedelta(minutes=59, seconds=59)) is None
    # from one hour on: 5 * 31 days * 24 hours
    assert month_forecast(D("5"), first_instant + timedelta(hours=1)) == D("3720")


def test_it_converts_other_zones_to_utc_and_refuses_naive_times() -> None:
    from zoneinfo import ZoneInfo

    # 2026-03-01 02:00 in Shanghai is still February in UTC
    shanghai = datetime(2026, 3, 1, 2, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert month_start(shanghai) == datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        month_forecast(D("1"), datetime(2026, 3, 1))


def test_it_reports_budget_status_with_burn_and_remaining() -> None:
    budget = Budget(name="deepseek", amount=D("1000"), currency="USD", provider="deepseek")
    status = budget_status(budget, D("500"), datetime(2026, 11, 11, tzinfo=UTC))
    assert status == BudgetStatus(
        spent=D("500"),
        forecast=D("1500"),
        remaining=D("500"),
        burn_ratio=D("1.5"),
        spent_ratio=D("0.5"),
    )
    early = budget_status(budget, D("1200"), datetime(2026, 11, 1, 0, 30, tzinfo=UTC))
    assert early.forecast is None and early.burn_ratio is None
    assert early.remaining == D("-200")


def test_it_rejects_a_budget_without_a_positive_amount() -> None:
    with pytest.raises(ValueError, match="amount must be a Decimal above 0"):
        Budget(name="b", amount=D("0"), currency="USD")
    with pytest.raises(ValueError, match="ISO 4217"):
        Budget(name="b", amount=D("1"), currency="usd$")


def _line(
    key: str,
    day: datetime,
    amount: str,
    *,
    currency: str = "USD",
    provider: str = "AWS",
    service: str = "EC2",
) -> CostLine:
    return CostLine(
        row_key=key,
        provider=provider,
        billed_cost=D(amount),
        billing_currency=currency,
        charge_period_start=day,
        charge_period_end=day + timedelta(days=1),
        service_name=service,
    )


@pytest.fixture
def engine(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    yield engine
    engine.dispose()


def test_it_sums_this_months_spend_from_the_store_exactly(engine) -> None:
    nov = datetime(2026, 11, 1, tzinfo=UTC)
    lines = [
        _line("oct-31", nov - timedelta(days=1), "99.99"),  # previous month: out
        _line("nov-01", nov, "0.10"),
        _line("nov-02", nov + timedelta(days=1), "0.20"),
        _line("nov-03-s3", nov + timedelta(days=2), "1.05", service="S3"),
        _line("nov-03-gcp", nov + timedelta(days=2), "7.00", provider="GCP"),
        _line("nov-03-cny", nov + timedelta(days=2), "70.00", currency="CNY"),
        _line("nov-04", nov + timedelta(days=3), "5.00"),  # at or after now: out
    ]
    with Session(engine) as session:
        add_lines(session, lines, source="test", import_batch="b1")
        session.commit()
    now = nov + timedelta(days=3)
    with Session(engine) as session:
        everything = spend_to_date(session, month_start=nov, now=now, currency="USD")
        aws = spend_to_date(session, month_start=nov, now=now, currency="USD", provider="AWS")
        ec2 = spend_to_date(
            session, month_start=nov, now=now, currency="USD", provider="AWS", service="EC2"
        )
    # 0.10 + 0.20 + 1.05 + 7.00 (floats would give 8.350000000000001)
    assert everything.total == D("8.35")
    assert everything.records == 4
    assert everything.other_currency_records == 1
    assert everything.other_currency_totals == {"CNY": D("70.00")}
    assert aws.total == D("1.35")
    assert ec2.total == D("0.30")
    assert ec2.other_currency_records == 1


def test_it_returns_zero_for_an_empty_month(engine) -> None:
    with Session(engine) as session:
        result = spend_to_date(
            session,
            month_start=datetime(2026, 1, 1, tzinfo=UTC),
            now=datetime(2026, 1, 5, tzinfo=UTC),
            currency="EUR",
        )
    assert result.total == 0 and result.records == 0 and result.other_currency_totals == {}
