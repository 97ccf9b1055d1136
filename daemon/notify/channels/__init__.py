"""Notification channels by config key (``CHANNELS``), imported lazily on first use."""

from __future__ import annotations

import logging
import pkgutil
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

CHANNELS: Mapping[str, str] = {
    "webhook": "daemon.notify.channels.webhook.WebhookChannel",
}
"""Built-in channel classes by config key, as dotted paths imported on first use."""


def load_channel_class(kind: str) -> Any:
    """Import the class registered under ``kind``; ``KeyError`` names the known kinds."""
    if kind not in CHANNELS:
        known = ", ".join(sorted(CHANNELS))
        raise KeyError(f"unknown channel kind {kind!r} (known: {known})")
    return pkgutil.resolve_name(CHANNELS[kind])
