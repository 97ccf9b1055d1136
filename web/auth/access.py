"""Who is calling: resolves the request's principal from a bearer token or the session cookie.

Rules, in order:

1. ``Authorization: Bearer tcw_...`` wins. An unknown, malformed or revoked token is refused
   with 401 (it never falls back to the cookie or to anonymous access).
2. The session cookie counts for safe methods (GET/HEAD/OPTIONS), and for other methods only
   when Litestar's CSRF middleware verified a token on this very request. Paths exempt from
   CSRF (``/api/``) therefore accept writes from bearer tokens only: a browser session can
   never be ridden into an API write.
3. Otherwise the caller is anonymous (``None``).

The principal is cached on the connection (``scope["user"]``, and ``scope["auth"]`` names how:
``"token"``, ``"session"`` or ``"anonymous"``), so guards, handlers and templates share it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from litestar.exceptions import NotAuthorizedException
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

from daemon.auth.principal import Principal
from daemon.auth.roles import Role
from daemon.auth.tokens import verify_token
from daemon.store.db import session_scope
from daemon.store.models import AppUser
from web.auth.sessions import password_fingerprint
from web.auth.throttle import LoginThrottle

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.connection import ASGIConnection
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

STATE_KEY = "tcowatch_access"
"""Key of the ``AccessContext`` in ``app.state``."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUTH_METHODS = ("token", "session", "anonymous")
INVALID_TOKEN = "invalid, unknown or revoked API token"


@dataclass
class AccessContext:
    """What resolving principals needs; one per app, kept in ``app.state``."""

    engine: Engine
    now: Callable[[], datetime]
    anonymous_read: bool
    throttle: LoginThrottle

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal of an API token, or ``None`` when it is not an active one (blocking)."""
        with session_scope(self.engine) as session:
            record = verify_token(session, token, now=self.now())
            if record is None or record.id is None:
                return None
            return Principal("token", record.id, record.name, Role.parse(record.role))

    def principal_for_session(self, data: dict[str, Any]) -> Principal | None:
        """The user a session names, if still enabled and with the same password (blocking)."""
        uid, fingerprint = data.get("uid"), data.get("pw")
        if not isinstance(uid, int) or not isinstance(fingerprint, str):
            return None
        with session_scope(self.engine) as session:
            user = session.get(AppUser, uid)
            if user is None or user.disabled or user.id is None:
                return None
            if password_fingerprint(user.password_hash) != fingerprint:
                return None
            return Principal("user", user.id, user.username, Role.parse(user.role))


def access_context(app: Litestar) -> AccessContext:
    """The app's ``AccessContext``; ``KeyError`` (a wiring error) when ``create_app`` set none."""
    context: AccessContext = app.state[STATE_KEY]
    return context


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer`` header (any case), else ``None``."""
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def csrf_verified(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the CSRF middleware checked and accepted a token on this request."""
    return ScopeState.from_scope(connection.scope).csrf_token is not Empty


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The principal already resolved for this request (``None`` if anonymous or unresolved)."""
    principal = connection.scope.get("user")
    return principal if isinstance(principal, Principal) else None


def _remember(
    connection: ASGIConnection[Any, Any, Any, Any], principal: Principal | None, how: str
) -> Principal | None:
    connection.scope["user"] = principal
    connection.scope["auth"] = how
    return principal


async def resolve_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """Resolve (once per request) and return the caller; see the module's rules.

    Raises ``NotAuthorizedException`` (401) for a bearer token that is not an active token.
    """
    if connection.scope.get("auth") in AUTH_METHODS:
        return principal_of(connection)
    context = access_context(connection.app)
    token = bearer_token(connection)
    if token is not None:
        principal = await anyio.to_thread.run_sync(context.principal_for_token, token)
        if principal is None:
            logger.info("refused an API token from %s", remote_address(connection))
            raise NotAuthorizedException(INVALID_TOKEN)
        return _remember(connection, principal, "token")
    data = connection.scope.get("session")
    if not isinstance(data, dict) or "uid" not in data:
        return _remember(connection, None, "anonymous")
    if connection.scope.get("method", "GET") not in SAFE_METHODS and not csrf_verified(connection):
        return _remember(connection, None, "anonymous")
    principal = await anyio.to_thread.run_sync(context.principal_for_session, data)
    if principal is None:
        connection.scope["session"] = {}  # stale: the session middleware clears the cookie
        return _remember(connection, None, "anonymous")
    return _remember(connection, principal, "session")


def remote_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client's address as the server sees it (after trusted-proxy rewriting), or ``""``."""
    return connection.client.host if connection.client else ""
