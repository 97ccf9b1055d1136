"""Wiring of the access layer into the Litestar app: one ``Access`` built from ``Services``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect
from litestar.status_codes import HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN
from markupsafe import escape

from web.auth.access import STATE_KEY, AccessContext, bearer_token
from web.auth.sessions import SessionCookieConfig, session_config, session_keys
from web.auth.throttle import LoginThrottle

if TYPE_CHECKING:
    from daemon.services import Services

LOGIN_PATH = "/login"
API_PREFIX = "/api/"


@dataclass(frozen=True)
class Access:
    """Everything ``create_app`` passes to Litestar for authentication and CSRF."""

    context: AccessContext
    session: SessionCookieConfig
    csrf: CSRFConfig

    @property
    def state(self) -> dict[str, Any]:
        """Initial ``app.state`` entries."""
        return {STATE_KEY: self.context}


def build_access(services: Services, csrf_exclude: list[str]) -> Access:
    """Keys, session cookie, CSRF and login limits from ``services.web``.

    ``services.csrf_secret``, when set, overrides the CSRF key derived from the session secret.
    """
    web = services.web
    keys = session_keys(web, demo=services.demo)
    context = AccessContext(
        engine=services.engine,
        now=services.now,
        anonymous_read=web.anonymous_read,
        throttle=LoginThrottle(
            attempts=web.login_attempts, window=web.login_lockout, now=services.now
        ),
    )
    csrf = CSRFConfig(
        secret=services.csrf_secret or keys.csrf,
        exclude=csrf_exclude,
        cookie_secure=web.secure_cookies,
        cookie_samesite="lax",
    )
    return Access(context=context, session=session_config(web, keys.session), csrf=csrf)


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(API_PREFIX)
        and bearer_token(request) is None
    )


def unauthorized(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    """401 handler: a browser asking for a page goes to the login form, others get JSON 401."""
    if _wants_page(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)
    return Response(
        {"status_code": HTTP_401_UNAUTHORIZED, "detail": exc.detail},
        status_code=HTTP_401_UNAUTHORIZED,
        headers={"WWW-Authenticate": 'Bearer realm="tcowatch"'},
    )


def _from_browser(request: Request[Any, Any, Any]) -> bool:
    """A board request from a browser (not the JSON API, no bearer token, HTML accepted)."""
    return (
        not request.url.path.startswith(API_PREFIX)
        and bearer_token(request) is None
        and "text/html" in request.headers.get("accept", "")
    )


def forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    """403 handler: a short page for a browser (a viewer pressing an editor's button), JSON
    for everyone else. The detail names the role needed; nothing from the request is echoed."""
    if _from_browser(request):
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Not allowed - tcowatch</title>"
            '<link rel="stylesheet" href="/static/board.css"></head><body><main>'
            f"<h1>Not allowed</h1><p>{escape(str(exc.detail))}</p>"
            '<p><a href="/">Back to the board</a></p></main></body></html>'
        )
        return Response(body, status_code=HTTP_403_FORBIDDEN, media_type="text/html")
    return Response(
        {"status_code": HTTP_403_FORBIDDEN, "detail": exc.detail}, status_code=HTTP_403_FORBIDDEN
    )
