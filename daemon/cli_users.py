"""``tcowatch user add|remove|passwd|list`` and ``tcowatch token create|list|revoke``.

Passwords come from a prompt (asked twice) or, with ``--password-stdin``, from the first line of
standard input; they are never taken from the command line, where ``ps`` and shell history
would keep them. ``token create`` prints the token once, on stdout alone, so scripts can
capture it. Every change is written to the audit log with the actor ``cli``, in the same
transaction as the change.

Exit codes (``daemon.cli_common``): 0 done; 1 the user or token exists already or does not
exist; 2 bad input (name, role, weak or mismatched password); 3 the store is unavailable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.auth.roles import ROLE_NAMES
from daemon.cli_common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

AddCommon = Callable[..., None]
ask_password: Callable[[str], str] = getpass.getpass
"""The prompt (replaced in tests)."""


def add_user_commands(sub: Any, common: AddCommon) -> None:
    """Register ``user`` and ``token`` on the CLI's sub-parsers."""
    user = sub.add_parser("user", help="board users: add, remove, passwd, list")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLE_NAMES, default="viewer", help="default: viewer")
    remove = user_sub.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    passwd = user_sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("name")
    for parser in (add, passwd):
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    listing = user_sub.add_parser("list", help="list users")
    for parser in (add, remove, passwd, listing):
        common(parser)

    token = sub.add_parser("token", help="API tokens: create, list, revoke")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="create a token (shown once)")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLE_NAMES, default="viewer", help="default: viewer")
    revoke = token_sub.add_parser("revoke", help="revoke a token by name or id")
    revoke.add_argument("token", metavar="NAME|ID")
    token_list = token_sub.add_parser("list", help="list tokens (never their secrets)")
    for parser in (create, revoke, token_list):
        common(parser)


def _error(text: str) -> None:
    print(f"tcowatch: {text}", file=sys.stderr)


def _engine(args: argparse.Namespace) -> Engine:
    from daemon.cli_common import setup_logging
    from daemon.config import load_config
    from daemon.store.db import open_store, resolve_url

    config, config_path = load_config(getattr(args, "config", None))
    setup_logging(config.log_level)
    return open_store(resolve_url(getattr(args, "db", None) or config.store.url, config_path))


def _now() -> datetime:
    from daemon.clock import SystemClock

    return SystemClock().now()


def _run(args: argparse.Namespace, action: Callable[[Session], None]) -> int:
    """Run ``action`` in one transaction; map ``AuthError`` to one line and an exit code."""
    from daemon.auth.errors import AuthError, TokenExists, UnknownToken, UnknownUser, UserExists
    from daemon.store.db import session_scope

    engine = _engine(args)
    try:
        with session_scope(engine) as session:
            action(session)
    except AuthError as exc:
        _error(str(exc))
        conflict = (UserExists, UnknownUser, TokenExists, UnknownToken)
        return EXIT_FAILURE if isinstance(exc, conflict) else EXIT_CONFIG
    finally:
        engine.dispose()
    return EXIT_OK


class PasswordInputError(Exception):
    """The password could not be read, or the two entries differ."""


def read_password(args: argparse.Namespace) -> str:
    """The new password from stdin (``--password-stdin``) or the prompt, asked twice."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise PasswordInputError("no password on standard input")
        return password
    password = ask_password("Password: ")
    if ask_password("Password (again): ") != password:
        raise PasswordInputError("the passwords do not match")
    return password


def _with_password(args: argparse.Namespace, then: Callable[[str], int]) -> int:
    from daemon.auth.errors import WeakPassword
    from daemon.auth.users import check_password

    try:
        password = read_password(args)
        check_password(password)
    except (PasswordInputError, WeakPassword) as exc:
        _error(str(exc))
        return EXIT_CONFIG
    except EOFError:
        _error("no password given")
        return EXIT_CONFIG
    return then(password)


def cmd_user(args: argparse.Namespace) -> int:
    """Run a ``user`` action."""
    from daemon.auth import audit, users
    from daemon.auth.principal import CLI_ACTOR

    name: str = getattr(args, "name", "")
    if args.user_command == "list":
        return _run(args, _print_users)
    if args.user_command == "remove":

        def remove(session: Session) -> None:
            user = users.remove_user(session, name)
            audit.record(session, CLI_ACTOR, "user.remove", user.username, at=_now())
            print(f"user {user.username!r} removed")

        return _run(args, remove)

    def add(password: str) -> int:
        def write(session: Session) -> None:
            user = users.add_user(session, name, password, args.role, now=_now())
            audit.record(
                session, CLI_ACTOR, "user.add", user.username, {"role": user.role}, at=_now()
            )
            print(f"user {user.username!r} added with role {user.role}")

        return _run(args, write)

    def passwd(password: str) -> int:
        def write(session: Session) -> None:
            user = users.set_password(session, name, password)
            audit.record(session, CLI_ACTOR, "user.passwd", user.username, at=_now())
            print(f"password of {user.username!r} changed; their sessions have ended")

        return _run(args, write)

    if args.user_command == "add":
        from daemon.auth.errors import AuthError

        try:  # a bad name or a taken one fails before the password prompt
            users.normalise_username(name)
        except AuthError as exc:
            _error(str(exc))
            return EXIT_CONFIG
        return _with_password(args, add)
    return _with_password(args, passwd)


def _print_users(session: Session) -> None:
    from daemon.auth.users import list_users

    rows = [("USERNAME", "ROLE", "CREATED", "STATUS")]
    for user in list_users(session):
        status = "disabled" if user.disabled else "active"
        rows.append((user.username, user.role, _when(user.created_at), status))
    _table(rows)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def cmd_token(args: argparse.Namespace) -> int:
    """Run a ``token`` action."""
    from daemon.auth import audit, tokens
    from daemon.auth.principal import CLI_ACTOR

    if args.token_command == "list":
        return _run(args, _print_tokens)
    if args.token_command == "revoke":

        def revoke(session: Session) -> None:
            record = tokens.revoke_token(session, args.token, now=_now())
            details = {"id": record.id, "role": record.role}
            audit.record(session, CLI_ACTOR, "token.revoke", record.name, details, at=_now())
            print(f"token {record.name!r} (id {record.id}) revoked")

        return _run(args, revoke)

    def create(session: Session) -> None:
        new = tokens.create_token(session, args.name, args.role, created_by=CLI_ACTOR, now=_now())
        record = new.record
        details = {"id": record.id, "role": record.role, "prefix": record.prefix}
        audit.record(session, CLI_ACTOR, "token.create", record.name, details, at=_now())
        session.flush()
        print(new.secret)
        print(
            f"tcowatch: token {record.name!r} (id {record.id}, role {record.role}) created: "
            "copy it now, it is not shown again",
            file=sys.stderr,
        )

    return _run(args, create)


def _print_tokens(session: Session) -> None:
    from daemon.auth.tokens import list_tokens

    rows = [("ID", "NAME", "PREFIX", "ROLE", "CREATED BY", "CREATED", "LAST USED", "STATUS")]
    for token in list_tokens(session):
        status = f"revoked {_when(token.revoked_at)}" if token.revoked_at else "active"
        rows.append(
            (
                str(token.id),
                token.name,
                f"{token.prefix}...",
                token.role,
                token.created_by,
                _when(token.created_at),
                _when(token.last_used_at),
                status,
            )
        )
    _table(rows)
