"""The anomalies page's queries and writes: list and filter, read one, acknowledge, resolve,
reopen, comment; and the demo's sample anomalies.

Rows come from ``daemon.anomalies.record_anomalies`` (the ``cost_anomaly`` rule). A row's life:
``open`` -> ``acknowledged`` (someone looks at it) -> ``resolved``; ``reopen`` puts an
acknowledged or resolved row back to ``open`` (and clears who acknowledged it), after which the
rule refreshes its figures again. Figures are ``Decimal`` in the row's own currency;
``impact_percent`` is ``impact / expected x 100`` to one decimal (``None`` when nothing was
expected).

Error contract: ``ItemNotFound`` (a ``LookupError``) for an unknown id; ``FieldErrors`` (a
``ValueError``) naming the field for a bad filter or comment; ``TransitionRefused`` (a
``ValueError``) for a move the life above does not allow (acknowledging a resolved row).
Database errors propagate. Nothing here commits: the caller's transaction does, together with
its audit entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from daemon.anomalies import series_key
from daemon.board.comments import (
    CommentRow,
    FieldErrors,
    ItemNotFound,
    add_comment,
    has_nul,
    list_comments,
)
from daemon.store.models import Anomaly, Comment, DebtItem, as_utc

logger = logging.getLogger(__name__)

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
DIMENSION_FILTERS = ("provider", "service", "account")
"""Series labels the list can be filtered on (exact match)."""
PERCENT = Decimal("0.1")


class TransitionRefused(ValueError):
    """The anomaly's status does not allow that action."""


@dataclass(frozen=True, slots=True)
class AnomalyFilter:
    """List filters; ``None`` = any. Days are inclusive (UTC)."""

    status: str | None = None
    provider: str | None = None
    service: str | None = None
    account: str | None = None
    day_from: date | None = None
    day_to: date | None = None


@dataclass(frozen=True, slots=True)
class RootCause:
    """One dimension value that moved: ``dimension=value`` and its impact (``None`` if the rule
    stored no readable figure)."""

    dimension: str
    value: str
    expected: Decimal | None
    actual: Decimal | None
    impact: Decimal | None


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    """One anomaly: a day of one cost series (provider / service / account)."""

    id: int
    rule: str
    series_key: str
    dimensions: dict[str, str]
    day: date
    expected_cost: Decimal
    actual_cost: Decimal
    impact: Decimal
    impact_percent: Decimal | None
    currency: str
    root_causes: list[RootCause]
    status: str
    acknowledged_by: str
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class AnomalyPage:
    """One page of the list; ``total`` counts every row matching the filters."""

    items: list[AnomalyRow]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class AnomalyDetail:
    """One anomaly with its comments and the debt item raised from it, if any."""

    anomaly: AnomalyRow
    comments: list[CommentRow]
    debt_item_id: int | None


def parse_filter(
    status: str | None = None,
    provider: str | None = None,
    service: str | None = None,
    account: str | None = None,
    day_from: str | None = None,
    day_to: str | None = None,
) -> AnomalyFilter:
    """Filters from form text (empty = any); ``FieldErrors`` naming each bad field."""
    errors: dict[str, str] = {}
    status = (status or "").strip() or None
    if status is not None and status not in STATUSES:
        errors["status"] = f"expected one of {', '.join(STATUSES)}, got {status[:40]!r}"
    days: dict[str, date | None] = {}
    for name, text in (("day_from", day_from), ("day_to", day_to)):
        text = (text or "").strip()
        try:
            days[name] = date.fromisoformat(text) if text else None
        except ValueError:
            errors[name] = f"expected a date as YYYY-MM-DD, got {text[:40]!r}"
    if errors:
        raise FieldErrors(errors)
    return check_filter(
        AnomalyFilter(
            status=status,
            provider=(provider or "").strip() or None,
            service=(service or "").strip() or None,
            account=(account or "").strip() or None,
            day_from=days["day_from"],
            day_to=days["day_to"],
        )
    )


def check_filter(filters: AnomalyFilter) -> AnomalyFilter:
    """``filters`` when consistent; ``FieldErrors`` on ``day_to`` when it precedes
    ``day_from``, on ``status`` when it is not a known status, or on a label filter holding a
    NUL character."""
    if filters.status is not None and filters.status not in STATUSES:
        raise FieldErrors({"status": f"expected one of {', '.join(STATUSES)}"})
    bad = [name for name in DIMENSION_FILTERS if has_nul(getattr(filters, name))]
    if bad:
        raise FieldErrors({name: "must not contain NUL characters" for name in bad})
    if filters.day_from and filters.day_to and filters.day_to < filters.day_from:
        raise FieldErrors({"day_to": "must not be before day_from"})
    return filters


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _conditions(filters: AnomalyFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(col(Anomaly.status) == filters.status)
    dimensions: Any = col(Anomaly.dimensions)
    for name in DIMENSION_FILTERS:
        wanted = getattr(filters, name)
        if wanted:
            conditions.append(dimensions[name].as_string() == wanted)
    if filters.day_from:
        conditions.append(col(Anomaly.day) >= _midnight(filters.day_from))
    if filters.day_to and filters.day_to < date.max:
        conditions.append(col(Anomaly.day) < _midnight(filters.day_to + timedelta(days=1)))
    return conditions


def list_anomalies(
    session: Session, filters: AnomalyFilter, *, limit: int = 50, offset: int = 0
) -> AnomalyPage:
    """Anomalies matching ``filters``, newest day first, biggest impact first within a day."""
    conditions = _conditions(filters)
    rows = session.exec(
        select(Anomaly)
        .where(*conditions)
        .order_by(col(Anomaly.day).desc(), col(Anomaly.impact).desc(), col(Anomaly.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.exec(select(func.count()).select_from(Anomaly).where(*conditions)).one()
    return AnomalyPage([anomaly_row(row) for row in rows], int(total), limit, offset)


def dimension_values(session: Session, name: str, *, limit: int = 200) -> list[str]:
    """The distinct values of one series label (``provider``...), sorted, for filter hints."""
    dimensions: Any = col(Anomaly.dimensions)
    value = dimensions[name].as_string()
    rows = session.exec(select(value).where(value.is_not(None)).distinct().limit(limit)).all()
    return sorted(str(v) for v in rows if v)


def get_anomaly(session: Session, anomaly_id: int) -> AnomalyDetail:
    """The anomaly, its comments and its debt item; ``ItemNotFound`` for an unknown id."""
    row = _load(session, anomaly_id)
    debt_id = session.exec(
        select(DebtItem.id)
        .where(col(DebtItem.source_kind) == "anomaly", col(DebtItem.source_ref) == str(row.id))
        .order_by(col(DebtItem.id))
    ).first()
    return AnomalyDetail(anomaly_row(row), list_comments(session, "anomaly", anomaly_id), debt_id)


def _load(session: Session, anomaly_id: int) -> Anomaly:
    row = session.get(Anomaly, anomaly_id)
    if row is None:
        raise ItemNotFound("anomaly", anomaly_id)
    return row


def acknowledge(session: Session, anomaly_id: int, actor: str, now: datetime) -> bool:
    """Mark an open anomaly acknowledged by ``actor``. True when it changed (False when it was
    already acknowledged); ``TransitionRefused`` for a resolved one (reopen it first)."""
    row = _load(session, anomaly_id)
    if row.status == ACKNOWLEDGED:
        return False
    if row.status == RESOLVED:
        raise TransitionRefused(f"anomaly {anomaly_id} is resolved: reopen it first")
    row.status, row.acknowledged_by, row.acknowledged_at = ACKNOWLEDGED, actor[:255], as_utc(now)
    return _save(session, row, now)


def resolve(session: Session, anomaly_id: int, actor: str, now: datetime) -> bool:
    """Resolve an open or acknowledged anomaly (an open one counts as acknowledged by
    ``actor`` too). True when it changed, False when it was already resolved."""
    row = _load(session, anomaly_id)
    if row.status == RESOLVED:
        return False
    if row.status == OPEN:
        row.acknowledged_by, row.acknowledged_at = actor[:255], as_utc(now)
    row.status, row.resolved_at = RESOLVED, as_utc(now)
    return _save(session, row, now)


def reopen(session: Session, anomaly_id: int, now: datetime) -> bool:
    """Put an acknowledged or resolved anomaly back to open. True when it changed."""
    row = _load(session, anomaly_id)
    if row.status == OPEN:
        return False
    row.status, row.resolved_at = OPEN, None
    row.acknowledged_by, row.acknowledged_at = "", None
    return _save(session, row, now)


def _save(session: Session, row: Anomaly, now: datetime) -> bool:
    row.updated_at = as_utc(now)
    session.add(row)
    session.flush()
    return True


def comment(session: Session, anomaly_id: int, author: str, body: str, now: datetime) -> CommentRow:
    """Add a comment; ``ItemNotFound`` for an unknown id, ``FieldErrors`` on ``body``."""
    _load(session, anomaly_id)
    return add_comment(session, "anomaly", anomaly_id, author, body, now)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, float | bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _root_cause(raw: Any) -> RootCause | None:
    if not isinstance(raw, dict):
        return None
    expected, actual, impact = (_decimal(raw.get(key)) for key in ("expected", "actual", "impact"))
    return RootCause(
        dimension=str(raw.get("dimension", "")),
        value=str(raw.get("value", "")),
        expected=plain(expected) if expected is not None else None,
        actual=plain(actual) if actual is not None else None,
        impact=plain(impact) if impact is not None else None,
    )


def plain(amount: Decimal) -> Decimal:
    """``amount`` without trailing zeros and never in exponent form (money columns read back
    with 8 decimals: ``400.00000000`` becomes ``400``, ``1276.90000000`` becomes ``1276.9``)."""
    value = amount.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def impact_percent(impact: Decimal, expected: Decimal) -> Decimal | None:
    """``impact`` as a percentage of ``expected``, one decimal; ``None`` when expected is 0."""
    if expected == 0:
        return None
    return (impact / expected * 100).quantize(PERCENT, rounding=ROUND_HALF_UP)


def anomaly_row(row: Anomaly) -> AnomalyRow:
    """The stored row as the board shows it (malformed root causes are left out)."""
    expected, impact = plain(Decimal(row.expected_cost)), plain(Decimal(row.impact))
    causes = [_root_cause(raw) for raw in row.root_causes or []]
    return AnomalyRow(
        id=row.id or 0,
        rule=row.rule,
        series_key=row.series_key,
        dimensions={str(k): str(v) for k, v in (row.dimensions or {}).items()},
        day=as_utc(row.day).date(),
        expected_cost=expected,
        actual_cost=plain(Decimal(row.actual_cost)),
        impact=impact,
        impact_percent=impact_percent(impact, expected),
        currency=row.currency,
        root_causes=[cause for cause in causes if cause is not None],
        status=row.status,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=as_utc(row.acknowledged_at) if row.acknowledged_at else None,
        resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at) if row.updated_at else None,
    )


# -- demo ---------------------------------------------------------------------------------------

DEMO_RULE = "CloudCostAnomaly"
DEMO_ACCOUNT = "demo-account"
EC2 = "Amazon Elastic Compute Cloud - Compute"
# (days ago, provider, service, expected, actual, root causes as (dimension, value, exp, act))
_DEMO: tuple[tuple[int, str, str, str, str, tuple[tuple[str, str, str, str], ...]], ...] = (
    (3, "AWS", EC2, "412.37", "1276.90", (
        ("sku_id", "BoxUsage:p5.48xlarge", "0.00", "781.12"),
        ("region_id", "us-east-1", "412.37", "1276.90"),
    )),
    (6, "Microsoft", "Azure OpenAI", "118.40", "236.75", (
        ("sku_id", "gpt-4o-global-output-tokens", "61.20", "171.64"),
    )),
    (9, "Google Cloud", "Vertex AI", "74.10", "131.02", (
        ("region_id", "us-central1", "74.10", "131.02"),
    )),
)  # fmt: skip


def _demo_cause(dimension: str, value: str, expected: str, actual: str) -> dict[str, str]:
    impact = str(Decimal(actual) - Decimal(expected))
    return {"dimension": dimension, "value": value, "expected": expected, "actual": actual,
            "impact": impact}  # fmt: skip


def seed_demo_anomalies(session: Session, now: datetime) -> int:
    """Add the demo's sample anomalies (around the sample bills' EC2 spike) unless a row for
    the same rule and series exists already, so a restart adds nothing. One is acknowledged,
    one resolved. Returns how many rows were added; nothing is committed."""
    today = as_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    added = 0
    for back, provider, service, expected, actual, causes in _DEMO:
        labels = {"account": DEMO_ACCOUNT, "provider": provider, "service": service}
        key = series_key(labels)
        exists = session.exec(
            select(Anomaly.id).where(col(Anomaly.rule) == DEMO_RULE, col(Anomaly.series_key) == key)
        ).first()
        if exists is not None:
            continue
        day = today - timedelta(days=back)
        impact = Decimal(actual) - Decimal(expected)
        row = Anomaly(
            rule=DEMO_RULE,
            series_key=key,
            dimensions=labels,
            day=day,
            expected_cost=Decimal(expected),
            actual_cost=Decimal(actual),
            impact=impact,
            currency="USD",
            root_causes=[_demo_cause(*cause) for cause in causes],
            status=OPEN,
            created_at=day + timedelta(days=1, hours=1),
            updated_at=day + timedelta(days=1, hours=1),
        )
        if back == 6:
            row.status, row.acknowledged_by = ACKNOWLEDGED, "user:demo"
            row.acknowledged_at = day + timedelta(days=1, hours=3)
        elif back == 9:
            row.status, row.acknowledged_by = RESOLVED, "user:demo"
            row.acknowledged_at = row.resolved_at = day + timedelta(days=2)
        session.add(row)
        session.flush()
        if back == 6 and row.id is not None:
            session.add(
                Comment(
                    subject="anomaly",
                    subject_id=row.id,
                    author="user:demo",
                    body="Batch evaluation run on the new model; expected to fall back "
                    "tomorrow. Watching.",
                    created_at=day + timedelta(days=1, hours=3),
                )
            )
        added += 1
    if added:
        logger.info("demo: added %d sample anomalies", added)
    return added
