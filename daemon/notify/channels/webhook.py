"""The generic JSON webhook channel: the Alertmanager v4 payload, optionally HMAC-signed.

Signature scheme (set ``secret`` to enable it), for receivers to verify::

    X-Tcowatch-Timestamp: <unix time in whole seconds, as decimal digits>
    X-Tcowatch-Signature: sha256=<hex>
    hex = lowercase hex of HMAC-SHA256(key=secret, msg=f"{ts}.".encode() + body)

where ``secret`` is UTF-8 encoded and ``body`` is the exact request body bytes. A receiver
recomputes the HMAC over the raw body it received, compares it in constant time
(``hmac.compare_digest``) and rejects timestamps too far from its own clock (say 5 minutes)
to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from daemon.notify.channels.base import TransportError
from daemon.notify.payload import encode_go_json

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Tcowatch-Timestamp"
SIGNATURE_HEADER = "X-Tcowatch-Signature"
_BODY_SNIPPET = 200


def _user_agent() -> str:
    try:
        return f"tcowatch/{version('tcowatch')}"
    except PackageNotFoundError:
        return "tcowatch/unknown"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Tcowatch-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Read a ``Retry-After`` header (delay in seconds, or an HTTP date) as seconds from ``now``.

    Returns ``None`` when the header is absent or unreadable; never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class WebhookChannel:
    """POST the Alertmanager v4 payload (Go JSON encoding) to a URL.

    The URL is treated as a secret (it often embeds a token): it never appears in error
    messages or logs, which name the channel instead. ``client`` lets the caller share an
    ``httpx.Client`` (it is then not closed here); ``clock`` (aware UTC) stamps signatures and
    reads ``Retry-After`` dates.
    """

    def __init__(
        self,
        *,
        name: str,
        url: str,
        secret: str | None = None,
        timeout_seconds: float = 10.0,
        send_resolved: bool = True,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.send_resolved = send_resolved
        self._url = url
        self._secret = secret or None
        self._timeout = timeout_seconds
        self._client = client
        self._owns_client = client is None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._user_agent = _user_agent()

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r})"

    def close(self) -> None:
        """Close the HTTP client if this channel created it."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def send(self, payload: dict[str, Any]) -> None:
        """POST ``payload``; see ``Channel.send`` for the error contract.

        2xx is success; 429 and 5xx, network errors and timeouts raise a retryable
        ``TransportError`` (429 with ``retry_after`` from ``Retry-After``); 3xx and any other
        4xx (404/410 included) raise a permanent one.
        """
        body = encode_go_json(payload)
        headers = {"Content-Type": "application/json", "User-Agent": self._user_agent}
        if self._secret is not None:
            timestamp = int(self._clock().timestamp())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            response = self._http().post(
                self._url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.UnsupportedProtocol as exc:
            raise TransportError(
                f"webhook {self.name}: bad URL scheme ({self._redact(str(exc))})", permanent=True
            ) from None
        except httpx.InvalidURL:
            raise TransportError(f"webhook {self.name}: invalid URL", permanent=True) from None
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"webhook {self.name}: timed out after {self._timeout:g}s ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(
                f"webhook {self.name}: {type(exc).__name__}: {self._redact(str(exc))}"
            ) from None
        self._raise_for_response(response)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        return self._client

    def _raise_for_response(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"webhook {self.name}: HTTP {status}"
        snippet = self._redact(response.text[:_BODY_SNIPPET].strip())
        if snippet:
            detail += f": {snippet}"
        logger.debug("%s", detail)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            raise TransportError(detail, retry_after=retry_after)
        if status >= 500:
            raise TransportError(detail)
        raise TransportError(detail, permanent=True)

    def _redact(self, text: str) -> str:
        """Remove the URL (and its path and query, where a token usually sits) from ``text``."""
        secrets = {self._url}
        try:
            parsed = httpx.URL(self._url)
            secrets.add(str(parsed))
            target = parsed.raw_path.decode("ascii", "replace")
            if target not in ("", "/"):
                secrets.add(target)
            if parsed.userinfo:
                secrets.add(parsed.userinfo.decode("ascii", "replace"))
        except httpx.InvalidURL:
            pass
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "<url>")
        return text
