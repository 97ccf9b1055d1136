"""Rollbacks with their SLA clocks and time-to-restore statistics, and their JSON twins.

Pages: ``GET /rollbacks`` (open ones first with a live clock, statistics per service; refreshes
itself every 30 s), ``GET /rollbacks/new`` and ``POST /rollbacks`` (record one),
``GET /rollbacks/{id}`` and ``POST /rollbacks/{id}/restore`` (mark it restored).
JSON: ``GET /api/v1/rollbacks``, ``GET /api/v1/rollbacks/stats``, ``GET /api/v1/rollbacks/{id}``,
``POST /api/v1/rollbacks``, ``POST /api/v1/rollbacks/{id}/restore``.

Clocks are computed on the server from ``services.now()``. Queries and writes live in
``daemon.board.rollbacks``; every write is audited in the same transaction. Bad input: the form
comes back with status 400 and the field's problem; the API answers 400 naming the field,
404 for an unknown id and 409 for a rollback already restored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import Body, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT

from daemon.board.errors import InputError
from daemon.board.rollbacks import (
    MAX_TARGET,
    MIN_TARGET,
    NewRollback,
    RollbackAlreadyRestored,
    RollbackNotFound,
    RollbackPage,
    RollbackRow,
    RollbackStats,
    get_rollback,
    known_services,
    list_rollbacks,
    parse_target,
    parse_when,
    record_rollback,
    restore_rollback,
    rollback_row,
    rollback_stats,
)
from daemon.config import RollbacksConfig
from daemon.services import Services
from daemon.store.db import session_scope
from rules.durations import format_duration
from web.auth import audit_write, principal_of
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="rollbacks per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, le=10**9, description="rollbacks to skip")]
RollbackId = Annotated[int, PathParameter(ge=1, le=2**31 - 1, description="the rollback's id")]
Days = Annotated[
    int, QueryParameter(ge=1, le=3650, description="statistics period: the last N days (1-3650)")
]
ServiceFilter = Annotated[
    str | None,
    QueryParameter(
        max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$", description="exact service name"
    ),
]
OpenFilter = Annotated[
    bool | None,
    QueryParameter(name="open", description="true: open rollbacks only; false: restored only"),
]
StateFilter = Annotated[
    str | None,
    QueryParameter(name="state", max_length=16, description="open, restored or empty (all)"),
]
REFRESH_SECONDS = 30
MIN_TARGET_SECONDS = int(MIN_TARGET.total_seconds())
MAX_TARGET_SECONDS = int(MAX_TARGET.total_seconds())
MISSING = "\u2013"


@dataclass
class RollbackForm:
    """The record form's fields, as typed (``_csrf_token`` is checked by the middleware)."""

    service: str = ""
    from_version: str = ""
    to_version: str = ""
    reason: str = ""
    owner: str = ""
    incident_url: str = ""
    started_at: str = ""
    """``2026-08-20T09:30`` in UTC; empty = now."""
    sla_target: str = ""
    """A duration like ``4h``; empty = the configured target for the service."""


@dataclass
class RestoreForm:
    """The restore form: ``restored_at`` in UTC, empty = now."""

    restored_at: str = ""


@dataclass
class RollbackCreate:
    """A rollback to record. ``started_at`` defaults to now (no zone = UTC);
    ``sla_target_seconds`` (60 s to 365 days) defaults to the configured target for the service
    (``rollbacks.services``, else ``rollbacks.default_target``). ``incident_url``: http(s) only."""

    service: str
    from_version: str
    to_version: str
    reason: str = ""
    owner: str = ""
    incident_url: str = ""
    started_at: datetime | None = None
    sla_target_seconds: int | None = None


@dataclass
class RollbackRestore:
    """When service was restored; defaults to now, must not be before the start."""

    restored_at: datetime | None = None


def sla_policy(services: Services) -> RollbacksConfig:
    """The ``rollbacks`` config section the process was started with (SLA targets)."""
    return services.rollbacks


def human_duration(seconds: int | float | None) -> str:
    """``3h 50m``, ``2d 4h``, ``45s``: coarse, for reading a clock at a glance."""
    if seconds is None:
        return MISSING
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _input_error(exc: InputError) -> ValidationException:
    return ValidationException(
        detail=f"Validation failed: {exc.field}: {exc.reason}",
        extra=[{"key": exc.field, "message": exc.reason, "source": "body"}],
    )


def _can_write(request: Request[Any, Any, Any]) -> bool:
    principal = principal_of(request)
    return principal is not None and principal.allows("editor")


def _create(request: Request[Any, Any, Any], services: Services, new: NewRollback) -> RollbackRow:
    """Record and audit ``new``; raises ``InputError``."""
    now = services.now()
    principal = principal_of(request)
    with session_scope(services.engine) as session:
        rollback = record_rollback(
            session,
            new,
            policy=sla_policy(services),
            created_by=principal.actor if principal is not None else "",
            now=now,
        )
        audit_write(
            request,
            session,
            "rollback.create",
            f"rollback:{rollback.id}",
            {
                "service": rollback.service,
                "from_version": rollback.from_version,
                "to_version": rollback.to_version,
                "owner": rollback.owner,
                "started_at": rollback.started_at.isoformat(),
                "sla_target_seconds": rollback.sla_target_seconds,
            },
        )
        return rollback_row(rollback, now)


def _restore(
    request: Request[Any, Any, Any],
    services: Services,
    rollback_id: RollbackId,
    restored_at: datetime | None,
) -> RollbackRow:
    """Mark restored and audit; raises what ``restore_rollback`` raises."""
    now = services.now()
    with session_scope(services.engine) as session:
        rollback = restore_rollback(session, rollback_id, restored_at=restored_at, now=now)
        row = rollback_row(rollback, now)
        audit_write(
            request,
            session,
            "rollback.restore",
            f"rollback:{rollback_id}",
            {
                "service": row.service,
                "restored_at": row.restored_at.isoformat() if row.restored_at else None,
                "time_to_restore_seconds": row.time_to_restore_seconds,
                "sla": row.sla,
            },
        )
        return row


def _list_link(service: str | None, state: str, days: int, limit: int, offset: int) -> str:
    query: dict[str, str | int] = {"days": days, "limit": limit, "offset": offset}
    if service:
        query["service"] = service
    if state:
        query["state"] = state
    return f"/rollbacks?{urlencode(query)}"


def _form_context(services: Services, form: RollbackForm, error: str = "") -> dict[str, Any]:
    policy = sla_policy(services)
    with session_scope(services.engine) as session:
        names = known_services(session)
    return {
        "title": services.title,
        "form": form,
        "error": error,
        "now_local": services.now().strftime("%Y-%m-%dT%H:%M"),
        "default_target": format_duration(policy.default_target),
        "service_targets": {
            name: format_duration(target) for name, target in sorted(policy.services.items())
        },
        "services": sorted(set(names) | set(policy.services)),
    }


def _detail_context(
    request: Request[Any, Any, Any], services: Services, row: RollbackRow, error: str = ""
) -> dict[str, Any]:
    return {
        "title": services.title,
        "row": row,
        "error": error,
        "can_write": _can_write(request),
        "as_of": services.now(),
        "now_local": services.now().strftime("%Y-%m-%dT%H:%M"),
        "duration": human_duration,
    }


def _find(services: Services, rollback_id: RollbackId) -> RollbackRow:
    with session_scope(services.engine) as session:
        row = get_rollback(session, rollback_id, now=services.now())
    if row is None:
        raise NotFoundException(f"no rollback with id {rollback_id}")
    return row


class RollbacksController(Controller):
    """Rollbacks with their SLA clocks and time-to-restore statistics.

    The page lives at ``/rollbacks``; the controller sits at ``/`` so its JSON twin can live
    under ``/api/v1/rollbacks`` beside it.
    """

    path = "/"
    tags = ["rollbacks"]

    # -- pages ----------------------------------------------------------------------------------

    @get("/rollbacks", sync_to_thread=True, include_in_schema=False)
    def rollbacks_page(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        service: ServiceFilter = None,
        show: StateFilter = None,
        days: Days = 90,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Template:
        """Open rollbacks first with their clocks, then restored ones; statistics per service."""
        state = show if show in ("open", "restored") else ""
        is_open = {"open": True, "restored": False}.get(state)
        service = service.strip() if service else None
        now = services.now()
        with session_scope(services.engine) as session:
            page = list_rollbacks(
                session, now=now, service=service, is_open=is_open, limit=limit, offset=offset
            )
            stats = rollback_stats(session, now=now, days=days)
            names = known_services(session)
        newer = (
            _list_link(service, state, days, limit, max(offset - limit, 0)) if offset > 0 else None
        )
        older = (
            _list_link(service, state, days, limit, offset + limit)
            if offset + limit < page.total
            else None
        )
        policy = sla_policy(services)
        return Template(
            template_name="rollbacks.html.j2",
            context={
                "title": services.title,
                "page": page,
                "stats": stats,
                "filters": {"service": service or "", "state": state, "days": days},
                "services": names,
                "newer": newer,
                "older": older,
                "can_write": _can_write(request),
                "refresh_seconds": REFRESH_SECONDS,
                "default_target": format_duration(policy.default_target),
                "duration": human_duration,
            },
        )

    @get("/rollbacks/new", sync_to_thread=True, include_in_schema=False)
    def new_rollback_page(self, services: ServicesDep) -> Template:
        """The form that records a rollback."""
        return Template(
            template_name="rollbacks_new.html.j2", context=_form_context(services, RollbackForm())
        )

    @post("/rollbacks", sync_to_thread=True, include_in_schema=False)
    def record_from_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: Annotated[RollbackForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        """Record a rollback and go to the list (303), or show the form again with the problem."""
        try:
            new = NewRollback(
                service=data.service,
                from_version=data.from_version,
                to_version=data.to_version,
                reason=data.reason,
                owner=data.owner,
                incident_url=data.incident_url,
                started_at=parse_when("started_at", data.started_at),
                sla_target=parse_target("sla_target", data.sla_target),
            )
            row = _create(request, services, new)
        except InputError as exc:
            return Template(
                template_name="rollbacks_new.html.j2",
                context=_form_context(services, data, f"{exc.field}: {exc.reason}"),
                status_code=HTTP_400_BAD_REQUEST,
            )
        return Redirect(f"/rollbacks#rollback-{row.id}", status_code=303)

    @get("/rollbacks/{rollback_id:int}", sync_to_thread=True, include_in_schema=False)
    def rollback_page(
        self, request: Request[Any, Any, Any], services: ServicesDep, rollback_id: RollbackId
    ) -> Template:
        """One rollback with its clock, and the form that marks it restored."""
        row = _find(services, rollback_id)
        return Template(
            template_name="rollbacks_detail.html.j2",
            context=_detail_context(request, services, row),
        )

    @post("/rollbacks/{rollback_id:int}/restore", sync_to_thread=True, include_in_schema=False)
    def restore_from_form(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        rollback_id: RollbackId,
        data: Annotated[RestoreForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        """Mark a rollback restored and go to the list (303), or show the problem."""
        try:
            restored_at = parse_when("restored_at", data.restored_at)
            _restore(request, services, rollback_id, restored_at)
        except RollbackNotFound as exc:
            raise NotFoundException(str(exc)) from None
        except (InputError, RollbackAlreadyRestored) as exc:
            conflict = isinstance(exc, RollbackAlreadyRestored)
            status = HTTP_409_CONFLICT if conflict else HTTP_400_BAD_REQUEST
            message = str(exc)
            row = _find(services, rollback_id)
            return Template(
                template_name="rollbacks_detail.html.j2",
                context=_detail_context(request, services, row, message),
                status_code=status,
            )
        return Redirect(f"/rollbacks#rollback-{rollback_id}", status_code=303)

    # -- JSON -----------------------------------------------------------------------------------

    @get("/api/v1/rollbacks", sync_to_thread=True)
    def list_api(
        self,
        services: ServicesDep,
        service: ServiceFilter = None,
        is_open: OpenFilter = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RollbackPage:
        """Rollbacks with their SLA clocks as of now: open ones first (longest open first),
        then restored ones (newest first)."""
        with session_scope(services.engine) as session:
            return list_rollbacks(
                session,
                now=services.now(),
                service=service or None,
                is_open=is_open,
                limit=limit,
                offset=offset,
            )

    @get("/api/v1/rollbacks/stats", sync_to_thread=True)
    def stats_api(
        self, services: ServicesDep, days: Days = 90, service: ServiceFilter = None
    ) -> RollbackStats:
        """Per service, over the rollbacks started in the last ``days`` days: count, open,
        restored, breaches, median and p90 time to restore (seconds)."""
        with session_scope(services.engine) as session:
            return rollback_stats(session, now=services.now(), days=days, service=service or None)

    @get("/api/v1/rollbacks/{rollback_id:int}", sync_to_thread=True)
    def get_api(self, services: ServicesDep, rollback_id: RollbackId) -> RollbackRow:
        """One rollback with its SLA clock; 404 when there is none with this id."""
        return _find(services, rollback_id)

    @post("/api/v1/rollbacks", sync_to_thread=True, status_code=201)
    def create_api(
        self, request: Request[Any, Any, Any], services: ServicesDep, data: JSONBody[RollbackCreate]
    ) -> RollbackRow:
        """Record a rollback (editor); 400 names the bad field."""
        seconds = data.sla_target_seconds
        try:
            if seconds is not None and not MIN_TARGET_SECONDS <= seconds <= MAX_TARGET_SECONDS:
                raise InputError("sla_target", "expected between 1m and 365d")
            new = NewRollback(
                service=data.service,
                from_version=data.from_version,
                to_version=data.to_version,
                reason=data.reason,
                owner=data.owner,
                incident_url=data.incident_url,
                started_at=data.started_at,
                sla_target=timedelta(seconds=seconds) if seconds is not None else None,
            )
            return _create(request, services, new)
        except InputError as exc:
            if exc.field == "sla_target":
                exc = InputError("sla_target_seconds", "expected 60 to 31536000 seconds")
            raise _input_error(exc) from None

    @post("/api/v1/rollbacks/{rollback_id:int}/restore", sync_to_thread=True, status_code=200)
    def restore_api(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        rollback_id: RollbackId,
        data: JSONBody[RollbackRestore | None] = None,
    ) -> RollbackRow:
        """Mark a rollback restored (editor): 404 unknown id, 409 already restored, 400 a time
        before the start or in the future."""
        try:
            return _restore(
                request, services, rollback_id, data.restored_at if data is not None else None
            )
        except RollbackNotFound as exc:
            raise NotFoundException(str(exc)) from None
        except RollbackAlreadyRestored as exc:
            raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
        except InputError as exc:
            raise _input_error(exc) from None
