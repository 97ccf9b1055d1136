"""``tcowatch rules check FILE...`` and ``tcowatch rules test FILE...``.

``check`` validates rule files, alone and together (group names and alertname + labels must
be unique across the files given): ``FILE: N groups, M rules OK`` on stdout for each good
file, each problem as ``tcowatch: FILE: line N: key.path: message`` on stderr; exit 0 when
every file is valid, 2 otherwise (as ``check-config``).

``test`` runs rule unit-test files (promtool's format, see ``daemon.rule_tests``): the outcome
of each file on stdout, problems of invalid files on stderr; exit 0 when every test passes,
1 when one fails (with a diff), 2 when a file is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.cli_common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK


def add_rules_commands(sub: Any, common: Callable[..., None]) -> None:
    """Register the ``rules`` command and its actions on the top-level subparsers."""
    rules = sub.add_parser("rules", help="validate and unit-test alerting rule files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="validate rule files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    test = rules_sub.add_parser("test", help="run rule unit-test files (promtool format)")
    test.add_argument("files", nargs="+", type=Path, metavar="FILE")


def cmd_rules(args: argparse.Namespace) -> int:
    """Run ``rules check`` or ``rules test``."""
    if args.rules_command == "check":
        return check_rule_files(args.files)
    return run_rule_tests(args.files)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def check_rule_files(paths: list[Path]) -> int:
    """Validate ``paths`` one by one and together; print the outcome; return the exit code."""
    from daemon.config import ConfigError
    from daemon.rule_files import RuleFile, duplicate_problems, load_rule_file

    problems: dict[str, list[str]] = {}
    loaded: list[RuleFile] = []
    for path in paths:
        try:
            loaded.append(load_rule_file(path, display=str(path)))
        except ConfigError as exc:
            problems[exc.source] = list(exc.problems)
    for display, found in duplicate_problems(loaded).items():
        problems.setdefault(display, []).extend(found)
    by_display = {rule_file.display: rule_file for rule_file in loaded}
    for path in paths:
        display = str(path)
        if display in problems:
            for problem in problems[display]:
                print(f"tcowatch: {display}: {problem}", file=sys.stderr)
            continue
        rule_file = by_display[display]
        groups = _plural(len(rule_file.groups), "group")
        print(f"{display}: {groups}, {_plural(rule_file.rule_count, 'rule')} OK")
    return EXIT_CONFIG if problems else EXIT_OK


def run_rule_tests(paths: list[Path]) -> int:
    """Run the test files; print each outcome; return the exit code (2 > 1 > 0)."""
    from daemon.rule_tests import report_lines, run_test_file

    code = EXIT_OK
    for path in paths:
        result = run_test_file(path, display=str(path))
        for line in report_lines(result):
            print(line)
        for problem in result.problems:
            print(f"tcowatch: {result.display}: {problem}", file=sys.stderr)
        if result.problems:
            code = EXIT_CONFIG
        elif result.failures and code == EXIT_OK:
            code = EXIT_FAILURE
    return code
