"""``tcowatch silence add|list|expire``: exit codes, one-line errors, table and JSON output."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from daemon.cli_silence import add_silence_commands, cmd_silence
from daemon.notify.silences import create_silence
from daemon.store.db import open_store, session_scope
from daemon.store.models import Silence


def parse(*argv: str) -> argparse.Namespace:
    """The arguments as ``tcowatch`` parses them (same ``common`` options as daemon.cli)."""
    parser = argparse.ArgumentParser(prog="tcowatch")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path)
        if db:
            p.add_argument("--db")

    add_silence_commands(sub, common)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TCOWATCH_STORE__URL", "TCOWATCH_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "alice")


def run(db: Path, *argv: str) -> int:
    return cmd_silence(parse("silence", *argv[:1], "--db", str(db), *argv[1:]))


def stored(db: Path) -> list[Silence]:
    engine = open_store(f"sqlite:///{db}")
    with Session(engine) as session:
        rows = list(session.exec(select(Silence)).all())
    engine.dispose()
    return rows


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("tcowatch: ")]


def test_it_adds_a_silence_and_prints_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    before = datetime.now(UTC)
    code = run(
        db, "add", "alertname=GpuIdle", 'node=~"gpu-(1|2)"', "--duration", "2h",
        "--comment", "driver upgrade",
    )  # fmt: skip
    assert code == 0
    (silence,) = stored(db)
    assert capsys.readouterr().out.strip() == silence.id
    assert silence.created_by == "alice"
    assert silence.comment == "driver upgrade"
    assert [m["name"] for m in silence.matchers] == ["alertname", "node"]
    length = silence.ends_at - silence.starts_at
    assert length == timedelta(hours=2)
    assert silence.starts_at >= before - timedelta(seconds=1)


def test_it_takes_an_end_time_and_an_author(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    end = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    code = run(
        db, "add", '{team="ml",severity="critical"}', "--end", end.strftime("%Y-%m-%dT%H:%M:%S"),
        "--comment", "x", "--author", "bob",
    )  # fmt: skip
    assert code == 0
    (silence,) = stored(db)
    assert silence.ends_at == end
    assert silence.created_by == "bob"
    assert len(silence.matchers) == 2


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["add", "severity", "--duration", "1h", "--comment", "x"], "matchers[0]: 'severity'"),
        (["add", 'team=~".*"', "--duration", "1h", "--comment", "x"], "empty string"),
        (
            ["add", "a=b", "--end", "2001-01-01T00:00:00Z", "--comment", "x"],
            "ends_at: 2001-01-01T00:00:00+00:00 is not in the future",
        ),
        (["add", "a=b", "--duration", "1h", "--comment", " "], "comment: say why"),
    ],
)
def test_it_rejects_bad_input_with_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    db = tmp_path / "t.db"
    assert run(db, *argv) == 2
    (line,) = errors(capsys.readouterr().err)
    assert problem in line
    assert stored(db) == []


def test_it_needs_an_author_when_user_is_unset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USER")
    monkeypatch.delenv("USERNAME", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: (_ for _ in ()).throw(OSError("no user")))
    assert run(tmp_path / "t.db", "add", "a=b", "--duration", "1h", "--comment", "x") == 2
    assert "pass --author NAME" in capsys.readouterr().err


def test_argparse_rejects_a_bad_duration_and_a_missing_comment(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("silence", "add", "a=b", "--duration", "soon", "--comment", "x")
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        parse("silence", "add", "a=b", "--duration", "1h")
    with pytest.raises(SystemExit):
        parse("silence", "add", "a=b", "--duration", "1h", "--end", "2030-01-01", "--comment", "x")


def seed(db: Path) -> tuple[str, str]:
    """An expired and an active silence; returns their ids."""
    engine = open_store(f"sqlite:///{db}")
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        old = create_silence(
            session, matchers=['a="old"'], ends_at=now - timedelta(hours=1),
            created_by="ops", comment="done", now=now - timedelta(hours=2),
        )  # fmt: skip
        new = create_silence(
            session, matchers=['node=~"gpu-1"'], ends_at=now + timedelta(hours=1),
            created_by="ops", comment="reboot\nnode", now=now,
        )  # fmt: skip
        ids = (old.id, new.id)
    engine.dispose()
    return ids


def test_it_lists_current_silences_as_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    old, new = seed(db)
    assert run(db, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "STARTS"]
    assert len(lines) == 2
    assert lines[1].startswith(new)
    assert "active" in lines[1] and "reboot node" in lines[1]
    assert lines[1].endswith('{node=~"gpu-1"}')
    assert run(db, "list", "--all") == 0
    assert old in capsys.readouterr().out


def test_it_lists_silences_as_alertmanager_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    old, new = seed(db)
    assert run(db, "list", "--all", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["status"]["state"]) for s in listed] == [(old, "expired"), (new, "active")]
    assert listed[1]["matchers"] == [
        {"name": "node", "value": "gpu-1", "isRegex": True, "isEqual": True}
    ]
    assert listed[1]["createdBy"] == "ops"
    assert listed[1]["endsAt"].endswith("Z")


def test_it_says_when_there_are_no_silences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path / "t.db", "list") == 0
    assert capsys.readouterr().out.strip() == "no silences"


def test_it_expires_a_silence_and_fails_on_unknown_or_expired_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    old, new = seed(db)
    assert run(db, "expire", new) == 0
    assert capsys.readouterr().out.strip() == f"expired {new}"
    (expired,) = [s for s in stored(db) if s.id == new]
    assert expired.ends_at <= datetime.now(UTC)
    assert run(db, "expire", old) == 1
    assert "already expired" in errors(capsys.readouterr().err)[0]
    assert run(db, "expire", "nope") == 1
    assert errors(capsys.readouterr().err) == ["tcowatch: id: no silence 'nope'"]
