"""The notification outbox: every notification is a row before any send, delivered at least once.

``enqueue`` adds a row in the caller's transaction (next to the alert state change that caused
it). ``flush`` sends due rows one by one, committing each: first the claim (attempts + 1 and a
provisional next attempt, so a crash mid-send retries later instead of looping), then the outcome.
A crash between the send and the second commit re-sends that one notification once: delivery is
at least once, never lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.notify.channels.base import Channel, TransportError
from daemon.state import LiveState
from daemon.store.models import ChannelState, Outbox, as_utc

logger = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(minutes=15)
JITTER = 0.2
_ERROR_MAX = 2000


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one ``flush`` did: rows delivered, rescheduled, and given up on."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


def enqueue(
    session: Session, *, channel: str, group_key: str, payload: dict[str, Any], now: datetime
) -> Outbox:
    """Add a pending notification for ``channel``, due at ``now``, to ``session``.

    Does not commit: the caller commits, so the row lands in the same transaction as the alert
    state change. ``payload`` must be JSON data (``build_webhook_payload`` output).
    """
    moment = as_utc(now)
    row = Outbox(
        channel=channel,
        group_key=group_key,
        payload=dict(payload),
        status="pending",
        attempts=0,
        created_at=moment,
        next_attempt_at=moment,
    )
    session.add(row)
    return row


def pending_count(session: Session) -> int:
    """Count rows still to be sent (due or not, disabled channels included)."""
    statement = select(func.count()).select_from(Outbox).where(col(Outbox.status) == "pending")
    return int(session.exec(statement).one())


def backoff_delay(attempts: int, rng: random.Random) -> timedelta:
    """Delay after the ``attempts``-th failed try: 10 s doubling, capped at 15 min, +-20% jitter."""
    exponent = max(0, attempts - 1)
    base = BACKOFF_CAP if exponent >= 16 else min(BACKOFF_BASE * 2**exponent, BACKOFF_CAP)
    return base * rng.uniform(1.0 - JITTER, 1.0 + JITTER)


def flush(
    engine: Engine,
    channels: Mapping[str, Channel],
    *,
    now: datetime,
    state: LiveState | None = None,
    batch: int = 50,
    max_attempts: int = 12,
    rng: random.Random | None = None,
) -> FlushResult:
    """Send up to ``batch`` due rows (pending, ``next_attempt_at <= now``) in id order.

    Rows of a disabled channel stay pending, untouched, until it is re-enabled. A row whose
    channel is not in ``channels`` fails at once. Success marks the row ``sent``; a retryable
    ``TransportError`` reschedules it ``max(retry_after, backoff)`` later, or fails it after
    ``max_attempts`` tries; a permanent one fails it and disables the channel in
    ``ChannelState``. Each outcome is counted in ``state`` ("success", "retry", "failed") and the
    pending count refreshed. Database errors propagate (the row is then retried next time);
    an unexpected exception from a channel is logged and treated as retryable.
    """
    rng = rng or random.Random()
    moment = as_utc(now)
    with Session(engine) as session:
        disabled = set(
            session.exec(select(ChannelState.name).where(col(ChannelState.disabled))).all()
        )
        statement = (
            select(Outbox.id)
            .where(col(Outbox.status) == "pending", col(Outbox.next_attempt_at) <= moment)
            .order_by(col(Outbox.id))
            .limit(batch)
        )
        if disabled:
            statement = statement.where(col(Outbox.channel).not_in(disabled))
        row_ids = [row_id for row_id in session.exec(statement).all() if row_id is not None]

    sent = retried = failed = 0
    for row_id in row_ids:
        outcome = _deliver(
            engine, row_id, channels, disabled, moment=moment, max_attempts=max_attempts, rng=rng
        )
        if outcome is None:
            continue
        channel_name, result = outcome
        if state is not None:
            state.count_notification(channel_name, result)
        if result == "success":
            sent += 1
        elif result == "retry":
            retried += 1
        else:
            failed += 1

    if state is not None:
        with Session(engine) as session:
            state.set_outbox_pending(pending_count(session))
    return FlushResult(sent=sent, retried=retried, failed=failed)


def _deliver(
    engine: Engine,
    row_id: int,
    channels: Mapping[str, Channel],
    disabled: set[str],
    *,
    moment: datetime,
    max_attempts: int,
    rng: random.Random,
) -> tuple[str, str] | None:
    """Claim, send and record one row; return ``(channel, outcome)`` or ``None`` if skipped."""
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(Outbox, row_id)
        if row is None or row.status != "pending" or row.channel in disabled:
            return None
        channel_name = row.channel
        channel = channels.get(channel_name)
        if channel is None:
            row.status = "failed"
            row.last_error = f"channel {channel_name!r} is not configured any more"
            session.add(row)
            session.commit()
            logger.warning("outbox row %s failed: %s", row_id, row.last_error)
            return channel_name, "failed"
        row.attempts += 1
        attempts = row.attempts
        delay = backoff_delay(attempts, rng)
        row.next_attempt_at = moment + delay
        session.add(row)
        session.commit()
        payload = dict(row.payload)

    error: TransportError | None = None
    try:
        channel.send(payload)
    except TransportError as exc:
        error = exc
    except Exception as exc:
        logger.exception("channel %s raised an unexpected error", channel_name)
        error = TransportError(f"channel {channel_name}: unexpected {type(exc).__name__}")

    with Session(engine) as session:
        row = session.get(Outbox, row_id)
        if row is None:
            return None
        health = session.get(ChannelState, channel_name) or ChannelState(name=channel_name)
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", moment, None
            health.last_success_at = moment
            result = "success"
        else:
            message = error.message[:_ERROR_MAX]
            row.last_error = message
            health.last_error, health.last_error_at = message, moment
            if error.permanent:
                row.status = "failed"
                health.disabled = True
                disabled.add(channel_name)
                logger.error(
                    "channel %s disabled after a permanent error: %s", channel_name, message
                )
                result = "failed"
            elif attempts >= max_attempts:
                row.status = "failed"
                logger.warning(
                    "outbox row %s failed after %s attempts: %s", row_id, attempts, message
                )
                result = "failed"
            else:
                if error.retry_after is not None:
                    delay = max(delay, timedelta(seconds=error.retry_after))
                row.next_attempt_at = moment + delay
                logger.info(
                    "outbox row %s retry in %.0fs: %s", row_id, delay.total_seconds(), message
                )
                result = "retry"
        session.add(row)
        session.add(health)
        session.commit()
    return channel_name, result
