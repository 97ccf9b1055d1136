"""Alerts and silences: ``GET /alerts`` (page), the silence form, and their JSON twins.

Pages: ``GET /alerts`` lists firing, pending and recently resolved alerts (``state`` and
``filter`` — an Alertmanager matcher list — narrow it) and the silences;
``GET /alerts/silences/new`` is the silence form (``?fingerprint=`` prefills the alert's labels
as ``=`` matchers); ``POST /alerts/silences`` creates one and ``POST
/alerts/silences/{id}/expire`` ends one (both answer 303). JSON: ``GET /api/v1/alerts``,
``GET``/``POST /api/v1/silences``, ``DELETE /api/v1/silences/{id}`` (expire).

Writes need ``editor`` (the app-wide guard) and are audited (``silence.create``,
``silence.expire``) in the same transaction. Bad input: 400 naming the field (the form page is
shown again with the message); an unknown silence 404; an expired one 409.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import Body, FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_404_NOT_FOUND, HTTP_409_CONFLICT

from daemon.board.alerts import (
    ALERT_STATES,
    DEFAULT_DURATION,
    SILENCE_STATES,
    AlertPage,
    InputError,
    SilencePage,
    SilenceRow,
    alert_matchers,
    create_board_silence,
    list_alerts,
    list_board_silences,
    matcher_lines,
    parse_moment,
    silence_row,
    usable_id,
)
from daemon.notify.silences import SilenceError, SilenceNotFound, expire_silence
from daemon.services import Services
from daemon.store.db import session_scope
from web.auth import audit_write, principal_of
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="items per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="items to skip")]
LabelFilter = Annotated[
    str | None,
    QueryParameter(
        name="filter",
        max_length=2000,
        description='Alertmanager label matchers, e.g. severity="critical" or {team=~"ml.*"}',
    ),
]
# ``state`` is a reserved Litestar parameter name: these read it under another name, and the
# board layer checks the value so that a 400 names ``state`` (not the Python name).
AlertState = Annotated[
    str | None,
    QueryParameter(
        name="state",
        enum=list(ALERT_STATES),
        max_length=16,
        description="firing, pending or resolved (resolved: the last 15 minutes)",
    ),
]
SilenceState = Annotated[
    str | None,
    QueryParameter(
        name="state",
        enum=list(SILENCE_STATES),
        max_length=16,
        description="active, pending or expired",
    ),
]
FormText = Annotated[str | None, QueryParameter(max_length=2000)]
EXPIRED_SHOWN = 10
"""Expired silences listed on the page (the JSON twin pages through all of them)."""
SILENCES_SHOWN = 500


@dataclass
class SilenceForm:
    """The silence form (``_csrf_token`` is checked by the CSRF middleware)."""

    matchers: str = ""
    """One matcher (or braced list) per line."""
    starts_at: str = ""
    ends_at: str = ""
    duration: str = ""
    comment: str = ""


@dataclass
class SilenceCreate:
    """A new silence: an end time or a duration (``2h``), not both; times without a zone are
    UTC; a start in the past (or none) means now."""

    matchers: list[str]
    """Alertmanager matchers, such as ``alertname="GPUIdle"`` or ``{team=~"ml.*"}``."""
    comment: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: str | None = None


@dataclass(frozen=True, slots=True)
class SilencesOverview:
    """The silences block of the page: pending and active ones, and the latest expired."""

    current: list[SilenceRow] = field(default_factory=list)
    expired: list[SilenceRow] = field(default_factory=list)
    expired_total: int = 0


def invalid(error: InputError, source: str) -> ValidationException:
    """A 400 in Litestar's validation shape, naming the field."""
    return ValidationException(
        detail=f"Validation failed: {error}",
        extra=[{"key": error.field, "message": error.reason, "source": source}],
    )


def _author(request: Request[Any, Any, Any]) -> str:
    principal = principal_of(request)
    if principal is None:
        return ""
    return principal.name if principal.kind == "user" else principal.actor


def _alerts(
    services: Services, state: str | None, label_filter: str | None, limit: int, offset: int
) -> AlertPage:
    with session_scope(services.engine) as session:
        return list_alerts(
            session,
            now=services.now(),
            state=state,
            filter=label_filter,
            limit=limit,
            offset=offset,
        )


def _silences(services: Services, state: str | None, limit: int, offset: int) -> SilencePage:
    with session_scope(services.engine) as session:
        return list_board_silences(
            session, now=services.now(), state=state, limit=limit, offset=offset
        )


def _overview(services: Services) -> SilencesOverview:
    now = services.now()
    with session_scope(services.engine) as session:
        active = list_board_silences(session, now=now, state="active", limit=SILENCES_SHOWN)
        pending = list_board_silences(session, now=now, state="pending", limit=SILENCES_SHOWN)
        expired = list_board_silences(session, now=now, state="expired", limit=EXPIRED_SHOWN)
    return SilencesOverview(active.items + pending.items, expired.items, expired.total)


def _page_link(page: AlertPage, offset: int) -> str:
    query: dict[str, str | int] = {"limit": page.limit, "offset": offset}
    if page.state:
        query["state"] = page.state
    if page.filter:
        query["filter"] = page.filter
    return f"/alerts?{urlencode(query)}"


def _form_page(
    services: Services, form: SilenceForm, *, error: str = "", status_code: int = 200
) -> Template:
    return Template(
        template_name="alerts_silence.html.j2",
        context={
            "title": services.title,
            "form": form,
            "error": error,
            "default_duration": DEFAULT_DURATION,
        },
        status_code=status_code,
    )


def _create(
    request: Request[Any, Any, Any],
    services: Services,
    *,
    matchers: list[str],
    comment: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    duration: str | None,
) -> SilenceRow:
    """Create, audit and commit one silence; raises ``InputError``."""
    now = services.now()
    with session_scope(services.engine) as session:
        silence = create_board_silence(
            session,
            matchers=matchers,
            comment=comment,
            author=_author(request),
            now=now,
            starts_at=starts_at,
            ends_at=ends_at,
            duration=duration,
        )
        row = silence_row(session, silence, now)
        details = {"matchers": row.matchers, "starts_at": row.starts_at.isoformat()}
        details |= {"ends_at": row.ends_at.isoformat(), "comment": row.comment}
        audit_write(request, session, "silence.create", silence.id, details)
    logger.info("silence %s created by %s", row.id, row.created_by)
    return row


def _expire(request: Request[Any, Any, Any], services: Services, silence_id: str) -> SilenceRow:
    """Expire, audit and commit; raises 404 or 409."""
    now = services.now()
    if not usable_id(silence_id):
        raise NotFoundException(detail=f"id: no silence {silence_id[:64]!r}")
    try:
        with session_scope(services.engine) as session:
            silence = expire_silence(session, silence_id, now)
            audit_write(request, session, "silence.expire", silence.id)
            row = silence_row(session, silence, now)
    except SilenceNotFound as exc:
        raise NotFoundException(detail=str(exc)) from None
    except SilenceError as exc:
        raise ClientException(detail=str(exc), status_code=HTTP_409_CONFLICT) from None
    return row


class AlertsController(Controller):
    """Alerts (firing, pending, resolved) and silences: list, create, expire."""

    path = "/"
    tags = ["alerts"]

    @get("/alerts", sync_to_thread=True, include_in_schema=False)
    def alerts_page(
        self,
        services: ServicesDep,
        alert_state: AlertState = None,
        label_filter: LabelFilter = None,
        limit: Limit = 50,
        offset: Offset = 0,
        created: FormText = None,
        expired: FormText = None,
    ) -> Template:
        """The alerts and silences page; a bad state or filter shows the page with a 400."""
        error = ""
        try:
            page = _alerts(services, alert_state, label_filter, limit, offset)
        except InputError as exc:
            error = str(exc)
            page = AlertPage(
                [], 0, limit, offset, None, label_filter, dict.fromkeys(ALERT_STATES, 0)
            )
        newer = _page_link(page, max(offset - limit, 0)) if offset > 0 else None
        older = _page_link(page, offset + limit) if offset + limit < page.total else None
        return Template(
            template_name="alerts.html.j2",
            context={
                "title": services.title,
                "page": page,
                "states": ALERT_STATES,
                "silences": _overview(services),
                "error": error,
                "created": created,
                "expired": expired,
                "newer": newer,
                "older": older,
                "now": services.now(),
            },
            status_code=HTTP_400_BAD_REQUEST if error else 200,
        )

    @get("/alerts/silences/new", sync_to_thread=True, include_in_schema=False)
    def silence_form(
        self, services: ServicesDep, fingerprint: FormText = None, matchers: FormText = None
    ) -> Template:
        """The silence form; ``fingerprint`` prefills that alert's labels as ``=`` matchers."""
        form = SilenceForm(matchers=matchers or "", duration=DEFAULT_DURATION)
        if fingerprint:
            with session_scope(services.engine) as session:
                found = alert_matchers(session, fingerprint)
            if found is None:
                error = f"fingerprint: no alert {fingerprint!r} (it may have been dropped)"
                return _form_page(services, form, error=error, status_code=HTTP_404_NOT_FOUND)
            form.matchers = "\n".join(found)
        return _form_page(services, form)

    @post("/alerts/silences", sync_to_thread=True, include_in_schema=False)
    def create_silence_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: Annotated[SilenceForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        """Create a silence from the form; 303 to the page, or the form again with a 400."""
        try:
            row = _create(
                request,
                services,
                matchers=matcher_lines(data.matchers),
                comment=data.comment,
                starts_at=parse_moment(data.starts_at, "starts_at"),
                ends_at=parse_moment(data.ends_at, "ends_at"),
                duration=data.duration if not data.ends_at.strip() else None,
            )
        except InputError as exc:
            return _form_page(services, data, error=str(exc), status_code=HTTP_400_BAD_REQUEST)
        return Redirect(f"/alerts?{urlencode({'created': row.id})}#silences", status_code=303)

    @post("/alerts/silences/{silence_id:str}/expire", sync_to_thread=True, include_in_schema=False)
    def expire_silence_form(
        self, request: Request[Any, Any, Any], services: ServicesDep, silence_id: FromPath[str]
    ) -> Redirect:
        """Expire a silence now; 303 to the page (404 unknown, 409 already expired)."""
        row = _expire(request, services, silence_id)
        return Redirect(f"/alerts?{urlencode({'expired': row.id})}#silences", status_code=303)

    @get("/api/v1/alerts", sync_to_thread=True)
    def alerts(
        self,
        services: ServicesDep,
        alert_state: AlertState = None,
        label_filter: LabelFilter = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> AlertPage:
        """Firing, pending and recently resolved alerts; each says which silence mutes it."""
        try:
            return _alerts(services, alert_state, label_filter, limit, offset)
        except InputError as exc:
            raise invalid(exc, "query") from None

    @get("/api/v1/silences", sync_to_thread=True)
    def silences(
        self,
        services: ServicesDep,
        silence_state: SilenceState = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> SilencePage:
        """Silences: pending and active first (soonest end first), then expired (latest first)."""
        try:
            return _silences(services, silence_state, limit, offset)
        except InputError as exc:
            raise invalid(exc, "query") from None

    @post("/api/v1/silences", sync_to_thread=True)
    def create_silence(
        self, request: Request[Any, Any, Any], services: ServicesDep, data: JSONBody[SilenceCreate]
    ) -> SilenceRow:
        """Create a silence (author: the token's or user's name); 400 names a bad field."""
        try:
            return _create(
                request,
                services,
                matchers=list(data.matchers),
                comment=data.comment,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                duration=data.duration,
            )
        except InputError as exc:
            raise invalid(exc, "body") from None

    @delete("/api/v1/silences/{silence_id:str}", status_code=200, sync_to_thread=True)
    def expire_silence(
        self, request: Request[Any, Any, Any], services: ServicesDep, silence_id: FromPath[str]
    ) -> SilenceRow:
        """Expire a silence now (404 unknown, 409 already expired)."""
        return _expire(request, services, silence_id)


__all__ = ["SILENCE_STATES", "AlertsController", "SilenceCreate", "SilenceForm"]
