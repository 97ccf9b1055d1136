"""The ``tcowatch`` command: the composition root that builds the process and starts it.

Exit codes: 0 success; 1 runtime failure; 2 bad configuration or usage; 3 database unavailable;
4 NVML unavailable (``agent --once``); 130 interrupted. Errors are one line per problem on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from daemon.cli_common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_STORE,
    port_free,
    run_server,
    setup_logging,
)
from daemon.cli_telemetry import add_telemetry_commands, cmd_agent, cmd_scrape, cmd_simulate
from daemon.clock import Clock, ScaledClock, SystemClock
from daemon.config import Config, ConfigError, effective_config_yaml, load_config
from daemon.demo import start_demo_sources
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

    add_telemetry_commands(sub, common)
    return parser


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

    if not port_free(host, port):
        print(f"tcowatch: {host}:{port} is already in use: pass --port", file=sys.stderr)
        return EXIT_FAILURE
    engine = open_store(db_url, busy_timeout_seconds=config.store.busy_timeout.total_seconds())
    state = LiveState()
    sources = start_demo_sources(config.collectors.simulated, clock.now) if demo else None
    collectors = sources.collectors() if sources is not None else None
    pipeline = build_pipeline(config, engine, state, collectors=collectors)
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
    if sources is not None:
        print(
            f"tcowatch: demo clock at {speed:g}x; simulated exporters on {sources.base_url}; "
            "Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    )
    try:
        run_server(server)
    finally:
        if sources is not None:
            sources.stop()
        engine.dispose()
    logger.info("stopped")
    return EXIT_OK


def _scheduler_problems(scheduler: Any) -> list[str]:
    return [] if scheduler.running else ["scheduler not running"]


def _cmd_demo(args: argparse.Namespace) -> int:
    config, config_path = load_config(args.config)
    config = demo_config(config, gpus=args.gpus, seed=args.seed)
    setup_logging(config.log_level)
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
    setup_logging(config.log_level)
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
    setup_logging(config.log_level)
    url = resolve_url(args.db or config.store.url, config_path)
    migrate = args.db_command == "upgrade"
    engine = open_store(url, migrate=migrate)
    current = current_revision(engine)
    engine.dispose()
    print(f"{masked(url)}: schema at {current} (latest {head_revision()})")
    return EXIT_OK


COMMANDS = {
    "demo": _cmd_demo,
    "run": _cmd_run,
    "check-config": _cmd_check_config,
    "db": _cmd_db,
    "agent": cmd_agent,
    "scrape": cmd_scrape,
    "simulate": cmd_simulate,
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
