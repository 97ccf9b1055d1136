"""``tcowatch silence add|list|expire`` (being built)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_silence_commands(sub: Any, common: Callable[..., None]) -> None:
    """Register the ``silence`` command on the top-level subparsers."""
    silence = sub.add_parser("silence", help="create, list and expire silences")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")
    common(silence_sub.add_parser("list", help="list silences"))


def cmd_silence(args: argparse.Namespace) -> int:
    """Run a ``silence`` action."""
    raise NotImplementedError("silence commands are being built")
