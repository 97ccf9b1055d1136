"""The scheduled jobs: collect, roll up, evaluate rule groups, flush the outbox.

Each job is a method taking ``now``; the scheduler (or a test) decides when it runs.
Error contract: a job may raise; ``JobRunner.run`` catches everything, logs the cause once per
distinct cause, counts it in ``tcowatch_job_failures_total{job}`` and lets the next tick retry.
A job that fails writes nothing: every store write of a job is one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, delete, select

from collectors.base import Collector, CollectorDown, CollectorError
from daemon.alert_rows import alert_instance
from daemon.anomalies import AnomalyFact, anomaly_facts, record_anomalies
from daemon.costs.budget import Budget
from daemon.hourly import roll_hours
from daemon.notify.channels.base import Channel
from daemon.notify.dispatch import Dispatcher
from daemon.notify.outbox import flush
from daemon.persist import upsert_inventory, write_rollups
from daemon.retention import RetentionPolicy, enforce
from daemon.rollup import MinuteBuffer, Minutes, minute_floor
from daemon.rule_context import ContextBuilder
from daemon.state import AlertView, CollectorStatus, LiveState
from daemon.store.db import session_scope
from daemon.store.models import Alert, as_utc
from rules.base import Rule
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


def rule_key(group: str, spec: AlertRuleSpec) -> str:
    """A stable id of a configured rule: its group, alertname and static labels, hashed.

    Stored on each alert row so that two rules sharing an alertname (allowed when their
    labels differ) never see each other's alerts, and so that editing a rule's annotations,
    ``for`` or params keeps its alerts (and their ``for`` clocks).
    """
    identity = json.dumps([group, spec.name, sorted(spec.labels.items())], ensure_ascii=False)
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class RuleGroup:
    """Rules evaluated together, as one job ``evaluate:<name>``, every ``interval``
    (``None``: the pipeline's ``evaluation_interval``), like a Prometheus rule group."""

    name: str
    rules: Sequence[ConfiguredRule]
    interval: timedelta | None = None


@dataclass
class Pipeline:
    """Collect -> roll up -> evaluate -> notify, over one store and one live state."""

    engine: Engine
    state: LiveState
    collectors: Sequence[tuple[Collector, timedelta]]
    groups: Sequence[RuleGroup]
    channels: Mapping[str, Channel]
    evaluation_interval: timedelta
    """Interval of the rule groups that do not set their own."""
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
    budgets: Sequence[Budget] = ()
    """The configured monthly budgets, for rules that need ``budgets``."""
    dispatcher: Dispatcher | None = None
    """Routes alert states to channels (``None``: alerts are kept, nothing is notified)."""
    dispatch_interval: timedelta = timedelta(seconds=5)
    _down_reason: dict[str, str] = field(default_factory=dict)
    _rule_errors: dict[str, str] = field(default_factory=dict)
    _unwritten: list[Minutes] = field(default_factory=list)

    def jobs(self) -> list[JobSpec]:
        """Every job with its interval, collectors first."""
        specs = [
            JobSpec(f"collect:{collector.name}", interval, self._collect_job(collector))
            for collector, interval in self.collectors
        ]
        specs += [
            JobSpec("rollup", timedelta(minutes=1) / 4, self.rollup),
            *self._evaluate_jobs(),
            JobSpec("dispatch", self.dispatch_interval, self.dispatch),
            JobSpec("flush", self.flush_interval, self.flush),
            JobSpec("rollup_hourly", timedelta(minutes=5), self.rollup_hourly),
            JobSpec("retention", self.retention_interval, self.enforce_retention),
            *self.extra_jobs,
        ]
        for spec in specs:
            self.state.ensure_job(spec.name)
        return specs

    @property
    def rules(self) -> tuple[ConfiguredRule, ...]:
        """Every rule of every group, in group order."""
        return tuple(rule for group in self.groups for rule in group.rules)

    def _evaluate_jobs(self) -> list[JobSpec]:
        """One ``evaluate:<group>`` job per group; ``ValueError`` for a group name used twice."""
        specs: list[JobSpec] = []
        seen: set[str] = set()
        for group in self.groups:
            if group.name in seen:
                raise ValueError(f"rule group {group.name!r} is defined twice")
            seen.add(group.name)
            interval = group.interval or self.evaluation_interval
            specs.append(JobSpec(f"evaluate:{group.name}", interval, self._group_job(group)))
        return specs

    def _group_job(self, group: RuleGroup) -> Callable[[datetime], None]:
        def job(now: datetime) -> None:
            self.evaluate_group(group, now)

        return job

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
        """Evaluate every group once at ``now`` (each group in its own transaction)."""
        for group in self.groups:
            self.evaluate_group(group, now)

    def evaluate_group(self, group: RuleGroup, now: datetime) -> None:
        """Evaluate the group's rules at ``now``: build each rule's context from the store,
        judge, advance the alert states, record cost anomalies, persist the alerts and enqueue
        notifications, all in one transaction.

        A rule that raises (or whose findings cannot be judged) is logged once per distinct
        cause, counted as ``rule:<name>`` in the job failures, and its alerts keep their state;
        the other rules go on. Database errors propagate (the job fails, nothing is written).
        """
        view = self.state.view()
        limits = {uuid: gpu.power_limit_watts for uuid, gpu in view.gpus.items()}
        with session_scope(self.engine) as session:
            builder = ContextBuilder(
                session, now, down=view.down_gpus, power_limits=limits, budgets=self.budgets
            )
            for configured in group.rules:
                self._evaluate_rule(
                    session, builder, configured, rule_key(group.name, configured.spec), now
                )
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

    def _judge(
        self,
        builder: ContextBuilder,
        configured: ConfiguredRule,
        previous: Mapping[str, AlertInstance],
        now: datetime,
    ) -> tuple[dict[str, AlertInstance], list[Transition], list[AnomalyFact]] | None:
        """Build, evaluate and step one rule; ``None`` when the rule failed (logged once)."""
        spec = configured.spec
        try:
            findings = configured.rule.evaluate(builder.build(configured.rule))
            facts = anomaly_facts(spec.name, findings) if spec.kind == "cost_anomaly" else []
            current, transitions = step(spec, previous, findings, now)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # one broken rule must not stop the others
            self.state.count_job_failure(f"rule:{spec.name}")
            cause = f"{type(exc).__name__}: {exc}"
            if self._rule_errors.get(spec.name) != cause:
                logger.error(
                    "rule %s failed, its alerts keep their state: %s", spec.name, cause,
                    exc_info=exc,
                )  # fmt: skip
                self._rule_errors[spec.name] = cause
            else:
                logger.debug("rule %s failed again: %s", spec.name, cause)
            return None
        if self._rule_errors.pop(spec.name, None) is not None:
            logger.info("rule %s recovered", spec.name)
        return current, transitions, facts

    def _evaluate_rule(
        self,
        session: Session,
        builder: ContextBuilder,
        configured: ConfiguredRule,
        key: str,
        now: datetime,
    ) -> None:
        spec = configured.spec
        rows = {
            a.fingerprint: a
            for a in session.exec(select(Alert).where(Alert.alertname == spec.name))
            if a.rule_key == key or (not a.rule_key and _owned(spec, a.labels))
        }
        previous = {fp: alert_instance(row) for fp, row in rows.items()}
        judged = self._judge(builder, configured, previous, now)
        if judged is None:
            return
        current, transitions, facts = judged
        for transition in transitions:
            if transition.kind in ("firing", "resolved"):
                logger.info(
                    "alert %s %s %s", transition.kind, spec.name, transition.alert.fingerprint
                )
        if facts:
            record_anomalies(session, facts, now)
        gone = [fingerprint for fingerprint in rows if fingerprint not in current]
        if gone:
            session.exec(delete(Alert).where(col(Alert.fingerprint).in_(gone)))
        with session.no_autoflush:  # one flush for the rule's rows, not one per alert
            for fingerprint, instance in current.items():
                row = rows.get(fingerprint)
                if row is None:  # merge: tolerates a row another rule's labels rendered to
                    session.merge(_to_row(instance, key, now))
                else:
                    for name, value in _row_fields(instance, key, now).items():
                        setattr(row, name, value)

    def dispatch(self, now: datetime) -> None:
        """Turn alert states into due notifications: route, group, silence, inhibit, dedup,
        and write outbox rows, in one transaction (``daemon.notify.dispatch``)."""
        if self.dispatcher is None:
            return
        with session_scope(self.engine) as session:
            self.dispatcher.dispatch(session, now)

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


_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def _owned(spec: AlertRuleSpec, labels: Mapping[str, str]) -> bool:
    """Whether a stored alert of ``spec.name`` belongs to this rule: rules may share an
    alertname when their ``labels`` differ, and a rule's static labels always win over the
    finding's, so an alert whose labels disagree with one of them is another rule's."""
    for name, template in spec.labels.items():
        if any(marker in template for marker in _TEMPLATE_MARKERS):
            continue
        if labels.get(name, "") != template:
            return False
    return True


def _row_fields(instance: AlertInstance, key: str, now: datetime) -> dict[str, Any]:
    return {
        "fingerprint": instance.fingerprint,
        "rule_key": key,
        "alertname": instance.alertname,
        "labels": dict(instance.labels),
        "annotations": dict(instance.annotations),
        "state": instance.state,
        "value": instance.value,
        "active_at": instance.active_at,
        "fired_at": instance.fired_at,
        "resolved_at": instance.resolved_at,
        "keep_firing_since": instance.keep_firing_since,
        "last_sent_at": instance.last_sent_at,
        "last_evaluated_at": now,
    }


def _to_row(instance: AlertInstance, key: str, now: datetime) -> Alert:
    return Alert(**_row_fields(instance, key, now))
