"""The server commands (``demo``, ``run``, ``db``): open the store, build the pipeline, serve.

The composition root of the server process: the only ``daemon`` module that imports ``web``.
Imported by ``daemon.cli`` only when one of these commands runs, so the node agent never
loads the store, the scheduler or the web framework.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.cli_common import EXIT_FAILURE, EXIT_OK, port_free, run_server, setup_logging
from daemon.clock import Clock, ScaledClock, SystemClock
from daemon.config import Config, ConfigError, CostsConfig, load_config
from daemon.demo import start_demo_sources
from daemon.exporter import build_registry
from daemon.jobs import JobRunner
from daemon.process import build_pipeline
from daemon.scheduler import build_scheduler, scheduler_lifespan
from daemon.services import Services
from daemon.state import LiveState
from daemon.store.db import (
    current_revision,
    head_revision,
    masked,
    open_store,
    readiness_problems,
    resolve_url,
)

logger = logging.getLogger("daemon.cli")


def demo_config(base: Config, *, gpus: int, seed: int) -> Config:
    """``base`` with the simulator on (``gpus`` GPUs), NVML off and the board open to read.

    Writes still need a login: ``serve`` creates a demo ``admin`` when the store has no users.
    """
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
    web = base.web.model_copy(update={"anonymous_read": True})
    return base.model_copy(
        update={"collectors": collectors, "costs": demo_costs(base.costs), "web": web}
    )


DEMO_COSTS = {
    "gpu_models": [
        {
            "gpu_model": "NVIDIA H100 80GB HBM3",
            "currency": "USD",
            "purchase_price": "25000",
            "depreciation_years": "4",
            "power_price_per_kwh": "0.12",
            "pue": "1.3",
            "ops_cost_per_year": "1500",
            "dr_cost_per_year": "300",
            "upgrade_cost_per_event": "500",
            "upgrades_per_5y": "1",
        }
    ],
    "budgets": [{"name": "cloud-month", "amount": "30000", "currency": "USD"}],
    "workloads": [
        {
            "name": "chat-assistant",
            "model": "deepseek-ai/DeepSeek-V3",
            "latency_need": "interactive",
            "data_sensitivity": "internal",
        }
    ],
}
"""Cost settings the demo uses when the config names no GPU cost model (made-up, plausible)."""


def demo_costs(costs: CostsConfig) -> CostsConfig:
    """``costs`` completed with the demo's GPU cost model, budget and workload when absent."""
    update: dict[str, object] = {}
    for key, value in DEMO_COSTS.items():
        if not getattr(costs, key):
            update[key] = value
    if not update:
        return costs
    return CostsConfig.model_validate({**costs.model_dump(), **update})


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
    if demo:
        load_sample_bills(engine, clock.now())
        seed_demo_board(engine, clock.now(), config.collectors.simulated)
        demo_admin(engine, clock.now())
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
        web=config.web,
        channels=pipeline.channels,
        notify_receiver=config.notify.receiver,
        rollbacks=config.rollbacks,
        costs=config.costs,
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


def load_sample_bills(engine: Any, now: datetime) -> None:
    """Put the demo's sample cloud bills in the store (replacing earlier ones)."""
    from daemon.costs.ledger import replace_window
    from daemon.costs.sample_bills import SOURCE, sample_bill_lines
    from daemon.store.db import session_scope

    lines = sample_bill_lines(now)
    with session_scope(engine) as session:
        replace_window(
            session,
            source=SOURCE,
            start=min(line.charge_period_start for line in lines),
            end=max(line.charge_period_end for line in lines),
            lines=lines,
            import_batch="demo",
        )


def seed_demo_board(engine: Any, now: datetime, simulated: Any) -> None:
    """A few anomalies, debt items and rollbacks so every board page has something to show
    (each seeder is idempotent: a restart on the same database adds nothing)."""
    from daemon.board.anomalies import seed_demo_anomalies
    from daemon.board.debt import seed_demo_debt
    from daemon.board.fleet import seed_demo_fleet
    from daemon.board.rollbacks import seed_demo_rollbacks
    from daemon.store.db import session_scope

    with session_scope(engine) as session:
        seed_demo_fleet(session, now, simulated)
    with session_scope(engine) as session:
        seed_demo_anomalies(session, now)
        seed_demo_debt(session, now)
        seed_demo_rollbacks(session, now)


DEMO_ADMIN = "admin"


def demo_admin(engine: Any, now: datetime) -> str | None:
    """Create the demo's ``admin`` with a random password, printed once, if no user exists.

    Returns the password (``None`` when the store already has users: log in with those).
    """
    from daemon.auth import audit
    from daemon.auth.principal import CLI_ACTOR
    from daemon.auth.users import add_user, list_users
    from daemon.store.db import session_scope

    with session_scope(engine) as session:
        if list_users(session):
            print("tcowatch: demo: log in with an existing user to make changes", file=sys.stderr)
            return None
        password = secrets.token_urlsafe(12)
        add_user(session, DEMO_ADMIN, password, "admin", now=now)
        details = {"role": "admin", "demo": True}
        audit.record(session, CLI_ACTOR, "user.add", DEMO_ADMIN, details, at=now)
    print(
        f"tcowatch: demo login: {DEMO_ADMIN} / {password}  (shown once; reading needs no login)",
        file=sys.stderr,
        flush=True,
    )
    return password


def _scheduler_problems(scheduler: Any) -> list[str]:
    return [] if scheduler.running else ["scheduler not running"]


def cmd_demo(args: argparse.Namespace) -> int:
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


def cmd_run(args: argparse.Namespace) -> int:
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


def cmd_db(args: argparse.Namespace) -> int:
    config, config_path = load_config(args.config)
    setup_logging(config.log_level)
    url = resolve_url(args.db or config.store.url, config_path)
    migrate = args.db_command == "upgrade"
    engine = open_store(url, migrate=migrate)
    current = current_revision(engine)
    engine.dispose()
    print(f"{masked(url)}: schema at {current} (latest {head_revision()})")
    return EXIT_OK
