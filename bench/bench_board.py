"""The board's overview under load: p50/p99 latency and requests/s of ``GET /`` beside ``/healthz``.

The store (SQLite, a temporary file unless ``--db``) gets 90 days of history for 64 GPUs: minute
rollups for the last 14 days (``retention.minutes``) and hour rollups for all 90 days (what the
hourly job leaves; ``retention.hours`` keeps 400 days), the same for the fleet's 34 inference
instances, and a year of daily cloud bills (the demo's sample bills, 40 accounts, ~100k lines).
Then the real server starts in a subprocess (``tcowatch run`` on loopback, its scheduler and
jobs running: a simulated fleet with the same 64 GPU UUIDs, rollups, cost figures, rules), and
32 clients on keep-alive connections load ``GET /`` (the overview HTML, anonymous read) for
30 s, then ``GET /healthz`` the same way, in the same run. The load generator is a small
asyncio HTTP/1.1 client in this process (no third-party client: its own cost stays small), so
the server and the clients share the machine's cores, as they would on a 2-core box.

Run: ``python bench/bench_board.py [--duration 30] [--clients 32] [--db PATH [--reuse]]``.
Target: overview p99 under 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from collectors.base import CostLine
from collectors.simulated import SimulatedFleet
from daemon.cli_server import DEMO_COSTS
from daemon.costs.ledger import add_lines
from daemon.costs.sample_bills import sample_bill_lines
from daemon.store.db import open_store, session_scope
from daemon.store.models import Gpu, GpuRollup, InferenceRollup, Node

NODES, PER_NODE, SEED = 8, 8, 42
HISTORY_DAYS, MINUTE_DAYS, BILL_DAYS, BILL_ACCOUNTS = 90, 14, 365, 40
BATCH = 20_000
TARGET_P99_MS = 150.0


def _utilization(base: float, moment: float, jitter: float) -> float:
    """A daily rhythm (busy afternoons, quiet nights) around ``base``, in 0..1."""
    hour = (moment / 3600.0) % 24
    rhythm = 0.6 + 0.35 * math.sin((hour - 8) / 24 * 2 * math.pi)
    return min(1.0, max(0.0, base * rhythm + jitter))


def _gpu_rows(
    fleet: SimulatedFleet, now: datetime, resolution: int, start: datetime
) -> Iterator[dict[str, Any]]:
    """Rollup rows of every GPU from ``start`` to the last complete bucket before ``now``."""
    snapshot = fleet.collect(now)
    idle = fleet.idle_uuids
    rng = random.Random(SEED)
    bases = {g.uuid: rng.uniform(0.45, 0.95) for g in snapshot.gpus}
    limit, idle_watts = 700.0, 80.0
    step = timedelta(seconds=resolution)
    bucket = start
    end = now - step
    while bucket <= end:
        moment = bucket.timestamp() + resolution / 2
        for gpu in snapshot.gpus:
            if gpu.uuid in idle:
                util = 0.0
            else:
                util = _utilization(bases[gpu.uuid], moment, rng.uniform(-0.05, 0.05))
            power = idle_watts + util * (limit - idle_watts)
            yield {
                "gpu_uuid": gpu.uuid,
                "resolution_seconds": resolution,
                "bucket_start": bucket,
                "samples": 4 * resolution // 60,
                "avg_utilization_ratio": util,
                "max_utilization_ratio": min(1.0, util * 1.1),
                "avg_memory_used_bytes": float(gpu.memory_used_bytes or 0),
                "avg_power_watts": power,
                "energy_joules": power * resolution,
                "idle_seconds": float(resolution) if util < 0.05 else 0.0,
            }
        bucket += step


def _model_rows(
    fleet: SimulatedFleet, now: datetime, resolution: int, start: datetime
) -> Iterator[dict[str, Any]]:
    snapshot = fleet.collect(now)
    rng = random.Random(SEED + 1)
    step = timedelta(seconds=resolution)
    bucket = start
    end = now - step
    while bucket <= end:
        moment = bucket.timestamp() + resolution / 2
        for model in snapshot.models:
            load = _utilization(0.8, moment, rng.uniform(-0.05, 0.05))
            prompt = 2500.0 * load * resolution
            queries = prompt
            yield {
                "node": model.node,
                "model": model.model,
                "instance": model.instance,
                "resolution_seconds": resolution,
                "bucket_start": bucket,
                "prompt_tokens": prompt,
                "generation_tokens": prompt / 4,
                "cache_queries": queries,
                "cache_hits": queries * rng.uniform(0.4, 0.7),
                "requests": prompt / 900,
                "gpu_uuids": list(model.gpu_uuids),
                "engine": "vllm",
            }
        bucket += step


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            with session_scope(engine) as session:
                session.execute(insert(table), batch)
            count += len(batch)
            batch = []
    if batch:
        with session_scope(engine) as session:
            session.execute(insert(table), batch)
        count += len(batch)
    return count


def _bills(now: datetime) -> Iterator[tuple[str, list[CostLine]]]:
    """A year of the demo's daily bills for ``BILL_ACCOUNTS`` accounts, one source a provider."""
    base = sample_bill_lines(now, days=BILL_DAYS)
    by_source: dict[str, list[CostLine]] = {}
    for account in range(BILL_ACCOUNTS):
        factor = Decimal(1 + account % 7) / 4
        for line in base:
            source = f"bench:{line.provider.lower().replace(' ', '-')}"
            by_source.setdefault(source, []).append(
                CostLine(
                    row_key=f"{account}:{line.row_key}",
                    provider=line.provider,
                    billed_cost=(line.billed_cost * factor).quantize(Decimal("0.01")),
                    billing_currency=line.billing_currency,
                    charge_period_start=line.charge_period_start,
                    charge_period_end=line.charge_period_end,
                    billing_period_start=line.billing_period_start,
                    billing_period_end=line.billing_period_end,
                    charge_category=line.charge_category,
                    service_name=line.service_name,
                    service_category=line.service_category,
                    region_id=line.region_id,
                    billing_account_id=f"account-{account:03d}",
                    tags=dict(line.tags),
                )
            )
    yield from sorted(by_source.items())


def fill_store(url: str, now: datetime) -> dict[str, int]:
    """Write the history described in the module docstring; return row counts per table."""
    engine = open_store(url)
    fleet = SimulatedFleet(nodes=NODES, gpus_per_node=PER_NODE, seed=SEED)
    snapshot = fleet.collect(now)
    counts: dict[str, int] = {}
    try:
        with session_scope(engine) as session:
            nodes: dict[str, Node] = {}
            for gpu in snapshot.gpus:
                if gpu.node not in nodes:
                    nodes[gpu.node] = Node(name=gpu.node, first_seen=now, last_seen=now)
                    session.add(nodes[gpu.node])
            session.flush()
            for gpu in snapshot.gpus:
                node_id = nodes[gpu.node].id
                assert node_id is not None
                session.add(
                    Gpu(
                        uuid=gpu.uuid,
                        node_id=node_id,
                        index=gpu.index or 0,
                        name=gpu.name,
                        memory_total_bytes=gpu.memory_total_bytes,
                        first_seen=now - timedelta(days=HISTORY_DAYS),
                        last_seen=now,
                    )
                )
        hour_now = now.replace(minute=0, second=0, microsecond=0)
        minute_now = now.replace(second=0, microsecond=0)
        hours_from = hour_now - timedelta(days=HISTORY_DAYS)
        minutes_from = minute_now - timedelta(days=MINUTE_DAYS)
        counts["gpu_rollup (hours)"] = _insert(
            engine, GpuRollup, _gpu_rows(fleet, hour_now, 3600, hours_from)
        )
        counts["gpu_rollup (minutes)"] = _insert(
            engine, GpuRollup, _gpu_rows(fleet, minute_now, 60, minutes_from)
        )
        counts["inference_rollup (hours)"] = _insert(
            engine, InferenceRollup, _model_rows(fleet, hour_now, 3600, hours_from)
        )
        counts["inference_rollup (minutes)"] = _insert(
            engine, InferenceRollup, _model_rows(fleet, minute_now, 60, minutes_from)
        )
        lines = 0
        for source, source_lines in _bills(now):
            with session_scope(engine) as session:
                lines += add_lines(session, source_lines, source=source, import_batch="bench")
        counts["cost_record"] = lines
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
        fleet.close()
    return counts


def row_counts(url: str) -> dict[str, int]:
    """Rows per table (and rollup resolution) in the store."""
    engine = open_store(url)
    counts: dict[str, int] = {}
    try:
        with engine.connect() as connection:
            for table in ("gpu_rollup", "inference_rollup"):
                for resolution, name in ((3600, "hours"), (60, "minutes")):
                    counts[f"{table} ({name})"] = connection.exec_driver_sql(
                        f"SELECT count(*) FROM {table} WHERE resolution_seconds = {resolution}"
                    ).scalar_one()
            counts["cost_record"] = connection.exec_driver_sql(
                "SELECT count(*) FROM cost_record"
            ).scalar_one()
    finally:
        engine.dispose()
    return counts


def write_config(path: Path, port: int) -> None:
    """A ``tcowatch run`` config: the simulated fleet of the history, demo costs, open reads."""
    config = {
        "web": {"anonymous_read": True, "session_secret": "b" * 40, "port": port},
        "collectors": {
            "nvml": {"enabled": False},
            "simulated": {
                "enabled": True,
                "nodes": NODES,
                "gpus_per_node": PER_NODE,
                "seed": SEED,
                "interval": "15s",
            },
        },
        "costs": DEMO_COSTS,
        "log_level": "WARNING",
    }
    path.write_text(yaml.safe_dump(config))


def wait_until_up(base: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll ``/healthz`` and then ``/`` until both answer 200; ``RuntimeError`` otherwise."""
    deadline = time.monotonic() + timeout
    for path in ("/healthz", "/"):
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            try:
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base}{path} did not answer within {timeout:.0f} s")
            time.sleep(0.25)


@dataclass
class Result:
    """One load phase."""

    path: str
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = head.decode("latin-1").lower()
    if "transfer-encoding: chunked" in headers:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        marker = "content-length:"
        at = headers.index(marker) + len(marker)
        length = int(headers[at : headers.index("\r\n", at)])
        await reader.readexactly(length)
    return status


async def _client(
    host: str, port: int, path: str, deadline: float, result: Result, warmup_until: float
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/html,application/json\r\n\r\n"
    ).encode()
    try:
        while (start := time.perf_counter()) < deadline:
            writer.write(request)
            status = await _read_response(reader)
            if start < warmup_until:
                continue
            if status == 200:
                result.latencies.append(time.perf_counter() - start)
            else:
                result.errors += 1
    finally:
        writer.close()


async def load(host: str, port: int, path: str, clients: int, duration: float) -> Result:
    """``clients`` keep-alive connections asking for ``path`` for ``duration`` s (after 2 s of
    warm-up that is not counted)."""
    warmup = 2.0
    start = time.perf_counter()
    result = Result(path, [], 0, duration)
    await asyncio.gather(
        *(
            _client(host, port, path, start + warmup + duration, result, start + warmup)
            for _ in range(clients)
        )
    )
    return result


def report(results: list[Result], counts: dict[str, int]) -> str:
    lines = ["store:"]
    lines += [f"  {name:<28} {count:>10,}" for name, count in counts.items()]
    lines.append("")
    header = f"{'path':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines += [header + f" {'errors':>7}", "-" * (len(header) + 8)]
    for r in results:
        lines.append(
            f"{r.path:<10} {len(r.latencies):>9} {r.rate:>8.1f} {r.percentile(50):>8.1f} "
            f"{r.percentile(99):>8.1f} {max(r.latencies, default=0) * 1000:>8.1f} {r.errors:>7}"
        )
    page, health = results
    lines.append("")
    lines.append(
        f"overview / healthz: p50 x{page.percentile(50) / health.percentile(50):.1f}, "
        f"p99 x{page.percentile(99) / health.percentile(99):.1f}, "
        f"throughput x{page.rate / health.rate:.2f}"
    )
    verdict = "meets" if page.percentile(99) < TARGET_P99_MS else "MISSES"
    lines.append(
        f"overview p99 {page.percentile(99):.1f} ms {verdict} the {TARGET_P99_MS:.0f} ms target"
    )
    return "\n".join(lines)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per path")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing --db as is")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tcowatch-bench-board-"))
    db = args.db or folder / "board.db"
    url = f"sqlite:///{db.resolve()}"
    now = datetime.now(UTC)
    if args.reuse and db.exists():
        print(f"reusing {db}", file=sys.stderr)
    else:
        for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            leftover.unlink(missing_ok=True)
        started = time.perf_counter()
        fill_store(url, now)
        print(f"filled {db} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    counts = row_counts(url)
    port = _free_port()
    config = folder / "bench.yaml"
    write_config(config, port)
    command = [sys.executable, "-m", "daemon.cli", "run", "--config", str(config)]
    command += ["--db", str(db), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, server)
        results = [
            asyncio.run(load("127.0.0.1", port, path, args.clients, args.duration))
            for path in ("/", "/healthz")
        ]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)  # the config, and the store unless --db
    print(report(results, counts))
    print(
        f"({args.clients} clients, {args.duration:.0f} s per path, {os.cpu_count()} CPUs, "
        f"server: tcowatch run with its jobs; statistics over "
        f"{statistics.fmean(len(r.latencies) for r in results):.0f} requests per path)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
