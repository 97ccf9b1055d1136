"""Per-channel token buckets for the outbox, rebuilt from the store so a restart keeps them.

A channel's ``RateLimit(per_minute, burst)`` is a token bucket: ``per_minute`` tokens flow in per
minute, at most ``burst`` are saved, and every send takes one. The outbox sends while a token is
there and folds the channel's waiting notifications into one digest when there is none (see
``daemon.notify.outbox``).

**Restarts.** The bucket is not kept in memory between flushes, nor in its own table: every
flush rebuilds it from the channel's recent deliveries (``sent_at`` of its ``sent`` outbox rows
in the last *refill period*, ``burst / per_minute`` minutes). The replay starts from an empty
bucket at the start of that period, which can only under-count the tokens a real bucket would
hold (a bucket that was idle for a whole refill period is full, and one that was not may hold
anything from zero up): a restart, a crash or a second process never grants a burst the provider
has not allowed. Only successful sends are on record; failed attempts are paced by their own
backoff and the provider's ``Retry-After``.

The clock is injected: every method takes ``now`` (aware UTC, or naive UTC).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from daemon.notify.channels.base import RateLimit
from daemon.store.models import Outbox, as_utc

logger = logging.getLogger(__name__)


def refill_period(limit: RateLimit) -> timedelta:
    """How long an empty bucket takes to fill up: ``burst / per_minute`` minutes.

    Raises ``ValueError`` when ``per_minute`` is not positive or ``burst`` is below 1.
    """
    _check(limit)
    return timedelta(minutes=limit.burst / limit.per_minute)


def _check(limit: RateLimit) -> None:
    if not limit.per_minute > 0:
        raise ValueError(f"rate_limit.per_minute must be above 0, got {limit.per_minute!r}")
    if limit.burst < 1:
        raise ValueError(f"rate_limit.burst must be at least 1, got {limit.burst!r}")


@dataclass(slots=True)
class TokenBucket:
    """A token bucket of ``limit`` holding ``tokens`` as of ``updated_at``.

    ``tokens`` may be fractional; a send needs a whole token. Time that goes backwards (a
    ``now`` before ``updated_at``) adds nothing and takes nothing.
    """

    limit: RateLimit
    tokens: float
    updated_at: datetime

    def __post_init__(self) -> None:
        _check(self.limit)
        self.updated_at = as_utc(self.updated_at)

    @classmethod
    def full(cls, limit: RateLimit, now: datetime) -> TokenBucket:
        """A bucket holding ``burst`` tokens at ``now``."""
        return cls(limit=limit, tokens=float(limit.burst), updated_at=now)

    @classmethod
    def replay(cls, limit: RateLimit, sends: Iterable[datetime], now: datetime) -> TokenBucket:
        """Rebuild the bucket at ``now`` from the times of the sends it paid for.

        Starts empty one refill period before ``now`` and takes one token per send in that
        period (sends before it are ignored, later ones count as made at ``now``); never
        below zero tokens. See the module docstring for why this never over-counts.
        """
        moment = as_utc(now)
        start = moment - refill_period(limit)
        bucket = cls(limit=limit, tokens=0.0, updated_at=start)
        for sent_at in sorted(min(as_utc(s), moment) for s in sends):
            if sent_at < start:
                continue
            bucket.refill(sent_at)
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
        bucket.refill(moment)
        return bucket

    @property
    def rate_per_second(self) -> float:
        """Tokens added per second."""
        return self.limit.per_minute / 60.0

    def refill(self, now: datetime) -> None:
        """Add the tokens earned since ``updated_at``, up to ``burst``."""
        moment = as_utc(now)
        elapsed = (moment - self.updated_at).total_seconds()
        if elapsed <= 0:
            return
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.rate_per_second)
        self.updated_at = moment

    def take(self, now: datetime) -> bool:
        """Take one token at ``now`` if there is one; ``False`` (and nothing taken) if not."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def next_token_at(self, now: datetime) -> datetime:
        """When the bucket next holds a whole token (``now`` if it already does)."""
        self.refill(now)
        missing = 1.0 - self.tokens
        if missing <= 0:
            return as_utc(now)
        # Round up to the next microsecond so the token is really there at that time.
        seconds = missing / self.rate_per_second
        return as_utc(now) + timedelta(microseconds=int(seconds * 1_000_000) + 1)


def bucket_from_store(
    session: Session, channel: str, limit: RateLimit, now: datetime
) -> TokenBucket:
    """Rebuild ``channel``'s bucket at ``now`` from its ``sent`` outbox rows.

    Raises ``ValueError`` for an invalid ``limit``; database errors propagate.
    """
    moment = as_utc(now)
    start = moment - refill_period(limit)
    statement = select(Outbox.sent_at).where(
        col(Outbox.channel) == channel,
        col(Outbox.status) == "sent",
        col(Outbox.sent_at) >= start,
    )
    sends = [sent_at for sent_at in session.exec(statement).all() if sent_at is not None]
    return TokenBucket.replay(limit, sends, moment)


__all__ = ["TokenBucket", "bucket_from_store", "refill_period"]
