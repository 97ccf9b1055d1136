"""Billing sources run as jobs: each run replaces its restatement window; a failing source is
down with its reason and stores nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr
from sqlalchemy import func
from sqlmodel import Session, select

from collectors.base import CollectorDown, CostLine
from daemon.config import BillingSourceConfig, Config
from daemon.costs.billing_jobs import BillingSync, billing_jobs, build_billing_collector
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import CostRecord

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class FakeSource:
    kind = "fake"

    def __init__(self) -> None:
        self.name = "test"
        self.calls: list[tuple[date, date]] = []
        self.amount = "10.00"
        self.error: Exception | None = None

    def fetch(self, start: date, end: date) -> list[CostLine]:
        self.calls.append((start, end))
        if self.error is not None:
            raise self.error
        lines = []
        day = start
        while day < end:
            begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
            lines.append(
                CostLine(
                    row_key=str(day),
                    provider="X",
                    billed_cost=Decimal(self.amount),
                    billing_currency="USD",
                    charge_period_start=begin,
                    charge_period_end=begin + timedelta(days=1),
                )
            )
            day += timedelta(days=1)
        return lines


@pytest.fixture
def engine(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    yield engine
    engine.dispose()


def stored(engine) -> tuple[Decimal, int]:
    with Session(engine) as session:
        total, rows = session.exec(
            select(func.sum(CostRecord.billed_cost), func.count()).where(
                CostRecord.source == "fake:test"
            )
        ).one()
    return Decimal(total or 0), rows


def test_it_rereads_the_last_days_and_replaces_them(engine) -> None:
    source, state = FakeSource(), LiveState()
    sync = BillingSync(engine, state, source, restate_days=3)
    assert sync.run(NOW) == 3
    assert source.calls == [(date(2026, 11, 27), date(2026, 11, 30))]
    source.amount = "12.50"  # the provider restated those days
    sync.run(NOW)
    assert stored(engine) == (Decimal("37.50"), 3)
    sync.run(NOW + timedelta(days=1))  # a day later: one new day, two restated
    assert stored(engine) == (Decimal("50.00"), 4)
    status = state.view().collectors["billing:test"]
    assert status.up and status.last_success == NOW + timedelta(days=1)


def test_a_failing_source_is_down_with_its_reason_and_stores_nothing(engine, caplog) -> None:
    source, state = FakeSource(), LiveState()
    sync = BillingSync(engine, state, source, restate_days=2)
    sync.run(NOW)
    source.error = CollectorDown("AWS rejected the credentials (AccessDenied)")
    for _ in range(3):
        assert sync.run(NOW) == 0
    status = state.view().collectors["billing:test"]
    assert not status.up and "AccessDenied" in status.reason
    assert stored(engine) == (Decimal("20.00"), 2)  # the last good lines stay
    assert sum("is down" in r.getMessage() for r in caplog.records) == 1


def test_it_builds_each_configured_source_without_touching_the_network(engine) -> None:
    config = Config.model_validate(
        {
            "billing": {
                "sources": [
                    {"name": "prod", "type": "aws_ce"},
                    {
                        "name": "corp",
                        "type": "azure",
                        "scope": "subscriptions/1",
                        "tenant_id": "t",
                        "client_id": "c",
                        "client_secret": "s3cret",
                    },
                    {"name": "ml", "type": "gcp", "table": "p.d.gcp_billing_export_v1_X"},
                    {
                        "name": "cn",
                        "type": "aliyun",
                        "access_key_id": "id",
                        "access_key_secret": "k3y",
                    },
                ]
            }
        }
    )
    jobs = billing_jobs(config, engine, LiveState())
    assert [name for name, _, _ in jobs] == [
        "billing:prod",
        "billing:corp",
        "billing:ml",
        "billing:cn",
    ]
    kinds = [build_billing_collector(s).kind for s in config.billing.sources]
    assert kinds == ["aws_ce", "azure", "gcp", "aliyun"]
    assert "s3cret" not in repr(build_billing_collector(config.billing.sources[1]))


def test_the_config_requires_credentials_by_type() -> None:
    with pytest.raises(ValueError, match="tenant_id: required for type azure"):
        BillingSourceConfig(name="x", type="azure", scope="s", client_secret=SecretStr("z"))
