"""The alerts page's queries and silence requests (``daemon.board.alerts``), on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.board.alerts import (
    InputError,
    alert_matchers,
    create_board_silence,
    list_alerts,
    list_board_silences,
    matcher_lines,
    parse_filter,
    parse_moment,
)
from daemon.notify.silences import create_silence
from daemon.store.db import open_store, session_scope
from daemon.store.models import Alert

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)


def _alert(fingerprint: str, name: str, state: str, minutes: int, **labels: str) -> Alert:
    resolved = NOW - timedelta(minutes=minutes) if state == "inactive" else None
    return Alert(
        fingerprint=fingerprint,
        alertname=name,
        labels={"alertname": name, **labels},
        annotations={"summary": f"{name} summary"},
        state=state,
        value=0.25,
        active_at=NOW - timedelta(minutes=minutes + 30),
        fired_at=NOW - timedelta(minutes=minutes + 10) if state != "pending" else None,
        resolved_at=resolved,
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    with session_scope(engine) as session:
        session.add(_alert("f1", "GPUIdle", "firing", 0, severity="warning", gpu="1"))
        session.add(_alert("f2", "BudgetBurn", "firing", 60, severity="critical", team="ml"))
        session.add(_alert("p1", "CacheHitLow", "pending", 0, severity="warning"))
        session.add(_alert("r1", "GPUIdle", "inactive", 5, severity="warning", gpu="2"))
        session.add(_alert("r2", "GPUIdle", "inactive", 20, severity="warning", gpu="3"))
    yield engine
    engine.dispose()


def test_it_lists_firing_pending_and_recently_resolved_alerts(engine: Engine) -> None:
    with Session(engine) as session:
        page = list_alerts(session, now=NOW)
    assert [(a.fingerprint, a.state) for a in page.items] == [
        ("f2", "firing"),  # firing first, longest active first
        ("f1", "firing"),
        ("p1", "pending"),
        ("r1", "resolved"),  # resolved 5 min ago; r2 (20 min) is past the 15 min retention
    ]
    assert page.total == 4
    assert page.counts == {"firing": 2, "pending": 1, "resolved": 1}
    first = page.items[0]
    assert first.labels == {"alertname": "BudgetBurn", "severity": "critical", "team": "ml"}
    assert first.annotations == {"summary": "BudgetBurn summary"}
    assert first.value == 0.25
    assert first.active_at == NOW - timedelta(minutes=90)


def test_it_filters_alerts_by_state_and_label_matchers(engine: Engine) -> None:
    with Session(engine) as session:
        critical = list_alerts(session, now=NOW, filter='severity="critical"')
        regex = list_alerts(session, now=NOW, filter='{alertname=~"GPU.*", gpu!="1"}')
        pending = list_alerts(session, now=NOW, state="pending")
        firing_warn = list_alerts(session, now=NOW, state="firing", filter="severity=warning")
    assert [a.fingerprint for a in critical.items] == ["f2"]
    assert critical.filter == 'severity="critical"'
    assert [a.fingerprint for a in regex.items] == ["r1"]
    assert [a.fingerprint for a in pending.items] == ["p1"]
    assert pending.counts == {"firing": 2, "pending": 1, "resolved": 1}
    assert [a.fingerprint for a in firing_warn.items] == ["f1"]
    assert firing_warn.counts == {"firing": 1, "pending": 1, "resolved": 1}


def test_it_paginates_alerts(engine: Engine) -> None:
    with Session(engine) as session:
        page = list_alerts(session, now=NOW, limit=2, offset=1)
    assert [a.fingerprint for a in page.items] == ["f1", "p1"]
    assert (page.total, page.limit, page.offset) == (4, 2, 1)


def test_it_names_the_field_of_a_bad_state_or_filter(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(InputError) as state:
            list_alerts(session, now=NOW, state="burning")
        with pytest.raises(InputError) as matcher:
            list_alerts(session, now=NOW, filter='severity="critical')
        with pytest.raises(InputError) as silence_state:
            list_board_silences(session, now=NOW, state="firing")
    assert state.value.field == "state" and "burning" in state.value.reason
    assert matcher.value.field == "filter" and "unterminated double quote" in matcher.value.reason
    assert silence_state.value.field == "state"
    assert parse_filter("  ") == []


def test_it_marks_alerts_muted_by_active_silences_only(engine: Engine) -> None:
    with session_scope(engine) as session:
        active = create_silence(
            session, matchers=['alertname="GPUIdle"'], ends_at=NOW + timedelta(hours=1),
            created_by="alice", comment="maintenance", now=NOW,
        )  # fmt: skip
        create_silence(
            session, matchers=['alertname="CacheHitLow"'], ends_at=NOW + timedelta(hours=3),
            created_by="alice", comment="later", now=NOW, starts_at=NOW + timedelta(hours=2),
        )  # fmt: skip
        create_silence(
            session, matchers=['alertname="BudgetBurn"'], ends_at=NOW - timedelta(hours=1),
            created_by="alice", comment="over", now=NOW - timedelta(hours=2),
        )  # fmt: skip
        active_id = active.id
    with Session(engine) as session:
        page = list_alerts(session, now=NOW)
    muted = {a.fingerprint: a.silenced_by for a in page.items}
    assert muted == {"f2": None, "f1": active_id, "p1": None, "r1": None}


def test_it_prefills_a_silence_with_the_alerts_labels(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_alert("q1", "Odd", "firing", 0, note='say "hi"\\now'))
    with Session(engine) as session:
        assert alert_matchers(session, "nope") is None
        odd = alert_matchers(session, "q1")
        assert alert_matchers(session, "f1") == [
            'alertname="GPUIdle"',
            'gpu="1"',
            'severity="warning"',
        ]
    assert odd is not None
    with session_scope(engine) as session:
        silence = create_board_silence(
            session, matchers=odd, comment="noise", author="bob", now=NOW, duration="1h"
        )
        silence_id = silence.id
    with Session(engine) as session:
        page = list_alerts(session, now=NOW, filter='alertname="Odd"')
    assert page.items[0].silenced_by == silence_id  # the quoting round-trips exactly


def test_it_creates_a_silence_from_a_duration_or_an_end(engine: Engine) -> None:
    start = NOW + timedelta(hours=1)
    with session_scope(engine) as session:
        now_on = create_board_silence(
            session, matchers=["severity=warning"], comment=" deploy ", author="bob",
            now=NOW, duration="2h",
        )  # fmt: skip
        later = create_board_silence(
            session, matchers=['{team="ml", severity="critical"}'], comment="x", author="bob",
            now=NOW, starts_at=start, duration="30m",
        )  # fmt: skip
        until = create_board_silence(
            session, matchers=["gpu=1"], comment="x", author="bob", now=NOW,
            ends_at=NOW + timedelta(days=1),
        )  # fmt: skip
    assert (now_on.starts_at, now_on.ends_at) == (NOW, NOW + timedelta(hours=2))
    assert now_on.created_by == "bob" and now_on.comment == "deploy"
    assert (later.starts_at, later.ends_at) == (start, start + timedelta(minutes=30))
    assert len(later.matchers) == 2
    assert until.ends_at == NOW + timedelta(days=1)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"duration": "2h", "ends_at": NOW + timedelta(hours=1)}, "duration", "not both"),
        ({}, "ends_at", "duration such as 2h"),
        ({"duration": "soon"}, "duration", "expected a duration"),
        ({"duration": "0s"}, "duration", "longer than 0s"),
        (
            {"duration": "1h", "matchers": ['severity="x']},
            "matchers[0]",
            "unterminated double quote",
        ),
        ({"duration": "1h", "matchers": []}, "matchers", "at least one"),
        ({"duration": "1h", "matchers": ['team=~".*"']}, "matchers", "empty string"),
        ({"duration": "1h", "comment": "  "}, "comment", "why"),
        ({"duration": "1h", "author": ""}, "created_by", "who"),
        ({"ends_at": NOW - timedelta(minutes=1)}, "ends_at", "not in the future"),
        ({"duration": "100000000d"}, "duration", "too long"),
        ({"duration": "99999999999w"}, "duration", "too long"),
        ({"duration": "1h", "comment": "a\x00b"}, "comment", "NUL"),
        ({"duration": "1h", "matchers": ['a="\x00"']}, "matchers", "NUL"),
    ],
)
def test_it_names_the_field_of_a_bad_silence(
    engine: Engine, fields: dict[str, object], field: str, words: str
) -> None:
    values: dict[str, object] = {
        "matchers": ["severity=warning"],
        "comment": "why",
        "author": "bob",
        **fields,
    }
    with Session(engine) as session, pytest.raises(InputError) as caught:
        create_board_silence(session, now=NOW, **values)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in caught.value.reason


def test_it_lists_silences_current_first_then_expired_newest_first(engine: Engine) -> None:
    ids: dict[str, str] = {}
    with session_scope(engine) as session:
        for key, now, start, end in [
            ("active-3h", NOW, None, NOW + timedelta(hours=3)),
            ("active-1h", NOW, None, NOW + timedelta(hours=1)),
            ("pending", NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)),
            ("old", NOW - timedelta(days=2), None, NOW - timedelta(days=1)),
            ("recent", NOW - timedelta(hours=5), None, NOW - timedelta(hours=1)),
        ]:
            silence = create_silence(
                session, matchers=['alertname="GPUIdle"'], ends_at=end, created_by="a",
                comment=key, now=now, starts_at=start,
            )  # fmt: skip
            ids[key] = silence.id
    with Session(engine) as session:
        everything = list_board_silences(session, now=NOW)
        second = list_board_silences(session, now=NOW, limit=2, offset=2)
        expired = list_board_silences(session, now=NOW, state="expired")
        pending = list_board_silences(session, now=NOW, state="pending")
        active = list_board_silences(session, now=NOW, state="active")
    assert [s.comment for s in everything.items] == [
        "active-1h",
        "pending",
        "active-3h",
        "recent",
        "old",
    ]
    assert [s.state for s in everything.items] == [
        "active",
        "pending",
        "active",
        "expired",
        "expired",
    ]
    assert [s.comment for s in second.items] == ["active-3h", "recent"]
    assert second.total == 5
    assert [s.comment for s in expired.items] == ["recent", "old"]
    assert [s.comment for s in pending.items] == ["pending"]
    assert [s.comment for s in active.items] == ["active-1h", "active-3h"]
    # GPUIdle f1 fires now; r1 is resolved, so it does not count
    assert [s.alerts for s in everything.items] == [1, 1, 1, 0, 0]
    assert everything.items[0].matchers == ['alertname="GPUIdle"']
    assert everything.items[0].created_by == "a"


def test_it_answers_not_found_for_ids_no_database_could_hold(engine: Engine) -> None:
    with Session(engine) as session:
        assert alert_matchers(session, "f1\x00") is None
        assert alert_matchers(session, "f" * 65) is None
        assert alert_matchers(session, "") is None


def test_it_reads_form_times_and_matcher_lines() -> None:
    assert parse_moment("2026-08-20T18:00", "ends_at") == datetime(2026, 8, 20, 18, tzinfo=UTC)
    assert parse_moment("2026-08-20T18:00+02:00", "ends_at") == datetime(
        2026, 8, 20, 16, tzinfo=UTC
    )
    assert parse_moment(" ", "ends_at") is None
    with pytest.raises(InputError) as caught:
        parse_moment("tomorrow", "starts_at")
    assert caught.value.field == "starts_at"
    assert matcher_lines(' a="b" \n\n  {c="d", e!="f"}\n') == ['a="b"', '{c="d", e!="f"}']
