"""The notification channel seam: what every channel (Slack, webhook, ...) promises the outbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class TransportError(Exception):
    """A delivery failed.

    ``permanent`` errors (404/410, revoked token, bad signature, other 4xx) will fail again
    unchanged: the outbox marks the notification failed and disables the channel. Other errors
    are retried with backoff; ``retry_after`` (seconds) is the provider's own wait hint, if any.
    ``message`` names the channel, never its URL or secrets, so it is safe to log and show.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``per_minute`` tokens refill per minute, up to ``burst`` saved.

    When the bucket is empty the outbox folds the channel's due notifications into one digest
    instead of dropping them (see ``daemon.notify.outbox``).
    """

    per_minute: float
    burst: int


class Channel(Protocol):
    """A configured destination for notifications.

    ``name`` is the configured channel name (the outbox's ``channel`` column); ``send_resolved``
    says whether the notifier should send resolved-only notifications to it at all.
    """

    name: str
    send_resolved: bool
    rate_limit: RateLimit | None
    """The provider's documented limit (Slack ~1/s, DingTalk/WeCom 20/min, Feishu 5/s), or
    ``None`` for no limit."""

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Deliver one notification built by ``build_webhook_payload``.

        Returns on success only: HTTP 2xx **and** the provider's body check (Slack ``ok``,
        DingTalk/WeCom ``errcode == 0``, Feishu ``code == 0``; none for the generic webhook).
        Raises ``TransportError`` for every other outcome, with ``permanent`` and
        ``retry_after`` set as the response warrants; network errors and timeouts are raised
        as retryable ``TransportError`` too, never as anything else. Does not retry itself:
        the outbox owns retries. ``idempotency_key`` is stable across retries of one
        notification; channels that can set headers send it as ``Idempotency-Key``.
        """
        ...
