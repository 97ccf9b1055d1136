"""The HTTP side every channel shares: one POST code path, error classification, redaction.

``HttpChannel`` is the base of the HTTP channels (webhook, Slack, Teams, Discord, DingTalk,
Feishu, WeCom, Alertmanager). It owns the ``httpx.Client``, POSTs with the configured timeout,
turns every network problem into a retryable ``TransportError``, classifies HTTP statuses the
same way for every provider (2xx success; 429 and 5xx retryable, with ``Retry-After``; 3xx and
other 4xx permanent) and removes webhook URLs and secrets from any text that goes into an error
message. Subclasses add their message format and their provider's body check.

Error contract: ``HttpChannel.post`` returns an ``httpx.Response`` of any status or raises
``TransportError`` (network errors and timeouts retryable; a malformed URL permanent), never
another exception. ``TransportError.message`` always starts with ``"<kind> <name>: "`` and never
contains the URL, its path or query, or a configured secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import httpx

from daemon.notify.channels.base import RateLimit, TransportError

logger = logging.getLogger(__name__)

BODY_SNIPPET = 200
"""How many characters of a provider's error body go into an error message."""

_MIN_SECRET_PART = 8
"""Path segments and query values this long or longer are treated as secrets too."""

_MIN_SECRET = 4
"""Configured secrets shorter than this are not searched for (they would mangle messages)."""

REDACTED = "<url>"


def user_agent() -> str:
    """``tcowatch/<version>``, sent on every notification request."""
    try:
        return f"tcowatch/{version('tcowatch')}"
    except PackageNotFoundError:
        return "tcowatch/unknown"


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
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)


def url_secrets(url: str) -> set[str]:
    """The parts of ``url`` that may carry a token: the URL itself, its path and query, the
    user info, and every long path segment or query value (raw and percent-decoded)."""
    secrets = {url}
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return secrets
    secrets.add(str(parsed))
    target = parsed.raw_path.decode("ascii", "replace")
    if target not in ("", "/"):
        secrets.add(target)
    path = parsed.path
    if path not in ("", "/"):
        secrets.add(path)
    for segment in path.split("/"):
        if len(segment) >= _MIN_SECRET_PART:
            secrets.add(segment)
    query = parsed.query.decode("ascii", "replace")
    if query:
        secrets.add(query)
        for pair in query.split("&"):
            value = pair.partition("=")[2]
            if len(value) >= _MIN_SECRET_PART:
                secrets.add(value)
    for _, value in parsed.params.multi_items():
        if len(value) >= _MIN_SECRET_PART:
            secrets.add(value)
    if parsed.userinfo:
        secrets.add(parsed.userinfo.decode("ascii", "replace"))
        if parsed.password:
            secrets.add(parsed.password)
    return secrets


class Redactor:
    """Replaces URLs (and their token-bearing parts) and secrets in text with ``<url>``."""

    def __init__(self, urls: Iterable[str] = (), secrets: Iterable[str | None] = ()) -> None:
        found: set[str] = set()
        for url in urls:
            found |= url_secrets(url)
        found |= {secret for secret in secrets if secret and len(secret) >= _MIN_SECRET}
        self._secrets = sorted((s for s in found if s), key=len, reverse=True)

    def __call__(self, text: str, *urls: str) -> str:
        """``text`` with the known secrets, and those of ``urls`` (built at send time, such as
        a signed URL), replaced."""
        secrets = self._secrets
        if urls:
            extra: set[str] = set()
            for url in urls:
                extra |= url_secrets(url)
            secrets = sorted(set(secrets) | extra, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text


class HttpChannel:
    """Base of the HTTP channels: name, options, the shared client and the POST code path.

    ``client`` lets the caller share an ``httpx.Client`` (it is then not closed here); ``clock``
    (aware UTC) reads ``Retry-After`` dates and stamps signatures. Subclasses set ``kind`` (the
    config ``type``) and implement ``send``.
    """

    kind: ClassVar[str] = "http"

    def __init__(
        self,
        *,
        name: str,
        urls: Iterable[str],
        secrets: Iterable[str | None] = (),
        timeout_seconds: float = 10.0,
        send_resolved: bool = True,
        rate_limit: RateLimit | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.send_resolved = send_resolved
        self.rate_limit = rate_limit
        self._timeout = timeout_seconds
        self._client = client
        self._owns_client = client is None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._user_agent = user_agent()
        self._redact = Redactor(urls, secrets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def label(self) -> str:
        """``"<kind> <name>"``, the prefix of every error message."""
        return f"{self.kind} {self.name}"

    def close(self) -> None:
        """Close the HTTP client if this channel created it."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def now(self) -> datetime:
        """The channel's clock (aware UTC)."""
        return self._clock()

    def redact(self, text: str, *urls: str) -> str:
        """``text`` without the channel's URLs and secrets, nor those of ``urls``."""
        return self._redact(text, *urls)

    def headers(self, idempotency_key: str = "", **extra: str) -> dict[str, str]:
        """JSON request headers: content type, user agent, ``Idempotency-Key`` when given."""
        headers = {"Content-Type": "application/json", "User-Agent": self._user_agent}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(extra)
        return headers

    def post(
        self, url: str, *, content: bytes, headers: Mapping[str, str], what: str = ""
    ) -> httpx.Response:
        """POST ``content`` to ``url`` with the channel's timeout; see the module error contract.

        ``what`` (such as ``"replica 2/3"``) is put in error messages after the channel label.
        """
        prefix = f"{what}: " if what else ""
        try:
            return self._http().post(
                url, content=content, headers=dict(headers), timeout=self._timeout
            )
        except httpx.UnsupportedProtocol as exc:
            raise self.error(
                f"{prefix}bad URL scheme ({self.redact(str(exc), url)})", permanent=True
            ) from None
        except httpx.InvalidURL:
            raise self.error(f"{prefix}invalid URL", permanent=True) from None
        except httpx.TimeoutException as exc:
            raise self.error(
                f"{prefix}timed out after {self._timeout:g}s ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise self.error(
                f"{prefix}{type(exc).__name__}: {self.redact(str(exc), url)}"
            ) from None

    def snippet(self, response: httpx.Response) -> str:
        """The start of the response body, redacted, on one line."""
        try:
            text = response.text
        except (UnicodeDecodeError, LookupError):
            return ""
        return " ".join(self.redact(text[:BODY_SNIPPET], *_request_url(response)).split())

    def retry_after(self, response: httpx.Response) -> float | None:
        """The response's ``Retry-After`` header in seconds, if readable."""
        return parse_retry_after(response.headers.get("Retry-After"), self.now())

    def error(
        self,
        detail: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        response: httpx.Response | None = None,
    ) -> TransportError:
        """A ``TransportError`` labelled with the channel, its text redacted (also of the URL
        ``response`` was for) and logged at debug level."""
        urls = _request_url(response) if response is not None else ()
        message = f"{self.label}: {self.redact(detail, *urls)}"
        logger.debug("%s", message)
        return TransportError(message, permanent=permanent, retry_after=retry_after)

    def status_error(
        self, response: httpx.Response, *, what: str = "", detail: str | None = None
    ) -> TransportError | None:
        """Classify a non-2xx status (``None`` for 2xx): 429 and 5xx retryable (429 with its
        ``Retry-After``), 3xx and other 4xx permanent. ``detail`` replaces the body snippet."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        text = f"{what + ': ' if what else ''}HTTP {status}"
        extra = self.snippet(response) if detail is None else detail
        if extra:
            text += f": {extra}"
        if status == 429 or status >= 500:
            return self.error(text, retry_after=self.retry_after(response), response=response)
        return self.error(text, permanent=True, response=response)

    def json_body(self, response: httpx.Response) -> dict[str, Any] | None:
        """The response body as a JSON object, or ``None`` if it is not one."""
        try:
            data = response.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        return self._client


def _request_url(response: httpx.Response) -> tuple[str, ...]:
    try:
        return (str(response.request.url),)
    except RuntimeError:  # a response built without a request
        return ()


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is: providers count bytes)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SingleUrlChannel(HttpChannel):
    """An HTTP channel that posts to one URL with an optional signing ``secret``; both are
    secrets, redacted from every message. The constructor every single-URL provider shares."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        secret: str | None = None,
        timeout_seconds: float = 10.0,
        send_resolved: bool = True,
        rate_limit: RateLimit | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(
            name=name,
            urls=[url],
            secrets=[secret],
            timeout_seconds=timeout_seconds,
            send_resolved=send_resolved,
            rate_limit=rate_limit,
            client=client,
            clock=clock,
        )
        self._url = url
        self._secret = secret or None


class CodedJsonChannel(SingleUrlChannel):
    """Base of providers that report errors inside HTTP 200 as a JSON code (DingTalk, Feishu,
    WeCom): success is 2xx **and** code 0.

    Subclasses say where the code is (``read_code``), which codes are retryable and with what
    wait (``RETRYABLE_CODES``), and may explain a code (``explain``). Every other non-zero code
    is permanent: the request will fail again unchanged.
    """

    RETRYABLE_CODES: ClassVar[Mapping[int, float | None]] = {}
    """Code -> ``retry_after`` seconds (``None``: the outbox's backoff)."""

    def read_code(self, body: Mapping[str, Any]) -> tuple[int | None, str]:
        """The body's error code (``None`` when absent) and message."""
        raise NotImplementedError

    def explain(self, code: int, message: str) -> str:
        """A hint for the operator about ``code`` (empty for none)."""
        return ""

    def check(self, response: httpx.Response) -> None:
        """Return on success; raise the classified ``TransportError`` otherwise."""
        body = self.json_body(response)
        code, message = self.read_code(body) if body is not None else (None, "")
        status = response.status_code
        if code is not None and code != 0 and status != 429 and status < 500:
            detail = f"HTTP {status}, code {code}"
            if message:
                detail += f": {message}"
            hint = self.explain(code, message)
            if hint:
                detail += f" ({hint})"
            if code in self.RETRYABLE_CODES:
                wait = self.RETRYABLE_CODES[code]
                header_wait = self.retry_after(response)
                if header_wait is not None:
                    wait = header_wait if wait is None else max(wait, header_wait)
                raise self.error(detail, retry_after=wait, response=response)
            raise self.error(detail, permanent=True, response=response)
        error = self.status_error(response)
        if error is not None:
            raise error
        if code is None:
            snippet = self.snippet(response)
            raise self.error(
                f"HTTP {status} without a result code in the body"
                + (f": {snippet}" if snippet else ""),
                response=response,
            )
