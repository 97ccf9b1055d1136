"""The notification outbox: every notification is a row before any send, delivered at least once.

``enqueue`` adds a row in the caller's transaction (next to the alert state change that caused
it), with an ``idempotency_key`` that every send of that row carries. ``flush`` sends due rows
one by one, committing each: first the claim (attempts + 1 and a provisional next attempt, so a
crash mid-send retries later instead of looping), then the outcome. A crash between the send
and the second commit re-sends that one notification, with the same key: delivery is at least
once, never lost, and receivers can drop the duplicate by its key.

Retryable errors back off (10 s doubling to 15 min, +-20% jitter, never sooner than the
provider's ``retry_after``). A permanent error disables the channel (``ChannelState``) with the
error kept; the channel's rows stay pending, held until ``enable_channel`` re-enables it.

Rate limits: a channel with a ``rate_limit`` sends while its token bucket (see
``daemon.notify.ratelimit``) has a token. When it has none and more than one of its rows is due,
all of them are folded, in one transaction, into one ``digest`` row (payload from
``daemon.notify.digest``) that is due when the next token arrives; the originals become
``folded`` with ``folded_into`` = the digest's id. Nothing is dropped.

Row statuses: ``pending`` (to send, or held by a disabled channel), ``sent``, ``folded`` (carried
by a digest) and ``failed`` (out of attempts, or its channel is no longer configured).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.notify.channels.base import Channel, TransportError
from daemon.notify.digest import build_digest, digest_group_key
from daemon.notify.ratelimit import TokenBucket, bucket_from_store
from daemon.state import LiveState
from daemon.store.models import ChannelState, Outbox, as_utc

logger = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(minutes=15)
JITTER = 0.2
_ERROR_MAX = 2000

OUTCOMES: tuple[str, ...] = ("success", "retry", "failed", "folded")
"""The ``outcome`` label values of ``tcowatch_notifications_total``."""

KINDS: tuple[str, ...] = ("notification", "digest", "test")
"""Outbox row kinds; ``test`` rows (``tcowatch notify test``) are never folded."""


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one ``flush`` did.

    ``sent`` rows delivered, ``retried`` rescheduled after a retryable error, ``failed`` given
    up on or held by a permanent error, ``folded`` rows merged into the ``digests`` it created.
    """

    sent: int = 0
    retried: int = 0
    failed: int = 0
    folded: int = 0
    digests: int = 0


def enqueue(
    session: Session,
    *,
    channel: str,
    group_key: str,
    payload: dict[str, Any],
    now: datetime,
    kind: str = "notification",
) -> Outbox:
    """Add a pending notification for ``channel``, due at ``now``, to ``session``.

    Does not commit: the caller commits, so the row lands in the same transaction as the alert
    state change. ``payload`` must be JSON data (``build_webhook_payload`` output). The row gets
    a fresh ``idempotency_key`` (uuid4 hex). Raises ``ValueError`` for a ``kind`` not in
    ``KINDS``.
    """
    if kind not in KINDS:
        raise ValueError(f"outbox kind must be one of {', '.join(KINDS)}, got {kind!r}")
    moment = as_utc(now)
    row = Outbox(
        channel=channel,
        group_key=group_key,
        payload=dict(payload),
        status="pending",
        attempts=0,
        created_at=moment,
        next_attempt_at=moment,
        idempotency_key=uuid.uuid4().hex,
        kind=kind,
    )
    session.add(row)
    return row


def pending_count(session: Session) -> int:
    """Count rows still to be sent (due or not, disabled channels included)."""
    statement = select(func.count()).select_from(Outbox).where(col(Outbox.status) == "pending")
    return int(session.exec(statement).one())


def oldest_pending_age(session: Session, now: datetime) -> float:
    """Seconds since the oldest pending row was created (0.0 when none is pending).

    A digest counts from the oldest notification it carries.
    """
    statement = select(func.min(Outbox.created_at)).where(col(Outbox.status) == "pending")
    oldest = session.exec(statement).one()
    if oldest is None:
        return 0.0
    return max(0.0, (as_utc(now) - as_utc(oldest)).total_seconds())


def enable_channel(session: Session, name: str) -> int:
    """Re-enable channel ``name`` after a permanent error; return how many rows it holds.

    The held (pending) rows go out on the following flushes, oldest first, within the rate
    limit. The last error stays recorded for the board. Re-enabling an enabled or unknown
    channel changes nothing. Does not commit (the caller does); database errors propagate.
    """
    health = session.get(ChannelState, name)
    if health is not None and health.disabled:
        health.disabled = False
        session.add(health)
        logger.info("channel %s re-enabled", name)
    statement = (
        select(func.count())
        .select_from(Outbox)
        .where(col(Outbox.channel) == name, col(Outbox.status) == "pending")
    )
    return int(session.exec(statement).one())


def backoff_delay(attempts: int, rng: random.Random) -> timedelta:
    """Delay after the ``attempts``-th failed try: 10 s doubling, capped at 15 min, +-20% jitter."""
    exponent = max(0, attempts - 1)
    base = BACKOFF_CAP if exponent >= 16 else min(BACKOFF_BASE * 2**exponent, BACKOFF_CAP)
    return base * rng.uniform(1.0 - JITTER, 1.0 + JITTER)


@dataclass
class _Tally:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    folded: int = 0
    digests: int = 0

    def count(self, outcome: str) -> None:
        if outcome == "success":
            self.sent += 1
        elif outcome == "retry":
            self.retried += 1
        elif outcome == "folded":
            self.folded += 1
        else:
            self.failed += 1

    def result(self) -> FlushResult:
        return FlushResult(self.sent, self.retried, self.failed, self.folded, self.digests)


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
    ``max_attempts`` tries; a permanent one disables the channel in ``ChannelState`` and holds
    the row pending. A rate-limited channel with no token left has its due rows folded into a
    digest (or, when only one is due, postponed to the next token). Outcomes are counted in
    ``state`` (``OUTCOMES``) and the pending count, oldest pending age and channel states
    refreshed. Database errors propagate (the row is then retried next time); an unexpected
    exception from a channel is logged and treated as retryable; an invalid ``rate_limit``
    raises ``ValueError``.
    """
    rng = rng or random.Random()
    moment = as_utc(now)
    with Session(engine) as session:
        disabled = _disabled(session)
        statement = (
            select(Outbox.id, Outbox.channel)
            .where(col(Outbox.status) == "pending", col(Outbox.next_attempt_at) <= moment)
            .order_by(col(Outbox.id))
            .limit(batch)
        )
        if disabled:
            statement = statement.where(col(Outbox.channel).not_in(disabled))
        due = [(row_id, name) for row_id, name in session.exec(statement).all() if row_id]

    tally = _Tally()
    buckets: dict[str, TokenBucket] = {}
    paused: set[str] = set()
    folded_ids: set[int] = set()

    def record(channel_name: str, outcome: str) -> None:
        tally.count(outcome)
        if state is not None:
            state.count_notification(channel_name, outcome)

    for row_id, channel_name in due:
        if row_id in folded_ids or channel_name in disabled or channel_name in paused:
            continue
        channel = channels.get(channel_name)
        limit = channel.rate_limit if channel is not None else None
        if limit is not None:
            bucket = buckets.get(channel_name)
            if bucket is None:
                with Session(engine) as session:
                    bucket = bucket_from_store(session, channel_name, limit, moment)
                buckets[channel_name] = bucket
            if not bucket.take(moment):
                paused.add(channel_name)
                folded = _fold_or_postpone(
                    engine, channel_name, due_at=bucket.next_token_at(moment), moment=moment
                )
                if folded:
                    tally.digests += 1
                for _ in folded:
                    record(channel_name, "folded")
                folded_ids.update(folded)
                continue
        outcome = _deliver(
            engine, row_id, channels, disabled, moment=moment, max_attempts=max_attempts, rng=rng
        )
        if outcome is not None:
            record(*outcome)

    if state is not None:
        refresh_state(engine, channels, state, now=moment)
    return tally.result()


def refresh_state(
    engine: Engine, channels: Mapping[str, Channel], state: LiveState, *, now: datetime
) -> None:
    """Store the outbox gauges in ``state``: pending rows, oldest pending age, channel states.

    Every configured channel is reported enabled unless ``ChannelState`` says disabled.
    Database errors propagate.
    """
    with Session(engine) as session:
        pending = pending_count(session)
        age = oldest_pending_age(session, now)
        disabled = _disabled(session)
    state.set_outbox_pending(pending)
    state.set_outbox_oldest_age(age)
    state.set_channels_enabled({name: name not in disabled for name in channels})


def _disabled(session: Session) -> set[str]:
    return set(session.exec(select(ChannelState.name).where(col(ChannelState.disabled))).all())


def _fold_or_postpone(
    engine: Engine, channel_name: str, *, due_at: datetime, moment: datetime
) -> list[int]:
    """Fold ``channel_name``'s due rows into one digest due at ``due_at``; return their ids.

    With fewer than two foldable rows due, nothing is folded and the due rows are postponed to
    ``due_at`` instead. One transaction; if another worker claimed or folded one of the rows
    meanwhile, it is rolled back and nothing changes (the next flush tries again).
    """
    with Session(engine) as session:
        statement = (
            select(Outbox)
            .where(
                col(Outbox.channel) == channel_name,
                col(Outbox.status) == "pending",
                col(Outbox.next_attempt_at) <= moment,
            )
            .order_by(col(Outbox.id))
        )
        rows = list(session.exec(statement).all())
        foldable = [row for row in rows if row.kind != "test"]
        others = [row for row in rows if row.kind == "test"]
        if len(foldable) < 2:
            others = rows
            foldable = []
        for row in others:
            row.next_attempt_at = due_at
            session.add(row)
        if not foldable:
            session.commit()
            return []
        digest = Outbox(
            channel=channel_name,
            group_key=digest_group_key(channel_name),
            payload=build_digest([row.payload for row in foldable], channel=channel_name),
            status="pending",
            attempts=0,
            created_at=min(as_utc(row.created_at) for row in foldable),
            next_attempt_at=due_at,
            idempotency_key=uuid.uuid4().hex,
            kind="digest",
        )
        session.add(digest)
        session.flush()
        digest_id = digest.id
        ids = [row.id for row in foldable if row.id is not None]
        result = session.exec(
            update(Outbox)
            .where(
                col(Outbox.id).in_(ids),
                col(Outbox.status) == "pending",
                col(Outbox.next_attempt_at) <= moment,
            )
            .values(status="folded", folded_into=digest_id)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != len(ids):
            session.rollback()
            logger.info("outbox fold for %s raced another worker; retrying later", channel_name)
            return []
        session.commit()
    logger.info(
        "channel %s rate limited: folded %d notifications into digest %s, due %s",
        channel_name,
        len(ids),
        digest_id,
        due_at.isoformat(),
    )
    return ids


def _claim(
    engine: Engine,
    row_id: int,
    channels: Mapping[str, Channel],
    disabled: set[str],
    *,
    moment: datetime,
    rng: random.Random,
) -> tuple[str, Channel | None, dict[str, Any], str, int, timedelta] | None:
    """Commit the claim of one due row; ``None`` if it is no longer due (or another worker won).

    Returns ``(channel name, channel or None if unconfigured, payload, key, attempts, delay)``.
    """
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(Outbox, row_id)
        if (
            row is None
            or row.status != "pending"
            or row.channel in disabled
            or as_utc(row.next_attempt_at) > moment
        ):
            return None
        channel_name = row.channel
        channel = channels.get(channel_name)
        if channel is None:
            row.status = "failed"
            row.last_error = f"channel {channel_name!r} is not configured any more"
            session.add(row)
            session.commit()
            logger.warning("outbox row %s failed: %s", row_id, row.last_error)
            return channel_name, None, {}, "", row.attempts, timedelta(0)
        attempts = row.attempts + 1
        delay = backoff_delay(attempts, rng)
        key = row.idempotency_key or uuid.uuid4().hex
        payload = dict(row.payload)
        claimed = session.exec(
            update(Outbox)
            .where(
                col(Outbox.id) == row_id,
                col(Outbox.status) == "pending",
                col(Outbox.attempts) == row.attempts,
            )
            .values(attempts=attempts, next_attempt_at=moment + delay, idempotency_key=key)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            session.rollback()
            return None
        session.commit()
    return channel_name, channel, payload, key, attempts, delay


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
    claim = _claim(engine, row_id, channels, disabled, moment=moment, rng=rng)
    if claim is None:
        return None
    channel_name, channel, payload, key, attempts, delay = claim
    if channel is None:
        return channel_name, "failed"

    error: TransportError | None = None
    try:
        channel.send(payload, idempotency_key=key)
    except TransportError as exc:
        error = exc
    except Exception as exc:
        logger.exception("channel %s raised an unexpected error", channel_name)
        error = TransportError(f"channel {channel_name}: unexpected {type(exc).__name__}")

    with Session(engine) as session:
        row = session.get(Outbox, row_id)
        if row is None or row.status != "pending":
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
                health.disabled = True
                disabled.add(channel_name)
                logger.error(
                    "channel %s disabled after a permanent error (its notifications are held "
                    "until it is re-enabled): %s",
                    channel_name,
                    message,
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


__all__ = [
    "KINDS",
    "OUTCOMES",
    "FlushResult",
    "backoff_delay",
    "enable_channel",
    "enqueue",
    "flush",
    "oldest_pending_age",
    "pending_count",
    "refresh_state",
]
