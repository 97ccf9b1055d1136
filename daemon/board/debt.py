"""The tech-debt board's store work: columns, list, create, edit, move, close, comment,
raise an item from an alert or an anomaly; and the demo's sample items. What a card shows and
how cards are ordered (cost of delay) live in ``daemon.board.debt_rows``.

Moving an item to ``done`` closes it (``closed_at``); moving it out of ``done`` reopens it.
There is no delete: closing is the end state, and the audit log keeps who did what.

Raising from an alert or an anomaly is idempotent: the item remembers its source
(``source_kind`` ``alert``/``anomaly`` and ``source_ref`` the fingerprint or id), and raising
again from the same source returns that item, whatever its status. (Two raises racing in the
same instant could both insert: the table has no unique key on the source.)

Error contract: ``ItemNotFound`` (a ``LookupError``) for an unknown item, alert or anomaly;
``FieldErrors`` (a ``ValueError``) naming every bad field (see ``daemon.board.debt_fields``).
Database errors propagate. Nothing here commits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlmodel import Session, col, select

from daemon.board.anomalies import anomaly_row
from daemon.board.comments import (
    CommentRow,
    FieldErrors,
    ItemNotFound,
    add_comment,
    has_nul,
    list_comments,
)
from daemon.board.debt_fields import STATUSES, check_link, clean_fields
from daemon.board.debt_rows import (
    CENT,
    DONE,
    STATUS_LABELS,
    CurrencyAmount,
    DebtBoard,
    DebtColumn,
    DebtDetail,
    DebtFilter,
    DebtPage,
    DebtRow,
    Raised,
    column_index,
    column_order,
    cost_of_delay,
    debt_row,
)
from daemon.store.models import Alert, Anomaly, DebtItem, as_utc

logger = logging.getLogger(__name__)

DEFAULT_CURRENCY = "USD"
DAYS_PER_MONTH = 30
"""An anomaly's one-day impact x 30 estimates the debt's monthly cost."""
__all__ = [
    "DONE",
    "STATUSES",
    "STATUS_LABELS",
    "CurrencyAmount",
    "DebtBoard",
    "DebtColumn",
    "DebtDetail",
    "DebtFilter",
    "DebtPage",
    "DebtRow",
    "Raised",
    "board",
    "comment",
    "cost_of_delay",
    "create_item",
    "get_item",
    "list_items",
    "move_item",
    "raise_from_alert",
    "raise_from_anomaly",
    "seed_demo_debt",
    "update_item",
]


def _rows(session: Session, filters: DebtFilter, now: datetime) -> list[DebtRow]:
    query = select(DebtItem)
    if filters.status:
        query = query.where(col(DebtItem.status) == filters.status)
    if filters.owner:
        query = query.where(col(DebtItem.owner) == filters.owner)
    if filters.severity:
        query = query.where(col(DebtItem.severity) == filters.severity)
    rows = [debt_row(item, now) for item in session.exec(query).all()]
    rows.sort(key=lambda row: (column_index(row.status), *column_order(row)))
    return rows


def list_items(
    session: Session, filters: DebtFilter, now: datetime, *, limit: int = 50, offset: int = 0
) -> DebtPage:
    """Items matching ``filters``, column by column, each column in its board order.

    Sorted in Python (cost of delay is a ratio): fine for a board's hundreds of items.
    ``FieldErrors`` on ``owner`` when it holds a NUL character."""
    if has_nul(filters.owner):
        raise FieldErrors({"owner": "must not contain NUL characters"})
    rows = _rows(session, filters, now)
    return DebtPage(rows[offset : offset + limit], len(rows), limit, offset)


def board(session: Session, now: datetime, *, per_column: int = 100) -> DebtBoard:
    """The four columns, each with its first ``per_column`` items in board order, and the
    open items' monthly interest per currency."""
    rows = _rows(session, DebtFilter(), now)
    columns = []
    interest: dict[str, Decimal] = {}
    for status in STATUSES:
        mine = [row for row in rows if row.status == status]
        columns.append(DebtColumn(status, STATUS_LABELS[status], len(mine), mine[:per_column]))
        if status != DONE:
            for row in mine:
                interest[row.currency] = interest.get(row.currency, Decimal(0)) + row.monthly_cost
    return DebtBoard(
        columns=columns,
        open_interest=[CurrencyAmount(cur, interest[cur]) for cur in sorted(interest)],
        open_items=sum(1 for row in rows if row.status != DONE),
        overdue_items=sum(1 for row in rows if row.overdue),
        generated_at=as_utc(now),
    )


def _load(session: Session, item_id: int) -> DebtItem:
    item = session.get(DebtItem, item_id)
    if item is None:
        raise ItemNotFound("debt item", item_id)
    return item


def get_item(session: Session, item_id: int, now: datetime) -> DebtDetail:
    """The item and its comments; ``ItemNotFound`` for an unknown id."""
    item = _load(session, item_id)
    return DebtDetail(debt_row(item, now), list_comments(session, "debt", item_id))


def _set_status(item: DebtItem, status: str, now: datetime) -> None:
    if status == item.status:
        return
    item.status = status
    item.closed_at = as_utc(now) if status == DONE else None


def create_item(
    session: Session,
    fields: Mapping[str, Any],
    now: datetime,
    *,
    source_kind: str = "",
    source_ref: str = "",
) -> DebtRow:
    """Add an item from raw ``fields`` (``title`` needed; defaults: backlog, medium, 0 USD).
    ``FieldErrors`` names every bad field."""
    values = clean_fields({"title": "", **fields})
    status = values.pop("status", "backlog")
    values.setdefault("currency", DEFAULT_CURRENCY)
    moment = as_utc(now)
    item = DebtItem(
        created_at=moment,
        updated_at=moment,
        source_kind=source_kind,
        source_ref=source_ref,
        source_fingerprint=source_ref if source_kind == "alert" else None,
        **values,
    )
    _set_status(item, status, now)
    session.add(item)
    session.flush()
    return debt_row(item, now)


def update_item(
    session: Session, item_id: int, changes: Mapping[str, Any], now: datetime
) -> list[str]:
    """Apply ``changes`` (raw field values); returns the names of the fields that changed.
    ``ItemNotFound``, or ``FieldErrors`` naming every bad field (nothing is applied then)."""
    item = _load(session, item_id)
    values = clean_fields(changes)
    changed = []
    for name, value in values.items():
        if getattr(item, name) == value:
            continue
        changed.append(name)
        if name == "status":
            _set_status(item, value, now)
        else:
            setattr(item, name, value)
    if changed:
        item.updated_at = as_utc(now)
        session.add(item)
        session.flush()
    return changed


def move_item(session: Session, item_id: int, status: str, now: datetime) -> str | None:
    """Move the item to column ``status`` (``done`` closes it). Returns the column it left,
    ``None`` when it was there already; ``ItemNotFound`` or ``FieldErrors`` on ``status``."""
    target = clean_fields({"status": status})["status"]
    item = _load(session, item_id)
    before = item.status
    if before == target:
        return None
    _set_status(item, target, now)
    item.updated_at = as_utc(now)
    session.add(item)
    session.flush()
    return before


def comment(session: Session, item_id: int, author: str, body: str, now: datetime) -> CommentRow:
    """Add a comment; ``ItemNotFound`` for an unknown id, ``FieldErrors`` on ``body``."""
    _load(session, item_id)
    return add_comment(session, "debt", item_id, author, body, now)


def _existing(session: Session, kind: str, ref: str) -> DebtItem | None:
    return session.exec(
        select(DebtItem)
        .where(col(DebtItem.source_kind) == kind, col(DebtItem.source_ref) == ref)
        .order_by(col(DebtItem.id))
    ).first()


FINGERPRINT = re.compile(r"[0-9A-Za-z_.:-]{1,64}")
"""What an alert fingerprint can look like (ours are 16 hex digits); anything else is unknown."""
ALERT_SEVERITY = {"critical": "critical", "page": "critical", "warning": "medium", "info": "low"}
"""An alert's ``severity`` label -> the item's severity (anything else: medium)."""


def raise_from_alert(session: Session, fingerprint: str, now: datetime) -> Raised:
    """The item for alert ``fingerprint``, created (title from the alert's summary, owner from
    its ``owner``/``team`` label, its http(s) runbook/dashboard links) unless one exists.
    The monthly cost is left at 0: an alert does not say what it costs. ``ItemNotFound`` for
    an unknown fingerprint."""
    if not FINGERPRINT.fullmatch(fingerprint):
        raise ItemNotFound("alert", repr(fingerprint[:64]))
    found = _existing(session, "alert", fingerprint)
    if found is not None:
        return Raised(debt_row(found, now), created=False)
    alert = session.get(Alert, fingerprint)
    if alert is None:
        raise ItemNotFound("alert", fingerprint)
    labels = {str(k): str(v) for k, v in (alert.labels or {}).items()}
    notes = {str(k): str(v) for k, v in (alert.annotations or {}).items()}
    summary = notes.get("summary", "").strip()
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    title = f"{alert.alertname}: {summary or shown or fingerprint}"
    lines = [
        f"Raised from alert {alert.alertname} (fingerprint {fingerprint}), "
        f"{alert.state} since {as_utc(alert.active_at):%Y-%m-%d %H:%M} UTC.",
        *(text for text in (summary, notes.get("description", "").strip()) if text),
        f"Labels: {shown}" if shown else "",
        "Monthly cost: an alert does not say what it costs; estimate it and edit this item.",
    ]
    links = []
    for key in ("runbook_url", "dashboard_url"):
        try:
            links.append(check_link(notes.get(key, "").strip()))
        except ValueError:
            continue
    fields = {
        "title": title[:500],
        "description": "\n".join(line for line in lines if line),
        "owner": labels.get("owner") or labels.get("team") or "",
        "severity": ALERT_SEVERITY.get(labels.get("severity", "").lower(), "medium"),
        "links": links,
    }
    item = create_item(session, fields, now, source_kind="alert", source_ref=fingerprint)
    return Raised(item, created=True)


def _money(amount: Decimal, currency: str, *, sign: bool = False) -> str:
    return f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):{'+' if sign else ''},} {currency}"


def raise_from_anomaly(session: Session, anomaly_id: int, now: datetime) -> Raised:
    """The item for anomaly ``anomaly_id``, created unless one exists: monthly cost = the
    day's impact x 30 (0 for a drop), said so in the description; severity high when the
    impact is 100% of the expected cost or more. ``ItemNotFound`` for an unknown id."""
    ref = str(anomaly_id)
    found = _existing(session, "anomaly", ref)
    if found is not None:
        return Raised(debt_row(found, now), created=False)
    stored = session.get(Anomaly, anomaly_id)
    if stored is None:
        raise ItemNotFound("anomaly", anomaly_id)
    row = anomaly_row(stored)
    cur = row.currency
    where = (
        " ".join(row.dimensions[k] for k in ("provider", "service") if row.dimensions.get(k))
        or row.series_key
    )
    monthly = (max(row.impact, Decimal(0)) * DAYS_PER_MONTH).quantize(CENT, ROUND_HALF_UP)
    percent = "" if row.impact_percent is None else f" ({row.impact_percent:+}%)"
    lines = [
        f"Raised from cost anomaly #{row.id} ({row.rule or 'cost_anomaly'}) on {row.day}: "
        f"expected {_money(row.expected_cost, cur)}, actual {_money(row.actual_cost, cur)}, "
        f"impact {_money(row.impact, cur, sign=True)}{percent}.",
        *(
            f"Root cause: {cause.dimension}={cause.value}"
            + (f" ({_money(cause.impact, cur, sign=True)})" if cause.impact is not None else "")
            for cause in row.root_causes
        ),
        f"Monthly cost is an estimate: the day's impact x {DAYS_PER_MONTH} = "
        f"{_money(monthly, cur)}, as if the extra spend went on every day. Adjust it.",
    ]
    big = row.impact_percent is not None and row.impact_percent >= 100
    fields = {
        "title": f"Cost anomaly: {where} {_money(row.impact, cur, sign=True)} on {row.day}"[:500],
        "description": "\n".join(lines),
        "severity": "high" if big else "medium",
        "monthly_cost": monthly,
        "currency": cur,
    }
    item = create_item(session, fields, now, source_kind="anomaly", source_ref=ref)
    return Raised(item, created=True)


# -- demo ---------------------------------------------------------------------------------------

# (title, status, severity, owner, monthly cost USD, effort days, due in days, links, note)
_DEMO: tuple[tuple[str, str, str, str, str, float | None, int | None, str], ...] = (
    ("Right-size the idle H100 batch pool", "backlog", "high", "ml-platform", "3400", 3.0,
     None, "Half the pool idles outside the nightly window; move it to a smaller reserved set."),
    ("Enable prefix caching on deepseek-v3 serving", "planned", "medium", "inference", "1150",
     2.0, 14, "Hit rate sits near 30%; the system prompt is identical across tenants."),
    ("Move the nightly embeddings job to spot capacity", "in_progress", "medium", "data-eng",
     "820", 5.0, -2, "Checkpointing is done; the retry wrapper is still missing."),
    ("Delete orphaned EBS snapshots from the 2025 migration", "backlog", "low", "", "140", 0.5,
     None, "About 2.8 TB of snapshots no AMI references."),
    ("Pin vLLM to a tested version after the rollback", "done", "high", "inference", "600",
     1.0, None, "The unpinned upgrade broke the KV-cache layout; pinned and tested."),
    ("Add cost allocation tags to the Azure OpenAI deployments", "backlog", "medium", "finops",
     "0", None, 30, "Spend cannot be split per team yet; interest unknown until it can."),
)  # fmt: skip


def seed_demo_debt(session: Session, now: datetime) -> int:
    """Add the demo's sample items unless an item with the same title exists (so a restart
    adds nothing), plus one raised from the demo's EC2 anomaly when it is there. Returns how
    many items were added; nothing is committed."""
    moment = as_utc(now)
    added = 0
    for title, status, severity, owner, monthly, effort, due_in, note in _DEMO:
        if session.exec(select(DebtItem.id).where(col(DebtItem.title) == title)).first():
            continue
        due = (moment + timedelta(days=due_in)).date().isoformat() if due_in is not None else ""
        fields = {"title": title, "status": status, "severity": severity, "owner": owner,
                  "monthly_cost": monthly, "effort_days": effort, "due_date": due,
                  "description": note}  # fmt: skip
        create_item(session, fields, moment - timedelta(days=12))
        added += 1
    spike = session.exec(
        select(Anomaly.id).where(col(Anomaly.series_key).contains("Elastic Compute Cloud"))
    ).first()
    if spike is not None and raise_from_anomaly(session, spike, moment).created:
        added += 1
    if added:
        logger.info("demo: added %d sample tech-debt items", added)
    return added
