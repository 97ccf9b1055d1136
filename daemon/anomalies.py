"""Recording ``cost_anomaly`` findings in the ``anomaly`` table, idempotently.

One row per (rule, series, day): the rule re-judges the same latest day on every evaluation
(and bills are restated for days), so a second finding for that day updates the open row's
expected and actual cost, impact and root causes instead of adding one. A row a person has
acknowledged or resolved keeps its status and figures. ``series_key`` is the canonical label
string of the series (``{account="1",provider="aws",service="EC2"}``).

Error contract: ``anomaly_facts`` raises ``AnomalyDetailsError`` (a ``ValueError``) naming the
finding's series and the bad key when a finding's details are malformed (the caller treats
that as a failing rule); ``record_anomalies`` lets database errors propagate.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session, col, select

from daemon.store.models import Anomaly
from rules.base import Finding

logger = logging.getLogger(__name__)

OPEN = "open"
MAX_KEY_LENGTH = 1024
"""``anomaly.series_key`` column size; a longer label string is stored as its SHA-256."""


class AnomalyDetailsError(ValueError):
    """A ``cost_anomaly`` finding whose ``details`` cannot be recorded."""


@dataclass(frozen=True)
class AnomalyFact:
    """One anomaly as it goes into the table."""

    rule: str
    series_key: str
    dimensions: dict[str, str]
    day: datetime
    expected: Decimal
    actual: Decimal
    impact: Decimal
    currency: str
    root_causes: list[dict[str, Any]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(labels: Mapping[str, str]) -> str:
    """The canonical label string: ``{a="x",b="y"}``, names sorted, values escaped as in
    Prometheus; longer than the column allows: ``sha256:<hex>`` of that string."""
    text = "{" + ",".join(f'{k}="{_escape(str(labels[k]))}"' for k in sorted(labels)) + "}"
    if len(text) > MAX_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def _money(details: Mapping[str, Any], key: str, where: str) -> Decimal:
    raw = details.get(key)
    if isinstance(raw, float) or raw is None:
        raise AnomalyDetailsError(f"{where}: details.{key} must be a decimal string, got {raw!r}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise AnomalyDetailsError(f"{where}: details.{key} is not a number: {raw!r}") from None
    if not value.is_finite():
        raise AnomalyDetailsError(f"{where}: details.{key} must be finite, got {raw!r}")
    return value


def _fact(rule: str, finding: Finding) -> AnomalyFact:
    key = series_key(finding.labels)
    where = f"rule {rule}, series {key}"
    details = finding.details
    try:
        day = date.fromisoformat(str(details.get("day")))
    except ValueError:
        raise AnomalyDetailsError(
            f"{where}: details.day must be YYYY-MM-DD, got {details.get('day')!r}"
        ) from None
    currency = details.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise AnomalyDetailsError(f"{where}: details.currency must be a 3-letter code")
    causes = details.get("root_causes", [])
    if not isinstance(causes, Sequence) or isinstance(causes, str | bytes):
        raise AnomalyDetailsError(f"{where}: details.root_causes must be a list")
    if not all(isinstance(cause, Mapping) for cause in causes):
        raise AnomalyDetailsError(f"{where}: details.root_causes must hold mappings")
    return AnomalyFact(
        rule=rule,
        series_key=key,
        dimensions={str(k): str(v) for k, v in finding.labels.items()},
        day=datetime.combine(day, time(), UTC),
        expected=_money(details, "expected", where),
        actual=_money(details, "actual", where),
        impact=_money(details, "impact", where),
        currency=currency,
        root_causes=[{str(k): _json_safe(v) for k, v in cause.items()} for cause in causes],
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


def anomaly_facts(rule: str, findings: Sequence[Finding]) -> list[AnomalyFact]:
    """The anomalies of one evaluation of ``rule`` (pure; see the module docstring)."""
    return [_fact(rule, finding) for finding in findings]


def _same(row: Anomaly, fact: AnomalyFact) -> bool:
    return (
        Decimal(row.expected_cost) == fact.expected
        and Decimal(row.actual_cost) == fact.actual
        and Decimal(row.impact) == fact.impact
        and row.currency == fact.currency
        and row.root_causes == fact.root_causes
        and row.dimensions == fact.dimensions
    )


def record_anomalies(session: Session, facts: Sequence[AnomalyFact], now: datetime) -> int:
    """Insert new anomalies and refresh open ones whose figures changed (no commit; a
    concurrent insert of the same row fails on the unique key and the caller's transaction
    rolls back). Returns how many rows were inserted or updated."""
    changed = 0
    for fact in facts:
        row = session.exec(
            select(Anomaly).where(
                col(Anomaly.rule) == fact.rule,
                col(Anomaly.series_key) == fact.series_key,
                col(Anomaly.day) == fact.day,
            )
        ).first()
        if row is None:
            session.add(
                Anomaly(
                    rule=fact.rule,
                    series_key=fact.series_key,
                    dimensions=fact.dimensions,
                    day=fact.day,
                    expected_cost=fact.expected,
                    actual_cost=fact.actual,
                    impact=fact.impact,
                    currency=fact.currency,
                    root_causes=fact.root_causes,
                    status=OPEN,
                    created_at=now,
                    updated_at=now,
                )
            )
            logger.info(
                "cost anomaly %s %s on %s: %s %s, expected %s",
                fact.rule,
                fact.series_key,
                fact.day.date().isoformat(),
                fact.actual,
                fact.currency,
                fact.expected,
            )
            changed += 1
            continue
        if row.status != OPEN or _same(row, fact):
            continue
        row.expected_cost, row.actual_cost, row.impact = fact.expected, fact.actual, fact.impact
        row.currency, row.root_causes, row.dimensions = (
            fact.currency,
            fact.root_causes,
            fact.dimensions,
        )
        row.updated_at = now
        session.add(row)
        changed += 1
    return changed
