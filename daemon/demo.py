"""The demo's sources: a simulated fleet served as real dcgm-exporter and vLLM endpoints on a
loopback port, and a scrape collector reading them through the production scrape path.

Error contract: ``start_demo_sources`` raises ``OSError`` when no loopback port can be bound or
the endpoint server does not come up within ``startup_timeout``; ``stop`` never raises.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from collectors.base import Collector
from collectors.scrape import ScrapeCollector
from collectors.simulated import SimulatedFleet
from collectors.simulated_exposition import SimulatedEndpoints
from daemon.config import SimulatedConfig

logger = logging.getLogger(__name__)


@dataclass
class DemoSources:
    """A running set of simulated endpoints and the collector that scrapes them."""

    fleet: SimulatedFleet
    endpoints: SimulatedEndpoints
    base_url: str
    collector: Collector
    interval: timedelta
    _server: Any
    _thread: threading.Thread

    def collectors(self) -> list[tuple[Collector, timedelta]]:
        """What the pipeline runs: the scrape collector at the simulator's interval."""
        return [(self.collector, self.interval)]

    def stop(self) -> None:
        """Stop the endpoint server and release the collector."""
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self.collector.close()


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_demo_sources(
    simulated: SimulatedConfig,
    clock: Callable[[], datetime],
    *,
    startup_timeout: float = 10.0,
) -> DemoSources:
    """Serve the simulated fleet on a free loopback port and build its scrape collector."""
    import uvicorn

    fleet = SimulatedFleet(
        nodes=simulated.nodes,
        gpus_per_node=simulated.gpus_per_node,
        seed=simulated.seed,
        idle_gpus=simulated.idle_gpus,
    )
    endpoints = SimulatedEndpoints(fleet, clock)
    port = _free_loopback_port()
    server = uvicorn.Server(
        uvicorn.Config(endpoints, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="tcowatch-demo-endpoints", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise OSError(f"the simulated endpoints did not start on 127.0.0.1:{port}")
        time.sleep(0.01)  # waiting for a local server to listen, bounded by the deadline
    base_url = f"http://127.0.0.1:{port}"
    collector = ScrapeCollector(targets=endpoints.targets(base_url))
    logger.info("simulated fleet (%d GPUs) served on %s", len(fleet.uuids), base_url)
    return DemoSources(
        fleet=fleet,
        endpoints=endpoints,
        base_url=base_url,
        collector=collector,
        interval=simulated.interval,
        _server=server,
        _thread=thread,
    )
