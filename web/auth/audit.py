"""Audit entries for writes made through the web: the actor and address come from the request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daemon.auth import audit
from web.auth.access import access_context, principal_of, remote_address

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from sqlmodel import Session

    from daemon.store.models import AuditEntry

ANONYMOUS_ACTOR = "anonymous"


def audit_write(
    connection: ASGIConnection[Any, Any, Any, Any],
    session: Session,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Record ``action`` on ``target`` by the request's principal, in ``session``'s transaction.

    Call it beside the write, in the same ``session``, so both commit or neither does. Never put
    secrets in ``details``.
    """
    principal = principal_of(connection)
    return audit.record(
        session,
        principal.actor if principal is not None else ANONYMOUS_ACTOR,
        action,
        target,
        details,
        remote_address(connection),
        at=access_context(connection.app).now(),
    )
