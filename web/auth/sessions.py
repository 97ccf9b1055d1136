"""Session cookies: Litestar's client-side session, AES-GCM encrypted and authenticated.

The cookie holds only ``{"uid": <user id>, "pw": <password fingerprint>}``: changing a password
or disabling the user ends every session at its next request. Cookies are ``HttpOnly`` and
``SameSite=Lax``; ``Secure`` when ``web.secure_cookies`` is set or the request arrived over
https (uvicorn sets the scheme from ``X-Forwarded-Proto`` only for proxies it trusts:
``FORWARDED_ALLOW_IPS``, loopback by default). Each response renews the cookie, so
``web.session_timeout`` is an idle timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.types import Message, ScopeSession

    from daemon.config import WebConfig

logger = logging.getLogger(__name__)

SESSION_COOKIE = "tcowatch_session"
SESSION_EXCLUDE = ["^/static/", "^/metrics", "^/healthz$", "^/readyz$"]
"""Paths that never read or renew the session cookie."""


def _derive(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), label, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Keys:
    """The session cookie key (32 bytes) and the CSRF secret, derived from one secret."""

    session: bytes = field(repr=False)
    csrf: str = field(repr=False)
    ephemeral: bool
    """True when made up for this process (sessions end at a restart)."""


def session_keys(web: WebConfig, *, demo: bool = False) -> Keys:
    """Keys from ``web.session_secret``, or random ones (logged: sessions will not survive)."""
    if web.session_secret is not None:
        secret = web.session_secret.get_secret_value()
        return Keys(
            _derive(secret, b"tcowatch session cookie"),
            _derive(secret, b"tcowatch csrf").hex(),
            ephemeral=False,
        )
    log = logger.info if demo else logger.warning
    log(
        "web.session_secret is not set: using a random key, so logins end when the process "
        "restarts and are not shared between replicas"
    )
    return Keys(secrets.token_bytes(32), secrets.token_hex(32), ephemeral=True)


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the stored hash: a session remembers it, a new password changes it."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


class SchemeAwareSessionBackend(ClientSideSessionBackend):
    """The client-side backend, setting ``Secure`` on cookies of requests made over https."""

    __slots__ = ("_secure_backend",)

    def __init__(self, config: CookieBackendConfig) -> None:
        super().__init__(config)
        self._secure_backend = (
            self if config.secure else ClientSideSessionBackend(replace(config, secure=True))
        )

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        """Write the session cookie(s), ``Secure`` when the request came over https."""
        if self._secure_backend is not self and connection.scope.get("scheme") in ("https", "wss"):
            await self._secure_backend.store_in_message(scope_session, message, connection)
            return
        await super().store_in_message(scope_session, message, connection)


@dataclass
class SessionCookieConfig(CookieBackendConfig):
    """``CookieBackendConfig`` whose middleware uses ``SchemeAwareSessionBackend``."""

    _backend_class = SchemeAwareSessionBackend


def session_config(web: WebConfig, key: bytes) -> SessionCookieConfig:
    """The session middleware's config for ``web``."""
    return SessionCookieConfig(
        secret=key,
        key=SESSION_COOKIE,
        max_age=int(web.session_timeout.total_seconds()),
        secure=web.secure_cookies,
        httponly=True,
        samesite="lax",
        exclude=SESSION_EXCLUDE,
    )
