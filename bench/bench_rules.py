"""One evaluation of the default rule set next to reading the same windows from the store alone.

A SQLite store (schema migrated before any clock starts) holds 30 minutes of per-minute rollups
for 1,024 GPUs (128 nodes x 8; one in eight idle while holding memory), 64 served models
(two instances each, on the half of the nodes that has no idle GPU), two response caches,
30 days of cloud bills and a few rollbacks and debt items. Then, in the same run and interleaved:

- ``read``: the context builder's queries alone: a fresh ``ContextBuilder`` builds the
  context of every default rule (shared (field, window) results fetched once, as in a tick);
- ``evaluate``: ``Pipeline.evaluate``: the same contexts, then every rule's ``evaluate``,
  the alert state machine (``step``), the cost-anomaly records and the ``alert`` rows
  persisted, in one transaction (no notification channels configured).

The rule set is the default rules plus, until the defaults cover them, one rule of every other
registered kind with its default params (``--defaults-only`` runs the defaults alone).

The first evaluation (which inserts every alert) is shown on its own; the table compares the
medians of the following ones. Issue 5's target: evaluation adds less than half of the read
time.

Run: ``python bench/bench_rules.py [--repeat 7] [--gpus 1024] [--models 64]``. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from collectors.base import CostLine, GpuSample
from daemon.config import Config, default_rules
from daemon.costs.ledger import add_lines
from daemon.jobs import Pipeline
from daemon.persist import upsert_inventory
from daemon.process import build_pipeline
from daemon.rollup import GpuMinute
from daemon.rule_context import ContextBuilder
from daemon.state import LiveState
from daemon.store.db import open_store
from daemon.store.models import (
    Alert,
    CacheRollup,
    DebtItem,
    GpuRollup,
    InferenceRollup,
    Rollback,
)
from rules.base import RULES

NOW = datetime(2026, 8, 20, 10, 0, 20, tzinfo=UTC)
MINUTES = 30
GPUS_PER_NODE = 8
GIB = 2**30
EXTRA_PARAMS: dict[str, dict[str, Any]] = {
    "threshold": {
        "series": "tcowatch_gpu_utilization_ratio",
        "aggregation": "avg",
        "window": "30m",
        "op": "<",
        "value": 0.05,
    },
}
"""Params for registered kinds that have required ones (the others run with defaults)."""
SERVICES = ("Amazon EC2", "Amazon S3", "Amazon SageMaker", "Amazon Bedrock")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


def gpu_id(n: int) -> str:
    return f"GPU-{n:08x}-0000-0000-0000-000000000000"


def fill_gpus(engine: Engine, gpus: int, rng: random.Random) -> tuple[LiveState, set[int]]:
    # idle GPUs sit on the half of the nodes that serve no model (a GPU on a serving node
    # counts the node's tokens when its own mapping is unknown)
    idle = set(rng.sample(range(gpus // 2, gpus), gpus // 8))
    start = NOW.replace(second=0) - timedelta(minutes=MINUTES)
    inventory = [
        GpuMinute(
            uuid=gpu_id(n), node=f"node-{n // GPUS_PER_NODE:03d}", index=n % GPUS_PER_NODE,
            name="NVIDIA H100 80GB HBM3", memory_total_bytes=80 * GIB, bucket_start=start,
            samples=4, avg_utilization_ratio=None, max_utilization_ratio=None,
            avg_memory_used_bytes=None, avg_power_watts=None, energy_joules=None,
            idle_seconds=0.0, idle_ratio=0.0,
        )
        for n in range(gpus)
    ]  # fmt: skip
    rows: list[dict[str, Any]] = []
    for minute in range(MINUTES):
        bucket = start + timedelta(minutes=minute)
        for n in range(gpus):
            util = rng.uniform(0.0, 0.02) if n in idle else rng.uniform(0.3, 0.95)
            power = 90.0 + 10 * util if n in idle else 300.0 + 350 * util
            rows.append(
                {
                    "gpu_uuid": gpu_id(n), "resolution_seconds": 60, "bucket_start": bucket,
                    "samples": 4, "avg_utilization_ratio": util,
                    "max_utilization_ratio": min(1.0, util * 1.2),
                    "avg_memory_used_bytes": float(rng.randint(20, 70) * GIB),
                    "avg_power_watts": power, "energy_joules": power * 60,
                    "idle_seconds": 60.0 if n in idle else 0.0,
                }
            )  # fmt: skip
    with Session(engine) as session:
        upsert_inventory(session, inventory, NOW)
        session.execute(insert(GpuRollup), rows)
        session.commit()
    state = LiveState()
    state.record_samples(
        tuple(
            GpuSample(
                uuid=g.uuid, node=g.node, index=g.index, name=g.name, timestamp=NOW,
                memory_total_bytes=g.memory_total_bytes, power_limit_watts=700.0,
            )
            for g in inventory
        ),
        (),
        (),
    )  # fmt: skip
    return state, idle


def fill_models(engine: Engine, gpus: int, models: int, rng: random.Random) -> None:
    start = NOW.replace(second=0) - timedelta(minutes=MINUTES)
    nodes = gpus // GPUS_PER_NODE
    rows: list[dict[str, Any]] = []
    for m in range(models):
        for instance in range(2):
            node = (2 * m + instance) % (nodes // 2)
            uuids = [gpu_id(node * GPUS_PER_NODE + i) for i in range(GPUS_PER_NODE)]
            gauge_only = m % 4 == 0  # SGLang-like: hit-rate gauge, no counters
            for minute in range(MINUTES):
                queries = 0.0 if gauge_only else rng.uniform(5e3, 5e4)
                rows.append(
                    {
                        "node": f"node-{node:03d}", "model": f"model-{m:02d}",
                        "instance": f"model-{m:02d}-{instance}", "resolution_seconds": 60,
                        "bucket_start": start + timedelta(minutes=minute),
                        "prompt_tokens": rng.uniform(1e4, 1e5),
                        "generation_tokens": rng.uniform(1e3, 1e4), "cache_queries": queries,
                        "cache_hits": queries * rng.uniform(0.1, 0.8),
                        "requests": float(rng.randint(10, 200)), "gpu_uuids": uuids,
                        "engine": "sglang" if gauge_only else "vllm",
                        "cache_hit_ratio": rng.uniform(0.1, 0.8) if gauge_only else None,
                    }
                )  # fmt: skip
    caches = [
        {"name": name, "resolution_seconds": 60, "bucket_start": start + timedelta(minutes=k),
         "hits": rng.uniform(0, 100), "lookups": 100.0}
        for name in ("gateway", "litellm")
        for k in range(MINUTES)
    ]  # fmt: skip
    with Session(engine) as session:
        session.execute(insert(InferenceRollup), rows)
        session.execute(insert(CacheRollup), caches)
        session.commit()


def fill_bills(engine: Engine, rng: random.Random, days: int = 30) -> int:
    today = NOW.date()
    lines = []
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for account in ("111111111111", "222222222222", "333333333333"):
            for service in SERVICES:
                for sku in range(12):
                    cents = rng.randrange(500, 5000)
                    if back == 1 and service == "Amazon SageMaker" and sku == 3:
                        cents *= 40  # yesterday's spike
                    lines.append(
                        CostLine(
                            row_key=f"{day}-{account}-{service}-{sku}",
                            provider="aws", billed_cost=Decimal(cents) / 100,
                            billing_currency="USD", charge_period_start=start,
                            charge_period_end=start + timedelta(days=1), service_name=service,
                            sub_account_id=account, sku_id=f"SKU{sku:04d}",
                            region_id=REGIONS[sku % len(REGIONS)], charge_category="Usage",
                            resource_id=f"arn:aws:{service}:{account}:r/{sku}",
                        )
                    )  # fmt: skip
    with Session(engine) as session:
        count = add_lines(session, lines, source="bench", import_batch="b1")
        for k in range(8):
            session.add(
                Rollback(service=f"svc-{k}", from_version="2", to_version="1",
                         started_at=NOW - timedelta(hours=k + 1),
                         restored_at=None if k % 2 else NOW - timedelta(minutes=30))
            )  # fmt: skip
            session.add(
                DebtItem(title=f"debt {k}", status=("backlog", "planned", "done")[k % 3],
                         monthly_cost=Decimal(100 * k), due_date=NOW - timedelta(days=k - 3),
                         created_at=NOW - timedelta(days=30))
            )  # fmt: skip
        session.commit()
    return count


def rule_set(defaults_only: bool) -> list[dict[str, Any]]:
    """The default rules, plus one rule of every registered kind they do not use yet."""
    rules = [r.model_dump(by_alias=True, mode="json") for r in default_rules()]
    if defaults_only:
        return rules
    used = {r["kind"] for r in rules}
    for kind in sorted(set(RULES) - used):
        name = "Bench" + "".join(part.title() for part in kind.split("_"))
        rules.append({"name": name, "kind": kind, "params": EXTRA_PARAMS.get(kind, {})})
    return rules


def read_windows(pipeline: Pipeline) -> int:
    """What ``evaluate`` reads, and nothing else: every default rule's context."""
    view = pipeline.state.view()
    limits = {uuid: gpu.power_limit_watts for uuid, gpu in view.gpus.items()}
    with Session(pipeline.engine) as session:
        builder = ContextBuilder(
            session, NOW, down=view.down_gpus, power_limits=limits, budgets=pipeline.budgets
        )
        for configured in pipeline.rules:
            builder.build(configured.rule)
        return builder.computed


def timed(run: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``run()``, after a full garbage
    collection so that one run does not pay for the garbage of the previous one."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def row(label: str, samples: list[tuple[float, float]]) -> str:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return (
        f"{label:<42}{statistics.median(walls) * 1e3:>10.1f}{min(walls) * 1e3:>9.1f}"
        f"{statistics.median(cpus) * 1e3:>10.1f}{min(cpus) * 1e3:>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--gpus", type=int, default=1024)
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="only the default rules (by default one rule of each other registered kind too)",
    )
    args = parser.parse_args()
    rng = random.Random(7)
    config = Config.model_validate(
        {
            "rules": rule_set(args.defaults_only),
            "costs": {"budgets": [{"name": "cloud", "amount": "20000", "currency": "USD"}]},
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        engine = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        started = time.perf_counter()
        state, idle = fill_gpus(engine, args.gpus, rng)
        fill_models(engine, args.gpus, args.models, rng)
        bills = fill_bills(engine, rng)
        fill_seconds = time.perf_counter() - started
        pipeline = build_pipeline(config, engine, state, collectors=[], channels={})
        kinds = sorted({c.spec.kind for c in pipeline.rules})

        first = timed(lambda: pipeline.evaluate(NOW))
        reads: list[tuple[float, float]] = []
        evaluations: list[tuple[float, float]] = []
        fields: list[int] = []
        for _ in range(args.repeat):  # interleaved, so both see the same machine
            reads.append(timed(lambda: fields.append(read_windows(pipeline))))
            evaluations.append(timed(lambda: pipeline.evaluate(NOW)))
        with Session(engine) as session:
            alerts = session.exec(select(func.count()).select_from(Alert)).one()
        engine.dispose()

    print(
        f"store: {args.gpus} GPUs x {MINUTES} min, {args.models} models x 2 instances, "
        f"{bills} bill lines, filled in {fill_seconds:.1f} s"
    )
    defaults = len(default_rules())
    print(
        f"rules: {len(pipeline.rules)} ({defaults} default, {len(pipeline.rules) - defaults} "
        f"added for the other registered kinds): {', '.join(kinds)}"
    )
    print(f"results read per tick (shared (field, window) results once): {fields[-1]}")
    print(f"alerts after evaluation: {alerts} ({len(idle)} GPUs idle by construction)")
    print(f"{args.repeat} interleaved runs each; CPU = this process's CPU time")
    print()
    print(f"{'':<42}{'wall median':>12}{'min':>7}{'CPU median':>11}{'min':>8}  (ms)")
    print(row("read the windows (context builder only)", reads))
    print(row("full evaluation (read + judge + persist)", evaluations))
    print(row("first evaluation (inserts every alert)", [first]))
    print()
    for what, index in (("wall", 0), ("CPU", 1)):
        read = statistics.median(sample[index] for sample in reads)
        added = statistics.median(sample[index] for sample in evaluations) - read
        verdict = "meets" if added < read / 2 else "misses"
        print(
            f"{what:>4}: evaluation adds {added * 1e3:.1f} ms, {added / read:.0%} of the read "
            f"time ({verdict} the target: less than 50%)"
        )


if __name__ == "__main__":
    main()
