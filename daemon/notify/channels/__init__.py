"""Notification channels by config ``type`` (``CHANNELS``), imported lazily on first use.

Every channel implements ``daemon.notify.channels.base.Channel``; the HTTP ones share
``daemon.notify.channels.http`` (one POST code path, error classification, redaction) and chat
messages come from ``daemon/notify/templates/<type>.j2`` through
``daemon.notify.channels.render``. Their config models live in
``daemon.notify.channels.config``.
"""

from __future__ import annotations

import logging
import pkgutil
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

CHANNELS: Mapping[str, str] = {
    "webhook": "daemon.notify.channels.webhook.WebhookChannel",
    "slack": "daemon.notify.channels.slack.SlackChannel",
    "teams": "daemon.notify.channels.teams.TeamsChannel",
    "discord": "daemon.notify.channels.discord.DiscordChannel",
    "dingtalk": "daemon.notify.channels.dingtalk.DingTalkChannel",
    "feishu": "daemon.notify.channels.feishu.FeishuChannel",
    "wecom": "daemon.notify.channels.wecom.WeComChannel",
    "alertmanager": "daemon.notify.channels.alertmanager.AlertmanagerChannel",
}
"""Built-in channel classes by config key, as dotted paths imported on first use."""


def load_channel_class(kind: str) -> Any:
    """Import the class registered under ``kind``; ``KeyError`` names the known kinds."""
    if kind not in CHANNELS:
        known = ", ".join(CHANNELS)
        raise KeyError(f"unknown channel kind {kind!r} (known: {known})")
    return pkgutil.resolve_name(CHANNELS[kind])
