"""The process keeps running whatever a source or a job does; the scheduler is configured
the way the issue asks (coalesce, one instance, a misfire grace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import generate_latest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from collectors.base import CostLine
from collectors.nvml import NvmlCollector
from daemon.config import Config, ConfigError, RuleConfig, default_rules
from daemon.costs.ledger import add_lines
from daemon.exporter import build_registry
from daemon.jobs import ConfiguredRule, JobRunner, JobSpec, Pipeline, RuleGroup
from daemon.process import build_budgets, build_pipeline, build_rule
from daemon.rollup import MinuteBuffer
from daemon.scheduler import MIN_INTERVAL_SECONDS, SteppedScheduler, build_scheduler
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import Alert, Anomaly
from rules.base import Finding, Rule, RuleContext
from rules.engine import AlertRuleSpec
from tests.collectors.fake_pynvml import FakeGpu, FakeNvml

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
LIBRARY_NOT_FOUND = 12


def test_it_marks_nvml_down_with_the_reason_and_recovers_after_the_backoff(
    tmp_path: Path,
) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b")])
    fake.init_error = LIBRARY_NOT_FOUND
    collector = NvmlCollector(node="n1", nvml=fake, retry_backoff=timedelta(seconds=60))
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    state = LiveState()
    pipeline = build_pipeline(
        Config(), engine, state, collectors=[(collector, timedelta(seconds=15))]
    )
    scheduler = SteppedScheduler(pipeline.jobs(), JobRunner(state), T0)
    registry = build_registry(state)

    scheduler.run_until(T0 + timedelta(seconds=45))
    status = state.view().collectors["nvml"]
    assert status.up is False
    assert "NVML library not found" in status.reason
    assert registry.get_sample_value("tcowatch_collector_up", {"collector": "nvml"}) == 0
    assert state.view().job_failures["collect:nvml"] == 0  # a down source is not a crash
    assert b"install the NVIDIA driver" not in generate_latest(
        registry
    )  # reasons stay off /metrics

    fake.init_error = None  # the driver got installed
    scheduler.run_until(T0 + timedelta(seconds=75))
    assert state.view().collectors["nvml"].up is True
    assert registry.get_sample_value("tcowatch_collector_up", {"collector": "nvml"}) == 1
    assert "GPU-5e5f1e0a-1c2d-4e3f-8a9b-0c1d2e3f4a5b" in state.view().gpus
    pipeline.close()
    engine.dispose()


def test_it_configures_every_job_coalesced_single_instance_with_a_grace_time() -> None:
    state = LiveState()
    runner = JobRunner(state)
    ran: list[datetime] = []
    jobs = [
        JobSpec("collect:x", timedelta(seconds=15), ran.append),
        JobSpec("rollup", timedelta(seconds=60), ran.append),
    ]
    scheduler = build_scheduler(jobs, runner, lambda: T0, speed=1.0)
    by_id = {job.id: job for job in scheduler.get_jobs()}
    assert set(by_id) == {"collect:x", "rollup"}
    for job in by_id.values():
        assert job.coalesce is True
        assert job.max_instances == 1
    assert by_id["collect:x"].misfire_grace_time == 7
    assert by_id["rollup"].misfire_grace_time == 30
    assert by_id["rollup"].trigger.interval == timedelta(seconds=60)
    fast = build_scheduler(jobs, runner, lambda: T0, speed=600)
    intervals = {job.id: job.trigger.interval.total_seconds() for job in fast.get_jobs()}
    assert intervals == {"collect:x": MIN_INTERVAL_SECONDS, "rollup": MIN_INTERVAL_SECONDS}


def test_it_runs_due_jobs_in_time_order_with_their_own_times() -> None:
    seen: list[tuple[str, datetime]] = []
    jobs = [
        JobSpec("a", timedelta(seconds=15), lambda now: seen.append(("a", now))),
        JobSpec("b", timedelta(seconds=20), lambda now: seen.append(("b", now))),
    ]
    SteppedScheduler(jobs, JobRunner(LiveState()), T0).run_until(T0 + timedelta(seconds=40))
    assert seen == [
        ("a", T0),
        ("b", T0),
        ("a", T0 + timedelta(seconds=15)),
        ("b", T0 + timedelta(seconds=20)),
        ("a", T0 + timedelta(seconds=30)),
        ("b", T0 + timedelta(seconds=40)),
    ]


def test_it_logs_a_repeated_job_failure_once(caplog: pytest.LogCaptureFixture) -> None:
    state = LiveState()
    runner = JobRunner(state)

    def broken(now: datetime) -> None:
        raise OSError("disk full")

    with caplog.at_level("DEBUG", logger="daemon.jobs"):
        for _ in range(3):
            assert runner.run("rollup", broken, T0) is False
        assert runner.run("rollup", lambda now: None, T0) is True
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "disk full" in errors[0].getMessage()
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert state.view().job_failures["rollup"] == 3


# -- rule groups --------------------------------------------------------------------------------


@dataclass
class ScriptedRule:
    """A rule whose findings (or failure) the test sets before each evaluation."""

    findings: list[Finding] = field(default_factory=list)
    error: Exception | None = None
    needs: frozenset[str] = frozenset({"debts"})
    window: timedelta = timedelta(minutes=5)
    series_names: frozenset[str] = frozenset()
    kind: ClassVar[str] = "scripted"
    seen: list[RuleContext] = field(default_factory=list)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        self.seen.append(ctx)
        if self.error is not None:
            raise self.error
        return list(self.findings)


def configured(name: str, rule: Rule, *, kind: str = "scripted", **spec: Any) -> ConfiguredRule:
    return ConfiguredRule(rule=rule, spec=AlertRuleSpec(name=name, kind=kind, **spec))


def pipeline_with(engine: Engine, state: LiveState, *groups: RuleGroup) -> Pipeline:
    return Pipeline(
        engine=engine,
        state=state,
        collectors=[],
        groups=list(groups),
        channels={},
        evaluation_interval=timedelta(seconds=30),
        flush_interval=timedelta(seconds=10),
        buffer=MinuteBuffer(),
    )


def alerts(engine: Engine) -> dict[str, Alert]:
    with Session(engine) as session:
        return {a.alertname: a for a in session.exec(select(Alert))}


def test_it_runs_one_evaluate_job_per_group_at_its_own_interval(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    fast, slow = ScriptedRule(), ScriptedRule()
    pipeline = pipeline_with(
        engine,
        LiveState(),
        RuleGroup(name="default", rules=[configured("Fast", fast)]),
        RuleGroup(name="costs", rules=[configured("Slow", slow)], interval=timedelta(minutes=2)),
    )
    jobs = {spec.name: spec.interval for spec in pipeline.jobs()}
    assert jobs["evaluate:default"] == timedelta(seconds=30)
    assert jobs["evaluate:costs"] == timedelta(minutes=2)
    assert "evaluate" not in jobs
    SteppedScheduler(pipeline.jobs(), JobRunner(pipeline.state), T0).run_until(
        T0 + timedelta(minutes=4)
    )
    assert [ctx.now for ctx in slow.seen] == [T0 + timedelta(minutes=m) for m in (0, 2, 4)]
    assert len(fast.seen) == 9
    assert [c.rule for c in pipeline.rules] == [fast, slow]
    engine.dispose()


def test_it_refuses_a_group_name_used_twice(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    group = RuleGroup(name="g", rules=[])
    with pytest.raises(ValueError, match="rule group 'g' is defined twice"):
        pipeline_with(engine, LiveState(), group, group).jobs()
    engine.dispose()


def test_it_logs_a_failing_rule_once_counts_it_and_keeps_its_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    state = LiveState()
    flaky = ScriptedRule(findings=[Finding(labels={"x": "1"}, value=1.0)])
    steady = ScriptedRule(findings=[Finding(labels={"y": "1"}, value=2.0)])
    pipeline = pipeline_with(
        engine,
        state,
        RuleGroup(
            name="default",
            rules=[
                configured("Flaky", flaky, for_=timedelta(minutes=10)),
                configured("Steady", steady),
            ],
        ),
    )
    pipeline.evaluate(T0)
    pending = alerts(engine)["Flaky"]
    assert pending.state == "pending"

    flaky.error = ZeroDivisionError("division by zero")
    with caplog.at_level("DEBUG", logger="daemon.jobs"):
        for minutes in (1, 2, 3):
            pipeline.evaluate(T0 + timedelta(minutes=minutes))
        flaky.error = None
        pipeline.evaluate(T0 + timedelta(minutes=11))
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "rule Flaky failed" in errors[0].getMessage()
    assert any("rule Flaky recovered" in r.getMessage() for r in caplog.records)
    assert state.view().job_failures["rule:Flaky"] == 3
    after = alerts(engine)
    # the failing ticks did not reset `for`: active since T0, so firing at T0 + 11m
    assert after["Flaky"].active_at == pending.active_at
    assert after["Flaky"].state == "firing"
    assert after["Steady"].state == "firing"
    assert len(steady.seen) == 5  # the other rule kept being evaluated
    engine.dispose()


def _bills(days: int, spike_day: date) -> list[CostLine]:
    lines = []
    for back in range(days, 0, -1):
        day = spike_day - timedelta(days=back - 1)
        start = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
        for sku, cost in (("sku-base", "100.10"), ("sku-gpu", "0")):
            amount = "900.05" if sku == "sku-gpu" and day == spike_day else cost
            lines.append(
                CostLine(
                    row_key=f"{day}-{sku}",
                    provider="aws",
                    billed_cost=Decimal(amount),
                    billing_currency="USD",
                    charge_period_start=start,
                    charge_period_end=start + timedelta(hours=1),
                    service_name="Amazon EC2",
                    sub_account_id="111",
                    sku_id=sku,
                    region_id="us-east-1",
                    charge_category="Usage",
                )
            )
    return lines


def test_it_records_cost_anomalies_once_and_alerts_on_them(db_url: str) -> None:
    engine = open_store(db_url)
    yesterday = T0.date() - timedelta(days=1)
    with Session(engine) as session:
        add_lines(session, _bills(29, yesterday), source="test", import_batch="b")
        session.commit()
    rule_config = RuleConfig.model_validate(
        {"name": "CloudCostSpike", "kind": "cost_anomaly", "params": {"root_cause_top": 3}}
    )
    pipeline = pipeline_with(
        engine,
        LiveState(),
        RuleGroup(name="costs", rules=[build_rule(rule_config)], interval=timedelta(hours=1)),
    )
    pipeline.evaluate(T0)
    pipeline.evaluate(T0 + timedelta(hours=1))
    with Session(engine) as session:
        (anomaly,) = session.exec(select(Anomaly)).all()
    assert anomaly.rule == "CloudCostSpike"
    assert anomaly.day == datetime.combine(yesterday, datetime.min.time(), UTC)
    assert anomaly.series_key == '{account="111",provider="aws",service="Amazon EC2"}'
    assert anomaly.expected_cost == Decimal("100.10")
    assert anomaly.actual_cost == Decimal("1000.15")
    assert anomaly.impact == Decimal("900.05")
    # single-valued region and charge category explain nothing and are not candidates;
    # the text is the same on SQLite and PostgreSQL
    assert anomaly.root_causes == [
        {
            "dimension": "sku_id",
            "value": "sku-gpu",
            "expected": "0",
            "actual": "900.05",
            "impact": "900.05",
        }
    ]
    alert = alerts(engine)["CloudCostSpike"]
    assert alert.state == "firing" and alert.labels["service"] == "Amazon EC2"
    engine.dispose()


def test_it_builds_rule_groups_and_budgets_from_the_config(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "evaluation_interval": "1m",
            "costs": {"budgets": [{"name": "cloud", "amount": "5000", "currency": "EUR"}]},
        }
    )
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    pipeline = build_pipeline(config, engine, LiveState(), collectors=[])
    (group,) = pipeline.groups
    assert group.name == "default" and group.interval is None
    assert [r.spec.name for r in group.rules] == [r.name for r in default_rules()]
    assert {s.name: s.interval for s in pipeline.jobs()}["evaluate:default"] == timedelta(minutes=1)
    assert [(b.name, b.amount, b.currency) for b in pipeline.budgets] == [
        ("cloud", Decimal("5000"), "EUR")
    ]
    pipeline.close()
    engine.dispose()


def test_it_names_the_rule_or_budget_that_cannot_be_built() -> None:
    broken = RuleConfig.model_construct(name="Broken", kind="nope", params={})
    with pytest.raises(ConfigError, match="rule Broken: unknown rule kind 'nope'"):
        build_rule(broken)
    config = Config.model_validate({"costs": {"budgets": [{"name": "zero", "amount": "0"}]}})
    with pytest.raises(ConfigError, match="budget 'zero': amount must be a Decimal above 0"):
        build_budgets(config)


def test_it_keeps_apart_two_rules_that_share_an_alertname(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    warn = ScriptedRule(findings=[Finding(labels={"node": "n1"}, value=1.0)])
    page = ScriptedRule(findings=[Finding(labels={"node": "n1"}, value=9.0)])
    pipeline = pipeline_with(
        engine,
        LiveState(),
        RuleGroup(
            name="default",
            rules=[
                configured("HighLoad", warn, labels={"severity": "warning"}),
                configured("HighLoad", page, labels={"severity": "critical"}),
            ],
        ),
    )
    pipeline.evaluate(T0)
    pipeline.evaluate(T0 + timedelta(seconds=30))
    with Session(engine) as session:
        stored = {a.labels["severity"]: a for a in session.exec(select(Alert))}
    assert set(stored) == {"warning", "critical"}  # neither rule dropped the other's alert
    assert stored["warning"].active_at == T0 and stored["critical"].active_at == T0
    assert stored["critical"].value == 9.0
    engine.dispose()


def test_it_evaluates_the_groups_of_rule_files_at_their_own_intervals(tmp_path: Path) -> None:
    (tmp_path / "gpu.rules.yaml").write_text(
        "groups:\n"
        "  - name: fleet\n"
        "    interval: 5m\n"
        "    rules:\n"
        "      - {name: FleetLow, kind: fleet_utilization, params: {below: 0.3}}\n",
        encoding="utf-8",
    )
    config = Config.model_validate({"rule_files": ["*.rules.yaml"]})
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    pipeline = build_pipeline(config, engine, LiveState(), collectors=[], base_dir=tmp_path)
    intervals = {s.name: s.interval for s in pipeline.jobs() if s.name.startswith("evaluate:")}
    assert intervals == {
        "evaluate:default": timedelta(seconds=30),
        "evaluate:fleet": timedelta(minutes=5),
    }
    assert [c.spec.name for c in pipeline.rules] == [
        *(r.name for r in default_rules()),
        "FleetLow",
    ]
    pipeline.close()
    engine.dispose()


def test_it_treats_unrecordable_anomaly_details_as_a_failing_rule(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 't.db'}")
    state = LiveState()
    broken = ScriptedRule(
        findings=[Finding(labels={"provider": "aws"}, value=5.0, details={"day": "yesterday"})]
    )
    pipeline = pipeline_with(
        engine,
        state,
        RuleGroup(name="costs", rules=[configured("Spike", broken, kind="cost_anomaly")]),
    )
    pipeline.evaluate(T0)
    assert state.view().job_failures["rule:Spike"] == 1
    with Session(engine) as session:
        assert session.exec(select(Anomaly)).all() == []
        assert session.exec(select(Alert)).all() == []  # nothing half-recorded
    engine.dispose()
