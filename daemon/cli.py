"""The ``tcowatch`` command: parses arguments and dispatches to the command modules.

Exit codes: 0 success; 1 runtime failure; 2 bad configuration or usage; 3 database unavailable;
4 NVML unavailable (``agent --once``); 130 interrupted. Errors are one line per problem on
stderr, never a traceback. Command modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from daemon.cli_common import EXIT_CONFIG, EXIT_OK, EXIT_STORE
from daemon.cli_costs import add_cost_commands
from daemon.cli_notify import add_notify_commands
from daemon.cli_rules import add_rules_commands
from daemon.cli_silence import add_silence_commands
from daemon.cli_tco import add_tco_commands
from daemon.cli_telemetry import add_telemetry_commands
from daemon.cli_users import add_user_commands
from daemon.config import ConfigError, effective_config_yaml, load_config
from daemon.store.errors import StoreError


def _package_version() -> str:
    try:
        return version("tcowatch")
    except PackageNotFoundError:
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcowatch",
        description="GPU fleet FinOps: measured cost per GPU-hour and per million tokens.",
    )
    parser.add_argument("--version", action="version", version=f"tcowatch {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path, help="YAML config file (default: tcowatch.yaml)")
        if db:
            p.add_argument("--db", help="SQLite file path or SQLAlchemy URL")

    demo = sub.add_parser("demo", help="everything in one process on a simulated fleet")
    common(demo)
    demo.add_argument("--host", default=None, help="board address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=None, help="board port (default 8080)")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--gpus", type=int, default=16, help="simulated GPUs (default 16)")
    demo.add_argument("--seed", type=int, default=42, help="simulator seed")

    run = sub.add_parser("run", help="the server: collectors, rules, notifier, board, /metrics")
    common(run)
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)

    check = sub.add_parser("check-config", help="validate a config file, print it masked")
    check.add_argument("file", type=Path)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, text in (("upgrade", "migrate to the latest schema"), ("current", "show revision")):
        common(db_sub.add_parser(name, help=text))

    add_telemetry_commands(sub, common)
    add_tco_commands(sub, common)
    add_cost_commands(sub, common)
    add_rules_commands(sub, common)
    add_silence_commands(sub, common)
    add_notify_commands(sub, common)
    add_user_commands(sub, common)
    return parser


def cmd_check_config(args: argparse.Namespace) -> int:
    config, _ = load_config(args.file)
    sys.stdout.write(effective_config_yaml(config))
    print(f"tcowatch: {args.file}: configuration is valid", file=sys.stderr)
    return EXIT_OK


COMMANDS: dict[str, str] = {
    "demo": "daemon.cli_server:cmd_demo",
    "run": "daemon.cli_server:cmd_run",
    "db": "daemon.cli_server:cmd_db",
    "check-config": "daemon.cli:cmd_check_config",
    "agent": "daemon.cli_telemetry:cmd_agent",
    "scrape": "daemon.cli_telemetry:cmd_scrape",
    "simulate": "daemon.cli_telemetry:cmd_simulate",
    "import": "daemon.cli_costs:cmd_import",
    "export": "daemon.cli_costs:cmd_export",
    "tco": "daemon.cli_tco:cmd_tco",
    "advise": "daemon.cli_tco:cmd_advise",
    "rules": "daemon.cli_rules:cmd_rules",
    "silence": "daemon.cli_silence:cmd_silence",
    "notify": "daemon.cli_notify:cmd_notify",
    "user": "daemon.cli_users:cmd_user",
    "token": "daemon.cli_users:cmd_token",
}
"""Each command's function as ``module:function``, imported when the command runs."""


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    module, _, function = COMMANDS[name].partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(module), function
    )
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tcowatch`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _command(args.command)(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"tcowatch: {exc.source}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"tcowatch: {exc}", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
