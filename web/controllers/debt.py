"""The tech-debt board: columns backlog / planned / in progress / done (``/debt``), an item's
page (``/debt/{id}``), create and edit forms, moving and closing, comments, and raising an item
from an alert or an anomaly in one click (``POST /debt/from-alert/{fingerprint}``,
``POST /debt/from-anomaly/{id}``); the JSON twins under ``/api/v1/debt``.

Forms POST with a CSRF token and answer 303 (Post/Redirect/Get); a form with bad fields comes
back with each error beside its input (400). The API answers bad fields with 400 naming each
field. There is no DELETE: closing (moving to ``done``) is an item's end state, and the audit
log keeps the history. Every write is audited in its transaction (``debt.create``,
``debt.update``, ``debt.move``, ``debt.close``, ``debt.comment``, ``debt.raise``; target
``debt:<id>``); a write that changes nothing records nothing. Ordering and cost of delay:
``daemon.board.debt``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_400_BAD_REQUEST

from daemon.board import debt as board
from daemon.board.comments import CommentRow, FieldErrors, ItemNotFound
from daemon.board.debt import DebtBoard, DebtDetail, DebtFilter, DebtPage, Raised
from daemon.board.debt_fields import STATUSES, clean_fields
from daemon.services import Services
from daemon.store.db import session_scope
from rules.debt import SEVERITIES
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
    invalid,
    not_found,
)
from web.controllers.debt_bodies import (
    FORM_FIELDS,
    DebtCreate,
    DebtForm,
    DebtPatch,
    MoveBody,
    MoveForm,
    Severity,
    Status,
    form_values,
    given,
)
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=LIMIT_MAX, description="items per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, le=OFFSET_MAX, description="items to skip")]
Text = Annotated[str | None, QueryParameter(max_length=255)]


def _page(services: Services, name: str, status_code: int = 200, **context: Any) -> Template:
    context.update(
        title=services.title,
        statuses=STATUSES,
        labels=board.STATUS_LABELS,
        severities=SEVERITIES,
    )
    return Template(template_name=name, context=context, status_code=status_code)


def _form_page(
    services: Services,
    values: dict[str, str],
    *,
    item_id: int | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    code = HTTP_400_BAD_REQUEST if errors else HTTP_200_OK
    return _page(
        services, "debt_form.html.j2", code, values=values, item_id=item_id, errors=errors or {}
    )


def _detail(services: Services, item_id: int) -> DebtDetail:
    try:
        with session_scope(services.engine) as session:
            return board.get_item(session, item_id, services.now())
    except ItemNotFound as exc:
        raise not_found(exc) from None


def _detail_page(
    services: Services, item_id: int, *, comment_error: str = "", status_code: int = 200
) -> Template:
    detail = _detail(services, item_id)
    return _page(
        services,
        "debt_detail.html.j2",
        status_code,
        detail=detail,
        item=detail.item,
        comment_error=comment_error,
    )


def _create(request: Request[Any, Any, Any], services: Services, fields: dict[str, Any]) -> int:
    """Create and audit; raises ``FieldErrors``."""
    with session_scope(services.engine) as session:
        row = board.create_item(session, fields, services.now())
        audit_write(request, session, "debt.create", f"debt:{row.id}", {"title": row.title})
    return row.id


def _update(
    request: Request[Any, Any, Any], services: Services, item_id: int, changes: dict[str, Any]
) -> None:
    """Apply changes and audit them; raises ``ItemNotFound`` or ``FieldErrors``."""
    with session_scope(services.engine) as session:
        changed = board.update_item(session, item_id, changes, services.now())
        if changed:
            audit_write(request, session, "debt.update", f"debt:{item_id}", {"fields": changed})


def _move(request: Request[Any, Any, Any], services: Services, item_id: int, status: str) -> None:
    """Move and audit (``debt.close`` when the target is done); raises ``ItemNotFound`` or
    ``FieldErrors``."""
    target = clean_fields({"status": status})["status"]
    with session_scope(services.engine) as session:
        before = board.move_item(session, item_id, target, services.now())
        if before is not None:
            action = "debt.close" if target == board.DONE else "debt.move"
            details = {"from": before, "to": target}
            audit_write(request, session, action, f"debt:{item_id}", details)


def _comment(
    request: Request[Any, Any, Any], services: Services, item_id: int, body: str
) -> CommentRow:
    with session_scope(services.engine) as session:
        row = board.comment(session, item_id, actor(request), body, services.now())
        audit_write(request, session, "debt.comment", f"debt:{item_id}", {"comment": row.id})
    return row


def _raise(
    request: Request[Any, Any, Any], services: Services, kind: str, ref: str | int
) -> Raised:
    """Raise from an alert or anomaly (audited when created); raises ``ItemNotFound``."""
    try:
        with session_scope(services.engine) as session:
            if kind == "alert":
                raised = board.raise_from_alert(session, str(ref), services.now())
            else:
                raised = board.raise_from_anomaly(session, int(ref), services.now())
            if raised.created:
                details = {"source_kind": kind, "source_ref": str(ref)}
                audit_write(request, session, "debt.raise", f"debt:{raised.item.id}", details)
    except ItemNotFound as exc:
        raise not_found(exc) from None
    return raised


def _raised_response(services: Services, raised: Raised) -> Response[DebtDetail]:
    code = HTTP_201_CREATED if raised.created else HTTP_200_OK
    return Response(_detail(services, raised.item.id), status_code=code)


class DebtController(Controller):
    """The tech-debt board."""

    path = "/"
    tags = ["debt"]

    # -- pages --------------------------------------------------------------------------------

    @get("/debt", sync_to_thread=True, include_in_schema=False)
    def board_page(self, services: ServicesDep) -> Template:
        """The four columns, each ordered by cost of delay (done: newest closed first)."""
        with session_scope(services.engine) as session:
            columns = board.board(session, services.now())
        return _page(services, "debt.html.j2", board=columns)

    @get("/debt/new", sync_to_thread=False, include_in_schema=False)
    def new_page(self, services: ServicesDep) -> Template:
        """The create form."""
        return _form_page(services, {name: getattr(DebtForm(), name) for name in FORM_FIELDS})

    @post("/debt", sync_to_thread=True, include_in_schema=False)
    def create_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: URLEncodedBody[DebtForm],
    ) -> Redirect | Template:
        """Create an item; bad fields re-show the form with each reason (400)."""
        values = {name: getattr(data, name) for name in FORM_FIELDS}
        try:
            item_id = _create(request, services, dict(values))
        except FieldErrors as exc:
            return _form_page(services, values, errors=exc.errors)
        return Redirect(f"/debt/{item_id}", status_code=303)

    @get("/debt/{item_id:int}", sync_to_thread=True, include_in_schema=False)
    def detail_page(self, services: ServicesDep, item_id: ItemId) -> Template:
        """One item: every field, where it came from, moves and comments."""
        return _detail_page(services, item_id)

    @get("/debt/{item_id:int}/edit", sync_to_thread=True, include_in_schema=False)
    def edit_page(self, services: ServicesDep, item_id: ItemId) -> Template:
        """The edit form, filled in."""
        row = _detail(services, item_id).item
        return _form_page(services, form_values(row), item_id=item_id)

    @post("/debt/{item_id:int}/edit", sync_to_thread=True, include_in_schema=False)
    def edit_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: URLEncodedBody[DebtForm],
    ) -> Redirect | Template:
        """Save the edit form; bad fields re-show it with each reason (400)."""
        values = {name: getattr(data, name) for name in FORM_FIELDS}
        try:
            _update(request, services, item_id, dict(values))
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            return _form_page(services, values, item_id=item_id, errors=exc.errors)
        return Redirect(f"/debt/{item_id}", status_code=303)

    @post("/debt/{item_id:int}/move", sync_to_thread=True, include_in_schema=False)
    def move_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: URLEncodedBody[MoveForm],
    ) -> Redirect:
        """Move a card to another column; back to ``next`` (the board by default)."""
        try:
            _move(request, services, item_id, data.status)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            raise invalid(request, exc) from None
        return Redirect(back_to(data.next, f"/debt#item-{item_id}"), status_code=303)

    @post("/debt/{item_id:int}/close", sync_to_thread=True, include_in_schema=False)
    def close_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: URLEncodedBody[ActionForm],
    ) -> Redirect:
        """Close an item (move it to done)."""
        try:
            _move(request, services, item_id, board.DONE)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        return Redirect(back_to(data.next, f"/debt/{item_id}"), status_code=303)

    @post("/debt/{item_id:int}/comments", sync_to_thread=True, include_in_schema=False)
    def comment_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: URLEncodedBody[CommentForm],
    ) -> Redirect | Template:
        """Add a comment; an empty one re-shows the page with the reason (400)."""
        try:
            _comment(request, services, item_id, data.body)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            reason = exc.errors.get("body", str(exc))
            return _detail_page(
                services, item_id, comment_error=reason, status_code=HTTP_400_BAD_REQUEST
            )
        return Redirect(f"/debt/{item_id}#comments", status_code=303)

    @post("/debt/from-alert/{fingerprint:str}", sync_to_thread=True, include_in_schema=False)
    def from_alert_form(
        self, request: Request[Any, Any, Any], services: ServicesDep, fingerprint: FromPath[str]
    ) -> Redirect:
        """Raise an item from an alert (or find the one raised before) and show it."""
        raised = _raise(request, services, "alert", fingerprint)
        return Redirect(f"/debt/{raised.item.id}", status_code=303)

    @post("/debt/from-anomaly/{anomaly_id:int}", sync_to_thread=True, include_in_schema=False)
    def from_anomaly_form(
        self, request: Request[Any, Any, Any], services: ServicesDep, anomaly_id: ItemId
    ) -> Redirect:
        """Raise an item from an anomaly (or find the one raised before) and show it."""
        raised = _raise(request, services, "anomaly", anomaly_id)
        return Redirect(f"/debt/{raised.item.id}", status_code=303)

    # -- JSON ---------------------------------------------------------------------------------

    @get("/api/v1/debt", sync_to_thread=True)
    def list_items(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        limit: Limit = 50,
        offset: Offset = 0,
        status: FromQuery[Status | None] = None,
        owner: Text = None,
        severity: FromQuery[Severity | None] = None,
    ) -> DebtPage:
        """Items column by column (backlog, planned, in progress, done), each column by cost of
        delay, highest first (done: newest closed first). Filters are exact."""
        filters = DebtFilter(status=status, owner=owner or None, severity=severity)
        try:
            with session_scope(services.engine) as session:
                now = services.now()
                return board.list_items(session, filters, now, limit=limit, offset=offset)
        except FieldErrors as exc:
            raise invalid(request, exc, "query") from None

    @get("/api/v1/debt/board", sync_to_thread=True)
    def get_board(self, services: ServicesDep) -> DebtBoard:
        """The board as the page shows it: columns (100 items each at most) and open interest."""
        with session_scope(services.engine) as session:
            return board.board(session, services.now())

    @post("/api/v1/debt", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create_item(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[DebtCreate],
    ) -> DebtDetail:
        """Create an item; 400 names each bad field."""
        try:
            item_id = _create(request, services, given(data))
        except FieldErrors as exc:
            raise invalid(request, exc) from None
        return _detail(services, item_id)

    @get("/api/v1/debt/{item_id:int}", sync_to_thread=True)
    def get_item(self, services: ServicesDep, item_id: ItemId) -> DebtDetail:
        """One item with its comments."""
        return _detail(services, item_id)

    @patch("/api/v1/debt/{item_id:int}", sync_to_thread=True)
    def update_item(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: JSONBody[DebtPatch],
    ) -> DebtDetail:
        """Change the fields given; 400 names each bad field (and nothing changes)."""
        try:
            _update(request, services, item_id, given(data))
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            raise invalid(request, exc) from None
        return _detail(services, item_id)

    @post("/api/v1/debt/{item_id:int}/move", status_code=HTTP_200_OK, sync_to_thread=True)
    def move_item(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: JSONBody[MoveBody],
    ) -> DebtDetail:
        """Move an item to another column (``done`` closes it; moving out reopens it)."""
        try:
            _move(request, services, item_id, data.status)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        return _detail(services, item_id)

    @post("/api/v1/debt/{item_id:int}/comments", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def add_comment(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        item_id: ItemId,
        data: JSONBody[CommentBody],
    ) -> CommentRow:
        """Comment on an item (``body``: 1-10,000 characters)."""
        try:
            return _comment(request, services, item_id, data.body)
        except ItemNotFound as exc:
            raise not_found(exc) from None
        except FieldErrors as exc:
            raise invalid(request, exc) from None

    @post("/api/v1/debt/from-alert/{fingerprint:str}", sync_to_thread=True)
    def raise_from_alert(
        self, request: Request[Any, Any, Any], services: ServicesDep, fingerprint: FromPath[str]
    ) -> Response[DebtDetail]:
        """Raise an item from an alert: 201 when created, 200 with the existing item."""
        return _raised_response(services, _raise(request, services, "alert", fingerprint))

    @post("/api/v1/debt/from-anomaly/{anomaly_id:int}", sync_to_thread=True)
    def raise_from_anomaly(
        self, request: Request[Any, Any, Any], services: ServicesDep, anomaly_id: ItemId
    ) -> Response[DebtDetail]:
        """Raise an item from an anomaly (monthly cost = its impact x 30, an estimate): 201
        when created, 200 with the existing item."""
        return _raised_response(services, _raise(request, services, "anomaly", anomaly_id))
