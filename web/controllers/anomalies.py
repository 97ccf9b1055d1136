"""Cost anomalies: the list (``/anomalies``) and one anomaly (``/anomalies/{id}``) with its
comments; acknowledge, resolve, reopen and comment as forms (editor; CSRF; Post/Redirect/Get);
and the JSON twins under ``/api/v1/anomalies``.

Every write is audited (``anomaly.acknowledge|resolve|reopen|comment``, target
``anomaly:<id>``) in the same transaction; an action that changes nothing (acknowledging an
acknowledged anomaly) writes nothing. Acknowledging a resolved anomaly is refused with 409.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT
from sqlmodel import Session

from daemon.board import anomalies as board
from daemon.board.anomalies import AnomalyDetail, AnomalyFilter, AnomalyPage, TransitionRefused
from daemon.board.comments import CommentRow, FieldErrors, ItemNotFound
from daemon.services import Services
from daemon.store.db import session_scope
from web.auth import audit_write
from web.controllers.board_items import (
    LIMIT_MAX,
    OFFSET_MAX,
    ActionForm,
    CommentBody,
    CommentForm,
    ItemId,
    actor,
    back_to,
    conflict,
    invalid,
    not_found,
)
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=LIMIT_MAX, description="rows per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, le=OFFSET_MAX, description="rows to skip")]
Text = Annotated[str | None, QueryParameter(max_length=255)]
Status = Literal["open", "acknowledged", "resolved"]
FILTERS = ("status", "provider", "service", "account", "day_from", "day_to")
Action = Callable[[Session, int, str, datetime], bool]
ACTIONS: dict[str, Action] = {
    "acknowledge": board.acknowledge,
    "resolve": board.resolve,
    "reopen": lambda session, anomaly_id, _actor, now: board.reopen(session, anomaly_id, now),
}


def _list(services: Services, filters: AnomalyFilter, limit: int, offset: int) -> AnomalyPage:
    with session_scope(services.engine) as session:
        return board.list_anomalies(session, filters, limit=limit, offset=offset)


def _detail(services: Services, anomaly_id: int) -> AnomalyDetail:
    try:
        with session_scope(services.engine) as session:
            return board.get_anomaly(session, anomaly_id)
    except ItemNotFound as exc:
        raise not_found(exc) from None


def _act(request: Request[Any, Any, Any], services: Services, anomaly_id: int, action: str) -> None:
    """Run ``action`` and audit it; raises ``ItemNotFound`` or ``TransitionRefused``."""
    with session_scope(services.engine) as session:
        if ACTIONS[action](session, anomaly_id, actor(request), services.now()):
            audit_write(request, session, f"anomaly.{action}", f"anomaly:{anomaly_id}")


def _comment(
    request: Request[Any, Any, Any], services: Services, anomaly_id: int, body: str
) -> CommentRow:
    """Add and audit a comment; raises ``ItemNotFound`` or ``FieldErrors``."""
    with session_scope(services.engine) as session:
        row = board.comment(session, anomaly_id, actor(request), body, services.now())
        audit_write(
            request, session, "anomaly.comment", f"anomaly:{anomaly_id}", {"comment": row.id}
        )
    return row


def _form_act(
    request: Request[Any, Any, Any],
    services: Services,
    anomaly_id: int,
    action: str,
    next: str,
) -> Redirect | Template:
    try:
        _act(request, services, anomaly_id, action)
    except ItemNotFound as exc:
        raise not_found(exc) from None
    except TransitionRefused as exc:
        detail = _detail(services, anomaly_id)
        return _detail_page(services, detail, error=str(exc), status_code=HTTP_409_CONFLICT)
    return Redirect(back_to(next, f"/anomalies/{anomaly_id}"), status_code=303)


def _link(filters: dict[str, str], limit: int, offset: int) -> str:
    query = {key: value for key, value in filters.items() if value}
    return f"/anomalies?{urlencode({**query, 'limit': limit, 'offset': offset})}"


def _detail_page(
    services: Services,
    detail: AnomalyDetail,
    *,
    error: str = "",
    comment_error: str = "",
    status_code: int = 200,
) -> Template:
    return Template(
        template_name="anomalies_detail.html.j2",
        context={
            "title": services.title,
            "detail": detail,
            "a": detail.anomaly,
            "error": error,
            "comment_error": comment_error,
        },
        status_code=status_code,
    )


class AnomaliesController(Controller):
    """Cost anomalies: list, acknowledge, resolve, reopen, comment."""

    path = "/"
    tags = ["anomalies"]

    # -- pages --------------------------------------------------------------------------------

    @get("/anomalies", sync_to_thread=True, include_in_schema=False)
    def page(
        self,
        services: ServicesDep,
        limit: Limit = 50,
        offset: Offset = 0,
        status: Text = None,
        provider: Text = None,
        service: Text = None,
        account: Text = None,
        day_from: Text = None,
        day_to: Text = None,
    ) -> Template:
        """The list with its filters (empty fields = any) and previous/next links."""
        given = (status, provider, service, account, day_from, day_to)
        raw = {name: value or "" for name, value in zip(FILTERS, given, strict=True)}
        context: dict[str, Any] = {"title": services.title, "raw": raw, "errors": {}}
        try:
            filters = board.parse_filter(**raw)
        except FieldErrors as exc:
            context.update(errors=exc.errors, page=AnomalyPage([], 0, limit, offset))
            context.update(providers=[], services=[], newer=None, older=None)
            return Template("anomalies.html.j2", context=context, status_code=HTTP_400_BAD_REQUEST)
        with session_scope(services.engine) as session:
            page = board.list_anomalies(session, filters, limit=limit, offset=offset)
            providers = board.dimension_values(session, "provider")
            service_names = board.dimension_values(session, "service")
        context.update(
            page=page,
            providers=providers,
            services=service_names,
            newer=_link(raw, limit, max(offset - limit, 0)) if offset > 0 else None,
            older=_link(raw, limit, offset + limit) if offset + limit < page.total else None,
            here=_link(raw, limit, offset),
        )
        return Template(template_name="anomalies.html.j2", context=context)

    @get("/anomalies/{anomaly_id:int}", sync_to_thread=True, include_in_schema=False)
    def detail_page(self, services: ServicesDep, anomaly_id: ItemId) -> Template:
        """One anomaly: figures, root causes, status, actions and comments."""
        return _detail_page(services, _detail(services, anomaly_id))

    @post("/anomalies/{anomaly_id:int}/acknowledge", sync_to_thread=True, include_in_schema=False)
    def acknowledge_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        anomaly_id: ItemId,
        data: URLEncodedBody[ActionForm],
    ) -> Redirect | Template:
        """The acknowledge button; back to ``next`` (or the anomaly)."""
        return _form_act(request, services, anomaly_id, "acknowledge", data.next)

    @post("/anomalies/{anomaly_id:int}/resolve", sync_to_thread=True, include_in_schema=False)
    def resolve_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        anomaly_id: ItemId,
        data: URLEncodedBody[ActionForm],
    ) -> Redirect | Template:
        """The resolve button; back to ``next`` (or the anomaly)."""
        return _form_act(request, services, anomaly_id, "resolve", data.next)

    @post("/anomalies/{anomaly_id:int}/reopen", sync_to_thread=True, include_in_schema=False)
    def reopen_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        anomaly_id: ItemId,
        data: URLEncodedBody[ActionForm],
    ) -> Redirect | Template:
        """The reopen button; back to ``next`` (or the anomaly)."""
        return _form_act(request, services, anomaly_id, "reopen", data.next)

    @post("/anomalies/{anomaly_id:int}/comments", sync_to_thread=True, include_in_schema=False)
    def comment_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        anomaly_id: ItemId,
        data: URLEncodedBody[CommentForm],
    ) -> Redirect | Template:
        """Add a comment; an empty one re-shows the page with the reason (400)."""
        try:
            _comment(request, services, anomaly_id, data.body)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            detail = _detail(services, anomaly_id)
            reason = exc.errors.get("body", str(exc))
            return _detail_page(
                services, detail, comment_error=reason, status_code=HTTP_400_BAD_REQUEST
            )
        return Redirect(f"/anomalies/{anomaly_id}#comments", status_code=303)

    # -- JSON ---------------------------------------------------------------------------------

    @get("/api/v1/anomalies", sync_to_thread=True)
    def list_anomalies(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        limit: Limit = 50,
        offset: Offset = 0,
        status: FromQuery[Status | None] = None,
        provider: Text = None,
        service: Text = None,
        account: Text = None,
        day_from: FromQuery[date | None] = None,
        day_to: FromQuery[date | None] = None,
    ) -> AnomalyPage:
        """Anomalies, newest day first, biggest impact first within a day. Filters are exact
        (``provider``, ``service``, ``account`` are the series' labels); days inclusive."""
        filters = AnomalyFilter(status, provider, service, account, day_from, day_to)
        try:
            board.check_filter(filters)
        except FieldErrors as exc:
            raise invalid(request, exc, "query") from None
        return _list(services, filters, limit, offset)

    @get("/api/v1/anomalies/{anomaly_id:int}", sync_to_thread=True)
    def get_anomaly(self, services: ServicesDep, anomaly_id: ItemId) -> AnomalyDetail:
        """One anomaly with its comments and the tech-debt item raised from it."""
        return _detail(services, anomaly_id)

    @post("/api/v1/anomalies/{anomaly_id:int}/acknowledge", status_code=200, sync_to_thread=True)
    def acknowledge(
        self, request: Request[Any, Any, Any], services: ServicesDep, anomaly_id: ItemId
    ) -> AnomalyDetail:
        """Acknowledge an open anomaly (no change if acknowledged; 409 if resolved)."""
        return _api_act(request, services, anomaly_id, "acknowledge")

    @post("/api/v1/anomalies/{anomaly_id:int}/resolve", status_code=200, sync_to_thread=True)
    def resolve(
        self, request: Request[Any, Any, Any], services: ServicesDep, anomaly_id: ItemId
    ) -> AnomalyDetail:
        """Resolve an open or acknowledged anomaly (no change if resolved)."""
        return _api_act(request, services, anomaly_id, "resolve")

    @post("/api/v1/anomalies/{anomaly_id:int}/reopen", status_code=200, sync_to_thread=True)
    def reopen(
        self, request: Request[Any, Any, Any], services: ServicesDep, anomaly_id: ItemId
    ) -> AnomalyDetail:
        """Put an acknowledged or resolved anomaly back to open."""
        return _api_act(request, services, anomaly_id, "reopen")

    @post("/api/v1/anomalies/{anomaly_id:int}/comments", status_code=201, sync_to_thread=True)
    def add_comment(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        anomaly_id: ItemId,
        data: JSONBody[CommentBody],
    ) -> CommentRow:
        """Comment on an anomaly (``body``: 1-10,000 characters)."""
        try:
            return _comment(request, services, anomaly_id, data.body)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            raise invalid(request, exc) from None


def _api_act(
    request: Request[Any, Any, Any], services: Services, anomaly_id: int, action: str
) -> AnomalyDetail:
    try:
        _act(request, services, anomaly_id, action)
    except ItemNotFound as exc:
        raise not_found(exc) from None
    except TransitionRefused as exc:
        raise conflict(str(exc)) from None
    return _detail(services, anomaly_id)
