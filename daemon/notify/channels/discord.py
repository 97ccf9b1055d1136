"""Discord channel webhooks: ``content`` plus one embed per section (red firing, green resolved).

Body: ``{"content": <title and board link, <= 2000>, "embeds": [{"title", "description",
"color", "url"}, ...], "allowed_mentions": {"parse": []}}`` (alert text never pings anyone),
plus ``username``/``avatar_url`` when configured. Discord's limits are kept: at most 10 embeds,
titles <= 256, descriptions <= 4096, footer <= 2048 and all embed text together <= 6000
characters, by cutting alerts (the message says how many). Colors as Alertmanager: firing
0x992D22, resolved 0x2ECC71.

Success: 204 (or 200). 429 is retried after the body's ``retry_after`` (float seconds) or the
``Retry-After`` header; 5xx retried; 404 (webhook deleted), 401/403 (bad token) and other 4xx
are permanent. Discord bans clients that keep sending invalid requests, so disabling the
channel on those matters.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import httpx

from daemon.notify.channels.http import SingleUrlChannel, encode_json
from daemon.notify.channels.render import Message, Notification, fit_message, truncate_chars

logger = logging.getLogger(__name__)

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FOOTER_MAX = 2048
EMBEDS_TOTAL_MAX = 6000
COLOR_FIRING = 0x992D22
COLOR_RESOLVED = 0x2ECC71

HINTS: dict[int, str] = {
    401: "the webhook token is invalid",
    403: "the webhook token is invalid",
    404: "the webhook was deleted",
}


def embeds(message: Message, notification: Notification) -> list[dict[str, Any]]:
    """The embeds of a rendered message (Discord limits applied)."""
    found: list[dict[str, Any]] = []
    for heading, section, color in (
        (f"Firing ({len(notification.firing)})", message.firing, COLOR_FIRING),
        (f"Resolved ({len(notification.resolved)})", message.resolved, COLOR_RESOLVED),
    ):
        if section:
            embed: dict[str, Any] = {
                "title": truncate_chars(heading, EMBED_TITLE_MAX),
                "description": truncate_chars(section, EMBED_DESCRIPTION_MAX),
                "color": color,
            }
            if notification.board_url:
                embed["url"] = notification.board_url
            found.append(embed)
    if message.footer:
        if not found:
            found.append({"color": COLOR_RESOLVED if not notification.firing else COLOR_FIRING})
        found[-1]["footer"] = {"text": truncate_chars(message.footer, EMBED_FOOTER_MAX)}
    return found[:EMBEDS_MAX]


def embed_chars(items: list[dict[str, Any]]) -> int:
    """Characters Discord counts against the 6000 total."""
    total = 0
    for embed in items:
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += len(embed.get("footer", {}).get("text", ""))
    return total


class DiscordChannel(SingleUrlChannel):
    """Post to a Discord webhook; see the module docstring for the format and errors."""

    kind: ClassVar[str] = "discord"

    def __init__(
        self, *, username: str | None = None, avatar_url: str | None = None, **options: Any
    ) -> None:
        """``options``: the ``SingleUrlChannel`` keywords (``name``, ``url``, ...)."""
        super().__init__(**options)
        self._username = username
        self._avatar_url = avatar_url

    def build_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The Discord message for ``payload``, within Discord's limits."""
        notification = Notification.from_payload(payload)

        def fits(message: Message) -> bool:
            return (
                len(message.text) <= CONTENT_MAX
                and len(message.firing) <= EMBED_DESCRIPTION_MAX
                and len(message.resolved) <= EMBED_DESCRIPTION_MAX
                and embed_chars(embeds(message, notification)) <= EMBEDS_TOTAL_MAX
            )

        message = fit_message(self.kind, notification, fits)
        items = embeds(message, notification)
        while embed_chars(items) > EMBEDS_TOTAL_MAX and items:
            items.pop()
        body: dict[str, Any] = {
            "content": truncate_chars(message.text or message.title, CONTENT_MAX),
            "embeds": items,
            "allowed_mentions": {"parse": []},
        }
        if self._username:
            body["username"] = self._username
        if self._avatar_url:
            body["avatar_url"] = self._avatar_url
        return body

    def send(self, payload: dict[str, Any], *, idempotency_key: str = "") -> None:
        """Post ``payload`` to Discord; see ``Channel.send`` for the error contract."""
        body = encode_json(self.build_body(payload))
        response = self.post(self._url, content=body, headers=self.headers(idempotency_key))
        status = response.status_code
        if status == 429:
            raise self.error(
                f"HTTP 429: rate limited{' (global)' if self._global(response) else ''}",
                retry_after=self._retry_after(response),
                response=response,
            )
        hint = HINTS.get(status)
        snippet = self.snippet(response)
        detail = f"{snippet} ({hint})" if hint and snippet else hint or None
        error = self.status_error(response, detail=detail)
        if error is not None:
            raise error

    def _retry_after(self, response: httpx.Response) -> float | None:
        body = self.json_body(response)
        value = body.get("retry_after") if body is not None else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
            if math.isfinite(seconds):
                return max(0.0, seconds)
        return self.retry_after(response)

    def _global(self, response: httpx.Response) -> bool:
        body = self.json_body(response)
        return bool(body.get("global")) if body is not None else False
