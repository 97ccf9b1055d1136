"""Notification channels by config key (``CHANNELS``), imported lazily on first use."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

CHANNELS: Mapping[str, str] = {
    "webhook": "daemon.notify.channels.webhook.WebhookChannel",
}
"""Built-in channel classes by config key, as dotted paths imported on first use."""


def load_channel_class(kind: str) -> Any:
    """Import the class registered under ``kind``; ``KeyError`` names the known kinds."""
    try:
        dotted = CHANNELS[kind]
    except KeyError:
        known = ", ".join(sorted(CHANNELS))
        raise KeyError(f"unknown channel kind {kind!r} (known: {known})") from None
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)
