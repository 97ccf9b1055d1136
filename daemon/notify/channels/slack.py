"""Slack incoming webhooks: ``{"text", "blocks"}``, success is HTTP 200 with the body ``ok``.

The message comes from ``templates/slack.j2``: a header block with the title, one mrkdwn
section for firing and one for resolved alerts, a context line with the reason and the link to
the board; ``text`` (the title) is the notification and accessibility fallback. Sections are
kept under Slack's 3,000 characters by cutting alerts (the message says how many), the header
under 150 and the fallback under 1,024.

Errors (api.slack.com, incoming webhooks): 400 ``invalid_payload``/``user_not_found``/
``invalid_token``/``no_service``, 403 ``action_prohibited``, 404 ``channel_not_found`` and
410 ``channel_is_archived`` are permanent (the channel is disabled with the reason); 429 is
retried after ``Retry-After``; 5xx (``rollup_error``) is retried.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from daemon.notify.channels.http import SingleUrlChannel, encode_json
from daemon.notify.channels.render import Message, Notification, fit_message, truncate_chars

logger = logging.getLogger(__name__)

SECTION_MAX = 3000
HEADER_MAX = 150
FALLBACK_MAX = 1024

HINTS: dict[str, str] = {
    "invalid_token": "the webhook's token was revoked or its owner deactivated: create a new one",
    "no_service": "the webhook was removed: create a new one",
    "channel_not_found": "the webhook's channel was deleted",
    "channel_is_archived": "the webhook's channel is archived",
    "action_prohibited": "a workspace admin restricted posting to this channel",
    "invalid_payload": "Slack rejected the message format",
}


def _fits(message: Message) -> bool:
    return all(
        len(part) <= SECTION_MAX for part in (message.firing, message.resolved, message.footer)
    )


class SlackChannel(SingleUrlChannel):
    """Post to a Slack incoming webhook; see the module docstring for the format and errors."""

    kind: ClassVar[str] = "slack"

    def build_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The Slack message for ``payload`` (an Alertmanager v4 payload or a digest)."""
        message = fit_message(self.kind, Notification.from_payload(payload), _fits)
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate_chars(message.title, HEADER_MAX),
                    "emoji": True,
                },
            }
        ]
        for section in (message.firing, message.resolved):
            if section:
                blocks.append(
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": truncate_chars(section, SECTION_MAX)},
                    }
                )
        if message.footer:
            blocks.append(
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": truncate_chars(message.footer, SECTION_MAX)}
                    ],
                }
            )
        return {
            "text": truncate_chars(message.text or message.title, FALLBACK_MAX),
            "blocks": blocks,
        }

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload`` as a Slack message; see ``Channel.send`` for the error contract."""
        body = encode_json(self.build_body(payload))
        response = self.post(self._url, content=body, headers=self.headers(idempotency_key))
        code = self.snippet(response)
        hint = HINTS.get(code.strip(), "")
        error = self.status_error(response, detail=f"{code} ({hint})" if hint else None)
        if error is not None:
            raise error
        if response.text.strip() != "ok":
            raise self.error(
                f"HTTP {response.status_code} but the body is not 'ok': {code or '(empty)'}",
                response=response,
            )
