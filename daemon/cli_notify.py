"""``tcowatch notify test CHANNEL`` (being built)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_notify_commands(sub: Any, common: Callable[..., None]) -> None:
    """Register the ``notify`` command on the top-level subparsers."""
    notify = sub.add_parser("notify", help="notification channels")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    test = notify_sub.add_parser("test", help="send a test notification to a channel")
    common(test)
    test.add_argument("channel")


def cmd_notify(args: argparse.Namespace) -> int:
    """Run a ``notify`` action."""
    raise NotImplementedError("notify commands are being built")
