"""The dispatcher over a real store with a fake clock: grouping, timing, dedup, suppression."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.notify.dispatch import Dispatcher, DispatchResult
from daemon.notify.routing_config import InhibitRuleConfig, RootRouteConfig, TimeIntervalConfig
from daemon.notify.silences import create_silence, expire_silence
from daemon.state import LiveState
from daemon.store.db import open_store, session_scope
from daemon.store.models import Alert, NotifyGroup, NotifyLog, Outbox
from rules.engine import AlertInstance
from rules.fingerprint import fingerprint
from tests.conftest import SHARED_FIXTURES

T0 = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
FIXTURE = SHARED_FIXTURES / "alertmanager" / "webhook-v4-mixed-group.json"


@dataclass(frozen=True)
class Chan:
    name: str
    send_resolved: bool = True


@dataclass(frozen=True)
class Sent:
    at: datetime
    channel: str
    payload: dict[str, Any]

    @property
    def reason(self) -> str:
        return str(self.payload["notification_reason"])

    def statuses(self) -> dict[str, str]:
        """Each alert's ``gpu`` label (or alertname) -> its status in the message."""
        return {
            a["labels"].get("gpu", a["labels"]["alertname"]): a["status"]
            for a in self.payload["alerts"]
        }


@dataclass
class World:
    """A store, a dispatcher, and helpers to fire and resolve alerts at given times."""

    engine: Engine
    route: dict[str, Any] = field(default_factory=dict)
    inhibit: Sequence[dict[str, Any]] = ()
    intervals: Sequence[dict[str, Any]] = ()
    channels: Sequence[Chan] = (Chan("webhook"),)
    state: LiveState | None = None
    generator_url: Any = None
    sent: list[Sent] = field(default_factory=list)
    _seen: int = 0

    def __post_init__(self) -> None:
        self.dispatcher = self.new_dispatcher()

    def new_dispatcher(self) -> Dispatcher:
        return Dispatcher(
            RootRouteConfig.model_validate(self.route),
            [InhibitRuleConfig.model_validate(rule) for rule in self.inhibit],
            [TimeIntervalConfig.model_validate(interval) for interval in self.intervals],
            {channel.name: channel for channel in self.channels},
            receiver="gpu-finops",
            external_url="http://alertmanager.example:9093",
            state=self.state,
            generator_url=self.generator_url,
        )

    def fire(self, at: datetime, annotations: dict[str, str] | None = None, **labels: str) -> str:
        full = {"alertname": "GPUIdle", **labels}
        key = fingerprint(full)
        with session_scope(self.engine) as session:
            session.merge(
                Alert(
                    fingerprint=key,
                    alertname=full["alertname"],
                    labels=full,
                    annotations=annotations or {},
                    state="firing",
                    active_at=at,
                    fired_at=at,
                )
            )
        return key

    def resolve(self, key: str, at: datetime) -> None:
        with session_scope(self.engine) as session:
            alert = session.get(Alert, key)
            assert alert is not None
            alert.state, alert.resolved_at = "inactive", at
            session.add(alert)

    def drop(self, key: str) -> None:
        with session_scope(self.engine) as session:
            alert = session.get(Alert, key)
            assert alert is not None
            session.delete(alert)

    def tick(self, at: datetime) -> list[Sent]:
        """One dispatch at ``at``; the notifications it enqueued."""
        with session_scope(self.engine) as session:
            self.last = self.dispatcher.dispatch(session, at)
        with Session(self.engine) as session:
            rows = session.exec(
                select(Outbox).where(col(Outbox.id) > self._seen).order_by(col(Outbox.id))
            ).all()
        new = [Sent(at, row.channel, row.payload) for row in rows]
        if rows:
            self._seen = max(row.id or 0 for row in rows)
        self.sent.extend(new)
        return new

    def run(self, start: datetime, end: datetime, step: timedelta = 30 * SECOND) -> list[Sent]:
        """Dispatch every ``step`` from ``start`` to ``end`` (both included)."""
        found: list[Sent] = []
        moment = start
        while moment <= end:
            found.extend(self.tick(moment))
            moment += step
        return found

    def groups(self) -> list[NotifyGroup]:
        with Session(self.engine) as session:
            return list(session.exec(select(NotifyGroup)).all())


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def test_it_holds_the_first_notification_for_group_wait(engine: Engine) -> None:
    world = World(engine)
    world.fire(T0, gpu="1")
    assert world.run(T0, T0 + 29 * SECOND, step=SECOND) == []
    (sent,) = world.tick(T0 + 30 * SECOND)
    assert sent.channel == "webhook"
    assert sent.reason == "first notification"
    assert sent.payload["groupKey"] == '{}:{alertname="GPUIdle"}'
    assert sent.payload["receiver"] == "gpu-finops"
    assert sent.statuses() == {"1": "firing"}
    assert world.last.flushed == 1


def test_it_batches_alerts_that_arrive_during_group_wait(engine: Engine) -> None:
    world = World(engine)
    world.fire(T0, gpu="1")
    world.tick(T0)
    world.fire(T0 + 10 * SECOND, gpu="2")
    (sent,) = world.run(T0 + 10 * SECOND, T0 + 30 * SECOND, step=10 * SECOND)
    assert sent.statuses() == {"1": "firing", "2": "firing"}


def test_it_never_notifies_alerts_resolved_inside_group_wait(engine: Engine) -> None:
    world = World(engine)
    key = world.fire(T0, gpu="1")
    world.tick(T0)
    world.resolve(key, T0 + 10 * SECOND)
    assert world.run(T0 + 10 * SECOND, T0 + 20 * MINUTE) == []
    assert world.groups() == []


def test_it_sends_new_alerts_at_the_next_group_interval_tick(engine: Engine) -> None:
    world = World(engine)
    world.fire(T0, gpu="1")
    assert len(world.run(T0, T0 + 30 * SECOND)) == 1
    world.fire(T0 + MINUTE, gpu="2")
    world.fire(T0 + 2 * MINUTE, gpu="3")
    assert world.run(T0 + MINUTE, T0 + 5 * MINUTE) == []
    (second,) = world.run(T0 + 5 * MINUTE + 30 * SECOND, T0 + 10 * MINUTE)
    assert second.at == T0 + 5 * MINUTE + 30 * SECOND
    assert second.reason == "new alerts added"
    assert second.statuses() == {"1": "firing", "2": "firing", "3": "firing"}
    assert world.run(T0 + 10 * MINUTE + 30 * SECOND, T0 + 30 * MINUTE) == []


def test_it_repeats_an_unchanged_group_at_the_first_tick_after_repeat_interval(
    engine: Engine,
) -> None:
    world = World(engine, route={"repeat_interval": "20m"})
    world.fire(T0, gpu="1")
    assert len(world.run(T0, T0 + 30 * SECOND)) == 1
    # Flushes at 5:30, 10:30, 15:30, 20:30 (exactly 20m after the send: not yet), 25:30.
    assert world.run(T0 + MINUTE, T0 + 25 * MINUTE) == []
    (repeat,) = world.run(T0 + 25 * MINUTE + 30 * SECOND, T0 + 26 * MINUTE)
    assert repeat.at == T0 + 25 * MINUTE + 30 * SECOND
    assert repeat.reason == "repeat interval elapsed"
    assert repeat.statuses() == {"1": "firing"}
    assert world.run(T0 + 26 * MINUTE + 30 * SECOND, T0 + 45 * MINUTE) == []


def test_it_reproduces_the_fixture_payload_for_a_partly_resolved_group(engine: Engine) -> None:
    fixture = json.loads(FIXTURE.read_text())
    generator = fixture["alerts"][0]["generatorURL"]

    def link(_alert: AlertInstance) -> str:
        return str(generator)

    world = World(
        engine,
        route={"routes": [{"matchers": ['team="ml-infra"'], "group_by": ["alertname", "cluster"]}]},
        generator_url=link,
    )
    keys = [
        world.fire(T0, annotations=alert["annotations"], **alert["labels"])
        for alert in fixture["alerts"]
    ]
    (first,) = world.run(T0, T0 + 24 * MINUTE + 30 * SECOND)
    assert first.reason == "first notification"
    assert first.statuses() == {"3": "firing", "5": "firing"}
    world.resolve(keys[1], T0 + 25 * MINUTE)
    (second,) = world.run(T0 + 25 * MINUTE, T0 + 26 * MINUTE)
    assert second.at == T0 + 25 * MINUTE + 30 * SECOND
    assert second.payload == fixture


def test_it_sends_resolved_messages_only_to_channels_that_want_them(engine: Engine) -> None:
    world = World(engine, channels=(Chan("webhook"), Chan("slack", send_resolved=False)))
    one = world.fire(T0, gpu="1")
    two = world.fire(T0, gpu="2")
    first = world.run(T0, T0 + 30 * SECOND)
    assert sorted(s.channel for s in first) == ["slack", "webhook"]

    world.resolve(two, T0 + 2 * MINUTE)
    (some,) = world.run(T0 + MINUTE, T0 + 5 * MINUTE + 30 * SECOND)
    assert (some.channel, some.reason) == ("webhook", "some alerts resolved")
    assert some.statuses() == {"1": "firing", "2": "resolved"}

    world.resolve(one, T0 + 7 * MINUTE)
    (everything,) = world.run(T0 + 6 * MINUTE, T0 + 10 * MINUTE + 30 * SECOND)
    assert (everything.channel, everything.reason) == ("webhook", "all alerts resolved")
    assert everything.statuses() == {"1": "resolved"}
    assert everything.payload["status"] == "resolved"
    assert world.groups() == []
    with Session(engine) as session:
        logs = {log.channel: log for log in session.exec(select(NotifyLog)).all()}
    assert logs["slack"].firing == [] and logs["slack"].resolved == [one]
    assert logs["webhook"].firing == [] and logs["webhook"].resolved == [one]
    assert world.run(T0 + 11 * MINUTE, T0 + 30 * MINUTE, step=MINUTE) == []


def test_it_opens_a_fresh_group_after_the_last_one_resolved(engine: Engine) -> None:
    world = World(engine)
    one = world.fire(T0, gpu="1")
    world.run(T0, T0 + 30 * SECOND)
    world.resolve(one, T0 + MINUTE)
    (resolved,) = world.run(T0 + MINUTE, T0 + 6 * MINUTE)
    assert resolved.reason == "all alerts resolved"
    world.fire(T0 + 8 * MINUTE, gpu="2")
    (again,) = world.run(T0 + 8 * MINUTE, T0 + 9 * MINUTE)
    assert again.at == T0 + 8 * MINUTE + 30 * SECOND
    assert again.reason == "first notification"
    assert again.statuses() == {"2": "firing"}


def test_it_flushes_at_once_for_an_alert_older_than_group_wait(engine: Engine) -> None:
    world = World(engine)
    world.fire(T0, gpu="1")
    (sent,) = world.tick(T0 + 2 * MINUTE)
    assert sent.reason == "first notification"


def test_it_suppresses_silenced_alerts_but_keeps_them_firing(engine: Engine) -> None:
    state = LiveState()
    world = World(engine, state=state)
    with session_scope(engine) as session:
        silence = create_silence(
            session,
            matchers=['gpu="1"'],
            ends_at=T0 + 10 * MINUTE,
            created_by="ops",
            comment="maintenance",
            now=T0,
        )
        silence_id = silence.id
    one = world.fire(T0, gpu="1")
    world.fire(T0, gpu="2")
    (sent,) = world.run(T0, T0 + 30 * SECOND)
    assert sent.statuses() == {"2": "firing"}
    assert world.last.suppressed == {"silenced": 1}
    assert state.view().suppressed == {"silenced": 1}
    with Session(engine) as session:
        alert = session.get(Alert, one)
        assert alert is not None and alert.state == "firing"

    with session_scope(engine) as session:
        expire_silence(session, silence_id, T0 + 2 * MINUTE)
    (unsilenced,) = world.run(T0 + 2 * MINUTE, T0 + 6 * MINUTE)
    assert unsilenced.reason == "new alerts added"
    assert unsilenced.statuses() == {"1": "firing", "2": "firing"}


def test_it_suppresses_inhibited_alerts(engine: Engine) -> None:
    state = LiveState()
    world = World(
        engine,
        route={"group_by": ["alertname", "cluster"]},
        inhibit=[
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["cluster"],
            }
        ],
        state=state,
    )
    world.fire(T0, alertname="NodeDown", severity="critical", cluster="a")
    world.fire(T0, gpu="1", severity="warning", cluster="a")
    world.fire(T0, gpu="2", severity="warning", cluster="b")
    sent = world.run(T0, T0 + 30 * SECOND)
    assert sorted(s.payload["groupKey"] for s in sent) == [
        '{}:{alertname="GPUIdle", cluster="b"}',
        '{}:{alertname="NodeDown", cluster="a"}',
    ]
    assert state.view().suppressed == {"inhibited": 1}
    inhibited_group = '{}:{alertname="GPUIdle", cluster="a"}'
    assert inhibited_group in {g.group_key for g in world.groups()}


def test_it_sends_nothing_inside_a_mute_time_interval(engine: Engine) -> None:
    state = LiveState()
    world = World(
        engine,
        route={
            "routes": [{"matchers": ['severity="warning"'], "mute_time_intervals": ["morning"]}]
        },
        intervals=[
            {
                "name": "morning",
                "time_intervals": [{"times": [{"start_time": "09:00", "end_time": "10:05"}]}],
            }
        ],
        state=state,
    )
    world.fire(T0, gpu="1", severity="warning")
    assert world.run(T0, T0 + 5 * MINUTE) == []
    assert state.view().suppressed == {"muted": 1}
    (sent,) = world.run(T0 + 5 * MINUTE + 30 * SECOND, T0 + 6 * MINUTE)
    assert sent.reason == "first notification"


def test_it_sends_nothing_outside_the_active_time_intervals(engine: Engine) -> None:
    state = LiveState()
    office = {
        "weekdays": ["monday:friday"],
        "times": [{"start_time": "11:00", "end_time": "18:00"}],
    }
    world = World(
        engine,
        route={"active_time_intervals": ["office"]},
        intervals=[{"name": "office", "time_intervals": [office]}],
        state=state,
    )
    world.fire(T0, gpu="1")  # Thursday 10:00 UTC
    # Flushes at 10:01, 10:06, ... 10:56 are all outside office hours.
    assert world.run(T0, T0 + 60 * MINUTE, step=MINUTE) == []
    assert state.view().suppressed == {"muted": 12}
    (sent,) = world.run(T0 + 61 * MINUTE, T0 + 62 * MINUTE, step=MINUTE)
    assert sent.at == T0 + 61 * MINUTE
    assert sent.reason == "first notification"


def test_it_does_not_notify_again_after_a_restart(engine: Engine, db_url: str) -> None:
    world = World(engine, route={"repeat_interval": "1h"})
    world.fire(T0, gpu="1")
    assert len(world.run(T0, T0 + 30 * SECOND)) == 1
    restarted_engine = open_store(db_url)
    try:
        restarted = World(restarted_engine, route={"repeat_interval": "1h"})
        restarted._seen = world._seen
        assert restarted.run(T0 + MINUTE, T0 + 30 * MINUTE, step=MINUTE) == []
        restarted.fire(T0 + 31 * MINUTE, gpu="2")
        (second,) = restarted.run(T0 + 31 * MINUTE, T0 + 36 * MINUTE)
        assert second.reason == "new alerts added"
    finally:
        restarted_engine.dispose()


def test_it_notifies_each_matching_route_with_continue(engine: Engine) -> None:
    world = World(
        engine,
        route={
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
                {"matchers": ['team="ml"'], "receiver": "slack"},
            ]
        },
        channels=(Chan("pager"), Chan("slack"), Chan("webhook")),
    )
    world.fire(T0, gpu="1", severity="critical", team="ml")
    world.fire(T0, gpu="2", severity="warning", team="ml")
    world.fire(T0, gpu="3", severity="warning", team="web")
    sent = world.run(T0, T0 + 30 * SECOND)
    routed = {(s.channel, s.payload["groupKey"]): set(s.statuses()) for s in sent}
    assert routed == {
        ("pager", '{}/{severity="critical"}:{alertname="GPUIdle"}'): {"1"},
        ("slack", '{}/{team="ml"}:{alertname="GPUIdle"}'): {"1", "2"},
        ("pager", '{}:{alertname="GPUIdle"}'): {"3"},
        ("slack", '{}:{alertname="GPUIdle"}'): {"3"},
        ("webhook", '{}:{alertname="GPUIdle"}'): {"3"},
    }


def test_it_closes_a_group_whose_alerts_are_gone(engine: Engine) -> None:
    world = World(engine)
    key = world.fire(T0, gpu="1")
    world.run(T0, T0 + 30 * SECOND)
    world.drop(key)
    assert world.run(T0 + MINUTE, T0 + 6 * MINUTE) == []
    assert world.groups() == []


def test_it_closes_groups_whose_route_left_the_config(engine: Engine) -> None:
    world = World(engine, route={"routes": [{"matchers": ['team="ml"']}]})
    world.fire(T0, gpu="1", team="ml")
    world.run(T0, T0 + 30 * SECOND)
    world.route = {}
    world.dispatcher = world.new_dispatcher()
    (sent,) = world.run(T0 + MINUTE, T0 + 6 * MINUTE)
    assert sent.payload["groupKey"] == '{}:{alertname="GPUIdle"}'
    assert [g.group_key for g in world.groups()] == ['{}:{alertname="GPUIdle"}']


def test_it_ignores_pending_alerts(engine: Engine) -> None:
    world = World(engine)
    with session_scope(engine) as session:
        session.add(
            Alert(
                fingerprint=fingerprint({"alertname": "GPUIdle"}),
                alertname="GPUIdle",
                labels={"alertname": "GPUIdle"},
                state="pending",
                active_at=T0,
            )
        )
    assert world.run(T0, T0 + 5 * MINUTE) == []
    assert world.groups() == []


def test_it_rejects_routes_naming_unknown_channels_or_intervals(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown channel 'pager'"):
        World(engine, route={"receiver": "pager"})
    with pytest.raises(ValueError, match="unknown time interval 'nights'"):
        World(engine, route={"mute_time_intervals": ["nights"]})


def test_it_reports_what_a_dispatch_did(engine: Engine) -> None:
    world = World(engine, channels=(Chan("a"), Chan("b")))
    world.fire(T0, gpu="1")
    world.tick(T0)
    assert world.last == DispatchResult(enqueued=0, flushed=0, suppressed={})
    world.tick(T0 + 30 * SECOND)
    assert world.last == DispatchResult(enqueued=2, flushed=1, suppressed={})
