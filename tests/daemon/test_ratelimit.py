"""Token buckets: refill, replay from recorded sends (restart-safe), and the store query."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.notify.channels.base import RateLimit
from daemon.notify.ratelimit import TokenBucket, bucket_from_store, refill_period
from daemon.store.db import open_store
from daemon.store.models import Outbox

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PER_SECOND = RateLimit(per_minute=60, burst=3)


def test_it_spends_the_burst_then_refills_at_the_rate() -> None:
    bucket = TokenBucket.full(PER_SECOND, NOW)

    assert [bucket.take(NOW) for _ in range(4)] == [True, True, True, False]
    assert bucket.next_token_at(NOW) == NOW + timedelta(seconds=1, microseconds=1)
    assert not bucket.take(NOW + timedelta(milliseconds=999))
    assert bucket.take(NOW + timedelta(seconds=1, microseconds=1))
    assert not bucket.take(NOW + timedelta(seconds=1, microseconds=1))


def test_it_never_saves_more_than_the_burst() -> None:
    bucket = TokenBucket.full(PER_SECOND, NOW)
    bucket.refill(NOW + timedelta(hours=5))

    assert bucket.tokens == 3.0
    assert bucket.next_token_at(NOW + timedelta(hours=5)) == NOW + timedelta(hours=5)


def test_it_ignores_a_clock_that_goes_backwards() -> None:
    bucket = TokenBucket(PER_SECOND, tokens=0.5, updated_at=NOW)

    bucket.refill(NOW - timedelta(minutes=1))

    assert bucket.tokens == 0.5
    assert bucket.updated_at == NOW


def test_it_names_the_bad_setting_of_an_invalid_limit() -> None:
    with pytest.raises(ValueError, match=r"rate_limit\.per_minute must be above 0, got 0"):
        TokenBucket.full(RateLimit(per_minute=0, burst=1), NOW)
    with pytest.raises(ValueError, match=r"rate_limit\.burst must be at least 1, got 0"):
        refill_period(RateLimit(per_minute=20, burst=0))


def test_it_takes_the_refill_period_from_burst_and_rate() -> None:
    assert refill_period(RateLimit(per_minute=20, burst=5)) == timedelta(seconds=15)
    assert refill_period(PER_SECOND) == timedelta(seconds=3)


def test_it_replays_no_history_as_a_full_bucket() -> None:
    bucket = TokenBucket.replay(PER_SECOND, [], NOW)

    assert bucket.tokens == 3.0


def test_it_replays_recent_sends_and_ignores_older_ones() -> None:
    limit = RateLimit(per_minute=20, burst=5)  # one token every 3 s, full after 15 s
    sends = [NOW - timedelta(seconds=20), NOW - timedelta(seconds=1), NOW]

    bucket = TokenBucket.replay(limit, sends, NOW)

    # empty at NOW-15s, 14 s of refill (4.67 tokens) minus one send, 1 s more, minus one send
    assert bucket.tokens == pytest.approx(14 / 3 - 1 + 1 / 3 - 1)
    assert bucket.updated_at == NOW


def test_it_counts_sends_recorded_after_now_as_made_now() -> None:
    bucket = TokenBucket.replay(PER_SECOND, [NOW + timedelta(minutes=5)] * 3, NOW)

    assert bucket.tokens == 0.0
    assert not bucket.take(NOW)


def test_it_never_replays_more_tokens_than_the_live_bucket_had() -> None:
    rng = random.Random(5)
    for limit in (PER_SECOND, RateLimit(per_minute=20, burst=5), RateLimit(per_minute=1, burst=1)):
        live = TokenBucket.full(limit, NOW)
        sends: list[datetime] = []
        moment = NOW
        for _ in range(400):
            moment += timedelta(milliseconds=rng.randint(0, 4000))
            if live.take(moment):
                sends.append(moment)
            replayed = TokenBucket.replay(limit, sends, moment)
            assert replayed.tokens <= live.tokens + 1e-9


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def stored(engine: Engine, channel: str, status: str, sent_at: datetime | None) -> None:
    with Session(engine) as session:
        session.add(
            Outbox(
                channel=channel,
                group_key="g",
                payload={},
                status=status,
                created_at=NOW - timedelta(hours=1),
                next_attempt_at=NOW - timedelta(hours=1),
                sent_at=sent_at,
            )
        )
        session.commit()


def test_it_rebuilds_the_bucket_from_the_channels_recent_sends_in_the_store(
    engine: Engine,
) -> None:
    stored(engine, "slack", "sent", NOW - timedelta(seconds=1))
    stored(engine, "slack", "sent", NOW)
    stored(engine, "slack", "sent", NOW - timedelta(minutes=10))
    stored(engine, "slack", "failed", NOW)
    stored(engine, "slack", "pending", None)
    stored(engine, "teams", "sent", NOW)

    with Session(engine) as session:
        slack = bucket_from_store(session, "slack", PER_SECOND, NOW)
        teams = bucket_from_store(session, "teams", PER_SECOND, NOW)
        quiet = bucket_from_store(session, "discord", PER_SECOND, NOW)

    # empty at NOW-3s, +2 tokens by NOW-1s, -1, +1 by NOW, -1
    assert slack.tokens == pytest.approx(1.0)
    assert teams.tokens == pytest.approx(2.0)
    assert quiet.tokens == 3.0
