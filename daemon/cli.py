"""The ``tcowatch`` command: the composition root that builds the process and starts it.

Exit codes: 0 success; 1 runtime failure; 2 bad configuration or usage; 3 database unavailable;
4 NVML unavailable (``agent --once``); 130 interrupted. Errors are one line per problem on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from daemon.clock import Clock, ScaledClock, SystemClock
from daemon.config import Config, ConfigError, effective_config_yaml, load_config
from daemon.exporter import build_registry
from daemon.jobs import JobRunner
from daemon.process import build_pipeline
from daemon.scheduler import build_scheduler, scheduler_lifespan
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import (
    StoreError,
    current_revision,
    head_revision,
    masked,
    open_store,
    readiness_problems,
    resolve_url,
)

logger = logging.getLogger("daemon.cli")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STORE, EXIT_NVML = 0, 1, 2, 3, 4


def _package_version() -> str:
    try:
        return version("tcowatch")
    except PackageNotFoundError:
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcowatch",
        description="GPU fleet FinOps: measured cost per GPU-hour and per million tokens.",
    )
    parser.add_argument("--version", action="version", version=f"tcowatch {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path, help="YAML config file (default: tcowatch.yaml)")
        if db:
            p.add_argument("--db", help="SQLite file path or SQLAlchemy URL")

    demo = sub.add_parser("demo", help="everything in one process on a simulated fleet")
    common(demo)
    demo.add_argument("--host", default=None, help="board address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=None, help="board port (default 8080)")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--gpus", type=int, default=16, help="simulated GPUs (default 16)")
    demo.add_argument("--seed", type=int, default=42, help="simulator seed")

    run = sub.add_parser("run", help="the server: collectors, rules, notifier, board, /metrics")
    common(run)
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)

    check = sub.add_parser("check-config", help="validate a config file, print it masked")
    check.add_argument("file", type=Path)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, text in (("upgrade", "migrate to the latest schema"), ("current", "show revision")):
        common(db_sub.add_parser(name, help=text))

    agent = sub.add_parser("agent", help="GPU node agent (NVML)")
    common(agent, db=False)
    agent.add_argument("--once", action="store_true", help="print one sample and exit")
    agent.add_argument("--json", action="store_true", help="with --once: JSON instead of a table")
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))
    # Our JobRunner logs job failures; APScheduler's own notes (a run skipped because the
    # previous one still runs) are expected under a fast demo clock.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, getattr(logging, level)))


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def demo_config(base: Config, *, gpus: int, seed: int) -> Config:
    """``base`` with the simulator on (``gpus`` GPUs) and NVML off."""
    if gpus < 1 or gpus > 8192:
        raise ConfigError("--gpus", ["expected between 1 and 8192 GPUs"])
    if gpus <= 16:
        per_node = 4 if gpus % 4 == 0 else gpus
    elif gpus % 8 == 0:
        per_node = 8
    elif gpus % 4 == 0:
        per_node = 4
    else:
        raise ConfigError("--gpus", [f"expected a multiple of 4 above 16, got {gpus}"])
    simulated = base.collectors.simulated.model_copy(
        update={"enabled": True, "nodes": gpus // per_node, "gpus_per_node": per_node, "seed": seed}
    )
    nvml = base.collectors.nvml.model_copy(update={"enabled": False})
    collectors = base.collectors.model_copy(update={"simulated": simulated, "nvml": nvml})
    return base.model_copy(update={"collectors": collectors})


def serve(
    config: Config, db_url: str, clock: Clock, *, host: str, port: int, speed: float, demo: bool
) -> int:
    """Open the store, build the pipeline and serve the board until SIGINT/SIGTERM."""
    import uvicorn

    from web.app import create_app

    if not _port_free(host, port):
        print(f"tcowatch: {host}:{port} is already in use: pass --port", file=sys.stderr)
        return EXIT_FAILURE
    engine = open_store(db_url, busy_timeout_seconds=config.store.busy_timeout.total_seconds())
    state = LiveState()
    pipeline = build_pipeline(config, engine, state)
    runner = JobRunner(state)
    scheduler = build_scheduler(pipeline.jobs(), runner, clock.now, speed=speed)
    services = Services(
        engine=engine,
        state=state,
        registry=build_registry(state),
        now=clock.now,
        readiness=lambda: readiness_problems(engine) + _scheduler_problems(scheduler),
        demo=demo,
        lifespans=[scheduler_lifespan(scheduler, pipeline.close)],
        csrf_secret=secrets.token_urlsafe(32),
    )
    app = create_app(services)
    print(f"tcowatch: board on http://{host}:{port}  (database {masked(db_url)})", file=sys.stderr)
    if demo:
        print(f"tcowatch: demo clock at {speed:g}x; Ctrl-C stops", file=sys.stderr, flush=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    )
    # uvicorn handles SIGINT/SIGTERM itself (graceful shutdown), then re-raises the signal it
    # caught; these handlers make that re-raise a no-op so a requested stop exits 0.
    previous = {sig: signal.signal(sig, _note_stop_signal) for sig in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.dispose()
    logger.info("stopped")
    return EXIT_OK


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _note_stop_signal(signum: int, _frame: object) -> None:
    logger.debug("received %s after shutdown", signal.Signals(signum).name)


def _scheduler_problems(scheduler: Any) -> list[str]:
    return [] if scheduler.running else ["scheduler not running"]


def _cmd_demo(args: argparse.Namespace) -> int:
    config, config_path = load_config(args.config)
    config = demo_config(config, gpus=args.gpus, seed=args.seed)
    _setup_logging(config.log_level)
    if args.speed <= 0:
        raise ConfigError("--speed", ["expected a positive number"])
    if args.db is None:
        folder = Path(tempfile.mkdtemp(prefix="tcowatch-demo-"))
        db_url = resolve_url(str(folder / "demo.db"), None)
    else:
        db_url = resolve_url(args.db, config_path)
    return serve(
        config,
        db_url,
        ScaledClock(args.speed),
        host=args.host or config.web.host,
        port=args.port or config.web.port,
        speed=args.speed,
        demo=True,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    config, config_path = load_config(args.config)
    _setup_logging(config.log_level)
    return serve(
        config,
        resolve_url(args.db or config.store.url, config_path),
        SystemClock(),
        host=args.host or config.web.host,
        port=args.port or config.web.port,
        speed=1.0,
        demo=False,
    )


def _cmd_check_config(args: argparse.Namespace) -> int:
    config, _ = load_config(args.file)
    sys.stdout.write(effective_config_yaml(config))
    print(f"tcowatch: {args.file}: configuration is valid", file=sys.stderr)
    return EXIT_OK


def _cmd_db(args: argparse.Namespace) -> int:
    config, config_path = load_config(args.config)
    _setup_logging(config.log_level)
    url = resolve_url(args.db or config.store.url, config_path)
    migrate = args.db_command == "upgrade"
    engine = open_store(url, migrate=migrate)
    current = current_revision(engine)
    engine.dispose()
    print(f"{masked(url)}: schema at {current} (latest {head_revision()})")
    return EXIT_OK


def _cmd_agent(args: argparse.Namespace) -> int:
    from collectors.base import CollectorDown, CollectorError, load_collector_class

    config, _ = load_config(args.config)
    _setup_logging(config.log_level)
    if not args.once:
        print("tcowatch: agent mode without --once is not available yet", file=sys.stderr)
        return EXIT_CONFIG
    nvml = config.collectors.nvml
    collector = load_collector_class("nvml")(node=nvml.node, retry_backoff=nvml.retry_backoff)
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
    if args.json:
        rows = [{**asdict(gpu), "timestamp": gpu.timestamp.isoformat()} for gpu in snapshot.gpus]
        print(json.dumps({"gpus": rows, "down": list(snapshot.down_gpus)}, indent=2))
    else:
        _print_gpu_table(snapshot.gpus, snapshot.down_gpus)
    return EXIT_OK


def _print_gpu_table(gpus: Sequence[Any], down: Sequence[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else pattern.format(value)

    table = Table(title="tcowatch agent: one NVML sample")
    for column in ("node", "gpu", "uuid", "name", "util", "mem used", "power", "energy", "temp"):
        table.add_column(column)
    for gpu in gpus:
        table.add_row(
            gpu.node,
            str(gpu.index),
            gpu.uuid,
            gpu.name,
            fmt(None if gpu.utilization_ratio is None else gpu.utilization_ratio * 100, "{:.0f}%"),
            fmt(
                None if gpu.memory_used_bytes is None else gpu.memory_used_bytes / 2**30,
                "{:.1f} GiB",
            ),
            fmt(gpu.power_watts, "{:.0f} W"),
            fmt(gpu.energy_joules, "{:.0f} J"),
            fmt(gpu.temperature_celsius, "{:.0f} °C"),
        )
    console = Console()
    console.print(table)
    for uuid in down:
        console.print(f"[red]down:[/red] {uuid}")


COMMANDS = {
    "demo": _cmd_demo,
    "run": _cmd_run,
    "check-config": _cmd_check_config,
    "db": _cmd_db,
    "agent": _cmd_agent,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tcowatch`` console script."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"tcowatch: {exc.source}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"tcowatch: {exc}", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
