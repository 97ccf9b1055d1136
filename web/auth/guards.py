"""Guards: the app-wide access rule and ``requires_role`` for handlers that need more.

``access_guard`` sits on the app, so every route is covered without opting in:

- a route whose ``opt`` has ``public=True`` needs nothing (login, probes, ``/metrics``, static);
- safe methods (GET/HEAD/OPTIONS) need a principal, unless ``web.anonymous_read`` is on;
- every other method needs ``editor`` or more. Handlers that need ``admin`` add
  ``guards=[requires_role("admin")]``.

Refusals: 401 (``NotAuthorizedException``) when nobody is logged in, 403
(``PermissionDeniedException``) when the role is too low.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from daemon.auth.roles import Role
from web.auth.access import SAFE_METHODS, access_context, resolve_principal

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Guard

PUBLIC = "public"
"""``opt`` key: ``opt={PUBLIC: True}`` opens a route to everyone, writes included."""
WRITE_ROLE = Role.EDITOR
"""The least role any non-safe method needs."""
LOGIN_NEEDED = "log in, or send an API token as 'Authorization: Bearer tcw_...'"


def _denied(role: Role) -> PermissionDeniedException:
    return PermissionDeniedException(f"this needs the {role.label} role or more")


async def access_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app-wide rule (see the module docstring); raises 401 or 403."""
    if handler.opt.get(PUBLIC):
        return
    principal = await resolve_principal(connection)
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        if principal is None and not access_context(connection.app).anonymous_read:
            raise NotAuthorizedException(LOGIN_NEEDED)
        return
    if principal is None:
        raise NotAuthorizedException(LOGIN_NEEDED)
    if not principal.allows(WRITE_ROLE):
        raise _denied(WRITE_ROLE)


def requires_role(role: Role | str) -> Guard:
    """A guard that lets through principals with ``role`` or more; raises 401 or 403.

    ``InvalidRole`` at import time for a misspelt role.
    """
    need = Role.parse(role)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await resolve_principal(connection)
        if principal is None:
            raise NotAuthorizedException(LOGIN_NEEDED)
        if not principal.allows(need):
            raise _denied(need)

    guard.__name__ = f"requires_{need.label}"
    guard.__qualname__ = guard.__name__
    return guard
