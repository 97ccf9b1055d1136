"""Pieces the anomalies and tech-debt controllers share: who is writing, request bodies for
comments and actions, and the board layer's errors as HTTP answers.

``ItemNotFound`` -> 404; ``FieldErrors`` -> 400 in Litestar's validation format
(``{"detail", "extra": [{"key": field, "message": reason, "source"}]}``), so the API names
the field whatever caught the problem; a refused status change -> 409.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import PathParameter
from litestar.status_codes import HTTP_409_CONFLICT

from daemon.board.comments import MAX_BODY, FieldErrors, ItemNotFound
from web.auth.access import principal_of
from web.controllers.login import safe_next

logger = logging.getLogger(__name__)

LIMIT_MAX = 500
OFFSET_MAX = 1_000_000_000
ID_MAX = 2**31 - 1
"""Ids are 32-bit integer columns: a larger one is refused (400) before it reaches the store."""
ItemId = Annotated[int, PathParameter(ge=1, le=ID_MAX, description="the item's id")]


class CommentBody(msgspec.Struct, forbid_unknown_fields=True):
    """A new comment (JSON)."""

    body: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BODY)]


@dataclass
class CommentForm:
    """A new comment (form); ``_csrf_token`` is checked by the CSRF middleware."""

    body: str = ""


@dataclass
class ActionForm:
    """A one-button form; ``next`` is where to go afterwards (a local path)."""

    next: str = ""


def actor(request: Request[Any, Any, Any]) -> str:
    """The audit actor of the request (``user:alice``); writes always have a principal."""
    principal = principal_of(request)
    return principal.actor if principal is not None else "anonymous"


def back_to(target: str, default: str) -> str:
    """``target`` when it is a local path, else ``default`` (no open redirect)."""
    return target if target and safe_next(target) == target else default


def not_found(exc: ItemNotFound) -> NotFoundException:
    """404 naming what was missing."""
    return NotFoundException(detail=str(exc))


def invalid(
    request: Request[Any, Any, Any], exc: FieldErrors, source: str = "body"
) -> ValidationException:
    """400 in Litestar's validation format, one ``extra`` entry per bad field."""
    extra = [
        {"key": field, "message": message, "source": source}
        for field, message in exc.errors.items()
    ]
    return ValidationException(
        detail=f"Validation failed for {request.method} {request.url.path}", extra=extra
    )


def conflict(message: str) -> ClientException:
    """409: the item's state does not allow the action."""
    return ClientException(detail=message, status_code=HTTP_409_CONFLICT)
