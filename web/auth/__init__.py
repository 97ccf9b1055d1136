"""The board's access layer: who the caller is, what their role allows, and the audit trail.

Handlers use ``requires_role``, ``principal_of`` and ``audit_write``; ``create_app`` uses
``build_access``. See ``web/auth/access.py`` for how a request is authenticated and
``web/auth/guards.py`` for what each role may do.
"""

from __future__ import annotations

from web.auth.access import principal_of, remote_address, resolve_principal
from web.auth.audit import audit_write
from web.auth.guards import PUBLIC, access_guard, requires_role
from web.auth.setup import Access, build_access, forbidden, unauthorized

__all__ = [
    "PUBLIC",
    "Access",
    "access_guard",
    "audit_write",
    "build_access",
    "forbidden",
    "principal_of",
    "remote_address",
    "requires_role",
    "resolve_principal",
    "unauthorized",
]
