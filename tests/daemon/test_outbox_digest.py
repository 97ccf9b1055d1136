"""Rate-limited channels: the outbox folds a burst into one digest instead of dropping anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from daemon.notify.channels.base import RateLimit, TransportError
from daemon.notify.digest import build_digest, digest_group_key, notifications_in
from daemon.notify.outbox import enqueue, flush
from daemon.notify.payload import encode_go_json
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import Outbox, as_utc

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
ONE_A_MINUTE = RateLimit(per_minute=1, burst=1)


def alert(n: int, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "GPUIdle", "cluster": "a", "n": str(n), **labels},
        "annotations": {"summary": f"gpu {n} idle"},
        "startsAt": "2026-08-20T09:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-08-20T09:30:00Z",
        "generatorURL": "http://tcowatch.example/alerts?alertname=GPUIdle",
        "fingerprint": f"fp{n}",
    }


def payload(
    *alerts: dict[str, Any], group: str = "g", reason: str = "first notification"
) -> dict[str, Any]:
    return {
        "receiver": "ops",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": list(alerts),
        "notification_reason": reason,
        "groupLabels": {"alertname": "GPUIdle", "group": group},
        "commonLabels": {},
        "commonAnnotations": {},
        "routeLabels": {"team": "ml"},
        "externalURL": "http://tcowatch.example",
        "version": "4",
        "groupKey": f"{{}}:{{group={group!r}}}",
        "truncatedAlerts": 0,
    }


# --- build_digest -------------------------------------------------------------------------


def test_it_merges_alerts_by_fingerprint_with_the_latest_status_winning() -> None:
    digest = build_digest(
        [
            payload(alert(1), alert(2), group="x"),
            payload(alert(3), group="y"),
            payload(alert(1, "resolved"), group="x", reason="some alerts resolved"),
        ],
        channel="slack",
    )

    assert [(a["fingerprint"], a["status"]) for a in digest["alerts"]] == [
        ("fp1", "resolved"),
        ("fp2", "firing"),
        ("fp3", "firing"),
    ]
    assert digest["status"] == "firing"
    assert digest["notification_reason"] == "digest of 3 notifications"
    assert digest["digestOf"] == 3
    assert digest["groupKey"] == "digest:slack" == digest_group_key("slack")
    assert digest["groupLabels"] == {"alertname": "GPUIdle"}
    assert digest["commonLabels"] == {"alertname": "GPUIdle", "cluster": "a"}
    assert digest["commonAnnotations"] == {}
    assert digest["routeLabels"] == {"team": "ml"}
    assert (digest["receiver"], digest["version"]) == ("ops", "4")
    assert digest["externalURL"] == "http://tcowatch.example"


def test_it_is_resolved_when_every_merged_alert_resolved() -> None:
    digest = build_digest(
        [payload(alert(1)), payload(alert(1, "resolved"), alert(2, "resolved"))], channel="c"
    )

    assert digest["status"] == "resolved"


def test_it_counts_the_notifications_inside_a_folded_digest() -> None:
    inner = build_digest([payload(alert(1)), payload(alert(2))], channel="c")
    outer = build_digest([inner, payload(alert(3))], channel="c")

    assert notifications_in(inner) == 2
    assert notifications_in(payload(alert(1))) == 1
    assert outer["digestOf"] == 3
    assert outer["notification_reason"] == "digest of 3 notifications"
    assert [a["fingerprint"] for a in outer["alerts"]] == ["fp1", "fp2", "fp3"]


def test_it_merges_alerts_without_a_fingerprint_by_their_labels() -> None:
    first, second = alert(1), alert(1, "resolved")
    del first["fingerprint"], second["fingerprint"]

    digest = build_digest([payload(first), payload(second), payload(alert(2))], channel="c")

    assert [a["status"] for a in digest["alerts"]] == ["resolved", "firing"]


def test_it_adds_up_truncated_alerts_and_skips_malformed_entries() -> None:
    broken = payload(alert(1))
    broken["alerts"].append("not an alert")
    broken["truncatedAlerts"] = 4
    odd = payload(alert(2))
    odd["alerts"] = "nope"
    odd["truncatedAlerts"] = 1

    digest = build_digest([broken, odd], channel="c")

    assert [a["fingerprint"] for a in digest["alerts"]] == ["fp1"]
    assert digest["truncatedAlerts"] == 5


def test_it_refuses_an_empty_digest() -> None:
    with pytest.raises(ValueError, match="at least one notification"):
        build_digest([], channel="c")


def test_it_encodes_a_digest_like_any_alertmanager_payload() -> None:
    digest = build_digest([payload(alert(1)), payload(alert(2))], channel="c")

    body = encode_go_json(digest)

    assert body.endswith(b',"truncatedAlerts":0,"digestOf":2}\n')
    assert json.loads(body)["alerts"][1]["fingerprint"] == "fp2"


# --- folding in flush ---------------------------------------------------------------------


@dataclass
class FakeChannel:
    name: str
    rate_limit: RateLimit | None = ONE_A_MINUTE
    outcomes: list[BaseException | None] = field(default_factory=list)
    send_resolved: bool = True
    sent: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.sent.append((payload, idempotency_key))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def add(
    engine: Engine, channel: str, n: int, *, now: datetime = NOW, kind: str = "notification"
) -> int:
    with Session(engine) as session:
        row = enqueue(
            session,
            channel=channel,
            group_key=f"g{n}",
            payload=payload(alert(n), group=str(n)),
            now=now,
            kind=kind,
        )
        session.commit()
        assert row.id is not None
        return row.id


def rows(engine: Engine, channel: str) -> list[Outbox]:
    with Session(engine) as session:
        statement = select(Outbox).where(col(Outbox.channel) == channel).order_by(col(Outbox.id))
        return list(session.exec(statement).all())


def numbers(sent_payload: dict[str, Any]) -> list[str]:
    return [a["labels"]["n"] for a in sent_payload["alerts"]]


def test_it_folds_a_burst_into_one_digest_due_at_the_next_token(engine: Engine) -> None:
    ids = [add(engine, "slack", n) for n in range(5)]
    other = add(engine, "hook", 99)
    slack, hook = FakeChannel("slack"), FakeChannel("hook", rate_limit=None)
    state = LiveState()

    result = flush(engine, {"slack": slack, "hook": hook}, now=NOW, state=state)

    assert (result.sent, result.folded, result.digests) == (2, 4, 1)
    assert [numbers(p) for p, _ in slack.sent] == [["0"]]
    stored = {row.id: row for row in rows(engine, "slack")}
    digest = next(row for row in stored.values() if row.kind == "digest")
    assert stored[ids[0]].status == "sent"
    for row_id in ids[1:]:
        assert stored[row_id].status == "folded"
        assert stored[row_id].folded_into == digest.id
    assert digest.status == "pending"
    assert digest.group_key == "digest:slack"
    assert digest.payload["digestOf"] == 4
    assert digest.payload["notification_reason"] == "digest of 4 notifications"
    assert as_utc(digest.next_attempt_at) == NOW + timedelta(minutes=1, microseconds=1)
    assert as_utc(digest.created_at) == NOW
    assert len(digest.idempotency_key) == 32
    assert rows(engine, "hook")[0].id == other
    assert rows(engine, "hook")[0].status == "sent"
    view = state.view()
    assert view.notifications[("slack", "success")] == 1
    assert view.notifications[("slack", "folded")] == 4
    assert view.outbox_pending == 1

    assert flush(engine, {"slack": slack}, now=NOW + timedelta(seconds=59)).sent == 0
    later = flush(engine, {"slack": slack}, now=NOW + timedelta(minutes=1, seconds=1))

    assert later.sent == 1
    digest_payload, key = slack.sent[-1]
    assert numbers(digest_payload) == ["1", "2", "3", "4"]
    assert key == digest.idempotency_key


def test_it_postpones_a_lone_notification_instead_of_folding_it(engine: Engine) -> None:
    first = add(engine, "slack", 1)
    slack = FakeChannel("slack")
    flush(engine, {"slack": slack}, now=NOW)
    lone = add(engine, "slack", 2, now=NOW + timedelta(seconds=30))

    result = flush(engine, {"slack": slack}, now=NOW + timedelta(seconds=30))

    assert (result.sent, result.folded, result.digests) == (0, 0, 0)
    stored = {row.id: row for row in rows(engine, "slack")}
    assert [row.kind for row in stored.values()] == ["notification", "notification"]
    assert stored[first].status == "sent"
    assert stored[lone].status == "pending"
    assert stored[lone].attempts == 0
    assert as_utc(stored[lone].next_attempt_at) == NOW + timedelta(minutes=1, microseconds=1)
    assert flush(engine, {"slack": slack}, now=NOW + timedelta(minutes=1, seconds=1)).sent == 1


def test_it_keeps_the_bucket_across_a_restart(engine: Engine, db_url: str) -> None:
    add(engine, "slack", 1)
    flush(engine, {"slack": FakeChannel("slack")}, now=NOW)
    engine.dispose()
    restarted = open_store(db_url)
    try:
        add(restarted, "slack", 2, now=NOW + timedelta(seconds=10))
        add(restarted, "slack", 3, now=NOW + timedelta(seconds=10))
        slack = FakeChannel("slack")

        result = flush(restarted, {"slack": slack}, now=NOW + timedelta(seconds=10))
    finally:
        restarted.dispose()

    assert (result.sent, result.folded) == (0, 2)
    assert slack.sent == []


def test_it_folds_a_due_digest_into_a_new_one(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(
            Outbox(
                channel="slack",
                group_key="g0",
                payload=payload(alert(0)),
                status="sent",
                created_at=NOW,
                next_attempt_at=NOW,
                sent_at=NOW,
            )
        )
        old = enqueue(
            session,
            channel="slack",
            group_key=digest_group_key("slack"),
            payload=build_digest([payload(alert(1)), payload(alert(2))], channel="slack"),
            now=NOW - timedelta(minutes=3),
            kind="digest",
        )
        session.commit()
        old_id = old.id
    assert old_id is not None
    newer = add(engine, "slack", 3)

    result = flush(engine, {"slack": FakeChannel("slack")}, now=NOW)

    assert (result.folded, result.digests) == (2, 1)
    stored = {row.id or 0: row for row in rows(engine, "slack")}
    digest = stored[max(stored)]
    assert stored[old_id].status == stored[newer].status == "folded"
    assert stored[old_id].folded_into == stored[newer].folded_into == digest.id
    assert digest.payload["digestOf"] == 3
    assert [a["fingerprint"] for a in digest.payload["alerts"]] == ["fp1", "fp2", "fp3"]
    assert as_utc(digest.created_at) == NOW - timedelta(minutes=3)


def test_it_never_folds_a_test_notification(engine: Engine) -> None:
    add(engine, "slack", 0)
    probe = add(engine, "slack", 1, kind="test")
    folded = [add(engine, "slack", n) for n in (2, 3)]

    result = flush(engine, {"slack": FakeChannel("slack")}, now=NOW)

    assert (result.sent, result.folded) == (1, 2)
    stored = {row.id: row for row in rows(engine, "slack")}
    assert stored[probe].status == "pending"
    assert stored[probe].kind == "test"
    assert as_utc(stored[probe].next_attempt_at) == NOW + timedelta(minutes=1, microseconds=1)
    assert all(stored[row_id].status == "folded" for row_id in folded)


def test_it_delivers_every_alert_of_a_long_burst_within_the_limit(engine: Engine) -> None:
    limit = RateLimit(per_minute=6, burst=2)
    slack = FakeChannel(
        "slack",
        rate_limit=limit,
        outcomes=[None, TransportError("slack: HTTP 429", retry_after=20.0)] * 3,
    )
    moment, count = NOW, 0
    for _ in range(60):
        for _ in range(3 if count < 90 else 0):
            add(engine, "slack", count, now=moment)
            count += 1
        flush(engine, {"slack": slack}, now=moment)
        moment += timedelta(seconds=5)

    delivered = {n for p, _ in slack.sent for n in numbers(p)}
    assert delivered == {str(n) for n in range(90)}
    assert all(row.status in ("sent", "folded") for row in rows(engine, "slack"))
    sent_times = sorted(as_utc(row.sent_at) for row in rows(engine, "slack") if row.sent_at)
    assert len(sent_times) == len(slack.sent) < 30
    for index, start in enumerate(sent_times):
        window = [t for t in sent_times[index:] if t < start + timedelta(minutes=1)]
        assert len(window) <= limit.burst + limit.per_minute
