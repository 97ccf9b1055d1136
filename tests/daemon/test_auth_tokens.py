"""``daemon.auth.tokens`` and ``roles`` on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.auth.errors import InvalidName, InvalidRole, TokenExists, UnknownToken
from daemon.auth.roles import ROLE_NAMES, Role, allows
from daemon.auth.tokens import create_token, list_tokens, revoke_token, verify_token
from daemon.store.db import open_store, session_scope

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def test_it_orders_roles() -> None:
    assert ROLE_NAMES == ("viewer", "editor", "admin")
    assert allows("admin", "editor") and allows("editor", "editor")
    assert not allows("viewer", "editor") and not allows(Role.EDITOR, Role.ADMIN)
    assert Role.parse(" Admin ") is Role.ADMIN
    with pytest.raises(InvalidRole, match="'owner'"):
        allows("owner", "viewer")


def test_it_returns_the_token_once_and_stores_only_its_hash(engine: Engine) -> None:
    with session_scope(engine) as session:
        new = create_token(session, "deploy-bot", "editor", created_by="cli", now=NOW)
    assert new.secret.startswith("tcw_") and len(new.secret) == 47
    with Session(engine) as session:
        (stored,) = list_tokens(session)
    assert stored.token_hash == hashlib.sha256(new.secret.encode()).hexdigest()
    assert stored.prefix == new.secret[:8]
    assert new.secret not in (stored.token_hash, stored.prefix, stored.name)
    assert (stored.name, stored.role, stored.created_by) == ("deploy-bot", "editor", "cli")


def test_it_verifies_and_records_last_use_once_a_minute(engine: Engine) -> None:
    with session_scope(engine) as session:
        new = create_token(session, "bot", "viewer", created_by="cli", now=NOW)
    for seconds, expected in ((0, 0), (30, 0), (61, 61)):
        with session_scope(engine) as session:
            record = verify_token(session, new.secret, now=NOW + timedelta(seconds=seconds))
            assert record is not None and record.name == "bot"
        with Session(engine) as session:
            (stored,) = list_tokens(session)
            assert stored.last_used_at == NOW + timedelta(seconds=expected)


def test_it_refuses_unknown_malformed_and_revoked_tokens(engine: Engine) -> None:
    with session_scope(engine) as session:
        new = create_token(session, "bot", "viewer", created_by="cli", now=NOW)
        other = create_token(session, "other", "viewer", created_by="cli", now=NOW)
    with session_scope(engine) as session:
        assert (
            verify_token(
                session, new.secret[:-1] + ("A" if new.secret[-1] != "A" else "B"), now=NOW
            )
            is None
        )
        assert verify_token(session, "tcw_short", now=NOW) is None
        assert verify_token(session, "", now=NOW) is None
        revoke_token(session, "bot", now=NOW)
    with session_scope(engine) as session:
        assert verify_token(session, new.secret, now=NOW) is None
        assert verify_token(session, other.secret, now=NOW) is not None


def test_it_revokes_by_id_and_allows_reusing_the_name(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = create_token(session, "bot", "viewer", created_by="cli", now=NOW)
        with pytest.raises(TokenExists, match="'bot'"):
            create_token(session, "bot", "editor", created_by="cli", now=NOW)
        revoked = revoke_token(session, str(first.record.id), now=NOW)
        assert revoked.revoked_at == NOW
        with pytest.raises(UnknownToken):
            revoke_token(session, str(first.record.id), now=NOW)
        second = create_token(session, "bot", "editor", created_by="user:alice", now=NOW)
    with Session(engine) as session:
        assert [t.id for t in list_tokens(session, include_revoked=False)] == [second.record.id]
        assert len(list_tokens(session)) == 2


def test_it_reports_unknown_tokens_and_bad_names(engine: Engine) -> None:
    with session_scope(engine) as session:
        with pytest.raises(UnknownToken, match="'nobody'"):
            revoke_token(session, "nobody", now=NOW)
        for name in ("", "123", "a b", "x" * 101):
            with pytest.raises(InvalidName):
                create_token(session, name, "viewer", created_by="cli", now=NOW)
        with pytest.raises(InvalidRole):
            create_token(session, "bot", "superuser", created_by="cli", now=NOW)
