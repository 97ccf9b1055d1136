"""``tcowatch rules check FILE...`` and ``tcowatch rules test FILE...`` (being built)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_rules_commands(sub: Any, common: Callable[..., None]) -> None:
    """Register the ``rules`` command and its actions on the top-level subparsers."""
    rules = sub.add_parser("rules", help="validate and unit-test alerting rule files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="validate rule files")
    check.add_argument("files", nargs="+")
    test = rules_sub.add_parser("test", help="run rule unit-test files (promtool format)")
    test.add_argument("files", nargs="+")


def cmd_rules(args: argparse.Namespace) -> int:
    """Run ``rules check`` or ``rules test``."""
    raise NotImplementedError("rules commands are being built")
