"""Build the process's parts from a validated ``Config``: collectors, rules, channels, pipeline.

Error contract: ``build_pipeline`` raises ``ConfigError`` for a rule or channel that cannot be
built (already validated at load, so this means a programming error surfaced clearly), and
never touches the network: collectors connect on their first cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from collectors.base import Collector, load_collector_class
from daemon.config import Config
from daemon.costs.billing_jobs import billing_jobs
from daemon.costs.figures import CostFiguresJob
from daemon.jobs import ConfiguredRule, JobSpec, Pipeline
from daemon.notify.channels import load_channel_class
from daemon.notify.channels.base import Channel
from daemon.retention import RetentionPolicy
from daemon.rollup import MinuteBuffer
from daemon.state import LiveState
from rules.base import load_rule_class
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


def build_rules(config: Config) -> list[ConfiguredRule]:
    """Every configured rule, instantiated."""
    configured: list[ConfiguredRule] = []
    for rule_config in config.rules:
        rule = load_rule_class(rule_config.kind)(rule_config.params)
        spec = AlertRuleSpec(
            name=rule_config.name,
            kind=rule_config.kind,
            for_=rule_config.for_,
            keep_firing_for=rule_config.keep_firing_for,
            labels=dict(rule_config.labels),
            annotations=dict(rule_config.annotations),
        )
        configured.append(ConfiguredRule(rule=rule, spec=spec))
    return configured


def build_channels(config: Config) -> dict[str, Channel]:
    """Every configured notification channel by name."""
    channels: dict[str, Channel] = {}
    for channel_config in config.channels:
        channel_class = load_channel_class(channel_config.type)
        channels[channel_config.name] = channel_class(
            name=channel_config.name,
            url=channel_config.url.get_secret_value(),
            secret=channel_config.secret.get_secret_value() if channel_config.secret else None,
            timeout_seconds=channel_config.timeout.total_seconds(),
            send_resolved=channel_config.send_resolved,
        )
    return channels


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
) -> Pipeline:
    """The pipeline for ``config``; tests may pass their own collectors or channels."""
    idle = IdlePolicy(
        utilization_below=config.idle.utilization_below,
        power_below_ratio=config.idle.power_below_ratio,
    )
    return Pipeline(
        engine=engine,
        state=state,
        collectors=list(collectors) if collectors is not None else build_collectors(config),
        rules=build_rules(config),
        channels=channels if channels is not None else build_channels(config),
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
