"""The scheduled jobs: collect, roll up, evaluate rules, flush the outbox.

Each job is a method taking ``now``; the scheduler (or a test) decides when it runs.
Error contract: a job may raise; ``JobRunner.run`` catches everything, logs the cause once per
distinct cause, counts it in ``tcowatch_job_failures_total{job}`` and lets the next tick retry.
A job that fails writes nothing: every store write of a job is one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from collectors.base import Collector, CollectorDown, CollectorError
from daemon.hourly import roll_hours
from daemon.notify.channels.base import Channel
from daemon.notify.outbox import enqueue, flush
from daemon.notify.payload import build_webhook_payload
from daemon.persist import gpu_windows, upsert_inventory, window_start, write_rollups
from daemon.retention import RetentionPolicy, enforce
from daemon.rollup import MinuteBuffer, Minutes, minute_floor
from daemon.state import AlertView, CollectorStatus, LiveState
from daemon.store.db import session_scope
from daemon.store.models import Alert, as_utc
from rules.base import Rule, RuleContext
from rules.engine import AlertInstance, AlertRuleSpec, Transition, step

logger = logging.getLogger(__name__)

MAX_UNWRITTEN = 60
"""Rollup batches kept for a retry while the store fails (one per rollup run)."""


@dataclass(frozen=True)
class JobSpec:
    """A job and how often it runs (in process time; the demo clock may run fast)."""

    name: str
    interval: timedelta
    run: Callable[[datetime], object]


@dataclass
class JobRunner:
    """Runs jobs so that a failure is logged once per cause, counted, and never propagates."""

    state: LiveState
    _last_error: dict[str, str] = field(default_factory=dict)

    def run(self, name: str, job: Callable[[datetime], object], now: datetime) -> bool:
        """Run ``job(now)``; return whether it succeeded."""
        try:
            job(now)
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"
            self.state.count_job_failure(name)
            if self._last_error.get(name) != cause:
                logger.error("job %s failed: %s (retrying next tick)", name, cause, exc_info=exc)
                self._last_error[name] = cause
            else:
                logger.debug("job %s failed again: %s", name, cause)
            return False
        if self._last_error.pop(name, None) is not None:
            logger.info("job %s recovered", name)
        return True


@dataclass(frozen=True)
class ConfiguredRule:
    """A rule instance with the alerting spec that wraps it."""

    rule: Rule
    spec: AlertRuleSpec


@dataclass
class Pipeline:
    """Collect -> roll up -> evaluate -> notify, over one store and one live state."""

    engine: Engine
    state: LiveState
    collectors: Sequence[tuple[Collector, timedelta]]
    rules: Sequence[ConfiguredRule]
    channels: Mapping[str, Channel]
    evaluation_interval: timedelta
    flush_interval: timedelta
    buffer: MinuteBuffer
    receiver: str = "tcowatch"
    external_url: str = ""
    max_attempts: int = 12
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_interval: timedelta = timedelta(minutes=10)
    rollup_grace: timedelta = timedelta(seconds=30)
    """How long after a minute ends before it is written (a slow collection still lands)."""
    extra_jobs: Sequence[JobSpec] = ()
    """Jobs of other parts (billing sources, watched FOCUS folders, cost figures)."""
    _down_reason: dict[str, str] = field(default_factory=dict)
    _unwritten: list[Minutes] = field(default_factory=list)

    def jobs(self) -> list[JobSpec]:
        """Every job with its interval, collectors first."""
        specs = [
            JobSpec(f"collect:{collector.name}", interval, self._collect_job(collector))
            for collector, interval in self.collectors
        ]
        specs += [
            JobSpec("rollup", timedelta(minutes=1) / 4, self.rollup),
            JobSpec("evaluate", self.evaluation_interval, self.evaluate),
            JobSpec("flush", self.flush_interval, self.flush),
            JobSpec("rollup_hourly", timedelta(minutes=5), self.rollup_hourly),
            JobSpec("retention", self.retention_interval, self.enforce_retention),
            *self.extra_jobs,
        ]
        for spec in specs:
            self.state.ensure_job(spec.name)
        return specs

    def _collect_job(self, collector: Collector) -> Callable[[datetime], None]:
        def job(now: datetime) -> None:
            self.collect(collector, now)

        return job

    def collect(self, collector: Collector, now: datetime) -> None:
        """Run one collector cycle; a down source is recorded, not raised."""
        started = time.perf_counter()
        try:
            snapshot = collector.collect(now)
        except CollectorError as exc:
            self._record_down(collector.name, exc, now, time.perf_counter() - started)
            if isinstance(exc, CollectorDown):
                return
            raise
        duration = time.perf_counter() - started
        if self._down_reason.pop(collector.name, None) is not None:
            logger.info("collector %s is up again", collector.name)
        self.buffer.add(snapshot)
        self.state.record_snapshot(snapshot)
        self.state.record_collector(
            CollectorStatus(
                name=collector.name,
                up=True,
                last_attempt=now,
                last_success=now,
                duration_seconds=duration,
            )
        )

    def _record_down(self, name: str, exc: CollectorError, now: datetime, took: float) -> None:
        if self._down_reason.get(name) != exc.reason:
            logger.warning("collector %s is down: %s", name, exc.reason)
            self._down_reason[name] = exc.reason
        self.state.record_collector(
            CollectorStatus(
                name=name, up=False, reason=exc.reason, last_attempt=now, duration_seconds=took
            )
        )

    def rollup(self, now: datetime) -> None:
        """Write every complete minute to the store, with the inventory it mentions.

        A minute is written once it ended more than ``rollup_grace`` ago, so a collection cycle
        still running when the minute ends lands in it. Minutes whose write failed are kept and
        written first next time (up to ``MAX_UNWRITTEN``), so a database hiccup loses nothing.
        """
        drained = self.buffer.drain(before=minute_floor(now - self.rollup_grace))
        if drained:
            self._unwritten.append(drained)
        if len(self._unwritten) > MAX_UNWRITTEN:
            dropped = self._unwritten[:-MAX_UNWRITTEN]
            self._unwritten = self._unwritten[-MAX_UNWRITTEN:]
            logger.error(
                "dropping %d unwritten rollup batches: the store keeps failing", len(dropped)
            )
        if not self._unwritten:
            return
        with session_scope(self.engine) as session:
            for pending in self._unwritten:
                upsert_inventory(session, pending.gpus, now)
                write_rollups(session, pending)
        minutes = self._unwritten[-1]
        self._unwritten = []
        latest: dict[str, float] = {}
        for row in minutes.gpus:
            latest[row.uuid] = row.idle_ratio
        view = self.state.view()
        idle = {uuid for uuid in view.idle_gpus if uuid not in latest}
        idle |= {uuid for uuid, ratio in latest.items() if ratio >= 0.5}
        self.state.set_idle(idle - view.down_gpus)

    def rollup_hourly(self, now: datetime) -> None:
        """Roll complete hours of minute rows into hour rows."""
        with session_scope(self.engine) as session:
            roll_hours(session, now)

    def enforce_retention(self, now: datetime) -> None:
        """Delete rollups past their retention, in bounded batches."""
        enforce(self.engine, now, self.retention)

    def evaluate(self, now: datetime) -> None:
        """Evaluate every rule, persist alert states and enqueue notifications in one go."""
        view = self.state.view()
        limits = {uuid: gpu.power_limit_watts for uuid, gpu in view.gpus.items()}
        with session_scope(self.engine) as session:
            for configured in self.rules:
                since = window_start(now, configured.rule.window)
                ctx = RuleContext(
                    now=now,
                    window=configured.rule.window,
                    gpus=gpu_windows(
                        session, since=since, down=view.down_gpus, power_limits=limits
                    ),
                )
                self._evaluate_rule(session, configured, ctx, now)
            session.flush()
            active = session.exec(
                select(Alert).where(col(Alert.state).in_(("pending", "firing")))
            ).all()
            alerts = tuple(
                AlertView(
                    fingerprint=a.fingerprint,
                    alertname=a.alertname,
                    state=a.state,
                    labels=dict(a.labels),
                    annotations=dict(a.annotations or {}),
                    active_at=as_utc(a.active_at),
                    value=a.value,
                )
                for a in active
            )
        self.state.set_alerts(alerts)

    def _evaluate_rule(
        self, session: Session, configured: ConfiguredRule, ctx: RuleContext, now: datetime
    ) -> None:
        spec = configured.spec
        rows = {
            a.fingerprint: a
            for a in session.exec(select(Alert).where(Alert.alertname == spec.name))
        }
        previous = {fp: _to_instance(row) for fp, row in rows.items()}
        try:
            current, transitions = step(spec, previous, configured.rule.evaluate(ctx), now)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
            self.state.count_job_failure(f"rule:{spec.name}")
            logger.error("rule %s failed, its alerts keep their state: %s", spec.name, exc)
            return
        if any(t.kind in ("firing", "resolved") for t in transitions):
            self._enqueue(session, spec.name, current, transitions, now)
        gone = [fingerprint for fingerprint in rows if fingerprint not in current]
        if gone:
            session.exec(delete(Alert).where(col(Alert.fingerprint).in_(gone)))
        for instance in current.values():
            session.merge(_to_row(instance, now))

    def _enqueue(
        self,
        session: Session,
        alertname: str,
        current: dict[str, AlertInstance],
        transitions: Sequence[Transition],
        now: datetime,
    ) -> None:
        resolved_now = {t.alert.fingerprint for t in transitions if t.kind == "resolved"}
        new_firing = {t.alert.fingerprint for t in transitions if t.kind == "firing"}
        firing = [a for a in current.values() if a.state == "firing"]
        resolved = [a for a in current.values() if a.fingerprint in resolved_now]
        notified_before = any(
            a.last_sent_at is not None and a.fingerprint not in new_firing for a in firing
        )
        if new_firing:
            reason = "new alerts added" if notified_before else "first notification"
        elif firing:
            reason = "some alerts resolved"
        else:
            reason = "all alerts resolved"
        group_labels = {"alertname": alertname}
        group_key = f'{{}}:{{alertname="{alertname}"}}'
        for name, channel in self.channels.items():
            alerts = firing + resolved if channel.send_resolved else list(firing)
            if not new_firing and not channel.send_resolved:
                continue
            if not alerts:
                continue
            payload = build_webhook_payload(
                receiver=self.receiver,
                alerts=alerts,
                group_labels=group_labels,
                group_key=group_key,
                notification_reason=reason,
                external_url=self.external_url,
                now=now,
            )
            enqueue(session, channel=name, group_key=group_key, payload=payload, now=now)
        for alert in firing + resolved:
            current[alert.fingerprint] = replace(alert, last_sent_at=now)

    def flush(self, now: datetime) -> None:
        """Send what is due in the outbox."""
        flush(self.engine, self.channels, now=now, state=self.state, max_attempts=self.max_attempts)

    def close(self) -> None:
        """Release every collector and every channel's HTTP client."""
        for collector, _ in self.collectors:
            collector.close()
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if callable(close):
                close()


def _to_instance(row: Alert) -> AlertInstance:
    return AlertInstance(
        fingerprint=row.fingerprint,
        alertname=row.alertname,
        labels=dict(row.labels),
        annotations=dict(row.annotations or {}),
        state=row.state,
        active_at=as_utc(row.active_at),
        value=row.value,
        fired_at=as_utc(row.fired_at) if row.fired_at else None,
        resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
        keep_firing_since=as_utc(row.keep_firing_since) if row.keep_firing_since else None,
        last_sent_at=as_utc(row.last_sent_at) if row.last_sent_at else None,
    )


def _to_row(instance: AlertInstance, now: datetime) -> Alert:
    return Alert(
        fingerprint=instance.fingerprint,
        alertname=instance.alertname,
        labels=dict(instance.labels),
        annotations=dict(instance.annotations),
        state=instance.state,
        value=instance.value,
        active_at=instance.active_at,
        fired_at=instance.fired_at,
        resolved_at=instance.resolved_at,
        keep_firing_since=instance.keep_firing_since,
        last_sent_at=instance.last_sent_at,
        last_evaluated_at=now,
    )
