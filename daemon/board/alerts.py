"""Alerts and silences as the board shows them: listing, filtering, silence requests.

Pure functions over the caller's ``Session``; the clock comes in as ``now``; nothing commits.
Alerts are the ``alert`` rows the rule engine keeps: ``pending``, ``firing``, and ``inactive``
with a ``resolved_at`` (shown as ``resolved`` for ``RESOLVED_RETENTION`` after resolving, as the
engine keeps them). A firing or pending alert is marked with the id of an active silence whose
matchers all match its labels. Silences are read and written through
``daemon.notify.silences``.

Error contract: ``InputError`` (a ``ValueError`` with ``field`` and ``reason``) for a bad
``state``, ``filter``, time, duration or silence field; ``create_board_silence`` turns
``SilenceError`` into it. ``SilenceNotFound`` and ``SilenceError`` from
``daemon.notify.silences.expire_silence`` pass through unchanged. Database errors propagate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, null
from sqlmodel import Session, col, or_, select

from daemon.board.errors import InputError
from daemon.notify.matchers import (
    Matcher,
    MatcherError,
    matches_all,
    parse_matchers,
)
from daemon.notify.silences import (
    SilenceError,
    SilenceNotFound,
    Silencer,
    active_silences,
    create_silence,
    silence_matchers,
    silence_state,
)
from daemon.store.models import Alert, Silence, as_utc
from rules.durations import parse_duration
from rules.engine import RESOLVED_RETENTION

logger = logging.getLogger(__name__)

ALERT_STATES: tuple[str, ...] = ("firing", "pending", "resolved")
"""Alert states on the board, in display order (``resolved`` is the engine's ``inactive``)."""
SILENCE_STATES: tuple[str, ...] = ("active", "pending", "expired")
DEFAULT_DURATION = "2h"
_ORDER = {state: index for index, state in enumerate(ALERT_STATES)}


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert instance. ``silenced_by`` is the id of an active silence muting it."""

    fingerprint: str
    alertname: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    active_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    silenced_by: str | None


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of alerts; ``total`` counts every match, ``counts`` each state's matches
    (label filter applied, state filter not)."""

    items: list[AlertRow]
    total: int
    limit: int
    offset: int
    state: str | None
    filter: str | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class SilenceRow:
    """One silence; ``matchers`` in Alertmanager's text form, ``alerts`` how many firing or
    pending alerts it matches now (0 for expired ones)."""

    id: str
    state: str
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    updated_at: datetime
    alerts: int


@dataclass(frozen=True, slots=True)
class SilencePage:
    """One page of silences: pending and active first (soonest end first), then expired
    (latest end first)."""

    items: list[SilenceRow]
    total: int
    limit: int
    offset: int
    state: str | None


def parse_filter(text: str | None) -> list[Matcher]:
    """Label matchers from ``?filter=`` (``severity="critical"`` or ``{a="b",c=~"d"}``).

    Empty or ``None`` gives no matchers. Raises ``InputError("filter", ...)``.
    """
    if text is None or not text.strip():
        return []
    try:
        return parse_matchers(text)
    except MatcherError as exc:
        raise InputError("filter", str(exc)) from None


def _check_state(state: str | None, known: Sequence[str]) -> str | None:
    if state is None or state == "":
        return None
    if state not in known:
        raise InputError("state", f"expected one of {', '.join(known)}, got {state!r}")
    return state


def _board_state(alert: Alert) -> str:
    return "resolved" if alert.state == "inactive" else alert.state


def _shown_alerts(session: Session, now: datetime) -> list[Alert]:
    """Pending and firing alerts, and those resolved within ``RESOLVED_RETENTION``."""
    since = as_utc(now) - RESOLVED_RETENTION
    statement = select(Alert).where(
        or_(
            col(Alert.state).in_(("pending", "firing")),
            (col(Alert.state) == "inactive") & (col(Alert.resolved_at) >= since),
        )
    )
    return list(session.exec(statement).all())


def _row(alert: Alert, silencer: Silencer) -> AlertRow:
    state = _board_state(alert)
    labels = {k: str(v) for k, v in sorted((alert.labels or {}).items())}
    return AlertRow(
        fingerprint=alert.fingerprint,
        alertname=alert.alertname,
        state=state,
        labels=labels,
        annotations={k: str(v) for k, v in sorted((alert.annotations or {}).items())},
        value=alert.value,
        active_at=as_utc(alert.active_at),
        fired_at=as_utc(alert.fired_at) if alert.fired_at else None,
        resolved_at=as_utc(alert.resolved_at) if alert.resolved_at else None,
        silenced_by=silencer.silenced_by(labels) if state != "resolved" else None,
    )


def list_alerts(
    session: Session,
    *,
    now: datetime,
    state: str | None = None,
    filter: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> AlertPage:
    """Alerts matching ``state`` (``ALERT_STATES``) and every matcher of ``filter``.

    Sorted firing, pending, resolved; then longest active first. Raises ``InputError``
    for an unknown state or a bad filter.
    """
    wanted = _check_state(state, ALERT_STATES)
    matchers = parse_filter(filter)
    silencer = Silencer(active_silences(session, now))
    rows = [
        _row(alert, silencer)
        for alert in _shown_alerts(session, now)
        if matches_all(matchers, {k: str(v) for k, v in (alert.labels or {}).items()})
    ]
    counts = {name: sum(r.state == name for r in rows) for name in ALERT_STATES}
    chosen = [r for r in rows if wanted is None or r.state == wanted]
    chosen.sort(key=lambda r: (_ORDER[r.state], r.active_at, r.alertname, r.fingerprint))
    return AlertPage(
        items=chosen[offset : offset + limit],
        total=len(chosen),
        limit=limit,
        offset=offset,
        state=wanted,
        filter=filter.strip() if filter and filter.strip() else None,
        counts=counts,
    )


def alert_matchers(session: Session, fingerprint: str) -> list[str] | None:
    """``name="value"`` matchers for every label of the alert ``fingerprint`` (``None``: no
    such alert): what "silence this alert" prefills."""
    alert = session.get(Alert, fingerprint) if usable_id(fingerprint) else None
    if alert is None:
        return None
    return [str(Matcher.create(k, "=", str(v))) for k, v in sorted((alert.labels or {}).items())]


def _matcher_texts(silence: Silence) -> list[str]:
    try:
        return [str(m) for m in silence_matchers(silence)]
    except MatcherError:  # stored by an older version: show it as stored
        return [json.dumps(item, sort_keys=True) for item in silence.matchers]


def _live_labels(session: Session) -> list[dict[str, str]]:
    """The label sets of the firing and pending alerts."""
    statement = select(Alert).where(col(Alert.state).in_(("pending", "firing")))
    return [{k: str(v) for k, v in (a.labels or {}).items()} for a in session.exec(statement)]


def _silence_row(silence: Silence, now: datetime, labels: Iterable[dict[str, str]]) -> SilenceRow:
    state = silence_state(silence, now)
    matched = 0
    if state != "expired":
        try:
            matchers = silence_matchers(silence)
        except MatcherError:
            matchers = []
        if matchers:
            matched = sum(matches_all(matchers, item) for item in labels)
    return SilenceRow(
        id=silence.id,
        state=state,
        matchers=_matcher_texts(silence),
        starts_at=as_utc(silence.starts_at),
        ends_at=as_utc(silence.ends_at),
        created_by=silence.created_by,
        comment=silence.comment,
        updated_at=as_utc(silence.updated_at),
        alerts=matched,
    )


def list_board_silences(
    session: Session,
    *,
    now: datetime,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> SilencePage:
    """Silences in ``state`` (``SILENCE_STATES``; ``None``: all), paginated in SQL.

    Raises ``InputError`` for an unknown state.
    """
    wanted = _check_state(state, SILENCE_STATES)
    moment = as_utc(now)
    starts, ends = col(Silence.starts_at), col(Silence.ends_at)
    conditions: list[Any] = []
    if wanted == "active":
        conditions = [starts <= moment, ends > moment]
    elif wanted == "pending":
        conditions = [starts > moment]
    elif wanted == "expired":
        conditions = [ends <= moment]
    expired = ends <= moment
    total = int(session.exec(select(func.count()).select_from(Silence).where(*conditions)).one())
    statement = (
        select(Silence)
        .where(*conditions)
        .order_by(
            case((expired, 1), else_=0),
            case((expired, null()), else_=ends).asc(),
            ends.desc(),
            col(Silence.id),
        )
        .offset(offset)
        .limit(limit)
    )
    silences = list(session.exec(statement).all())
    labels = _live_labels(session)
    return SilencePage(
        items=[_silence_row(s, moment, labels) for s in silences],
        total=total,
        limit=limit,
        offset=offset,
        state=wanted,
    )


def silence_row(session: Session, silence: Silence, now: datetime) -> SilenceRow:
    """One silence as the board shows it."""
    return _silence_row(silence, as_utc(now), _live_labels(session))


def parse_moment(text: str | None, field: str) -> datetime | None:
    """An ISO 8601 time from a form (``2026-08-20T18:00``; no zone means UTC), or ``None``.

    Raises ``InputError(field, ...)``.
    """
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            field, f"expected a time like 2026-08-20T18:00 (UTC), got {text.strip()[:64]!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _duration(text: str) -> timedelta:
    try:
        value = parse_duration(text.strip(), example=DEFAULT_DURATION)
    except ValueError as exc:
        raise InputError("duration", str(exc)) from None
    if value <= timedelta(0):
        raise InputError("duration", "must be longer than 0s")
    return value


def _printable(field: str, *texts: str) -> None:
    """Refuse NUL characters (no database can store them in text)."""
    if any("\x00" in text for text in texts):
        raise InputError(field, "contains a NUL character")


def _utc_or_none(moment: datetime | None, field: str) -> datetime | None:
    if moment is None:
        return None
    try:
        return as_utc(moment)
    except OverflowError:
        raise InputError(field, "out of range") from None


def usable_id(text: str) -> bool:
    """Whether ``text`` can be an id or fingerprint at all (short, no NUL): anything else is
    answered "not found" without asking the database, which may refuse such text."""
    return 0 < len(text) <= 64 and "\x00" not in text


def matcher_lines(text: str) -> list[str]:
    """A form's matcher box: one matcher (or braced list) per line, blank lines skipped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def create_board_silence(
    session: Session,
    *,
    matchers: Sequence[str],
    comment: str,
    author: str,
    now: datetime,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: str | None = None,
) -> Silence:
    """Add a silence from the board (not committed): an end time or a duration, not both.

    A duration counts from the start (``now`` when the start is absent or past). Raises
    ``InputError`` naming the field (``matchers``, ``ends_at``, ``duration``,
    ``comment``, ``created_by``).
    """
    moment = as_utc(now)
    _printable("matchers", *matchers)
    _printable("comment", comment)
    _printable("duration", duration or "")
    has_duration = duration is not None and duration.strip() != ""
    if ends_at is not None and has_duration:
        raise InputError("duration", "give an end time or a duration, not both")
    if ends_at is None and not has_duration:
        raise InputError("ends_at", f"give an end time or a duration such as {DEFAULT_DURATION}")
    start = _utc_or_none(starts_at, "starts_at")
    if ends_at is None:
        assert duration is not None
        try:
            end = max(start or moment, moment) + _duration(duration)
        except OverflowError:
            raise InputError("duration", "too long: the end would be past year 9999") from None
    else:
        end = _utc_or_none(ends_at, "ends_at") or moment
    try:
        return create_silence(
            session,
            matchers=list(matchers),
            ends_at=end,
            created_by=author,
            comment=comment,
            now=moment,
            starts_at=start,
        )
    except SilenceNotFound:
        raise
    except SilenceError as exc:
        raise InputError.from_message(str(exc), "matchers") from None


__all__ = [
    "ALERT_STATES",
    "DEFAULT_DURATION",
    "SILENCE_STATES",
    "AlertPage",
    "AlertRow",
    "InputError",
    "SilencePage",
    "SilenceRow",
    "alert_matchers",
    "create_board_silence",
    "list_alerts",
    "list_board_silences",
    "matcher_lines",
    "parse_filter",
    "parse_moment",
    "silence_row",
    "usable_id",
]
