"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile).

``verify`` never raises for a wrong password or a malformed stored hash: it returns ``False``.
"""

from __future__ import annotations

import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

logger = logging.getLogger(__name__)

DEFAULT_HASHER = PasswordHasher()
"""The process's hasher; read at each call, so tests may swap in cheaper parameters."""

_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def _hasher(hasher: PasswordHasher | None) -> PasswordHasher:
    return hasher if hasher is not None else DEFAULT_HASHER


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash of ``password`` (a ``$argon2id$...`` string with its own salt)."""
    return _hasher(hasher).hash(password)


def verify_password(
    stored_hash: str, password: str, *, hasher: PasswordHasher | None = None
) -> bool:
    """Whether ``password`` matches ``stored_hash``; ``False`` also for a malformed hash."""
    try:
        return _hasher(hasher).verify(stored_hash, password)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError):
        logger.warning("a stored password hash is not a valid argon2 hash")
        return False


def needs_rehash(stored_hash: str, *, hasher: PasswordHasher | None = None) -> bool:
    """Whether ``stored_hash`` used other parameters than the hasher (rehash on login)."""
    try:
        return _hasher(hasher).check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def burn_verify(password: str, *, hasher: PasswordHasher | None = None) -> None:
    """Spend one verification's time: an unknown username answers as slowly as a known one."""
    chosen = _hasher(hasher)
    key = (chosen.time_cost, chosen.memory_cost, chosen.parallelism)
    dummy = _DUMMY_HASHES.get(key)
    if dummy is None:
        dummy = _DUMMY_HASHES[key] = chosen.hash("not a real password, only for timing")
    verify_password(dummy, password, hasher=chosen)
