"""The README documents every metric family the exporter can emit (like datasette's
test_docs: a family added without documentation fails here)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import generate_latest

from collectors.base import (
    CacheSample,
    GpuProcess,
    GpuSample,
    MigInstance,
    ModelSample,
    Snapshot,
    TargetStatus,
)
from daemon.costs.figures import CostFigures, Money
from daemon.costs.localcost import GpuCostModel
from daemon.exporter import build_registry
from daemon.state import AlertView, CollectorStatus, LiveState
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def everything() -> LiveState:
    state = LiveState()
    gpu = GpuSample(
        uuid="GPU-1",
        node="n1",
        index=0,
        name="H100",
        timestamp=NOW,
        utilization_ratio=0.5,
        memory_used_bytes=1,
        memory_total_bytes=2,
        power_watts=3.0,
        power_limit_watts=4.0,
        energy_joules=5.0,
        temperature_celsius=6.0,
        pci_bus_id="00000000:18:00.0",
        memory_utilization_ratio=0.1,
        memory_reserved_bytes=7,
        sm_clock_hz=8.0,
        memory_clock_hz=9.0,
        pstate=0,
        clock_event_idle=False,
        engine_active_ratio=0.2,
        processes=(GpuProcess(pid=1, used_memory_bytes=10, name="vllm"),),
        mig_enabled=True,
        mig_instances=(
            MigInstance(
                gpu_instance_id=7,
                profile="1g.10gb",
                memory_used_bytes=1,
                memory_total_bytes=2,
                engine_active_ratio=0.3,
            ),
        ),
    )
    model = ModelSample(
        node="n1",
        model="m",
        instance="i",
        timestamp=NOW,
        prompt_tokens_total=1.0,
        generation_tokens_total=2.0,
        cache_queries_total=3.0,
        cache_hits_total=1.0,
        requests_total=4.0,
        engine="sglang",
        cache_hit_ratio=0.4,
        requests_running=2.0,
    )
    state.record_snapshot(
        Snapshot(
            collector="scrape",
            timestamp=NOW,
            gpus=(gpu,),
            models=(model,),
            caches=(CacheSample(name="gw", timestamp=NOW, hits_total=1.0, lookups_total=2.0),),
            targets=(
                TargetStatus(
                    target="http://x/metrics",
                    kind="dcgm",
                    up=False,
                    duration_seconds=0.1,
                    error="HTTP 503",
                ),
            ),
        )
    )
    state.record_collector(CollectorStatus(name="scrape", up=True, last_success=NOW))
    state.set_alerts(
        (
            AlertView(
                fingerprint="f",
                alertname="A",
                state="firing",
                labels={"x": "y"},
                annotations={},
                active_at=NOW,
            ),
        )
    )
    state.count_job_failure("rollup")
    usd = Money(Decimal("1.5"), "USD")
    state.set_costs(
        CostFigures(
            computed_at=NOW,
            gpu_hourly={"GPU-1": usd},
            idle_cost_total={"GPU-1": usd},
            cost_per_million={("m", "allocation"): usd},
            cloud_equivalent={("m", "deepseek", "deepseek-chat"): usd},
            break_even_tokens={("m", "deepseek", "deepseek-chat"): Decimal(5)},
            cloud_price={("deepseek", "deepseek-chat", "output"): usd},
            cloud_spend={("AWS", "EC2", "month"): usd},
            budget_forecast={"b": usd},
            budget_amount={"b": usd},
            gpu_models={
                "H100": GpuCostModel(
                    gpu_model="H100",
                    currency="USD",
                    purchase_price=Decimal(1),
                    depreciation_years=Decimal(1),
                    power_price_per_kwh=Decimal(1),
                    pue=Decimal(1),
                    ops_cost_per_year=Decimal(0),
                )
            },
        )
    )
    state.count_notification("hook", "success")
    return state


def test_every_exported_family_is_documented_in_the_readme() -> None:
    text = generate_latest(build_registry(everything())).decode()
    families = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))
    assert len(families) > 40
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(tcowatch_[a-z_]+)`", section))
    missing = sorted(f for f in families if f not in documented and f"{f}_total" not in documented)
    assert missing == []
