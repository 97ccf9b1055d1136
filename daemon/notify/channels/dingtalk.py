"""DingTalk custom robots: signed markdown messages with @-mentions; errors inside HTTP 200.

Body: ``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles",
"atUserIds", "isAtAll"}}``. Mentions only notify people whose ``@<mobile>``/``@<user id>``
appears in the text, so the text ends with them. The whole body is kept under DingTalk's
20,000 bytes (error 460101) by cutting alerts, then text, before sending.

Signing (the robot's "additional signature" setting), with ``secret`` set: ``timestamp`` is
Unix time in milliseconds and ``sign = urlencode(base64(HMAC-SHA256(key=secret,
msg=f"{timestamp}\\n{secret}")))``, appended to the webhook URL as
``&timestamp=<ms>&sign=<sign>``, percent-encoded exactly once. DingTalk rejects timestamps
more than an hour off, so a skewed clock shows up as error 310000.

Success is HTTP 2xx with ``errcode == 0``. ``130101`` (over 20 messages a minute) is retried
after 60 s, ``-1`` (busy) with backoff; ``310000`` (bad signature, timestamp, keyword or IP:
the message says which) and every other code are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from daemon.notify.channels.http import CodedJsonChannel, encode_json
from daemon.notify.channels.render import Message, Notification, fit_message, truncate_utf8

logger = logging.getLogger(__name__)

BODY_MAX_BYTES = 20_000
TITLE_MAX = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sign(secret: str, timestamp_ms: int) -> str:
    """The base64 signature (not yet URL-encoded) for ``timestamp_ms``."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with ``timestamp`` and the URL-encoded ``sign`` appended to its query."""
    separator = "&" if "?" in url else "?"
    signature = quote(sign(secret, timestamp_ms), safe="")
    return f"{url}{separator}timestamp={timestamp_ms}&sign={signature}"


def timestamp_ms(moment: datetime) -> int:
    """Unix time of ``moment`` in whole milliseconds (exact, no float rounding)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


class DingTalkChannel(CodedJsonChannel):
    """Post signed markdown to a DingTalk robot; see the module docstring."""

    kind: ClassVar[str] = "dingtalk"
    RETRYABLE_CODES: ClassVar[Mapping[int, float | None]] = {130101: 60.0, -1: None}

    def __init__(
        self,
        *,
        at_mobiles: Sequence[str] = (),
        at_user_ids: Sequence[str] = (),
        at_all: bool = False,
        **options: Any,
    ) -> None:
        """``options``: the ``SingleUrlChannel`` keywords (``name``, ``url``, ``secret``, ...)."""
        super().__init__(**options)
        self._at_mobiles = list(at_mobiles)
        self._at_user_ids = list(at_user_ids)
        self._at_all = at_all

    def build_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The DingTalk message for ``payload``, at most ``BODY_MAX_BYTES`` encoded."""
        mentions = " ".join(f"@{who}" for who in [*self._at_mobiles, *self._at_user_ids])

        def build(message: Message, text: str | None = None) -> dict[str, Any]:
            body_text = message.text if text is None else text
            if mentions:
                body_text = f"{body_text}\n\n{mentions}"
            return {
                "msgtype": "markdown",
                "markdown": {"title": message.title[:TITLE_MAX], "text": body_text},
                "at": {
                    "atMobiles": list(self._at_mobiles),
                    "atUserIds": list(self._at_user_ids),
                    "isAtAll": self._at_all,
                },
            }

        def fits(message: Message) -> bool:
            return len(encode_json(build(message))) <= BODY_MAX_BYTES

        message = fit_message(self.kind, Notification.from_payload(payload), fits)
        body = build(message)
        excess = len(encode_json(body)) - BODY_MAX_BYTES
        if excess > 0:  # even without alerts (huge labels): cut the text itself
            room = len(message.text.encode("utf-8")) - excess - 64
            body = build(message, truncate_utf8(message.text, max(0, room)))
        return body

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload`` to DingTalk; see ``Channel.send`` for the error contract."""
        body = encode_json(self.build_body(payload))
        url = self._url
        if self._secret is not None:
            url = signed_url(url, self._secret, timestamp_ms(self.now()))
        response = self.post(url, content=body, headers=self.headers(idempotency_key))
        self.check(response)

    def read_code(self, body: Mapping[str, Any]) -> tuple[int | None, str]:
        code = body.get("errcode")
        if not isinstance(code, int) or isinstance(code, bool):
            return None, ""
        return code, str(body.get("errmsg") or "")

    def explain(self, code: int, message: str) -> str:
        text = message.lower()
        if code == 310000:
            if "sign" in text:
                return "signature mismatch: check the channel's secret"
            if "timestamp" in text:
                return "timestamp rejected: this host's clock is over an hour off, check NTP"
            if "keyword" in text:
                return "the message lacks the robot's custom keyword: check its security settings"
            if "ip" in text or "whitelist" in text:
                return "this host's IP is not in the robot's allow-list"
            return "the robot's security settings rejected the message"
        if code == 130101:
            return "over the robot's 20 messages a minute"
        if code == 460101:
            return "message too large"
        if code in (300001, 400102):
            return "the robot's access token is invalid or the robot was removed"
        return ""
