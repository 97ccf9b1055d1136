"""Login (``GET``/``POST /login``) and logout (``POST /logout``) for the board's browser sessions.

Failed logins get one generic message whatever was wrong, are limited per username and address
(``web.login_attempts`` within ``web.login_lockout``), and are logged with the username and
address, never the password. Both forms carry a CSRF token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_401_UNAUTHORIZED, HTTP_429_TOO_MANY_REQUESTS

from daemon.auth import audit
from daemon.auth.users import authenticate
from daemon.store.db import session_scope
from web.auth.access import access_context, remote_address, resolve_principal
from web.auth.guards import PUBLIC
from web.auth.sessions import password_fingerprint
from web.auth.setup import LOGIN_PATH
from web.auth.throttle import LoginThrottle

logger = logging.getLogger(__name__)

INVALID_LOGIN = "Invalid username or password."
TOO_MANY = "Too many failed logins. Wait a few minutes, then try again."
MAX_FIELD = 1024


@dataclass
class LoginForm:
    """The login form's fields (``_csrf_token`` is checked by the CSRF middleware)."""

    username: str = ""
    password: str = ""
    next: str = "/"


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ch in target for ch in "\r\n\\") or len(target) > 2000:
        return "/"
    return target


def _page(context: dict[str, Any], status_code: int = 200) -> Template:
    return Template(template_name="login.html.j2", context=context, status_code=status_code)


class LoginController(Controller):
    """The login form, its submission and logout. Public routes; CSRF applies."""

    path = "/"
    tags = ["access"]
    opt = {PUBLIC: True}

    @get(LOGIN_PATH, include_in_schema=False)
    async def login_page(
        self, request: Request[Any, Any, Any], next: FromQuery[str] = "/"
    ) -> Template:
        """The login form (``next``: where to go after logging in)."""
        principal = await resolve_principal(request)
        return _page({"next": safe_next(next), "username": "", "error": "", "me": principal})

    @post(LOGIN_PATH, include_in_schema=False, sync_to_thread=True)
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        """Check the credentials; on success start a session and go to ``next`` (303)."""
        context = access_context(request.app)
        username, password = data.username[:MAX_FIELD], data.password[: MAX_FIELD + 1]
        remote = remote_address(request)
        key = LoginThrottle.key(username, remote)
        page = {"next": safe_next(data.next), "username": username, "me": None}
        if context.throttle.blocked(key):
            logger.warning(
                "login refused (too many failures) for %r from %s", username[:64], remote
            )
            return _page({**page, "error": TOO_MANY}, HTTP_429_TOO_MANY_REQUESTS)
        with session_scope(context.engine) as session:
            user = authenticate(session, username, password)
            if user is not None:
                audit.record(
                    session, f"user:{user.username}", "auth.login", user.username,
                    remote=remote, at=context.now(),
                )  # fmt: skip
                started = {"uid": user.id, "pw": password_fingerprint(user.password_hash)}
        if user is None:
            context.throttle.failed(key)
            logger.warning("failed login for %r from %s", username[:64], remote)
            return _page({**page, "error": INVALID_LOGIN}, HTTP_401_UNAUTHORIZED)
        context.throttle.succeeded(key)
        request.set_session(started)
        logger.info("user %r logged in from %s", user.username, remote)
        return Redirect(safe_next(data.next), status_code=303)

    @post("/logout", include_in_schema=False, sync_to_thread=True)
    def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        """End the browser session (audited when it was a valid one) and go to the login form."""
        context = access_context(request.app)
        data = request.scope.get("session")
        principal = context.principal_for_session(data) if isinstance(data, dict) else None
        if principal is not None:
            with session_scope(context.engine) as session:
                audit.record(
                    session, principal.actor, "auth.logout", principal.name,
                    remote=remote_address(request), at=context.now(),
                )  # fmt: skip
        request.clear_session()
        return Redirect(LOGIN_PATH, status_code=303)
