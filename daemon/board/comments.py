"""Comment threads on board items (anomalies, debt items) and the errors the item modules share.

Error contract: ``add_comment`` raises ``FieldErrors`` (a ``ValueError``) naming the ``body``
field when the text is empty or too long. ``ItemNotFound`` (a ``LookupError``) and
``FieldErrors`` are raised by ``daemon.board.anomalies`` and ``daemon.board.debt`` as well:
the web layer answers them with 404 and 400. Database errors propagate. Nothing here commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from daemon.store.models import Comment, as_utc

logger = logging.getLogger(__name__)

Subject = Literal["anomaly", "debt"]
MAX_BODY = 10_000
"""Longest comment, in characters."""
MAX_AUTHOR = 255


class ItemNotFound(LookupError):
    """No board item of that kind has that id (or fingerprint)."""

    def __init__(self, kind: str, ref: object) -> None:
        super().__init__(f"no {kind} {ref}")
        self.kind = kind
        self.ref = ref


class FieldErrors(ValueError):
    """Input that cannot be stored: ``errors`` maps each bad field to the reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in self.errors.items()))


@dataclass(frozen=True, slots=True)
class CommentRow:
    """One comment as the board shows it; ``author`` is the audit actor (``user:alice``)."""

    id: int
    author: str
    body: str
    created_at: datetime


def has_nul(text: str | None) -> bool:
    """Whether ``text`` holds a NUL character, which no text column can store (PostgreSQL
    refuses it)."""
    return text is not None and "\x00" in text


def clean_body(body: str) -> str:
    """The comment text, stripped; ``FieldErrors`` on ``body`` when empty, too long or holding
    a NUL character."""
    text = body.strip()
    if has_nul(text):
        raise FieldErrors({"body": "must not contain NUL characters"})
    if not text:
        raise FieldErrors({"body": "a comment needs some text"})
    if len(text) > MAX_BODY:
        raise FieldErrors({"body": f"at most {MAX_BODY} characters, got {len(text)}"})
    return text


def add_comment(
    session: Session, subject: Subject, subject_id: int, author: str, body: str, now: datetime
) -> CommentRow:
    """Add a comment to ``subject`` ``subject_id`` (the caller checked the item exists)."""
    comment = Comment(
        subject=subject,
        subject_id=subject_id,
        author=author[:MAX_AUTHOR],
        body=clean_body(body),
        created_at=as_utc(now),
    )
    session.add(comment)
    session.flush()
    return _row(comment)


def list_comments(session: Session, subject: Subject, subject_id: int) -> list[CommentRow]:
    """The item's comments, oldest first."""
    rows = session.exec(
        select(Comment)
        .where(col(Comment.subject) == subject, col(Comment.subject_id) == subject_id)
        .order_by(col(Comment.created_at), col(Comment.id))
    ).all()
    return [_row(row) for row in rows]


def _row(comment: Comment) -> CommentRow:
    return CommentRow(
        id=comment.id or 0,
        author=comment.author,
        body=comment.body,
        created_at=as_utc(comment.created_at),
    )
