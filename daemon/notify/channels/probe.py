"""The test notification ``tcowatch notify test`` (and the board's "test send") delivers.

``test_payload`` is an ordinary Alertmanager v4 payload with one firing alert
``alertname="TcowatchTest"`` and ``notification_reason: "test"``, so it goes through exactly
the rendering, signing and error handling real notifications do. ``send_test`` sends it
directly, not through the outbox: the answer is immediate and nothing is queued.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from daemon.notify.channels.base import Channel
from daemon.notify.payload import build_webhook_payload
from rules.engine import AlertInstance
from rules.fingerprint import fingerprint

logger = logging.getLogger(__name__)

TEST_ALERTNAME = "TcowatchTest"
TEST_REASON = "test"


def test_payload(
    *, channel: str, receiver: str, external_url: str, now: datetime
) -> dict[str, Any]:
    """The test notification for ``channel``, firing since ``now``."""
    labels = {"alertname": TEST_ALERTNAME, "channel": channel, "severity": "info"}
    alert = AlertInstance(
        fingerprint=fingerprint(labels),
        alertname=TEST_ALERTNAME,
        labels=labels,
        annotations={
            "summary": f"Test notification from tcowatch: channel {channel} works",
        },
        state="firing",
        active_at=now,
        fired_at=now,
    )
    return build_webhook_payload(
        receiver=receiver,
        alerts=[alert],
        group_labels={"alertname": TEST_ALERTNAME},
        group_key=f'{{}}:{{alertname="{TEST_ALERTNAME}"}}',
        notification_reason=TEST_REASON,
        external_url=external_url,
        now=now,
    )


def send_test(channel: Channel, payload: dict[str, Any]) -> None:
    """Send ``payload`` to ``channel`` now, with a fresh idempotency key.

    Raises ``TransportError`` exactly as ``Channel.send`` does.
    """
    channel.send(payload, idempotency_key=uuid.uuid4().hex)
    logger.info("test notification sent to channel %s", channel.name)
