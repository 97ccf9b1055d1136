"""Build the process's parts from a validated ``Config``: collectors, rules, channels, pipeline.

Error contract: ``build_pipeline`` raises ``ConfigError`` for a rule or channel that cannot be
built (already validated at load, so this means a programming error surfaced clearly), and
never touches the network: collectors connect on their first cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from collectors.base import Collector, load_collector_class
from daemon.config import Config, ConfigError, RuleConfig
from daemon.costs.billing_jobs import billing_jobs
from daemon.costs.budget import Budget
from daemon.costs.figures import CostFiguresJob
from daemon.jobs import ConfiguredRule, JobSpec, Pipeline, RuleGroup
from daemon.notify.channels.base import Channel
from daemon.notify.channels.config import build_channels as build_configured_channels
from daemon.notify.dispatch import Dispatcher
from daemon.retention import RetentionPolicy
from daemon.rollup import MinuteBuffer
from daemon.rule_files import rule_groups
from daemon.state import LiveState
from rules.base import RuleConfigError, load_rule_class
from rules.engine import AlertRuleSpec
from rules.idle import IdlePolicy

logger = logging.getLogger(__name__)


def build_collectors(config: Config) -> list[tuple[Collector, timedelta]]:
    """The enabled collectors with their intervals."""
    built: list[tuple[Collector, timedelta]] = []
    sim = config.collectors.simulated
    if sim.enabled:
        fleet = load_collector_class("simulated")(
            nodes=sim.nodes, gpus_per_node=sim.gpus_per_node, seed=sim.seed, idle_gpus=sim.idle_gpus
        )
        built.append((fleet, sim.interval))
    scrape = config.collectors.scrape
    if scrape.enabled:
        built.append((build_scrape_collector(config), scrape.interval))
    nvml = config.collectors.nvml
    if nvml.enabled:
        collector = load_collector_class("nvml")(node=nvml.node, retry_backoff=nvml.retry_backoff)
        built.append((collector, nvml.interval))
    return built


def build_scrape_collector(config: Config) -> Collector:
    """The exposition scrape collector over the configured targets, files and caches."""
    from collectors.scrape import CacheSpec, ScrapeCollector, Target

    scrape = config.collectors.scrape
    targets = [
        Target(
            url=t.url,
            kind=t.kind,
            node=t.node,
            labels=dict(t.labels),
            gpu_uuids=tuple(t.gpu_uuids),
        )
        for t in scrape.targets
    ]
    targets += [
        Target(
            url=c.url,
            kind="cache",
            cache=CacheSpec(
                name=c.name,
                hits_metric=c.hits_metric,
                lookups_metric=c.lookups_metric,
                labels=dict(c.labels),
            ),
        )
        for c in scrape.caches
    ]
    collector: Collector = ScrapeCollector(
        targets=targets,
        target_files=[Path(p) for p in scrape.target_files],
        timeout=scrape.timeout,
        concurrency=scrape.concurrency,
        max_body_bytes=scrape.max_body_bytes,
    )
    return collector


def build_rule(rule_config: RuleConfig) -> ConfiguredRule:
    """One configured rule, instantiated; ``ConfigError`` names the rule for bad params."""
    try:
        rule = load_rule_class(rule_config.kind)(rule_config.params)
    except (KeyError, RuleConfigError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        raise ConfigError("rules", [f"rule {rule_config.name}: {message}"]) from None
    spec = AlertRuleSpec(
        name=rule_config.name,
        kind=rule_config.kind,
        for_=rule_config.for_,
        keep_firing_for=rule_config.keep_firing_for,
        labels=dict(rule_config.labels),
        annotations=dict(rule_config.annotations),
    )
    return ConfiguredRule(rule=rule, spec=spec)


def build_rules(config: Config) -> list[ConfiguredRule]:
    """Every rule of the config's own ``rules:``, instantiated."""
    return [build_rule(rule_config) for rule_config in config.rules]


def build_rule_groups(config: Config, *, base_dir: Path | None = None) -> list[RuleGroup]:
    """The rule groups (``daemon.rule_files.rule_groups``), instantiated; a group without an
    interval runs at the pipeline's ``evaluation_interval``."""
    return [
        RuleGroup(
            name=group.name,
            interval=group.interval,
            rules=[build_rule(rule_config) for rule_config in group.rules],
        )
        for group in rule_groups(config, base_dir=base_dir)
    ]


def build_budgets(config: Config) -> list[Budget]:
    """The configured monthly budgets; ``ConfigError`` for one that cannot be used."""
    budgets = []
    for entry in config.costs.budgets:
        try:
            budgets.append(
                Budget(
                    name=entry.name,
                    amount=entry.amount,
                    currency=entry.currency,
                    provider=entry.provider,
                    service=entry.service,
                )
            )
        except ValueError as exc:
            raise ConfigError("costs.budgets", [str(exc)]) from None
    return budgets


def build_channels(config: Config) -> dict[str, Channel]:
    """Every configured notification channel by name."""
    return build_configured_channels(config.channels)


def build_dispatcher(
    config: Config, channels: Mapping[str, Channel], state: LiveState | None
) -> Dispatcher:
    """The Alertmanager-style dispatcher over the configured route, inhibitions and intervals;
    ``ConfigError`` for a route naming a channel that does not exist (tests may pass their own
    channels)."""
    try:
        return Dispatcher(
            config.notify.route,
            config.notify.inhibit_rules,
            config.notify.time_intervals,
            channels,
            receiver=config.notify.receiver,
            external_url=external_url(config),
            state=state,
        )
    except ValueError as exc:
        raise ConfigError("notify.route", [str(exc)]) from None


def external_url(config: Config) -> str:
    """Where people reach the board (for links in notifications)."""
    if config.web.external_url:
        return config.web.external_url.rstrip("/")
    return f"http://{config.web.host}:{config.web.port}"


def build_pipeline(
    config: Config,
    engine: Engine,
    state: LiveState,
    *,
    collectors: Sequence[tuple[Collector, timedelta]] | None = None,
    channels: dict[str, Channel] | None = None,
    base_dir: Path | None = None,
) -> Pipeline:
    """The pipeline for ``config``; tests may pass their own collectors or channels.
    ``base_dir`` resolves relative ``rule_files`` globs (the config file's folder)."""
    idle = IdlePolicy(
        utilization_below=config.idle.utilization_below,
        power_below_ratio=config.idle.power_below_ratio,
    )
    channels = channels if channels is not None else build_channels(config)
    return Pipeline(
        engine=engine,
        state=state,
        collectors=list(collectors) if collectors is not None else build_collectors(config),
        groups=build_rule_groups(config, base_dir=base_dir),
        channels=channels,
        dispatcher=build_dispatcher(config, channels, state),
        dispatch_interval=config.notify.dispatch_interval,
        evaluation_interval=config.evaluation_interval,
        flush_interval=config.notify.flush_interval,
        buffer=MinuteBuffer(idle=idle),
        receiver=config.notify.receiver,
        external_url=external_url(config),
        max_attempts=config.notify.max_attempts,
        retention=RetentionPolicy(
            minutes=config.retention.minutes,
            hours=config.retention.hours,
            batch_size=config.retention.batch_size,
        ),
        retention_interval=config.retention.interval,
        budgets=build_budgets(config),
        extra_jobs=[
            *(
                JobSpec(name, interval, run)
                for name, interval, run in billing_jobs(config, engine, state)
            ),
            JobSpec(
                "costs", config.costs.interval, CostFiguresJob(engine, state, config.costs).run
            ),
        ],
    )
