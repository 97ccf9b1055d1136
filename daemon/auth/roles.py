"""Roles, ordered: ``viewer`` < ``editor`` < ``admin``; a role allows what every lower one does."""

from __future__ import annotations

from enum import IntEnum

from daemon.auth.errors import InvalidRole


class Role(IntEnum):
    """A role; the integer order is the privilege order."""

    VIEWER = 1
    """Reads the board and the API."""
    EDITOR = 2
    """Also writes: acknowledges anomalies, records rollbacks, edits debt, creates silences."""
    ADMIN = 3
    """Also config-like writes and the audit log."""

    @property
    def label(self) -> str:
        """The name as stored and typed: ``viewer``, ``editor``, ``admin``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """``"editor"`` -> ``Role.EDITOR``; raises ``InvalidRole`` naming the choices."""
        if isinstance(value, Role):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise InvalidRole(
                f"unknown role {value!r}: expected one of {', '.join(ROLE_NAMES)}"
            ) from None


ROLE_NAMES: tuple[str, ...] = tuple(role.label for role in Role)
"""``("viewer", "editor", "admin")``, lowest first."""


def allows(have: Role | str, need: Role | str) -> bool:
    """Whether a principal holding ``have`` may do what needs ``need``.

    Raises ``InvalidRole`` when either is not a role name.
    """
    return Role.parse(have) >= Role.parse(need)
