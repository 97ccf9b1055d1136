"""The generic JSON webhook channel: the Alertmanager v4 payload, optionally HMAC-signed.

Signature scheme (set ``secret`` to enable it), for receivers to verify::

    X-Tcowatch-Timestamp: <unix time in whole seconds, as decimal digits>
    X-Tcowatch-Signature: sha256=<hex>
    hex = lowercase hex of HMAC-SHA256(key=secret, msg=f"{ts}.".encode() + body)

where ``secret`` is UTF-8 encoded and ``body`` is the exact request body bytes. A receiver
recomputes the HMAC over the raw body it received, compares it in constant time
(``hmac.compare_digest``) and rejects timestamps too far from its own clock (say 5 minutes)
to stop replays.

Every request also carries ``Idempotency-Key: <32 hex digits>`` when the outbox gives one: the
same value on every retry of one notification, so a receiver can drop the rare duplicate that
at-least-once delivery produces (a crash between the send and recording it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, ClassVar

from daemon.notify.channels.http import SingleUrlChannel, parse_retry_after
from daemon.notify.payload import encode_go_json

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Tcowatch-Timestamp"
SIGNATURE_HEADER = "X-Tcowatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "parse_retry_after",
    "sign",
]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Tcowatch-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel(SingleUrlChannel):
    """POST the Alertmanager v4 payload (Go JSON encoding) to a URL.

    The URL is treated as a secret (it often embeds a token): it never appears in error
    messages or logs, which name the channel instead. ``client`` lets the caller share an
    ``httpx.Client`` (it is then not closed here); ``clock`` (aware UTC) stamps signatures and
    reads ``Retry-After`` dates. No rate limit by default: the receiver is ours to size.
    """

    kind: ClassVar[str] = "webhook"

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """POST ``payload``; see ``Channel.send`` for the error contract.

        2xx is success; 429 and 5xx, network errors and timeouts raise a retryable
        ``TransportError`` (429 with ``retry_after`` from ``Retry-After``); 3xx and any other
        4xx (404/410 included) raise a permanent one.
        """
        body = encode_go_json(payload)
        headers = self.headers(idempotency_key)
        if self._secret is not None:
            timestamp = int(self.now().timestamp())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        response = self.post(self._url, content=body, headers=headers)
        error = self.status_error(response)
        if error is not None:
            raise error
