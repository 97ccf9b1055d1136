"""``tcowatch notify test CHANNEL``: send a test notification to one configured channel.

The channel is built from the config exactly as the server builds it and the test payload
(an Alertmanager v4 payload with one firing ``TcowatchTest`` alert, reason ``test``) is sent
directly, not through the outbox. Prints the outcome; the error text names the channel, never
its URL or secret. Exit codes: 0 sent, 1 the channel refused it or could not be reached,
2 bad config or a channel name that is not configured (the configured names are listed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from daemon.cli_common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

logger = logging.getLogger(__name__)


def add_notify_commands(sub: Any, common: Callable[..., None]) -> None:
    """Register the ``notify`` command on the top-level subparsers."""
    notify = sub.add_parser("notify", help="notification channels")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    test = notify_sub.add_parser("test", help="send a test notification to a channel")
    common(test)
    test.add_argument("channel")


def cmd_notify(args: argparse.Namespace) -> int:
    """Run a ``notify`` action."""
    if args.notify_command == "test":
        return _cmd_test(args)
    print(f"tcowatch: unknown notify action {args.notify_command!r}", file=sys.stderr)
    return EXIT_CONFIG


def _cmd_test(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from daemon.config import load_config
    from daemon.notify.channels.base import TransportError
    from daemon.notify.channels.config import build_channel
    from daemon.notify.channels.probe import send_test, test_payload
    from daemon.process import external_url

    config, _ = load_config(args.config)
    configs = {channel.name: channel for channel in config.channels}
    channel_config = configs.get(args.channel)
    if channel_config is None:
        configured = ", ".join(configs) if configs else "none: add them under channels:"
        print(
            f"tcowatch: no channel named {args.channel!r} (configured: {configured})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    channel = build_channel(channel_config)
    payload = test_payload(
        channel=channel_config.name,
        receiver=config.notify.receiver,
        external_url=external_url(config),
        now=datetime.now(UTC),
    )
    try:
        send_test(channel, payload)
    except TransportError as exc:
        kind = "permanent: fix the channel's config" if exc.permanent else "temporary"
        wait = f", retry after {exc.retry_after:g}s" if exc.retry_after is not None else ""
        print(f"tcowatch: test notification failed ({kind}{wait}): {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        close = getattr(channel, "close", None)
        if callable(close):
            close()
    print(f"tcowatch: test notification sent to {channel_config.type} channel {args.channel}")
    return EXIT_OK
