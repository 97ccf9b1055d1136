"""Board users: add, remove, change password, authenticate.

Usernames are case-insensitive: they are stored and looked up in lower case. Passwords are at
least ``MIN_PASSWORD_LENGTH`` characters and only their argon2 hash is stored. Nothing here
commits: the caller's transaction holds the change and its audit entry together.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, select

from daemon.auth.errors import InvalidName, UnknownUser, UserExists, WeakPassword
from daemon.auth.passwords import burn_verify, hash_password, needs_rehash, verify_password
from daemon.auth.roles import Role
from daemon.store.models import AppUser, as_utc

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
"""1-64 characters: letters, digits, ``. _ @ -``; starting with a letter or digit."""


def normalise_username(username: str) -> str:
    """``username`` stripped and lower-cased; raises ``InvalidName`` when it cannot be one."""
    name = username.strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"invalid username {username[:80]!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> None:
    """Raise ``WeakPassword`` unless ``password`` has 12 to 1024 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")


def find_user(session: Session, username: str) -> AppUser | None:
    """The user called ``username`` (any case), or ``None``; never raises for a bad name."""
    name = username.strip().lower()
    return session.exec(select(AppUser).where(AppUser.username == name)).first()


def get_user(session: Session, username: str) -> AppUser:
    """The user called ``username``; raises ``UnknownUser``."""
    user = find_user(session, username)
    if user is None:
        raise UnknownUser(f"no user named {username.strip().lower()[:80]!r}")
    return user


def list_users(session: Session) -> Sequence[AppUser]:
    """Every user, by name."""
    return session.exec(select(AppUser).order_by(AppUser.username)).all()


def add_user(
    session: Session, username: str, password: str, role: Role | str, *, now: datetime
) -> AppUser:
    """Create a user.

    Raises ``InvalidName``, ``WeakPassword``, ``InvalidRole`` or ``UserExists``.
    """
    name = normalise_username(username)
    check_password(password)
    parsed = Role.parse(role)
    if find_user(session, name) is not None:
        raise UserExists(f"user {name!r} already exists")
    user = AppUser(
        username=name,
        password_hash=hash_password(password),
        role=parsed.label,
        created_at=as_utc(now),
    )
    session.add(user)
    session.flush()
    return user


def remove_user(session: Session, username: str) -> AppUser:
    """Delete the user (their audit entries stay); raises ``UnknownUser``."""
    user = get_user(session, username)
    session.delete(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> AppUser:
    """Replace the user's password, which ends their board sessions.

    Raises ``UnknownUser`` or ``WeakPassword``.
    """
    user = get_user(session, username)
    check_password(password)
    user.password_hash = hash_password(password)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> AppUser | None:
    """The enabled user whose name and password match, else ``None`` (never says which was wrong).

    An unknown name costs as much time as a wrong password. A hash made with older argon2
    parameters is replaced on success (in the caller's transaction).
    """
    user = find_user(session, username)
    if user is None or len(password) > MAX_PASSWORD_LENGTH:
        burn_verify(password[:MAX_PASSWORD_LENGTH])
        return None
    if not verify_password(user.password_hash, password) or user.disabled:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.add(user)
        session.flush()
        logger.info("rehashed the password of %r with current argon2 parameters", user.username)
    return user
