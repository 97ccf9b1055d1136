"""The telemetry commands: ``agent`` (node agent), ``scrape URL`` (look at one target the way
tcowatch reads it) and ``simulate`` (a simulated fleet served as real exporters).

Kept apart from ``daemon.cli`` so the agent stays light: none of these import the store or the
web framework. Errors are one line on stderr with the exit codes of ``daemon.cli_common``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.base import CollectorDown, CollectorError, GpuSample, Snapshot, load_collector_class
from daemon.cli_common import (
    EXIT_FAILURE,
    EXIT_NVML,
    EXIT_OK,
    port_free,
    run_server,
    setup_logging,
)
from daemon.clock import ScaledClock
from daemon.config import ConfigError, load_config
from rules.durations import parse_duration

AddCommon = Callable[..., None]
SCRAPE_KINDS = ("auto", "dcgm", "nvidia_smi", "agent", "vllm", "sglang", "tgi", "inference")


def add_telemetry_commands(sub: Any, common: AddCommon) -> None:
    """Register ``agent``, ``scrape`` and ``simulate`` on the CLI's sub-parsers."""
    agent = sub.add_parser("agent", help="GPU node agent: NVML sampling and /metrics, no database")
    common(agent, db=False)
    agent.add_argument("--host", default=None, help="listen address (default agent.host)")
    agent.add_argument("--port", type=int, default=None, help="listen port (default agent.port)")
    agent.add_argument("--once", action="store_true", help="print one sample and exit")
    agent.add_argument("--json", action="store_true", help="with --once: JSON instead of a table")

    scrape = sub.add_parser(
        "scrape", help="fetch one /metrics target and print what tcowatch reads"
    )
    scrape.add_argument("url", help="the target's URL, e.g. http://gpu-node-07:9400/metrics")
    scrape.add_argument("--kind", choices=SCRAPE_KINDS, default="auto", help="default: detect")
    scrape.add_argument("--node", default=None, help="node name when the payload has none")
    scrape.add_argument("--timeout", default="10s", help="HTTP timeout (default 10s)")
    scrape.add_argument("--json", action="store_true", help="one JSON object per line")

    simulate = sub.add_parser("simulate", help="serve a simulated fleet as dcgm-exporter and vLLM")
    simulate.add_argument("--gpus", type=int, default=16, help="simulated GPUs (default 16)")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=9400)
    simulate.add_argument("--seed", type=int, default=42)
    simulate.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    simulate.add_argument(
        "--targets-file", type=Path, default=None, help="write a file_sd target file here"
    )


def cmd_agent(args: argparse.Namespace) -> int:
    """``tcowatch agent``: serve ``/metrics`` from NVML, or print one sample with ``--once``."""
    config, _ = load_config(args.config)
    setup_logging(config.log_level)
    nvml = config.collectors.nvml
    collector = load_collector_class("nvml")(node=nvml.node, retry_backoff=nvml.retry_backoff)
    if args.once:
        return _agent_once(collector, as_json=args.json)
    from daemon.agent import Agent, metrics_app

    host, port = args.host or config.agent.host, args.port or config.agent.port
    if not port_free(host, port):
        print(f"tcowatch: {host}:{port} is already in use: pass --port", file=sys.stderr)
        return EXIT_FAILURE
    import uvicorn

    agent = Agent(collector)
    stop = threading.Event()
    sampler = threading.Thread(
        target=agent.run_forever,
        args=(nvml.interval, stop, lambda: datetime.now(UTC)),
        name="tcowatch-agent-sampler",
        daemon=True,
    )
    sampler.start()
    print(f"tcowatch: agent /metrics on http://{host}:{port}/metrics", file=sys.stderr)
    server = uvicorn.Server(
        uvicorn.Config(
            metrics_app(agent), host=host, port=port, log_level="warning", lifespan="off"
        )
    )
    try:
        run_server(server)
    finally:
        stop.set()
        sampler.join(timeout=5)
        collector.close()
    return EXIT_OK


def _agent_once(collector: Any, *, as_json: bool) -> int:
    try:
        snapshot = collector.collect(datetime.now(UTC))
    except CollectorDown as exc:
        print(f"tcowatch: NVML unavailable: {exc.reason}", file=sys.stderr)
        return EXIT_NVML
    except CollectorError as exc:
        print(f"tcowatch: NVML collection failed: {exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        collector.close()
    if as_json:
        print(
            json.dumps(
                {"gpus": [_jsonable(g) for g in snapshot.gpus], "down": list(snapshot.down_gpus)},
                indent=2,
            )
        )
    else:
        print_gpu_table(snapshot.gpus, snapshot.down_gpus, title="tcowatch agent: one NVML sample")
    return EXIT_OK


def cmd_scrape(args: argparse.Namespace) -> int:
    """``tcowatch scrape URL``: scrape one target through the real path and print the records."""
    from collectors.scrape import ScrapeCollector, Target

    setup_logging("WARNING")
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise ConfigError("--timeout", [str(exc)]) from None
    collector = ScrapeCollector(
        targets=[Target(url=args.url, kind=args.kind, node=args.node)], timeout=timeout
    )
    try:
        snapshot = collector.collect(datetime.now(UTC))
    finally:
        collector.close()
    if args.json:
        for line in _json_lines(snapshot):
            print(line)
    else:
        _print_snapshot(snapshot)
    status = snapshot.targets[0] if snapshot.targets else None
    if status is None or not status.up:
        reason = status.error if status is not None else "no result"
        print(f"tcowatch: {args.url}: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """``tcowatch simulate``: a simulated fleet served as dcgm-exporter and vLLM endpoints."""
    import uvicorn

    from collectors.simulated import SimulatedFleet
    from collectors.simulated_exposition import SimulatedEndpoints
    from daemon.cli_server import demo_config
    from daemon.config import Config

    setup_logging("INFO")
    if args.speed <= 0:
        raise ConfigError("--speed", ["expected a positive number"])
    layout = demo_config(Config(), gpus=args.gpus, seed=args.seed).collectors.simulated
    if not port_free(args.host, args.port):
        print(f"tcowatch: {args.host}:{args.port} is already in use: pass --port", file=sys.stderr)
        return EXIT_FAILURE
    fleet = SimulatedFleet(nodes=layout.nodes, gpus_per_node=layout.gpus_per_node, seed=args.seed)
    endpoints = SimulatedEndpoints(fleet, ScaledClock(args.speed).now)
    base = f"http://{args.host}:{args.port}"
    targets = endpoints.targets(base)
    if args.targets_file is not None:
        write_targets_file(args.targets_file, targets)
        print(f"tcowatch: targets written to {args.targets_file}", file=sys.stderr)
    for target in targets:
        print(f"{target.kind:6} {target.url}")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(endpoints, host=args.host, port=args.port, log_level="warning")
    )
    run_server(server)
    return EXIT_OK


def write_targets_file(path: Path, targets: Iterable[Any]) -> None:
    """Write ``targets`` as a file_sd JSON file (one group per target, atomically)."""
    groups = []
    for target in targets:
        scheme, _, rest = target.url.partition("://")
        host, _, metrics_path = rest.partition("/")
        labels = {"kind": target.kind, "__scheme__": scheme, "__metrics_path__": "/" + metrics_path}
        if target.node:
            labels["node"] = target.node
        labels.update(target.labels)
        if target.gpu_uuids:
            labels["gpu_uuids"] = ",".join(target.gpu_uuids)
        groups.append({"targets": [host], "labels": labels})
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(groups, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _jsonable(record: Any) -> dict[str, Any]:
    data = asdict(record)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


def _json_lines(snapshot: Snapshot) -> Iterable[str]:
    for kind, records in (
        ("gpu", snapshot.gpus),
        ("model", snapshot.models),
        ("cache", snapshot.caches),
        ("target", snapshot.targets),
    ):
        for record in records:
            yield json.dumps({"type": kind, **_jsonable(record)}, sort_keys=True)
    for uuid in snapshot.down_gpus:
        yield json.dumps({"type": "down", "uuid": uuid})


def _console() -> Any:
    """A rich console; wide when writing to a pipe so tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=240)


def _fmt(value: float | None, pattern: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else pattern.format(value * scale)


def print_gpu_table(gpus: Sequence[GpuSample], down: Sequence[str], *, title: str) -> None:
    """GPU records as a terminal table; unreported fields show ``n/a``."""
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "node",
        "gpu",
        "uuid",
        "name",
        "util",
        "mem used",
        "power",
        "energy",
        "temp",
        "procs",
        "mig",
    ):
        table.add_column(column)
    for gpu in gpus:
        table.add_row(
            gpu.node,
            str(gpu.index),
            gpu.uuid,
            gpu.name,
            _fmt(gpu.utilization_ratio, "{:.0f}%", 100),
            _fmt(gpu.memory_used_bytes, "{:.1f} GiB", 2**-30),
            _fmt(gpu.power_watts, "{:.0f} W"),
            _fmt(gpu.energy_joules, "{:.0f} J"),
            _fmt(gpu.temperature_celsius, "{:.0f} °C"),
            "n/a" if gpu.processes is None else str(len(gpu.processes)),
            ", ".join(f"{m.gpu_instance_id}:{m.profile or '?'}" for m in gpu.mig_instances),
        )
    console = _console()
    console.print(table)
    for uuid in down:
        console.print(f"[red]down:[/red] {uuid}")


def _print_snapshot(snapshot: Snapshot) -> None:
    from rich.table import Table

    console = _console()
    if snapshot.gpus or snapshot.down_gpus:
        print_gpu_table(snapshot.gpus, snapshot.down_gpus, title="GPUs")
    if snapshot.models:
        table = Table(title="Models")
        for column in (
            "node",
            "model",
            "instance",
            "engine",
            "prompt tok",
            "gen tok",
            "cache hit",
            "requests",
        ):
            table.add_column(column)
        for m in snapshot.models:
            if m.cache_queries_total:
                hit = _fmt((m.cache_hits_total or 0) / m.cache_queries_total, "{:.1f}%", 100)
            else:
                hit = _fmt(m.cache_hit_ratio, "{:.1f}% (engine)", 100)
            table.add_row(
                m.node,
                m.model,
                m.instance,
                m.engine,
                _fmt(m.prompt_tokens_total, "{:.0f}"),
                _fmt(m.generation_tokens_total, "{:.0f}"),
                hit,
                _fmt(m.requests_total, "{:.0f}"),
            )
        console.print(table)
    for cache in snapshot.caches:
        console.print(
            f"cache {cache.name}: {cache.hits_total:.0f} hits / {cache.lookups_total:.0f} lookups"
        )
    for target in snapshot.targets:
        state = "[green]up[/green]" if target.up else "[red]down[/red]"
        note = f" — {target.error}" if target.error else ""
        console.print(
            f"{target.target} ({target.kind}): {state} in "
            f"{target.duration_seconds * 1000:.0f} ms{note}"
        )
