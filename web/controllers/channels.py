"""Notification channels: ``GET /channels`` (page), test send, re-enable, and the JSON twins.

The page and ``GET /api/v1/channels`` list each configured channel: type, enabled or disabled
(after a permanent error), last success, last error (the channel's redacted message: never its
URL or secrets), and the notifications it still has pending. ``POST
/channels/{name}/test`` (and ``/api/v1/channels/{name}/test``) sends the test notification now
and shows the outcome; ``POST /channels/{name}/enable`` (and the API twin) re-enables a disabled
channel, which is a config-like write: ``admin`` only. Every write is audited
(``channel.test``, ``channel.enable``). An unknown channel is a 404.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from daemon.board.channels import (
    ChannelNotFound,
    ChannelPage,
    ChannelRow,
    EnableOutcome,
    ProbeOutcome,
    channel_rows,
    enable_configured_channel,
    find_channel,
    record_test_outcome,
    send_test_notification,
)
from daemon.services import Services
from daemon.store.db import session_scope
from web.auth import audit_write, requires_role
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="items per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="items to skip")]
Notice = Annotated[str | None, QueryParameter(max_length=255)]


def board_url(services: Services) -> str:
    """Where people reach the board (links in the test notification)."""
    web = services.web
    return web.external_url.rstrip("/") or f"http://{web.host}:{web.port}"


def _rows(services: Services) -> list[ChannelRow]:
    with session_scope(services.engine) as session:
        return channel_rows(session, services.channels, now=services.now())


def _test(request: Request[Any, Any, Any], services: Services, name: str) -> ProbeOutcome:
    """Send the test notification (blocking), record and audit the outcome; 404 if unknown."""
    try:
        channel = find_channel(services.channels, name)
    except ChannelNotFound as exc:
        raise NotFoundException(detail=exc.message) from None
    outcome = send_test_notification(
        channel,
        receiver=services.notify_receiver,
        external_url=board_url(services),
        now=services.now(),
    )
    details: dict[str, Any] = {"ok": outcome.ok}
    if outcome.error:
        details["error"] = outcome.error
    with session_scope(services.engine) as session:
        record_test_outcome(session, outcome)
        audit_write(request, session, "channel.test", name, details)
    return outcome


def _enable(request: Request[Any, Any, Any], services: Services, name: str) -> EnableOutcome:
    try:
        with session_scope(services.engine) as session:
            outcome = enable_configured_channel(session, services.channels, name)
            details = {"was_disabled": outcome.was_disabled, "held": outcome.held}
            audit_write(request, session, "channel.enable", name, details)
    except ChannelNotFound as exc:
        raise NotFoundException(detail=exc.message) from None
    return outcome


def _back(name: str, **query: str) -> Redirect:
    target = f"/channels?{urlencode(query)}#channel-{quote(name, safe='')}"
    return Redirect(target, status_code=303)


class ChannelsController(Controller):
    """Notification channels: status, test send, re-enable."""

    path = "/"
    tags = ["channels"]

    @get("/channels", sync_to_thread=True, include_in_schema=False)
    def channels_page(
        self,
        services: ServicesDep,
        tested: Notice = None,
        result: Notice = None,
        enabled: Notice = None,
    ) -> Template:
        """Every configured channel with its health and backlog."""
        rows = _rows(services)
        return Template(
            template_name="channels.html.j2",
            context={
                "title": services.title,
                "rows": rows,
                "tested": next((r for r in rows if r.name == tested), None),
                "test_ok": result == "ok",
                "enabled": next((r for r in rows if r.name == enabled), None),
            },
        )

    @post("/channels/{name:str}/test", sync_to_thread=True, include_in_schema=False)
    def test_form(
        self, request: Request[Any, Any, Any], services: ServicesDep, name: FromPath[str]
    ) -> Redirect:
        """Send the test notification now; 303 to the page, which shows the outcome."""
        outcome = _test(request, services, name)
        return _back(name, tested=name, result="ok" if outcome.ok else "failed")

    @post(
        "/channels/{name:str}/enable",
        guards=[requires_role("admin")],
        sync_to_thread=True,
        include_in_schema=False,
    )
    def enable_form(
        self, request: Request[Any, Any, Any], services: ServicesDep, name: FromPath[str]
    ) -> Redirect:
        """Re-enable a channel disabled by a permanent error (admin); 303 to the page."""
        _enable(request, services, name)
        return _back(name, enabled=name)

    @get("/api/v1/channels", sync_to_thread=True)
    def channels(self, services: ServicesDep, limit: Limit = 50, offset: Offset = 0) -> ChannelPage:
        """Configured channels by name, with health and pending notifications."""
        rows = _rows(services)
        return ChannelPage(rows[offset : offset + limit], len(rows), limit, offset)

    @post("/api/v1/channels/{name:str}/test", status_code=200, sync_to_thread=True)
    def test_channel(
        self, request: Request[Any, Any, Any], services: ServicesDep, name: FromPath[str]
    ) -> ProbeOutcome:
        """Send the test notification now; ``ok`` false (with ``error``) when it failed."""
        return _test(request, services, name)

    @post(
        "/api/v1/channels/{name:str}/enable",
        status_code=200,
        guards=[requires_role("admin")],
        sync_to_thread=True,
    )
    def enable_channel(
        self, request: Request[Any, Any, Any], services: ServicesDep, name: FromPath[str]
    ) -> EnableOutcome:
        """Re-enable a channel disabled by a permanent error (admin); its held rows go out."""
        return _enable(request, services, name)
