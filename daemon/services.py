"""What the process hands to its faces (board, JSON API, /metrics): one object, built by the CLI.

The web app reads everything through ``Services``; it never calls collectors or builds engines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from daemon.config import CostsConfig, RollbacksConfig, WebConfig
from daemon.notify.channels.base import Channel
from daemon.state import LiveState


@dataclass
class Services:
    """The process's shared parts.

    ``readiness`` returns the list of problems that make the process not ready (empty = ready);
    it must not raise. ``now`` is the process clock (the demo clock runs fast).
    """

    engine: Engine
    state: LiveState
    registry: CollectorRegistry
    now: Callable[[], datetime]
    readiness: Callable[[], list[str]]
    title: str = "tcowatch"
    demo: bool = False
    csrf_secret: str | None = None
    """Overrides the CSRF key derived from ``web.session_secret`` (tests)."""
    web: WebConfig = field(default_factory=WebConfig)
    """The ``web`` config section: access (anonymous read, sessions, cookies, login limits)."""
    lifespans: list[Callable[..., object]] = field(default_factory=list)
    """Async context-manager factories taking the Litestar app (scheduler start/stop)."""
    channels: Mapping[str, Channel] = field(default_factory=dict)
    """The configured notification channels by name (the channels page, its test send)."""
    notify_receiver: str = "tcowatch"
    """``notify.receiver``: the receiver name test notifications carry."""
    rollbacks: RollbacksConfig = field(default_factory=RollbacksConfig)
    """The ``rollbacks`` config section: SLA targets per service."""
    costs: CostsConfig | None = None
    """The ``costs`` config section (cost models, budgets, TCO inputs); ``None``: the pages
    fall back to what the live cost figures carry."""
