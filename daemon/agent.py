"""The node agent: NVML sampling and ``/metrics`` only, no database, a small footprint.

``Agent.sample(now)`` runs one NVML cycle into a ``LiveState``; ``metrics_app`` is a plain ASGI
app (no web framework) serving ``/metrics`` from an ``ExpositionCache`` and ``/healthz``.
The server tcowatch (or any Prometheus) scrapes it with ``kind: agent``.

Error contract: ``sample`` never raises for a source problem: a down NVML is recorded in the
state (``tcowatch_collector_up 0``) with its reason and logged once per distinct reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from collectors.base import Collector, CollectorError, Snapshot
from collectors.plain_asgi import Receive, Scope, Send, respond, run_lifespan
from daemon.exporter import ExpositionCache, build_registry
from daemon.state import CollectorStatus, LiveState
from rules.idle import IdlePolicy

logger = logging.getLogger(__name__)


class Agent:
    """One collector, one live state, one exposition."""

    def __init__(self, collector: Collector, *, idle: IdlePolicy | None = None) -> None:
        self.collector = collector
        self.state = LiveState()
        self.exposition = ExpositionCache(self.state, build_registry(self.state))
        self._idle = idle or IdlePolicy()
        self._last_reason = ""

    def sample(self, now: datetime) -> Snapshot | None:
        """One cycle: read the GPUs, record them (or the reason they could not be read)."""
        started = time.perf_counter()
        try:
            snapshot = self.collector.collect(now)
        except CollectorError as exc:
            if exc.reason != self._last_reason:
                logger.warning("collector %s is down: %s", self.collector.name, exc.reason)
                self._last_reason = exc.reason
            self.state.record_collector(
                CollectorStatus(
                    name=self.collector.name,
                    up=False,
                    reason=exc.reason,
                    last_attempt=now,
                    duration_seconds=time.perf_counter() - started,
                )
            )
            return None
        if self._last_reason:
            logger.info("collector %s is up again", self.collector.name)
            self._last_reason = ""
        self.state.record_snapshot(snapshot)
        self.state.set_idle(
            {
                gpu.uuid
                for gpu in snapshot.gpus
                if self._idle.is_idle(
                    utilization_ratio=gpu.utilization_ratio,
                    power_watts=gpu.power_watts,
                    power_limit_watts=gpu.power_limit_watts,
                    inference_tokens=None,
                )
            }
        )
        self.state.record_collector(
            CollectorStatus(
                name=self.collector.name,
                up=True,
                last_attempt=now,
                last_success=now,
                duration_seconds=time.perf_counter() - started,
            )
        )
        return snapshot

    def run_forever(
        self, interval: timedelta, stop: threading.Event, now: Callable[[], datetime]
    ) -> None:
        """Sample every ``interval`` until ``stop`` is set (runs in its own thread)."""
        while not stop.is_set():
            self.sample(now())
            stop.wait(interval.total_seconds())


def metrics_app(agent: Agent) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A minimal ASGI app: ``GET /metrics``, ``GET /healthz``; 404 elsewhere."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path == "/metrics":
            status, media = 200, "text/plain; version=0.0.4; charset=utf-8"
            body = agent.exposition.render()
        elif path == "/healthz":
            status, media, body = 200, "application/json", b'{"status":"ok"}'
        else:
            status, media, body = 404, "text/plain; charset=utf-8", b"not found\n"
        await respond(send, status, media, body, head=scope.get("method") == "HEAD")

    return app
