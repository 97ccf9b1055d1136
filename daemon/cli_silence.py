"""``tcowatch silence add|list|expire``: silences in the store, as ``amtool silence`` has them.

- ``silence add MATCHER... (--duration 2h | --end ISO) --comment TEXT [--author NAME]
  [--start ISO]`` prints the new silence's id. Each MATCHER is an Alertmanager matcher
  (``alertname=GpuIdle``, ``'severity=~"warning|critical"'``) or a braced list of them.
- ``silence list [--all] [--json]`` shows pending and active silences (``--all``: expired ones
  too) as a table, or as JSON shaped like Alertmanager's ``GET /api/v2/silences``.
- ``silence expire ID`` ends a silence now.

Times without a zone are UTC. Exit codes (``daemon.cli_common``): 0 done; 1 no such silence or
already expired; 2 bad input (matchers, times, missing author); 3 the store is unavailable.
Errors are one line on stderr: ``tcowatch: FIELD: message``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from daemon.cli_common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from daemon.store.models import Silence


def add_silence_commands(sub: Any, common: Callable[..., None]) -> None:
    """Register the ``silence`` command on the top-level subparsers."""
    silence = sub.add_parser("silence", help="create, list and expire silences")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")

    add = silence_sub.add_parser("add", help="silence alerts that match every MATCHER")
    common(add)
    add.add_argument(
        "matchers",
        nargs="+",
        metavar="MATCHER",
        help='Alertmanager matcher: alertname=GpuIdle, \'node=~"gpu-(1|2)"\', \'{a="b",c!="d"}\'',
    )
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", type=_duration, help="how long, e.g. 2h or 1d12h")
    until.add_argument("--end", type=_moment, help="end time, ISO 8601 (no zone: UTC)")
    add.add_argument(
        "--start", type=_moment, default=None, help="start time, ISO 8601 (default: now)"
    )
    add.add_argument("--comment", required=True, help="why the alerts are silenced")
    add.add_argument("--author", default=None, help="who silences them (default: $USER)")

    listing = silence_sub.add_parser("list", help="list pending and active silences")
    common(listing)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    expire = silence_sub.add_parser("expire", help="end a silence now")
    common(expire)
    expire.add_argument("id", metavar="ID", help="the silence id (see `silence list`)")


def _duration(text: str) -> timedelta:
    from rules.durations import parse_duration

    try:
        value = parse_duration(text, example="2h")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError("the duration must be greater than zero")
    return value


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time like 2026-08-20T18:00:00Z, got {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _error(text: str) -> None:
    print(f"tcowatch: {text}", file=sys.stderr)


def _engine(args: argparse.Namespace) -> Engine:
    from daemon.cli_common import setup_logging
    from daemon.config import load_config
    from daemon.store.db import open_store, resolve_url

    config, config_path = load_config(getattr(args, "config", None))
    setup_logging(config.log_level)
    return open_store(resolve_url(getattr(args, "db", None) or config.store.url, config_path))


def cmd_silence(args: argparse.Namespace) -> int:
    """Run a ``silence`` action; see the module docstring for exit codes."""
    actions: dict[str, Callable[[argparse.Namespace, datetime], int]] = {
        "add": _add,
        "list": _list,
        "expire": _expire,
    }
    return actions[args.silence_command](args, datetime.now(UTC))


def _author(args: argparse.Namespace) -> str | None:
    if args.author:
        return str(args.author)
    name = os.environ.get("USER") or os.environ.get("USERNAME")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _add(args: argparse.Namespace, now: datetime) -> int:
    from daemon.notify.silences import SilenceError, create_silence
    from daemon.store.db import session_scope

    author = _author(args)
    if not author:
        _error("created_by: no $USER to take the author from: pass --author NAME")
        return EXIT_CONFIG
    start = args.start or now
    end = args.end if args.end is not None else max(start, now) + args.duration
    engine = _engine(args)
    try:
        with session_scope(engine) as session:
            silence = create_silence(
                session,
                matchers=list(args.matchers),
                starts_at=start,
                ends_at=end,
                created_by=author,
                comment=args.comment,
                now=now,
            )
            silence_id = silence.id
    except SilenceError as exc:
        _error(str(exc))
        return EXIT_CONFIG
    finally:
        engine.dispose()
    print(silence_id)
    return EXIT_OK


def _list(args: argparse.Namespace, now: datetime) -> int:
    from sqlmodel import Session

    from daemon.notify.silences import list_silences

    engine = _engine(args)
    try:
        with Session(engine) as session:
            silences = list_silences(session, now, include_expired=args.all)
            if args.json:
                text = json.dumps([_as_json(s, now) for s in silences], indent=2)
                print(text)
            else:
                _print_table(silences, now)
    finally:
        engine.dispose()
    return EXIT_OK


def _expire(args: argparse.Namespace, now: datetime) -> int:
    from daemon.notify.silences import SilenceError, expire_silence
    from daemon.store.db import session_scope

    engine = _engine(args)
    try:
        with session_scope(engine) as session:
            expire_silence(session, args.id, now)
    except SilenceError as exc:  # SilenceNotFound included
        _error(str(exc))
        return EXIT_FAILURE
    finally:
        engine.dispose()
    print(f"expired {args.id}")
    return EXIT_OK


def _iso(moment: datetime) -> str:
    from daemon.store.models import as_utc

    return as_utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _matcher_text(silence: Silence) -> str:
    from daemon.notify.matchers import MatcherError, format_matchers
    from daemon.notify.silences import silence_matchers

    try:
        return format_matchers(silence_matchers(silence))
    except MatcherError:
        return json.dumps(silence.matchers)


def _as_json(silence: Silence, now: datetime) -> dict[str, Any]:
    """Alertmanager's ``gettableSilence`` shape."""
    from daemon.notify.silences import silence_state

    return {
        "id": silence.id,
        "status": {"state": silence_state(silence, now)},
        "matchers": list(silence.matchers),
        "startsAt": _iso(silence.starts_at),
        "endsAt": _iso(silence.ends_at),
        "updatedAt": _iso(silence.updated_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    }


def _print_table(silences: Sequence[Silence], now: datetime) -> None:
    from daemon.notify.silences import silence_state

    if not silences:
        print("no silences")
        return
    header = ("ID", "STATE", "STARTS", "ENDS", "CREATED BY", "COMMENT", "MATCHERS")
    rows = [
        (
            s.id,
            silence_state(s, now),
            _iso(s.starts_at),
            _iso(s.ends_at),
            s.created_by,
            " ".join(s.comment.split()),
            _matcher_text(s),
        )
        for s in silences
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]))
