"""Cost anomalies are recorded once per rule, series and day; re-evaluation refreshes an open
one and never touches what a person acknowledged or resolved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.anomalies import AnomalyDetailsError, anomaly_facts, record_anomalies, series_key
from daemon.store.db import open_store
from daemon.store.models import Anomaly
from rules.base import Finding

NOW = datetime(2026, 8, 20, 0, 30, tzinfo=UTC)
LABELS = {"provider": "aws", "service": "Amazon EC2", "account": "111122223333"}
D = Decimal


def finding(
    actual: str = "250.5", *, day: str = "2026-08-19", labels: dict[str, str] | None = None
) -> Finding:
    expected = D("100.25")
    impact = D(actual) - expected
    return Finding(
        labels=labels or LABELS,
        value=float(impact),
        details={
            "day": day,
            "expected": str(expected),
            "actual": actual,
            "impact": str(impact),
            "impact_percent": "149.88",
            "currency": "USD",
            "root_causes": [
                {
                    "dimension": "sku_id",
                    "value": "BoxUsage:p5.48xlarge",
                    "expected": "0",
                    "actual": "150",
                    "impact": "150",
                }
            ],
        },
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def record(engine: Engine, rule: str, *findings: Finding, now: datetime = NOW) -> int:
    with Session(engine) as session:
        changed = record_anomalies(session, anomaly_facts(rule, findings), now)
        session.commit()
    return changed


def rows(engine: Engine) -> list[Anomaly]:
    with Session(engine) as session:
        return list(session.exec(select(Anomaly).order_by(col(Anomaly.id))).all())


def test_it_writes_the_canonical_label_string_as_series_key() -> None:
    assert series_key(LABELS) == ('{account="111122223333",provider="aws",service="Amazon EC2"}')
    assert series_key({"b": 'say "hi"\\', "a": "x\ny"}) == '{a="x\\ny",b="say \\"hi\\"\\\\"}'
    long_key = series_key({"service": "s" * 2000})
    assert long_key.startswith("sha256:") and len(long_key) == 7 + 64


def test_it_records_an_anomaly_with_exact_money(engine: Engine) -> None:
    assert record(engine, "CloudCostSpike", finding()) == 1
    (row,) = rows(engine)
    assert row.rule == "CloudCostSpike"
    assert row.series_key == series_key(LABELS)
    assert row.dimensions == LABELS
    assert row.day == datetime(2026, 8, 19, tzinfo=UTC)
    assert (row.expected_cost, row.actual_cost, row.impact) == (
        D("100.25"),
        D("250.5"),
        D("150.25"),
    )
    assert row.currency == "USD" and row.status == "open"
    assert row.root_causes[0]["value"] == "BoxUsage:p5.48xlarge"
    assert row.created_at == NOW and row.updated_at == NOW


def test_it_updates_an_open_anomaly_instead_of_adding_one(engine: Engine) -> None:
    record(engine, "CloudCostSpike", finding("250.5"))
    later = NOW + timedelta(minutes=30)
    assert record(engine, "CloudCostSpike", finding("250.5"), now=later) == 0  # unchanged
    assert record(engine, "CloudCostSpike", finding("300.00000001"), now=later) == 1
    (row,) = rows(engine)
    assert row.actual_cost == D("300.00000001")
    assert row.impact == D("199.75000001")
    assert row.created_at == NOW and row.updated_at == later


def test_it_keeps_acknowledged_and_resolved_anomalies_as_they_are(engine: Engine) -> None:
    record(
        engine,
        "CloudCostSpike",
        finding(),
        finding(labels={**LABELS, "account": "2"}),
    )
    with Session(engine) as session:
        first, second = session.exec(select(Anomaly).order_by(col(Anomaly.id))).all()
        first.status, second.status = "acknowledged", "resolved"
        session.add(first)
        session.add(second)
        session.commit()
    changed = record(
        engine, "CloudCostSpike", finding("999"), finding("999", labels={**LABELS, "account": "2"})
    )
    assert changed == 0
    assert [(r.status, r.actual_cost) for r in rows(engine)] == [
        ("acknowledged", D("250.5")),
        ("resolved", D("250.5")),
    ]


def test_it_keeps_one_row_per_rule_series_and_day(engine: Engine) -> None:
    record(engine, "CloudCostSpike", finding())
    record(engine, "CloudCostSpike", finding(day="2026-08-20"))
    record(engine, "OtherRule", finding())
    record(engine, "CloudCostSpike", finding(labels={**LABELS, "service": "Amazon S3"}))
    keys = {(r.rule, r.series_key, r.day.date().isoformat()) for r in rows(engine)}
    assert len(keys) == 4 and len(rows(engine)) == 4


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"day": "19/08/2026"}, "details.day must be YYYY-MM-DD"),
        ({"expected": 100.25}, "details.expected must be a decimal string"),
        ({"actual": "lots"}, "details.actual is not a number"),
        ({"impact": "NaN"}, "details.impact must be finite"),
        ({"currency": "dollars"}, "details.currency must be a 3-letter code"),
        ({"root_causes": "sku"}, "details.root_causes must be a list"),
        ({"root_causes": ["sku"]}, "details.root_causes must hold mappings"),
    ],
)
def test_it_names_the_series_and_key_of_malformed_details(
    details: dict[str, Any], message: str
) -> None:
    good = finding()
    bad = Finding(labels=good.labels, value=good.value, details={**good.details, **details})
    with pytest.raises(AnomalyDetailsError, match=message) as raised:
        anomaly_facts("CloudCostSpike", [bad])
    assert "rule CloudCostSpike" in str(raised.value)
    assert 'provider="aws"' in str(raised.value)
