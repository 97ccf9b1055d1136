"""Silences in the store: create, validate, list, expire, and match alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.notify.matchers import parse_matcher
from daemon.notify.silences import (
    SilenceError,
    SilenceNotFound,
    Silencer,
    active_silences,
    create_silence,
    expire_silence,
    list_silences,
    silence_state,
)
from daemon.store.db import open_store, session_scope
from daemon.store.models import Silence

NOW = datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def add(engine: Engine, *matchers: str, start: datetime | None = None, end: datetime = NOW + HOUR,
        now: datetime = NOW) -> str:  # fmt: skip
    with session_scope(engine) as session:
        silence = create_silence(
            session,
            matchers=list(matchers),
            starts_at=start,
            ends_at=end,
            created_by="ops",
            comment="maintenance",
            now=now,
        )
        return silence.id


def load(engine: Engine, silence_id: str) -> Silence:
    with Session(engine) as session:
        found = session.get(Silence, silence_id)
        assert found is not None
        return found


def test_it_stores_matchers_in_the_api_form_and_is_active_at_once(engine: Engine) -> None:
    silence_id = add(engine, 'alertname="GPUIdle"', 'node=~"gpu-(1|2)"')
    stored = load(engine, silence_id)
    assert stored.matchers == [
        {"name": "alertname", "value": "GPUIdle", "isRegex": False, "isEqual": True},
        {"name": "node", "value": "gpu-(1|2)", "isRegex": True, "isEqual": True},
    ]
    assert (stored.created_by, stored.comment) == ("ops", "maintenance")
    assert silence_state(stored, NOW) == "active"
    assert silence_state(stored, NOW + HOUR) == "expired"
    assert silence_state(stored, NOW - timedelta(seconds=1)) == "pending"


def test_it_moves_a_start_in_the_past_to_now(engine: Engine) -> None:
    stored = load(engine, add(engine, 'a="b"', start=NOW - HOUR))
    assert stored.starts_at == NOW


def test_it_keeps_a_future_start_pending(engine: Engine) -> None:
    stored = load(engine, add(engine, 'a="b"', start=NOW + HOUR, end=NOW + 2 * HOUR))
    assert silence_state(stored, NOW) == "pending"
    assert silence_state(stored, NOW + HOUR) == "active"


@pytest.mark.parametrize(
    ("matchers", "end", "author", "comment", "problem"),
    [
        ([], NOW + HOUR, "ops", "x", "matchers: give at least one"),
        (["severity"], NOW + HOUR, "ops", "x", "matchers[0]: 'severity': expected an operator"),
        (['team=~".*"', 'x=""'], NOW + HOUR, "ops", "x", "must not match the empty string"),
        (['a="b"'], NOW, "ops", "x", "ends_at: 2026-08-20T10:00:00+00:00 is not in the future"),
        (['a="b"'], NOW + HOUR, " ", "x", "created_by: say who"),
        (['a="b"'], NOW + HOUR, "ops", "", "comment: say why"),
        (['a="b"'], NOW + HOUR, "ops", "x" * 2001, "comment: longer than 2000"),
    ],
    ids=["none", "bad", "all-empty", "past-end", "no-author", "no-comment", "long-comment"],
)
def test_it_names_the_field_of_an_invalid_silence(
    engine: Engine, matchers: list[str], end: datetime, author: str, comment: str, problem: str
) -> None:
    with Session(engine) as session:
        with pytest.raises(SilenceError) as caught:
            create_silence(
                session, matchers=matchers, ends_at=end, created_by=author, comment=comment, now=NOW
            )
        assert problem in str(caught.value)
        assert not session.new


def test_it_rejects_an_end_before_a_future_start(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(SilenceError, match="must be after starts_at"):
        create_silence(
            session,
            matchers=['a="b"'],
            starts_at=NOW + 2 * HOUR,
            ends_at=NOW + HOUR,
            created_by="ops",
            comment="x",
            now=NOW,
        )


def test_it_expires_an_active_silence_by_ending_it_now(engine: Engine) -> None:
    silence_id = add(engine, 'a="b"')
    later = NOW + timedelta(minutes=10)
    with session_scope(engine) as session:
        expire_silence(session, silence_id, later)
    stored = load(engine, silence_id)
    assert (stored.starts_at, stored.ends_at, stored.updated_at) == (NOW, later, later)
    assert silence_state(stored, later) == "expired"


def test_it_expires_a_pending_silence_by_collapsing_it(engine: Engine) -> None:
    silence_id = add(engine, 'a="b"', start=NOW + HOUR, end=NOW + 2 * HOUR)
    with session_scope(engine) as session:
        expire_silence(session, silence_id, NOW)
    stored = load(engine, silence_id)
    assert stored.starts_at == stored.ends_at == NOW


def test_it_refuses_to_expire_twice_or_an_unknown_id(engine: Engine) -> None:
    silence_id = add(engine, 'a="b"')
    with session_scope(engine) as session:
        expire_silence(session, silence_id, NOW)
    with Session(engine) as session:
        with pytest.raises(SilenceError, match="already expired"):
            expire_silence(session, silence_id, NOW + HOUR)
        with pytest.raises(SilenceNotFound, match="id: no silence 'nope'"):
            expire_silence(session, "nope", NOW)


def test_it_lists_current_silences_and_all_on_request(engine: Engine) -> None:
    expired = add(engine, 'a="old"', end=NOW - HOUR, now=NOW - 2 * HOUR)
    active = add(engine, 'a="now"', end=NOW + 2 * HOUR)
    pending = add(engine, 'a="later"', start=NOW + HOUR, end=NOW + 3 * HOUR)
    with Session(engine) as session:
        assert [s.id for s in list_silences(session, NOW)] == [active, pending]
        assert [s.id for s in list_silences(session, NOW, include_expired=True)] == [
            expired,
            active,
            pending,
        ]
        assert [s.id for s in active_silences(session, NOW)] == [active]


def test_it_finds_the_silence_that_mutes_a_label_set(engine: Engine) -> None:
    gpu = add(engine, 'alertname="GPUIdle"', 'node=~"gpu-(1|2)"')
    with Session(engine) as session:
        silencer = Silencer(active_silences(session, NOW))
    assert silencer.silenced_by({"alertname": "GPUIdle", "node": "gpu-1"}) == gpu
    assert silencer.silenced_by({"alertname": "GPUIdle", "node": "gpu-3"}) is None
    assert silencer.silenced_by({"alertname": "Other", "node": "gpu-1"}) is None


def test_it_skips_a_stored_silence_whose_matchers_no_longer_parse(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    good = add(engine, 'a="b"')
    with session_scope(engine) as session:
        session.add(
            Silence(
                id="broken",
                matchers=[{"name": "a", "value": "(", "isRegex": True, "isEqual": True}],
                starts_at=NOW,
                ends_at=NOW + HOUR,
                created_by="ops",
                comment="x",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    with Session(engine) as session:
        silencer = Silencer(active_silences(session, NOW))
    assert silencer.silenced_by({"a": "b"}) == good
    assert "silence broken is ignored" in caplog.text


def test_it_accepts_parsed_matchers(engine: Engine) -> None:
    with session_scope(engine) as session:
        silence = create_silence(
            session,
            matchers=[parse_matcher('team!="web"'), parse_matcher("x=y")],
            ends_at=NOW + HOUR,
            created_by="ops",
            comment="x",
            now=NOW,
        )
        silence_id = silence.id
    assert load(engine, silence_id).matchers[0] == {
        "name": "team",
        "value": "web",
        "isRegex": False,
        "isEqual": False,
    }
