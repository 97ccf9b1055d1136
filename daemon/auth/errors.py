"""Errors of ``daemon.auth``: one class per problem, each message fit to show a person.

Messages name the user or token and the problem; they never contain a password or a token.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every ``daemon.auth`` error."""


class InvalidName(AuthError):
    """A username or token name that is empty, too long or has characters we do not accept."""


class InvalidRole(AuthError):
    """A role other than ``viewer``, ``editor`` or ``admin``."""


class WeakPassword(AuthError):
    """A password that is too short (or absurdly long)."""


class UserExists(AuthError):
    """``add`` of a username that is already taken."""


class UnknownUser(AuthError):
    """No user has that name."""


class TokenExists(AuthError):
    """``create`` of a token name that an active (unrevoked) token already uses."""


class UnknownToken(AuthError):
    """No active token has that name or id."""
