"""Microsoft Teams through a Workflows (Power Automate) webhook: an Adaptive Card message.

Only Workflows URLs are supported (``*.logic.azure.com`` / ``*.api.powerplatform.com``, the
``sig=`` query is the credential); Office 365 connectors are retired. The body is
``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.2>}]}`` with the title
(red for firing, green for resolved), one Markdown TextBlock per section, the reason and an
"Open the alerts board" button. Teams drops cards over 28 KB inside the flow, after accepting
them, so the card is kept under ``CARD_MAX_BYTES`` by cutting alerts (the card says how many).

Success is any 2xx; 202 Accepted only means the flow queued it. 401/403 (bad ``sig``), 404
(flow deleted) and other 4xx are permanent; 429 (after ``Retry-After``) and 5xx are retried.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from daemon.notify.channels.http import SingleUrlChannel, encode_json
from daemon.notify.channels.render import Message, Notification, fit_message, truncate_chars

logger = logging.getLogger(__name__)

CARD_MAX_BYTES = 28_000
"""Teams fails cards over 28,672 bytes; this leaves room for the message wrapper."""
TITLE_MAX = 1024
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def card(message: Message, *, firing: bool, board_url: str) -> dict[str, Any]:
    """The Adaptive Card for a rendered message."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate_chars(message.title, TITLE_MAX),
            "weight": "Bolder",
            "size": "Large",
            "wrap": True,
            "color": "Attention" if firing else "Good",
        }
    ]
    for section in (message.firing, message.resolved):
        if section:
            body.append({"type": "TextBlock", "text": section, "wrap": True})
    if message.footer:
        body.append(
            {
                "type": "TextBlock",
                "text": truncate_chars(message.footer, 2000),
                "wrap": True,
                "isSubtle": True,
                "size": "Small",
            }
        )
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": body,
        "msteams": {"width": "full"},
    }
    if board_url:
        content["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open the alerts board", "url": board_url}
        ]
    return content


class TeamsChannel(SingleUrlChannel):
    """Post an Adaptive Card to a Teams Workflows URL; see the module docstring."""

    kind: ClassVar[str] = "teams"

    def build_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The Teams message for ``payload``, its card under ``CARD_MAX_BYTES``."""
        notification = Notification.from_payload(payload)
        firing = notification.status == "firing"

        def build(message: Message) -> dict[str, Any]:
            return card(message, firing=firing, board_url=notification.board_url)

        def fits(message: Message) -> bool:
            return len(encode_json(build(message))) <= CARD_MAX_BYTES

        content = build(fit_message(self.kind, notification, fits))
        while len(encode_json(content)) > CARD_MAX_BYTES and len(content["body"]) > 1:
            content["body"].pop()  # no alert fits: drop sections, keep the title
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": content,
                }
            ],
        }

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload`` as an Adaptive Card; see ``Channel.send`` for the error contract."""
        body = encode_json(self.build_body(payload))
        response = self.post(self._url, content=body, headers=self.headers(idempotency_key))
        error = self.status_error(response)
        if error is not None:
            raise error
