"""The audit log for admins: ``GET /admin/audit`` (page) and ``GET /api/v1/audit`` (JSON).

Both list entries newest first with ``limit`` (1-500) and ``offset`` pagination and exact
``actor`` / ``action`` filters; both need the ``admin`` role.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.params import QueryParameter
from litestar.response import Template

from daemon.auth.audit import AuditFilter, count_entries, list_entries
from daemon.services import Services
from daemon.store.db import session_scope
from daemon.store.models import AuditEntry
from web.auth.guards import requires_role
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="entries per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, description="entries to skip")]
ActorFilter = Annotated[
    str | None, QueryParameter(max_length=255, description="exact actor, e.g. user:alice")
]
ActionFilter = Annotated[
    str | None, QueryParameter(max_length=64, description="exact action, e.g. silence.create")
]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit entry."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    remote: str


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of the audit log; ``total`` counts every entry that matches the filters."""

    entries: list[AuditRow]
    total: int
    limit: int
    offset: int
    actor: str | None
    action: str | None


def _row(entry: AuditEntry) -> AuditRow:
    return AuditRow(
        id=entry.id or 0,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        details=dict(entry.details or {}),
        remote=entry.remote,
    )


def _page(
    services: Services, limit: int, offset: int, actor: str | None, action: str | None
) -> AuditPage:
    filters = AuditFilter(actor=actor or None, action=action or None)
    with session_scope(services.engine) as session:
        entries = list_entries(session, limit, offset, filters)
        total = count_entries(session, filters)
        rows = [_row(entry) for entry in entries]
    return AuditPage(rows, total, limit, offset, filters.actor, filters.action)


def _link(page: AuditPage, offset: int) -> str:
    query: dict[str, str | int] = {"limit": page.limit, "offset": offset}
    if page.actor:
        query["actor"] = page.actor
    if page.action:
        query["action"] = page.action
    return f"/admin/audit?{urlencode(query)}"


class AuditController(Controller):
    """Who did what, when: every write through the board, the API and the CLI."""

    path = "/"
    tags = ["admin"]
    guards = [requires_role("admin")]

    @get("/admin/audit", sync_to_thread=True, include_in_schema=False)
    def audit_page(
        self,
        services: ServicesDep,
        limit: Limit = 50,
        offset: Offset = 0,
        actor: ActorFilter = None,
        action: ActionFilter = None,
    ) -> Template:
        """The audit log as a page, with filters and previous/next links."""
        page = _page(services, limit, offset, actor, action)
        newer = _link(page, max(offset - limit, 0)) if offset > 0 else None
        older = _link(page, offset + limit) if offset + limit < page.total else None
        return Template(
            template_name="audit.html.j2",
            context={"page": page, "newer": newer, "older": older, "title": services.title},
        )

    @get("/api/v1/audit", sync_to_thread=True)
    def audit_entries(
        self,
        services: ServicesDep,
        limit: Limit = 50,
        offset: Offset = 0,
        actor: ActorFilter = None,
        action: ActionFilter = None,
    ) -> AuditPage:
        """Audit entries, newest first (admin only)."""
        return _page(services, limit, offset, actor, action)
