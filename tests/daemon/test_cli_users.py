"""``tcowatch user ...`` and ``tcowatch token ...``: effects, audit entries, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session

from daemon import cli_users
from daemon.auth import passwords
from daemon.auth.audit import list_entries
from daemon.auth.tokens import list_tokens, verify_token
from daemon.auth.users import authenticate, list_users
from daemon.cli import main
from daemon.store.db import open_store, session_scope

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TCOWATCH_STORE__URL", raising=False)
    monkeypatch.setattr(
        passwords, "DEFAULT_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 't.db'}"


def prompts(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Answer the password prompts in order; returns the prompts that were shown."""
    shown: list[str] = []
    queue = list(answers)

    def ask(prompt: str) -> str:
        shown.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr(cli_users, "ask_password", ask)
    return shown


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("tcowatch: ")]


def test_it_adds_a_user_with_a_password_asked_twice(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = prompts(monkeypatch, PASSWORD, PASSWORD)
    assert main(["user", "add", "Alice", "--role", "editor", "--db", db]) == 0
    assert shown == ["Password: ", "Password (again): "]
    assert "user 'alice' added with role editor" in capsys.readouterr().out
    engine = open_store(db)
    with session_scope(engine) as session:
        user = authenticate(session, "alice", PASSWORD)
        assert user is not None and user.role == "editor"
        (entry,) = list_entries(session)
        assert (entry.actor, entry.action, entry.target, entry.details) == (
            "cli", "user.add", "alice", {"role": "editor"},
        )  # fmt: skip
    engine.dispose()


def test_it_exits_2_when_the_passwords_differ_or_are_weak(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts(monkeypatch, PASSWORD, PASSWORD + "!")
    assert main(["user", "add", "alice", "--db", db]) == 2
    assert errors(capsys.readouterr().err) == ["tcowatch: the passwords do not match"]
    stdin(monkeypatch, "too short\n")
    assert main(["user", "add", "alice", "--password-stdin", "--db", db]) == 2
    assert errors(capsys.readouterr().err) == [
        "tcowatch: password too short: use at least 12 characters"
    ]
    stdin(monkeypatch, "")
    assert main(["user", "add", "alice", "--password-stdin", "--db", db]) == 2
    assert main(["user", "add", "bad name", "--password-stdin", "--db", db]) == 2
    engine = open_store(db)
    with Session(engine) as session:
        assert list_users(session) == [] and list_entries(session) == []
    engine.dispose()


def test_it_exits_1_for_a_taken_or_unknown_user(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, PASSWORD + "\n")
    assert main(["user", "add", "alice", "--password-stdin", "--db", db]) == 0
    stdin(monkeypatch, PASSWORD + "\n")
    assert main(["user", "add", "alice", "--password-stdin", "--db", db]) == 1
    assert errors(capsys.readouterr().err) == ["tcowatch: user 'alice' already exists"]
    assert main(["user", "remove", "bob", "--db", db]) == 1
    assert errors(capsys.readouterr().err) == ["tcowatch: no user named 'bob'"]


def test_it_changes_a_password_removes_and_lists(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, role in (("alice", "admin"), ("bob", "viewer")):
        stdin(monkeypatch, PASSWORD + "\n")
        assert main(["user", "add", name, "--role", role, "--password-stdin", "--db", db]) == 0
    prompts(monkeypatch, "a new long passphrase", "a new long passphrase")
    assert main(["user", "passwd", "alice", "--db", db]) == 0
    assert main(["user", "remove", "bob", "--db", db]) == 0
    capsys.readouterr()
    assert main(["user", "list", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "CREATED", "STATUS"]
    assert len(lines) == 2 and lines[1].split()[:2] == ["alice", "admin"]
    engine = open_store(db)
    with session_scope(engine) as session:
        assert authenticate(session, "alice", "a new long passphrase") is not None
        actions = [(e.action, e.target) for e in reversed(list_entries(session))]
    engine.dispose()
    assert actions == [
        ("user.add", "alice"), ("user.add", "bob"), ("user.passwd", "alice"), ("user.remove", "bob"),
    ]  # fmt: skip


def test_it_prints_a_token_once_and_stores_its_hash(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "deploy-bot", "--role", "editor", "--db", db]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("tcw_") and len(out.splitlines()) == 1
    assert "not shown again" in err and secret not in err
    assert main(["token", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert secret not in listing and f"{secret[:8]}..." in listing and "deploy-bot" in listing
    engine = open_store(db)
    with session_scope(engine) as session:
        record = verify_token(session, secret, now=list_tokens(session)[0].created_at)
        assert record is not None and record.role == "editor" and record.created_by == "cli"
        (entry,) = list_entries(session)
        assert entry.action == "token.create" and secret not in str(entry.details)
    engine.dispose()


def test_it_revokes_a_token_by_name_or_id(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "one", "--db", db]) == 0
    assert main(["token", "create", "two", "--db", db]) == 0
    assert main(["token", "revoke", "one", "--db", db]) == 0
    assert main(["token", "revoke", "2", "--db", db]) == 0
    assert main(["token", "revoke", "one", "--db", db]) == 1
    assert errors(capsys.readouterr().err)[-1] == "tcowatch: no active token with name or id 'one'"
    assert main(["token", "create", "one", "--db", db]) == 0
    assert main(["token", "create", "one", "--db", db]) == 1
    engine = open_store(db)
    with Session(engine) as session:
        assert [t.name for t in list_tokens(session, include_revoked=False)] == ["one"]
        assert [e.action for e in list_entries(session)].count("token.revoke") == 2
    engine.dispose()


def test_it_rejects_an_unknown_role_as_a_usage_error(db: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["token", "create", "bot", "--role", "root", "--db", db])
    assert exc.value.code == 2


def test_it_works_from_the_console_on_both_stores(db_url: str, tmp_path: Path) -> None:
    def run(*args: str, text: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon.cli", *args, "--db", db_url],
            input=text, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip

    added = run("user", "add", "ops", "--role", "admin", "--password-stdin", text=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    created = run("token", "create", "ci")
    assert created.returncode == 0, created.stderr
    listed = run("user", "list")
    assert "ops" in listed.stdout and PASSWORD not in listed.stdout + listed.stderr
    assert run("user", "remove", "nobody").returncode == 1


def test_it_gives_the_demo_one_admin_with_a_password_shown_once(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.cli_server import demo_admin, demo_config
    from daemon.config import Config

    assert demo_config(Config(), gpus=4, seed=1).web.anonymous_read is True
    engine = open_store(db)
    password = demo_admin(engine, datetime(2026, 11, 29, tzinfo=UTC))
    assert password is not None and len(password) >= 12
    assert f"demo login: admin / {password}" in capsys.readouterr().err
    assert demo_admin(engine, datetime(2026, 11, 30, tzinfo=UTC)) is None
    assert password not in capsys.readouterr().err
    with session_scope(engine) as session:
        admin = authenticate(session, "admin", password)
        assert admin is not None and admin.role == "admin"
    engine.dispose()
