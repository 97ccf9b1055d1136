"""Pieces every ``tcowatch`` command shares: exit codes, logging set-up, port probing."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STORE, EXIT_NVML = 0, 1, 2, 3, 4
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

logger = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``; quiet the chatty libraries."""
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


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (a clear error beats uvicorn's exit)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def run_server(server: Any) -> None:
    """Run a ``uvicorn.Server`` until SIGINT/SIGTERM, then return normally.

    uvicorn handles the signal itself (graceful shutdown) and then re-raises it; the handlers
    installed here make that re-raise a no-op so a requested stop exits 0.
    """
    previous = {sig: signal.signal(sig, _note_stop_signal) for sig in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _note_stop_signal(signum: int, _frame: object) -> None:
    logger.debug("received %s after shutdown", signal.Signals(signum).name)
