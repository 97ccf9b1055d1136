"""Rollbacks on the board: record, mark restored, list with SLA clocks, time-to-restore stats.

Pure functions over the caller's ``Session`` (the caller commits); the clock comes in as
``now``. A rollback is open while it has no ``restored_at``. Its target is stored with it
(``sla_target_seconds``) when it is recorded: the one given, else the ``rollbacks`` config's
per-service target, else its ``default_target`` (4 h). The ``rollback_sla`` rule reads that
stored target, so the board's clock and the alert agree (unless the rule's own ``services``
param overrides a service; see the README). A clock is *breached* once the rollback has been
open strictly longer than its target, the rule's definition; a restored rollback *met* its
target when its time to restore is at most the target.

Error contract: ``record_rollback``, ``restore_rollback`` and the ``parse_*`` helpers raise
``InputError`` (a ``ValueError`` with ``field`` and ``reason``) for bad input;
``restore_rollback`` raises ``RollbackNotFound`` (a ``LookupError``) for an unknown id and
``RollbackAlreadyRestored`` when it is not open. Database errors propagate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from daemon.board.errors import InputError
from daemon.config import RollbacksConfig
from daemon.store.models import Rollback, as_utc
from rules.durations import parse_duration

logger = logging.getLogger(__name__)

ON_TRACK = "on_track"
AT_RISK = "at_risk"
BREACHED = "breached"
MET = "met"
AT_RISK_SHARE = 0.25
"""An open clock is at risk once less than this share of its target is left."""
MIN_TARGET = timedelta(minutes=1)
MAX_TARGET = timedelta(days=365)
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a start or restore time may lie (clients' clocks drift)."""
SHORT_TEXT = 255
LONG_TEXT = 2000
URL_UNSAFE = frozenset('<>"`\\')
"""Never valid unencoded in a URL (RFC 3986), and the usual tools of markup injection."""
DEMO_ACTOR = "demo"
"""``created_by`` of the demo's sample rollbacks."""


class RollbackNotFound(LookupError):
    """No rollback has this id."""


class RollbackAlreadyRestored(ValueError):
    """The rollback was already marked restored."""


@dataclass(frozen=True, slots=True)
class NewRollback:
    """A rollback to record. ``started_at`` ``None`` = now; ``sla_target`` ``None`` = the
    configured target for the service."""

    service: str
    from_version: str
    to_version: str
    reason: str = ""
    owner: str = ""
    incident_url: str = ""
    started_at: datetime | None = None
    sla_target: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RollbackRow:
    """One rollback with its SLA clock as of the page's ``as_of``.

    ``elapsed_seconds``: open for so long (open) or the time to restore (restored).
    ``sla``: ``on_track``, ``at_risk`` (under a quarter of the target left) or ``breached``
    while open; ``met`` or ``breached`` once restored.
    """

    id: int
    service: str
    from_version: str
    to_version: str
    reason: str
    owner: str
    incident_url: str
    started_at: datetime
    restored_at: datetime | None
    created_by: str
    sla_target_seconds: int
    open: bool
    elapsed_seconds: int
    breached: bool
    sla: str
    remaining_seconds: int | None
    """Open and within target: seconds left; otherwise ``None``."""
    breached_by_seconds: int | None
    """Past target: by how many seconds (open: so far); otherwise ``None``."""
    time_to_restore_seconds: int | None
    """Restored: ``restored_at - started_at``; open: ``None``."""
    elapsed_ratio: float
    """``elapsed / target`` (1.0 = the target is reached)."""


@dataclass(frozen=True, slots=True)
class RollbackPage:
    """One page of rollbacks, open ones first; ``total`` counts every match of the filters."""

    items: list[RollbackRow]
    total: int
    limit: int
    offset: int
    as_of: datetime


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """Rollbacks of one service (or ``*`` for all) started in the period.

    ``breaches`` counts restored ones that missed their target and open ones already past it.
    Time-to-restore figures are over the restored ones only (``None`` when there are none);
    percentiles interpolate linearly between the closest ranks.
    """

    service: str
    rollbacks: int
    open: int
    restored: int
    breaches: int
    median_restore_seconds: int | None
    p90_restore_seconds: int | None


@dataclass(frozen=True, slots=True)
class RollbackStats:
    """Time-to-restore statistics per service over ``[since, until]``."""

    days: int
    since: datetime
    until: datetime
    services: list[ServiceStats]
    overall: ServiceStats


# -- input --------------------------------------------------------------------------------------


def _text(field: str, value: str, limit: int, *, required: bool, single_line: bool) -> str:
    text = value.strip()
    if required and not text:
        raise InputError(field, "required")
    if len(text) > limit:
        raise InputError(field, f"at most {limit} characters")
    allowed = "" if single_line else "\n\r\t"
    if any((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed for ch in text):
        raise InputError(field, "must not contain control characters or line breaks")
    return text


def check_incident_url(value: str, field: str = "incident_url") -> str:
    """``value`` stripped when it is empty or an ``http(s)://host/...`` URL.

    Refuses other schemes (``javascript:``, ``data:``), spaces, unencoded ``< > " ` \\``, and
    user names or passwords in the URL; the message never repeats the value.
    """
    text = value.strip()
    if not text:
        return ""
    if len(text) > LONG_TEXT:
        raise InputError(field, f"at most {LONG_TEXT} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InputError(field, "must not contain spaces or control characters")
    if any(ch in URL_UNSAFE for ch in text):
        raise InputError(field, 'characters like < > " ` \\ must be percent-encoded')
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        raise InputError(field, "not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise InputError(field, "expected an http:// or https:// link")
    if parts.username is not None or parts.password is not None:
        raise InputError(field, "must not contain a user name or password")
    return text


def parse_when(field: str, text: str) -> datetime | None:
    """An ISO 8601 time (``2026-08-20T09:30``; no zone = UTC) or ``None`` for an empty text."""
    cleaned = text.strip()
    if not cleaned:
        return None
    try:
        return as_utc(datetime.fromisoformat(cleaned))
    except (ValueError, OverflowError):
        raise InputError(field, "expected a date and time like 2026-08-20T09:30 (UTC)") from None


def parse_target(field: str, text: str) -> timedelta | None:
    """A duration like ``4h`` or ``90m``, or ``None`` for an empty text."""
    cleaned = text.strip()
    if not cleaned:
        return None
    try:
        return parse_duration(cleaned, example="4h")
    except ValueError as exc:
        raise InputError(field, str(exc)) from None


def _check_target(target: timedelta) -> timedelta:
    if not MIN_TARGET <= target <= MAX_TARGET:
        raise InputError("sla_target", "expected between 1m and 365d")
    return target


def _not_future(field: str, moment: datetime, now: datetime) -> datetime:
    """``moment`` in UTC; refuses a time in the future or one that cannot be put in UTC."""
    try:
        moment = as_utc(moment)
    except OverflowError:
        raise InputError(field, "out of range") from None
    if moment > now + CLOCK_SKEW:
        raise InputError(field, "is in the future")
    return moment


# -- writes -------------------------------------------------------------------------------------


def record_rollback(
    session: Session,
    new: NewRollback,
    *,
    policy: RollbacksConfig,
    created_by: str,
    now: datetime,
) -> Rollback:
    """Validate ``new`` and add it to ``session`` (flushed, so it has an id).

    Raises ``InputError`` naming the first bad field.
    """
    service = _text("service", new.service, SHORT_TEXT, required=True, single_line=True)
    from_version = _text(
        "from_version", new.from_version, SHORT_TEXT, required=True, single_line=True
    )
    to_version = _text("to_version", new.to_version, SHORT_TEXT, required=True, single_line=True)
    if from_version == to_version:
        raise InputError("to_version", "must differ from from_version")
    now = as_utc(now)
    started = _not_future("started_at", new.started_at or now, now)
    target = _check_target(new.sla_target or policy.target_for(service))
    rollback = Rollback(
        service=service,
        from_version=from_version,
        to_version=to_version,
        reason=_text("reason", new.reason, LONG_TEXT, required=False, single_line=False),
        owner=_text("owner", new.owner, SHORT_TEXT, required=False, single_line=True),
        incident_url=check_incident_url(new.incident_url),
        started_at=started,
        sla_target_seconds=int(target.total_seconds()),
        created_by=created_by[:SHORT_TEXT],
    )
    session.add(rollback)
    session.flush()
    logger.info(
        "rollback %s of %s recorded by %s (target %ss)",
        rollback.id,
        service,
        created_by,
        rollback.sla_target_seconds,
    )
    return rollback


def restore_rollback(
    session: Session, rollback_id: int, *, restored_at: datetime | None, now: datetime
) -> Rollback:
    """Mark an open rollback restored at ``restored_at`` (default ``now``).

    Raises ``RollbackNotFound``, ``RollbackAlreadyRestored``, or ``InputError`` when
    the time is before the start or in the future.
    """
    rollback = session.get(Rollback, rollback_id, with_for_update=True)
    if rollback is None:
        raise RollbackNotFound(f"no rollback with id {rollback_id}")
    if rollback.restored_at is not None:
        raise RollbackAlreadyRestored(
            f"rollback {rollback_id} was already restored at {as_utc(rollback.restored_at)}"
        )
    now = as_utc(now)
    moment = _not_future("restored_at", restored_at or now, now)
    if moment < as_utc(rollback.started_at):
        raise InputError("restored_at", "is before the rollback started")
    rollback.restored_at = moment
    session.add(rollback)
    session.flush()
    logger.info("rollback %s of %s marked restored", rollback_id, rollback.service)
    return rollback


# -- reads --------------------------------------------------------------------------------------


def rollback_row(rollback: Rollback, now: datetime) -> RollbackRow:
    """``rollback`` with its SLA clock as of ``now``."""
    started = as_utc(rollback.started_at)
    restored = as_utc(rollback.restored_at) if rollback.restored_at is not None else None
    target = timedelta(seconds=rollback.sla_target_seconds)
    elapsed = max((restored or as_utc(now)) - started, timedelta(0))
    breached = elapsed > target
    left = target - elapsed
    if breached:
        sla = BREACHED
    elif restored is not None:
        sla = MET
    else:
        sla = AT_RISK if left < target * AT_RISK_SHARE else ON_TRACK
    return RollbackRow(
        id=rollback.id or 0,
        service=rollback.service,
        from_version=rollback.from_version,
        to_version=rollback.to_version,
        reason=rollback.reason,
        owner=rollback.owner,
        incident_url=rollback.incident_url,
        started_at=started,
        restored_at=restored,
        created_by=rollback.created_by,
        sla_target_seconds=rollback.sla_target_seconds,
        open=restored is None,
        elapsed_seconds=int(elapsed.total_seconds()),
        breached=breached,
        sla=sla,
        remaining_seconds=int(left.total_seconds()) if restored is None and not breached else None,
        breached_by_seconds=math.ceil((elapsed - target).total_seconds()) if breached else None,
        time_to_restore_seconds=int(elapsed.total_seconds()) if restored is not None else None,
        elapsed_ratio=elapsed / target if target else 0.0,
    )


def get_rollback(session: Session, rollback_id: int, *, now: datetime) -> RollbackRow | None:
    """The rollback with this id and its clock, or ``None``."""
    rollback = session.get(Rollback, rollback_id)
    return rollback_row(rollback, now) if rollback is not None else None


def list_rollbacks(
    session: Session,
    *,
    now: datetime,
    service: str | None = None,
    is_open: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RollbackPage:
    """Rollbacks matching the filters: open ones first (longest open first), then restored
    ones (newest first)."""
    is_open_col = col(Rollback.restored_at).is_(None)
    conditions = []
    if service:
        conditions.append(col(Rollback.service) == service)
    if is_open is not None:
        conditions.append(is_open_col if is_open else col(Rollback.restored_at).is_not(None))
    query = select(Rollback).where(*conditions)
    rows = session.exec(
        query.order_by(
            case((is_open_col, 0), else_=1),
            case((is_open_col, col(Rollback.started_at)), else_=None),
            col(Rollback.started_at).desc(),
            col(Rollback.id).desc(),
        )
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.exec(select(func.count()).select_from(Rollback).where(*conditions)).one()
    return RollbackPage(
        items=[rollback_row(row, now) for row in rows],
        total=int(total),
        limit=limit,
        offset=offset,
        as_of=as_utc(now),
    )


def known_services(session: Session) -> list[str]:
    """Every service that has a rollback, sorted (for filters and suggestions)."""
    names = session.exec(select(Rollback.service).distinct()).all()
    return sorted(names)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` (0..1) percentile of ``values`` by linear interpolation between the closest
    ranks (numpy's default); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def _service_stats(service: str, rows: Sequence[RollbackRow]) -> ServiceStats:
    restores = [
        float(r.time_to_restore_seconds) for r in rows if r.time_to_restore_seconds is not None
    ]
    return ServiceStats(
        service=service,
        rollbacks=len(rows),
        open=sum(r.open for r in rows),
        restored=len(restores),
        breaches=sum(r.breached for r in rows),
        median_restore_seconds=_rounded(percentile(restores, 0.5)),
        p90_restore_seconds=_rounded(percentile(restores, 0.9)),
    )


def rollback_stats(
    session: Session, *, now: datetime, days: int = 90, service: str | None = None
) -> RollbackStats:
    """Per-service statistics of the rollbacks started in the last ``days`` days (to ``now``)."""
    until = as_utc(now)
    since = until - timedelta(days=days)
    query = select(Rollback).where(col(Rollback.started_at) >= since)
    if service:
        query = query.where(col(Rollback.service) == service)
    rows = [rollback_row(r, until) for r in session.exec(query).all()]
    by_service: dict[str, list[RollbackRow]] = {}
    for row in rows:
        by_service.setdefault(row.service, []).append(row)
    return RollbackStats(
        days=days,
        since=since,
        until=until,
        services=[_service_stats(name, by_service[name]) for name in sorted(by_service)],
        overall=_service_stats("*", rows),
    )


# -- demo ---------------------------------------------------------------------------------------


def _demo_rows(now: datetime) -> list[Rollback]:
    hour, day = timedelta(hours=1), timedelta(days=1)
    samples = (
        # service, from, to, reason, owner, started ago, open for (None = open), target
        ("chat-api", "llama-3.1-70b-fp8@v42", "llama-3.1-70b@v41",
         "p99 latency doubled after the FP8 build", "oncall-inference",
         3 * hour + timedelta(minutes=50), None, 4 * hour),
        ("embeddings", "bge-m3@2026.08.2", "bge-m3@2026.08.1",
         "recall dropped on the nightly eval", "search-team", 3 * day, 70 * 60, 4 * hour),
        ("chat-api", "vllm-0.9.2", "vllm-0.9.1",
         "prefix cache hit rate fell to 12%", "oncall-inference", 12 * day, 320 * 60, 4 * hour),
        ("reranker", "rerank-v3@b17", "rerank-v3@b16",
         "OOM on 40 GB cards", "search-team", 30 * day, 40 * 60, 2 * hour),
        ("chat-api", "qwen2.5-72b@v9", "qwen2.5-72b@v8",
         "tool-call JSON broke for one tenant", "oncall-inference", 45 * day, 125 * 60, 4 * hour),
    )  # fmt: skip
    rows = []
    for number, (service, old, new, reason, owner, ago, took, target) in enumerate(samples):
        started = now - ago
        rows.append(
            Rollback(
                service=service,
                from_version=old,
                to_version=new,
                reason=reason,
                owner=owner,
                incident_url=f"https://incidents.example.com/INC-{2041 - number * 37}",
                started_at=started,
                restored_at=None if took is None else started + timedelta(seconds=took),
                sla_target_seconds=int(target.total_seconds()),
                created_by=DEMO_ACTOR,
            )
        )
    return rows


def seed_demo_rollbacks(session: Session, now: datetime) -> int:
    """Add the demo's rollbacks unless it has added them before; returns how many it added.

    One is open ten minutes before its 4 h target; four are restored (one past its target).
    """
    seeded = session.exec(
        select(Rollback.id).where(col(Rollback.created_by) == DEMO_ACTOR).limit(1)
    ).first()
    if seeded is not None:
        return 0
    rows = _demo_rows(as_utc(now))
    session.add_all(rows)
    session.flush()
    return len(rows)
