"""The notification outbox on a real SQLite file, with fake channels and a real webhook server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from daemon.notify.channels.base import RateLimit, TransportError
from daemon.notify.channels.webhook import WebhookChannel
from daemon.notify.outbox import (
    backoff_delay,
    enable_channel,
    enqueue,
    flush,
    oldest_pending_age,
    pending_count,
)
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import ChannelState, Outbox, as_utc

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
PAYLOAD: dict[str, Any] = {"receiver": "ops", "status": "firing", "alerts": [], "version": "4"}


class Crash(BaseException):
    """Stands in for the process dying in the middle of a send."""


@dataclass
class FakeChannel:
    name: str
    outcomes: list[BaseException | None] = field(default_factory=list)
    send_resolved: bool = True
    rate_limit: RateLimit | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    """The idempotency key of every call, failed ones included."""

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        self.keys.append(idempotency_key)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.sent.append(payload)


class FixedJitter(random.Random):
    """A ``Random`` whose ``uniform`` always lands at ``fraction`` of the range."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def add(engine: Engine, channel: str, *, now: datetime = NOW, group: str = "g") -> int:
    with Session(engine) as session:
        row = enqueue(
            session, channel=channel, group_key=group, payload={**PAYLOAD, "g": group}, now=now
        )
        session.commit()
        assert row.id is not None
        return row.id


def row(engine: Engine, row_id: int) -> Outbox:
    with Session(engine) as session:
        found = session.get(Outbox, row_id)
        assert found is not None
        return found


def health(engine: Engine, name: str) -> ChannelState | None:
    with Session(engine) as session:
        return session.get(ChannelState, name)


def disable(engine: Engine, name: str) -> None:
    with Session(engine) as session:
        session.add(ChannelState(name=name, disabled=True, last_error="revoked"))
        session.commit()


def test_it_leaves_the_commit_to_the_caller(engine: Engine) -> None:
    with Session(engine) as session:
        enqueue(session, channel="ops", group_key="g", payload=PAYLOAD, now=NOW)
        session.rollback()
    with Session(engine) as session:
        assert pending_count(session) == 0

    row_id = add(engine, "ops")

    stored = row(engine, row_id)
    assert stored.status == "pending"
    assert stored.attempts == 0
    assert as_utc(stored.next_attempt_at) == NOW
    assert stored.payload["receiver"] == "ops"
    assert len(stored.idempotency_key) == 32
    assert stored.kind == "notification"


def test_it_sends_due_rows_in_id_order_and_records_success(engine: Engine) -> None:
    first, second = add(engine, "ops", group="a"), add(engine, "ops", group="b")
    later = add(engine, "ops", group="c", now=NOW + timedelta(minutes=1))
    channel = FakeChannel("ops")
    state = LiveState()

    result = flush(engine, {"ops": channel}, now=NOW, state=state)

    assert (result.sent, result.retried, result.failed) == (2, 0, 0)
    assert [payload["g"] for payload in channel.sent] == ["a", "b"]
    for row_id in (first, second):
        assert row(engine, row_id).status == "sent"
        sent_at = row(engine, row_id).sent_at
        assert sent_at is not None
        assert as_utc(sent_at) == NOW
        assert row(engine, row_id).attempts == 1
    assert row(engine, later).status == "pending"
    channel_health = health(engine, "ops")
    assert channel_health is not None
    assert channel_health.last_success_at is not None
    assert as_utc(channel_health.last_success_at) == NOW
    view = state.view()
    assert view.notifications[("ops", "success")] == 2
    assert view.outbox_pending == 1


def test_it_fails_rows_of_a_channel_that_is_not_configured_any_more(engine: Engine) -> None:
    row_id = add(engine, "gone")
    state = LiveState()

    result = flush(engine, {"ops": FakeChannel("ops")}, now=NOW, state=state)

    assert result.failed == 1
    stored = row(engine, row_id)
    assert stored.status == "failed"
    assert stored.last_error is not None
    assert "'gone' is not configured" in stored.last_error
    assert state.view().notifications[("gone", "failed")] == 1
    assert state.view().outbox_pending == 0


def test_it_keeps_rows_of_a_disabled_channel_pending_without_using_the_batch(
    engine: Engine,
) -> None:
    muted = add(engine, "muted")
    live = add(engine, "ops")
    disable(engine, "muted")
    muted_channel, live_channel = FakeChannel("muted"), FakeChannel("ops")

    result = flush(engine, {"muted": muted_channel, "ops": live_channel}, now=NOW, batch=1)

    assert result.sent == 1
    assert muted_channel.sent == []
    assert len(live_channel.sent) == 1
    assert row(engine, muted).status == "pending"
    assert row(engine, muted).attempts == 0
    assert row(engine, live).status == "sent"


def test_it_sends_held_rows_once_the_channel_is_re_enabled(engine: Engine) -> None:
    held = add(engine, "muted")
    disable(engine, "muted")
    channel = FakeChannel("muted")
    flush(engine, {"muted": channel}, now=NOW)
    assert channel.sent == []
    with Session(engine) as session:
        assert enable_channel(session, "muted") == 1
        session.commit()

    state = LiveState()
    result = flush(engine, {"muted": channel}, now=NOW + timedelta(hours=1), state=state)

    assert result.sent == 1
    assert row(engine, held).status == "sent"
    assert state.view().channels_enabled == {"muted": True}


def test_it_re_enabling_changes_nothing_for_an_enabled_or_unknown_channel(
    engine: Engine,
) -> None:
    add(engine, "ops")
    with Session(engine) as session:
        assert enable_channel(session, "ops") == 1
        assert enable_channel(session, "never-seen") == 0
        session.commit()
    assert health(engine, "ops") is None


def test_it_waits_at_least_retry_after_when_rate_limited(engine: Engine) -> None:
    row_id = add(engine, "ops")
    channel = FakeChannel("ops", [TransportError("ops: HTTP 429", retry_after=120.0)])
    state = LiveState()

    result = flush(engine, {"ops": channel}, now=NOW, state=state, rng=FixedJitter(1.0))

    assert result.retried == 1
    stored = row(engine, row_id)
    assert stored.status == "pending"
    assert stored.attempts == 1
    assert as_utc(stored.next_attempt_at) == NOW + timedelta(seconds=120)
    assert stored.last_error == "ops: HTTP 429"
    channel_health = health(engine, "ops")
    assert channel_health is not None
    assert not channel_health.disabled
    assert channel_health.last_error == "ops: HTTP 429"
    assert state.view().notifications[("ops", "retry")] == 1
    assert state.view().outbox_pending == 1
    assert flush(engine, {"ops": channel}, now=NOW + timedelta(seconds=119)).sent == 0
    assert flush(engine, {"ops": channel}, now=NOW + timedelta(seconds=120)).sent == 1


def test_it_uses_backoff_when_retry_after_is_shorter(engine: Engine) -> None:
    row_id = add(engine, "ops")
    channel = FakeChannel("ops", [TransportError("ops: HTTP 429", retry_after=1.0)])

    flush(engine, {"ops": channel}, now=NOW, rng=FixedJitter(0.5))

    assert as_utc(row(engine, row_id).next_attempt_at) == NOW + timedelta(seconds=10)


def test_it_backs_off_exponentially_up_to_fifteen_minutes(engine: Engine) -> None:
    row_id = add(engine, "ops")
    channel = FakeChannel("ops", [TransportError("ops: HTTP 503") for _ in range(9)])
    now, delays = NOW, []

    for _ in range(9):
        flush(engine, {"ops": channel}, now=now, rng=FixedJitter(0.5), max_attempts=20)
        due = as_utc(row(engine, row_id).next_attempt_at)
        delays.append((due - now).total_seconds())
        now = due

    assert delays == [10, 20, 40, 80, 160, 320, 640, 900, 900]


def test_it_jitters_backoff_within_twenty_percent() -> None:
    rng = random.Random(7)
    for attempts, base in ((1, 10.0), (3, 40.0), (12, 900.0), (500, 900.0)):
        delays = {backoff_delay(attempts, rng).total_seconds() for _ in range(200)}
        assert min(delays) >= base * 0.8
        assert max(delays) <= base * 1.2
        assert len(delays) > 100
    assert backoff_delay(1, FixedJitter(0.0)) == timedelta(seconds=8)
    assert backoff_delay(1, FixedJitter(1.0)) == timedelta(seconds=12)


def test_it_disables_the_channel_and_holds_its_rows_on_a_permanent_error(
    engine: Engine,
) -> None:
    first, second = add(engine, "ops", group="a"), add(engine, "ops", group="b")
    other = add(engine, "team", group="c")
    channel = FakeChannel("ops", [TransportError("webhook ops: HTTP 410", permanent=True)])
    team = FakeChannel("team")
    state = LiveState()

    result = flush(engine, {"ops": channel, "team": team}, now=NOW, state=state)

    assert (result.sent, result.retried, result.failed) == (1, 0, 1)
    assert row(engine, first).status == "pending"
    assert row(engine, first).last_error == "webhook ops: HTTP 410"
    assert row(engine, second).status == "pending"
    assert row(engine, second).attempts == 0
    assert row(engine, other).status == "sent"
    channel_health = health(engine, "ops")
    assert channel_health is not None
    assert channel_health.disabled
    assert channel_health.last_error == "webhook ops: HTTP 410"
    assert channel_health.last_error_at is not None
    assert state.view().notifications[("ops", "failed")] == 1
    assert state.view().channels_enabled == {"ops": False, "team": True}
    assert flush(engine, {"ops": channel}, now=NOW + timedelta(hours=1)).sent == 0
    assert len(channel.keys) == 1

    with Session(engine) as session:
        assert enable_channel(session, "ops") == 2
        session.commit()
    after = flush(engine, {"ops": channel}, now=NOW + timedelta(hours=2), state=state)

    assert after.sent == 2
    assert [payload["g"] for payload in channel.sent] == ["a", "b"]
    assert row(engine, first).status == "sent"
    assert channel.keys[0] == channel.keys[1] == row(engine, first).idempotency_key
    kept = health(engine, "ops")
    assert kept is not None
    assert not kept.disabled
    assert kept.last_error == "webhook ops: HTTP 410"
    assert state.view().channels_enabled == {"ops": True}


def test_it_fails_a_row_after_max_attempts_without_disabling_the_channel(engine: Engine) -> None:
    row_id = add(engine, "ops")
    channel = FakeChannel("ops", [TransportError("webhook ops: HTTP 500") for _ in range(5)])
    state = LiveState()
    later = NOW

    outcomes = []
    for _ in range(3):
        outcomes.append(flush(engine, {"ops": channel}, now=later, state=state, max_attempts=3))
        later += timedelta(hours=1)

    assert [(r.retried, r.failed) for r in outcomes] == [(1, 0), (1, 0), (0, 1)]
    stored = row(engine, row_id)
    assert stored.status == "failed"
    assert stored.attempts == 3
    channel_health = health(engine, "ops")
    assert channel_health is not None
    assert not channel_health.disabled
    assert state.view().notifications[("ops", "retry")] == 2
    assert state.view().notifications[("ops", "failed")] == 1


def test_it_treats_an_unexpected_channel_exception_as_retryable(engine: Engine) -> None:
    row_id = add(engine, "ops")
    channel = FakeChannel("ops", [RuntimeError("bug")])

    result = flush(engine, {"ops": channel}, now=NOW)

    assert result.retried == 1
    assert row(engine, row_id).status == "pending"
    assert "RuntimeError" in (row(engine, row_id).last_error or "")


def test_it_claims_a_row_before_sending_so_a_crash_retries_later(engine: Engine) -> None:
    row_id = add(engine, "ops")
    channel = FakeChannel("ops", [Crash()])

    with pytest.raises(Crash):
        flush(engine, {"ops": channel}, now=NOW, rng=FixedJitter(0.5))

    stored = row(engine, row_id)
    assert stored.status == "pending"
    assert stored.attempts == 1
    assert as_utc(stored.next_attempt_at) == NOW + timedelta(seconds=10)
    assert flush(engine, {"ops": channel}, now=NOW).sent == 0
    assert flush(engine, {"ops": channel}, now=NOW + timedelta(seconds=10)).sent == 1
    assert row(engine, row_id).status == "sent"


def test_it_counts_pending_rows_due_or_not(engine: Engine) -> None:
    add(engine, "ops")
    add(engine, "ops", now=NOW + timedelta(hours=1))
    add(engine, "gone")
    flush(engine, {"ops": FakeChannel("ops")}, now=NOW)

    with Session(engine) as session:
        assert pending_count(session) == 1
        statuses = sorted(r.status for r in session.exec(select(Outbox)).all())
    assert statuses == ["failed", "pending", "sent"]


def test_it_delivers_through_a_real_webhook_after_a_server_error(
    engine: Engine, httpserver: HTTPServer
) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("", status=200)
    hook = WebhookChannel(name="ops", url=httpserver.url_for("/hook"), clock=lambda: NOW)
    row_id = add(engine, "ops")
    state = LiveState()

    first = flush(engine, {"ops": hook}, now=NOW, state=state)
    second = flush(engine, {"ops": hook}, now=NOW + timedelta(minutes=1), state=state)

    assert (first.retried, second.sent) == (1, 1)
    assert row(engine, row_id).status == "sent"
    assert row(engine, row_id).attempts == 2
    assert len(httpserver.log) == 2
    key = row(engine, row_id).idempotency_key
    assert [req.headers.get("Idempotency-Key") for req, _ in httpserver.log] == [key, key]
    assert state.view().notifications == {("ops", "retry"): 1, ("ops", "success"): 1}
    hook.close()


def test_it_gives_every_row_its_own_idempotency_key_and_a_kind(engine: Engine) -> None:
    first, second = add(engine, "ops", group="a"), add(engine, "ops", group="b")
    with Session(engine) as session:
        test_row = enqueue(
            session, channel="ops", group_key="t", payload=PAYLOAD, now=NOW, kind="test"
        )
        session.commit()
        test_id = test_row.id
    assert test_id is not None

    keys = [row(engine, row_id).idempotency_key for row_id in (first, second, test_id)]
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in keys)
    assert len(set(keys)) == 3
    assert [row(engine, r).kind for r in (first, second, test_id)] == [
        "notification",
        "notification",
        "test",
    ]
    with Session(engine) as session, pytest.raises(ValueError, match="kind must be one of"):
        enqueue(session, channel="ops", group_key="g", payload=PAYLOAD, now=NOW, kind="bulk")


def test_it_sends_the_same_idempotency_key_on_every_retry(engine: Engine) -> None:
    first, second = add(engine, "ops", group="a"), add(engine, "ops", group="b")
    channel = FakeChannel("ops", [TransportError("ops: HTTP 503"), None, None])

    flush(engine, {"ops": channel}, now=NOW, rng=FixedJitter(0.5))
    flush(engine, {"ops": channel}, now=NOW + timedelta(minutes=1))

    first_key = row(engine, first).idempotency_key
    second_key = row(engine, second).idempotency_key
    assert channel.keys == [first_key, second_key, first_key]
    assert first_key != second_key


def test_it_gives_a_key_to_rows_stored_without_one_and_keeps_it(engine: Engine) -> None:
    row_id = add(engine, "ops")
    with Session(engine) as session:
        stored = session.get(Outbox, row_id)
        assert stored is not None
        stored.idempotency_key = ""
        session.add(stored)
        session.commit()
    channel = FakeChannel("ops", [TransportError("ops: HTTP 503")])

    flush(engine, {"ops": channel}, now=NOW, rng=FixedJitter(0.5))
    flush(engine, {"ops": channel}, now=NOW + timedelta(minutes=1))

    key = row(engine, row_id).idempotency_key
    assert len(key) == 32
    assert channel.keys == [key, key]


def test_it_reports_the_outbox_gauges_after_each_flush(engine: Engine) -> None:
    add(engine, "ops", now=NOW - timedelta(minutes=5))
    add(engine, "muted", now=NOW - timedelta(minutes=2))
    disable(engine, "muted")
    state = LiveState()

    flush(engine, {"ops": FakeChannel("ops"), "muted": FakeChannel("muted")}, now=NOW, state=state)

    view = state.view()
    assert view.outbox_pending == 1
    assert view.outbox_oldest_age_seconds == 120.0
    assert view.channels_enabled == {"ops": True, "muted": False}
    with Session(engine) as session:
        assert oldest_pending_age(session, NOW + timedelta(seconds=30)) == 150.0


def test_it_reports_zero_age_for_an_empty_outbox(engine: Engine) -> None:
    state = LiveState()
    state.set_outbox_oldest_age(99.0)

    flush(engine, {"ops": FakeChannel("ops")}, now=NOW, state=state)

    assert state.view().outbox_oldest_age_seconds == 0.0
    assert state.view().outbox_pending == 0
