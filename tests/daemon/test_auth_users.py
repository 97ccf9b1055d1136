"""``daemon.auth.users`` and ``passwords`` on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from sqlmodel import Session

from daemon.auth import passwords
from daemon.auth.errors import InvalidName, InvalidRole, UnknownUser, UserExists, WeakPassword
from daemon.auth.passwords import hash_password, needs_rehash, verify_password
from daemon.auth.users import (
    add_user,
    authenticate,
    get_user,
    list_users,
    remove_user,
    set_password,
)
from daemon.store.db import open_store, session_scope

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "DEFAULT_HASHER", FAST)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


def test_it_stores_an_argon2_hash_not_the_password(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_user(session, "Alice", PASSWORD, "editor", now=NOW)
    with Session(engine) as session:
        user = get_user(session, "alice")
        assert user.username == "alice"
        assert user.role == "editor"
        assert user.created_at == NOW
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert not user.disabled


def test_it_authenticates_only_the_right_password(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_user(session, "alice", PASSWORD, "viewer", now=NOW)
    with session_scope(engine) as session:
        user = authenticate(session, "ALICE", PASSWORD)
        assert user is not None and user.username == "alice"
        assert authenticate(session, "alice", PASSWORD + "x") is None
        assert authenticate(session, "bob", PASSWORD) is None
        assert authenticate(session, "alice", "x" * 5000) is None


def test_it_refuses_a_disabled_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_user(session, "alice", PASSWORD, "viewer", now=NOW).disabled = True
    with session_scope(engine) as session:
        assert authenticate(session, "alice", PASSWORD) is None


@pytest.mark.parametrize("password", ["short", "eleven char"])
def test_it_rejects_passwords_under_12_characters(engine: Engine, password: str) -> None:
    with session_scope(engine) as session, pytest.raises(WeakPassword, match="at least 12"):
        add_user(session, "alice", password, "viewer", now=NOW)


def test_it_rejects_a_taken_name_in_any_case(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_user(session, "alice", PASSWORD, "viewer", now=NOW)
    with session_scope(engine) as session, pytest.raises(UserExists, match="'alice'"):
        add_user(session, "ALICE", PASSWORD, "admin", now=NOW)


@pytest.mark.parametrize("name", ["", "a b", "-alice", "x" * 65, "al/ice", "<script>"])
def test_it_rejects_bad_usernames(engine: Engine, name: str) -> None:
    with session_scope(engine) as session, pytest.raises(InvalidName, match="invalid username"):
        add_user(session, name, PASSWORD, "viewer", now=NOW)


def test_it_rejects_unknown_roles(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(InvalidRole, match="viewer, editor"):
        add_user(session, "alice", PASSWORD, "root", now=NOW)


def test_it_changes_a_password(engine: Engine) -> None:
    with session_scope(engine) as session:
        before = add_user(session, "alice", PASSWORD, "viewer", now=NOW).password_hash
    with session_scope(engine) as session:
        after = set_password(session, "alice", "a brand new passphrase").password_hash
    assert after != before
    with session_scope(engine) as session:
        assert authenticate(session, "alice", PASSWORD) is None
        assert authenticate(session, "alice", "a brand new passphrase") is not None


def test_it_validates_a_new_password_and_the_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_user(session, "alice", PASSWORD, "viewer", now=NOW)
    with session_scope(engine) as session:
        with pytest.raises(WeakPassword):
            set_password(session, "alice", "tiny")
        with pytest.raises(UnknownUser, match="'bob'"):
            set_password(session, "bob", PASSWORD)


def test_it_removes_a_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_user(session, "alice", PASSWORD, "viewer", now=NOW)
        add_user(session, "bob", PASSWORD, "admin", now=NOW)
    with session_scope(engine) as session:
        remove_user(session, "alice")
    with Session(engine) as session:
        assert [u.username for u in list_users(session)] == ["bob"]
        with pytest.raises(UnknownUser):
            remove_user(session, "alice")


def test_it_rehashes_an_old_hash_on_login(engine: Engine) -> None:
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    with session_scope(engine) as session:
        user = add_user(session, "alice", PASSWORD, "viewer", now=NOW)
        user.password_hash = old.hash(PASSWORD)
    with session_scope(engine) as session:
        assert authenticate(session, "alice", PASSWORD) is not None
    with Session(engine) as session:
        stored = get_user(session, "alice").password_hash
    assert not needs_rehash(stored)
    assert "m=1024,t=1,p=1" in stored


def test_it_treats_a_malformed_hash_as_a_mismatch() -> None:
    assert verify_password("not-a-hash", PASSWORD) is False
    assert needs_rehash("not-a-hash") is True
    assert verify_password(hash_password(PASSWORD), PASSWORD) is True
