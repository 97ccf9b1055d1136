"""Scheduled work for cloud bills: one job per billing API source, one for watched FOCUS folders.

Each billing run re-reads the last ``restate_days`` days (providers restate recent bills) and
replaces that window for its source in one transaction, so the store never holds a day twice.

Error contract: a source that fails is recorded as a down collector (``billing:<name>``) with
its one-line reason, logged once per distinct reason, and retried on the next run; nothing of
that run is stored. Credentials never appear in a reason (the collectors guarantee it).
"""

from __future__ import annotations

import logging
import pkgutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from collectors.base import CollectorError
from collectors.billing import BILLING_COLLECTORS
from daemon.config import BillingSourceConfig, Config
from daemon.costs.ledger import replace_window
from daemon.state import CollectorStatus, LiveState
from daemon.store.db import session_scope

logger = logging.getLogger(__name__)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _collector_arguments(source: BillingSourceConfig) -> dict[str, Any]:
    """The constructor arguments of ``source``'s collector, secrets unwrapped only here."""
    if source.type == "aws_ce":
        return {
            "region": source.region,
            "metric": source.metric,
            "group_by": source.group_by,
            "profile": source.profile,
        }
    if source.type == "azure":
        return {
            "scope": source.scope or "",
            "tenant_id": source.tenant_id or "",
            "client_id": source.client_id or "",
            "client_secret": _secret(source.client_secret),
        }
    if source.type == "gcp":
        return {"table": source.table or "", "project": source.project}
    return {
        "access_key_id": source.access_key_id or "",
        "access_key_secret": _secret(source.access_key_secret),
        "endpoint": source.endpoint,
    }


def build_billing_collector(source: BillingSourceConfig) -> Any:
    """The collector for one configured billing source, from ``BILLING_COLLECTORS`` (SDKs are
    imported lazily, on the first fetch)."""
    collector_class = pkgutil.resolve_name(BILLING_COLLECTORS[source.type])
    return collector_class(name=source.name, **_collector_arguments(source))


class BillingSync:
    """Runs one billing collector over its restatement window and stores the result."""

    def __init__(
        self,
        engine: Engine,
        state: LiveState,
        collector: Any,
        *,
        restate_days: int,
    ) -> None:
        self.engine = engine
        self.state = state
        self.collector = collector
        self.restate_days = restate_days
        self.source = f"{collector.kind}:{collector.name}"
        self.status_name = f"billing:{collector.name}"
        self._last_reason = ""

    def window(self, now: datetime) -> tuple[date, date]:
        """[first day re-read, day after today) in UTC."""
        today = now.astimezone(UTC).date()
        return today - timedelta(days=self.restate_days - 1), today + timedelta(days=1)

    def run(self, now: datetime) -> int:
        """Fetch the window and replace it in the store; return the lines stored."""
        start, end = self.window(now)
        started = time.perf_counter()
        try:
            lines = self.collector.fetch(start, end)
        except CollectorError as exc:
            if exc.reason != self._last_reason:
                logger.warning("billing source %s is down: %s", self.source, exc.reason)
                self._last_reason = exc.reason
            self.state.record_collector(
                CollectorStatus(
                    name=self.status_name,
                    up=False,
                    reason=exc.reason,
                    last_attempt=now,
                    duration_seconds=time.perf_counter() - started,
                )
            )
            return 0
        begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
        finish = datetime(end.year, end.month, end.day, tzinfo=UTC)
        with session_scope(self.engine) as session:
            stored = replace_window(
                session,
                source=self.source,
                start=begin,
                end=finish,
                lines=lines,
                import_batch=uuid.uuid4().hex,
            )
        if self._last_reason:
            logger.info("billing source %s is up again", self.source)
            self._last_reason = ""
        self.state.record_collector(
            CollectorStatus(
                name=self.status_name,
                up=True,
                last_attempt=now,
                last_success=now,
                duration_seconds=time.perf_counter() - started,
            )
        )
        return stored


def billing_jobs(
    config: Config, engine: Engine, state: LiveState
) -> list[tuple[str, timedelta, Callable[[datetime], object]]]:
    """(name, interval, run) for every configured billing source and watched FOCUS folder."""
    jobs: list[tuple[str, timedelta, Callable[[datetime], object]]] = []
    for source in config.billing.sources:
        sync = BillingSync(
            engine, state, build_billing_collector(source), restate_days=config.billing.restate_days
        )
        jobs.append((f"billing:{source.name}", config.billing.interval, sync.run))
    if config.billing.focus_watch_dirs:
        from daemon.costs.focus_import import FocusWatcher

        watcher = FocusWatcher(engine, [Path(p) for p in config.billing.focus_watch_dirs])

        def watch(_now: datetime) -> object:
            return watcher.run_once()

        jobs.append(("focus_watch", config.billing.focus_watch_interval, watch))
    return jobs
