"""Who is making a request: a logged-in user or an API token, with the role it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemon.auth.roles import Role, allows

CLI_ACTOR = "cli"
"""The audit actor of ``tcowatch user|token`` and other local commands."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. Anonymous callers have no ``Principal`` (``None``)."""

    kind: Literal["user", "token"]
    id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """The audit log's actor: ``user:alice`` or ``token:deploy-bot``."""
        return f"{self.kind}:{self.name}"

    def allows(self, need: Role | str) -> bool:
        """Whether this principal's role is ``need`` or higher."""
        return allows(self.role, need)
