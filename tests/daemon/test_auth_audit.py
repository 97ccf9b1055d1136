"""``daemon.auth.audit``: entries join the caller's transaction; newest first; filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.auth.audit import AuditFilter, count_entries, list_entries, record
from daemon.store.db import open_store, session_scope

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def _seed(engine: Engine) -> None:
    with session_scope(engine) as session:
        for minute, actor, action in (
            (0, "cli", "user.add"),
            (1, "user:alice", "silence.create"),
            (2, "token:deploy-bot", "silence.create"),
            (3, "user:alice", "debt.move"),
        ):
            record(
                session, actor, action, f"t{minute}", {"n": minute}, "10.0.0.1",
                at=NOW + timedelta(minutes=minute),
            )  # fmt: skip


def test_it_lists_newest_first_with_every_field(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        entries = list_entries(session, limit=10)
    assert [e.target for e in entries] == ["t3", "t2", "t1", "t0"]
    top = entries[0]
    assert (top.actor, top.action, top.details, top.remote) == (
        "user:alice", "debt.move", {"n": 3}, "10.0.0.1",
    )  # fmt: skip
    assert top.at == NOW + timedelta(minutes=3)


def test_it_paginates_and_filters(engine: Engine) -> None:
    _seed(engine)
    with Session(engine) as session:
        assert [e.target for e in list_entries(session, limit=2, offset=1)] == ["t2", "t1"]
        alice = AuditFilter(actor="user:alice")
        assert [e.target for e in list_entries(session, 10, 0, alice)] == ["t3", "t1"]
        silences = AuditFilter(action="silence.create")
        assert count_entries(session, silences) == 2
        both = AuditFilter(actor="user:alice", action="silence.create")
        assert [e.target for e in list_entries(session, 10, 0, both)] == ["t1"]
        assert count_entries(session) == 4
        assert len(list_entries(session, limit=0)) == 1  # clamped to at least one


def test_it_rolls_back_with_the_write_it_describes(engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        record(session, "cli", "user.add", "alice", at=NOW)
        raise RuntimeError("the write failed")
    with Session(engine) as session:
        assert count_entries(session) == 0
