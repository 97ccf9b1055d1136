"""Feishu / Lark custom bots: signed interactive cards; errors inside HTTP 200.

Body: ``{"timestamp", "sign", "msg_type": "interactive", "card": {...}}`` where the card (an
object, not a JSON string) has a header with the title (template ``red`` while anything fires,
``green`` when all resolved), one ``lark_md`` block per section, a note with the reason and an
"Open the alerts board" button. The body is kept under 20,000 bytes by cutting alerts.
Works the same for Lark (``open.larksuite.com``) URLs.

Signing (the bot's "signature verification" setting), with ``secret`` set: ``timestamp`` is
Unix time in **seconds** (a string) and ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}",
msg=b""))``: the key/message order is the reverse of DingTalk's, and both go in the JSON body.

Success is HTTP 2xx with ``code == 0`` (older deployments answer ``StatusCode: 0``).
``11232`` (rate limited: 100 a minute, 5 a second per bot) is retried; ``19021`` (bad
signature, or timestamp over an hour off), ``19022`` (IP not allowed), ``19024`` (keyword
missing), ``9499`` (bad request) and every other code are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from daemon.notify.channels.http import CodedJsonChannel, encode_json
from daemon.notify.channels.render import (
    Message,
    Notification,
    fit_message,
    truncate_chars,
    truncate_utf8,
)

logger = logging.getLogger(__name__)

BODY_MAX_BYTES = 20_000
TITLE_MAX = 200


def sign(secret: str, timestamp_s: int) -> str:
    """The base64 signature for ``timestamp_s`` (HMAC keyed by ``"<ts>\\n<secret>"``)."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def card(message: Message, *, firing: bool, board_url: str) -> dict[str, Any]:
    """The interactive card for a rendered message."""
    elements: list[dict[str, Any]] = []
    for section in (message.firing, message.resolved):
        if section:
            if elements:
                elements.append({"tag": "hr"})
            elements.append({"tag": "div", "text": {"tag": "lark_md", "content": section}})
    if message.footer:
        elements.append(
            {"tag": "note", "elements": [{"tag": "lark_md", "content": message.footer}]}
        )
    if board_url:
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": "Open the alerts board"},
                        "url": board_url,
                        "type": "primary",
                    }
                ],
            }
        )
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": truncate_chars(message.title, TITLE_MAX)},
            "template": "red" if firing else "green",
        },
        "elements": elements,
    }


class FeishuChannel(CodedJsonChannel):
    """Post a signed interactive card to a Feishu/Lark bot; see the module docstring."""

    kind: ClassVar[str] = "feishu"
    RETRYABLE_CODES: ClassVar[Mapping[int, float | None]] = {11232: None}

    def build_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The Feishu message for ``payload`` (signed when a secret is set), under 20 KB."""
        notification = Notification.from_payload(payload)
        firing = notification.status == "firing"
        signature: dict[str, str] = {}
        if self._secret is not None:
            timestamp = int(self.now().timestamp())
            signature = {"timestamp": str(timestamp), "sign": sign(self._secret, timestamp)}

        def build(message: Message) -> dict[str, Any]:
            return {
                **signature,
                "msg_type": "interactive",
                "card": card(message, firing=firing, board_url=notification.board_url),
            }

        def fits(message: Message) -> bool:
            return len(encode_json(build(message))) <= BODY_MAX_BYTES

        message = fit_message(self.kind, notification, fits)
        body = build(message)
        if len(encode_json(body)) > BODY_MAX_BYTES:  # even without alerts: cut the footer
            footer = truncate_utf8(message.footer, 2000)
            body = build(Message(message.title[:TITLE_MAX], "", "", "", footer, 0, message.omitted))
        return body

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload`` to Feishu; see ``Channel.send`` for the error contract."""
        body = encode_json(self.build_body(payload))
        response = self.post(self._url, content=body, headers=self.headers(idempotency_key))
        self.check(response)

    def read_code(self, body: Mapping[str, Any]) -> tuple[int | None, str]:
        code = body.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            return code, str(body.get("msg") or "")
        legacy = body.get("StatusCode")
        if isinstance(legacy, int) and not isinstance(legacy, bool):
            return legacy, str(body.get("StatusMessage") or "")
        return None, ""

    def explain(self, code: int, message: str) -> str:
        return {
            19021: "signature check failed: check the channel's secret, or this host's clock "
            "is over an hour off",
            19022: "this host's IP is not in the bot's allow-list",
            19024: "the message lacks the bot's custom keyword: check its security settings",
            9499: "bad request",
            11232: "rate limited: over 100 a minute or 5 a second",
        }.get(code, "")
