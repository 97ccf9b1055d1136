"""WeCom (WeChat Work) group robots: one markdown message, errors inside HTTP 200.

Body: ``{"msgtype": "markdown", "markdown": {"content": ...}}``; the content is capped at
4,096 UTF-8 **bytes** by cutting alerts (the message says how many) and then, if still needed,
cutting the text on a character boundary. Success is HTTP 2xx with ``errcode == 0``.
``45009`` (over the robot's 20 messages a minute) is retried after 60 s, ``-1`` (system busy)
with backoff; ``93000`` (invalid webhook URL: the robot was removed) and every other code are
permanent. 429 and 5xx retried; other 4xx permanent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from daemon.notify.channels.http import CodedJsonChannel, encode_json
from daemon.notify.channels.render import Message, Notification, fit_message, truncate_utf8

logger = logging.getLogger(__name__)

CONTENT_MAX_BYTES = 4096


def _fits(message: Message) -> bool:
    return len(message.text.encode("utf-8")) <= CONTENT_MAX_BYTES


class WeComChannel(CodedJsonChannel):
    """Post markdown to a WeCom group robot; see the module docstring."""

    kind: ClassVar[str] = "wecom"
    RETRYABLE_CODES: ClassVar[Mapping[int, float | None]] = {45009: 60.0, -1: None}

    def build_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The WeCom markdown message for ``payload``, content <= 4096 bytes."""
        message = fit_message(self.kind, Notification.from_payload(payload), _fits)
        content = truncate_utf8(message.text, CONTENT_MAX_BYTES)
        return {"msgtype": "markdown", "markdown": {"content": content}}

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload`` to WeCom; see ``Channel.send`` for the error contract."""
        body = encode_json(self.build_body(payload))
        response = self.post(self._url, content=body, headers=self.headers(idempotency_key))
        self.check(response)

    def read_code(self, body: Mapping[str, Any]) -> tuple[int | None, str]:
        code = body.get("errcode")
        if not isinstance(code, int) or isinstance(code, bool):
            return None, ""
        return code, str(body.get("errmsg") or "")

    def explain(self, code: int, message: str) -> str:
        if code == 45009:
            return "over the robot's 20 messages a minute"
        if code == 93000:
            return "invalid webhook URL: the robot was removed or the key is wrong"
        return ""
