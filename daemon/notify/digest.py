"""Digest payloads: several notifications of one channel folded into one Alertmanager v4 message.

When a channel's rate limit leaves no token, the outbox folds the notifications waiting for it
into one row whose payload ``build_digest`` makes. The digest is still an Alertmanager v4
webhook message, so every channel renders it like any other group, plus one extra key,
``digestOf`` (how many notifications it carries; receivers that do not know it ignore it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.notify.payload import common_pairs

logger = logging.getLogger(__name__)

DIGEST_KEY = "digestOf"
"""The extra top-level key of a digest payload: the number of notifications it carries."""


def digest_group_key(channel: str) -> str:
    """The ``groupKey`` (and outbox ``group_key``) of a digest for ``channel``."""
    return f"digest:{channel}"


def notifications_in(payload: Mapping[str, Any]) -> int:
    """How many notifications ``payload`` stands for: its ``digestOf``, else 1."""
    count = payload.get(DIGEST_KEY)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
        return count
    return 1


def build_digest(payloads: Sequence[Mapping[str, Any]], *, channel: str) -> dict[str, Any]:
    """Merge the AM v4 ``payloads`` (oldest first) meant for ``channel`` into one digest.

    Alerts are merged by ``fingerprint`` (by their labels when one has none): an alert keeps
    its place of first appearance and the content of its latest appearance, so the latest
    status wins. ``status`` is ``firing`` if any merged alert fires; ``notification_reason``
    is ``"digest of N notifications"`` and ``digestOf`` is ``N``, where a folded digest counts
    for the notifications it carried; ``groupKey`` is ``digest:<channel>``; group, route and
    common labels and annotations are the pairs shared by all; receiver and external URL are
    the latest payload's; ``truncatedAlerts`` adds up. Raises ``ValueError`` when
    ``payloads`` is empty; alert entries that are not objects are skipped with a warning.
    """
    if not payloads:
        raise ValueError("a digest needs at least one notification")
    merged: dict[str, dict[str, Any]] = {}
    total = 0
    truncated = 0
    for payload in payloads:
        total += notifications_in(payload)
        count = payload.get("truncatedAlerts", 0)
        if isinstance(count, int) and not isinstance(count, bool):
            truncated += count
        alerts = payload.get("alerts", [])
        if not isinstance(alerts, list):
            logger.warning("digest for %s: a payload's alerts is not a list; skipped", channel)
            continue
        for alert in alerts:
            if not isinstance(alert, Mapping):
                logger.warning("digest for %s: an alert entry is not an object; skipped", channel)
                continue
            merged[_identity(alert)] = dict(alert)
    alerts_out = list(merged.values())
    latest = payloads[-1]
    return {
        "receiver": latest.get("receiver", ""),
        "status": "firing" if any(a.get("status") == "firing" for a in alerts_out) else "resolved",
        "alerts": alerts_out,
        "notification_reason": f"digest of {total} notifications",
        "groupLabels": common_pairs([_string_map(p.get("groupLabels")) for p in payloads]),
        "commonLabels": common_pairs([_string_map(a.get("labels")) for a in alerts_out]),
        "commonAnnotations": common_pairs([_string_map(a.get("annotations")) for a in alerts_out]),
        "routeLabels": common_pairs([_string_map(p.get("routeLabels")) for p in payloads]),
        "externalURL": latest.get("externalURL", ""),
        "version": "4",
        "groupKey": digest_group_key(channel),
        "truncatedAlerts": truncated,
        DIGEST_KEY: total,
    }


def _identity(alert: Mapping[str, Any]) -> str:
    fingerprint = alert.get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    labels = _string_map(alert.get("labels"))
    return "labels:" + "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


__all__ = ["DIGEST_KEY", "build_digest", "digest_group_key", "notifications_in"]
