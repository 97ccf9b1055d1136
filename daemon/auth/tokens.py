"""Bearer API tokens: ``tcw_`` + 43 random URL-safe characters, stored only as a sha256 hash.

``create_token`` is the only place the plain token exists; it is returned once and never
stored or logged. ``verify_token`` looks the token up by its hash (an index lookup on a value
an attacker cannot steer towards a match) and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from daemon.auth.errors import InvalidName, TokenExists, UnknownToken
from daemon.auth.roles import Role
from daemon.store.models import ApiToken, as_utc

TOKEN_PREFIX = "tcw_"
TOKEN_PATTERN = re.compile(r"tcw_[A-Za-z0-9_-]{43}")
PREFIX_LENGTH = 8
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,99}")
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token (no write on every request)."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``secret`` is the plain token, shown once."""

    record: ApiToken
    secret: str


def token_hash(token: str) -> str:
    """sha256 hex of the whole token, as stored in ``api_token.token_hash``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_token_name(name: str) -> str:
    """``name`` stripped; raises ``InvalidName`` unless it is 1-100 plain characters."""
    clean = name.strip()
    if not NAME_PATTERN.fullmatch(clean) or clean.isdigit():
        raise InvalidName(
            f"invalid token name {name[:80]!r}: use 1-100 letters, digits, '.', '_', '@', ':' "
            "or '-', starting with a letter or digit, and not only digits"
        )
    return clean


def list_tokens(session: Session, *, include_revoked: bool = True) -> Sequence[ApiToken]:
    """Tokens by id (without secrets: only hashes are stored)."""
    query = select(ApiToken).order_by(col(ApiToken.id))
    if not include_revoked:
        query = query.where(col(ApiToken.revoked_at).is_(None))
    return session.exec(query).all()


def _active_named(session: Session, name: str) -> ApiToken | None:
    return session.exec(
        select(ApiToken).where(ApiToken.name == name, col(ApiToken.revoked_at).is_(None))
    ).first()


def create_token(
    session: Session, name: str, role: Role | str, *, created_by: str, now: datetime
) -> NewToken:
    """Create a token; returns the plain token once.

    Raises ``InvalidName``, ``InvalidRole``, or ``TokenExists`` when an active token has the name.
    """
    clean = check_token_name(name)
    parsed = Role.parse(role)
    if _active_named(session, clean) is not None:
        raise TokenExists(f"an active token named {clean!r} exists: revoke it first")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        name=clean,
        token_hash=token_hash(secret),
        prefix=secret[:PREFIX_LENGTH],
        role=parsed.label,
        created_by=created_by,
        created_at=as_utc(now),
    )
    session.add(record)
    session.flush()
    return NewToken(record=record, secret=secret)


def verify_token(session: Session, presented: str, *, now: datetime) -> ApiToken | None:
    """The active token ``presented`` is, or ``None`` (malformed, unknown or revoked).

    Records ``last_used_at`` (at most once a minute) in the caller's transaction.
    """
    if not TOKEN_PATTERN.fullmatch(presented):
        return None
    digest = token_hash(presented)
    record = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if record is None or not hmac.compare_digest(record.token_hash, digest):
        return None
    if record.revoked_at is not None:
        return None
    moment = as_utc(now)
    if record.last_used_at is None or moment - record.last_used_at >= LAST_USED_RESOLUTION:
        record.last_used_at = moment
        session.add(record)
        session.flush()
    return record


def revoke_token(session: Session, name_or_id: str, *, now: datetime) -> ApiToken:
    """Revoke the active token with that name, or with that id (digits); raises ``UnknownToken``."""
    key = name_or_id.strip()
    if key.isdigit():
        record = session.get(ApiToken, int(key))
        if record is not None and record.revoked_at is not None:
            record = None
    else:
        record = _active_named(session, key)
    if record is None:
        raise UnknownToken(f"no active token with name or id {key[:80]!r}")
    record.revoked_at = as_utc(now)
    session.add(record)
    session.flush()
    return record
