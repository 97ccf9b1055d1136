"""APScheduler 3.x wiring: every job at its interval, coalesced, one instance at a time.

The scheduler runs inside the web server's event loop (``AsyncIOScheduler``); sync jobs run in
the loop's thread pool, so a slow job never blocks a page or a scrape. Intervals are in process
time: with the demo clock at ``speed`` x, a 15 s job runs every 15/speed wall seconds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.jobs import JobRunner, JobSpec

logger = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS = 0.2
"""Fastest a job runs in wall time, whatever the demo speed."""


def build_scheduler(
    jobs: Sequence[JobSpec],
    runner: JobRunner,
    now: Callable[[], datetime],
    *,
    speed: float = 1.0,
) -> AsyncIOScheduler:
    """An (unstarted) scheduler with one interval job per spec.

    ``misfire_grace_time`` is half the interval (at least 1 s): a run delayed by a busy pool
    still happens, one delayed past that is skipped and the next tick catches up (coalesce).
    """
    # Sync jobs run on APScheduler's own thread pool (not the loop's) so that shutdown can wait
    # for a running job to finish instead of cancelling it under the loop.
    scheduler = AsyncIOScheduler(
        timezone="UTC", executors={"default": ThreadPoolExecutor(max_workers=4)}
    )
    started = datetime.now(UTC)
    for spec in jobs:
        seconds = max(spec.interval.total_seconds() / speed, MIN_INTERVAL_SECONDS)

        def run(spec: JobSpec = spec) -> None:
            runner.run(spec.name, spec.run, now())

        scheduler.add_job(
            run,
            "interval",
            seconds=seconds,
            id=spec.name,
            name=spec.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(seconds / 2)),
            replace_existing=True,
            next_run_time=started,  # first run at start, not one interval later
        )
    return scheduler


def scheduler_lifespan(
    scheduler: AsyncIOScheduler, on_stop: Callable[[], None]
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan hook that starts the scheduler and stops it on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        scheduler.start()
        logger.info("scheduler started with %d jobs", len(scheduler.get_jobs()))
        try:
            yield
        finally:
            scheduler.shutdown(wait=True)  # a running job finishes its transaction first
            on_stop()
            logger.info("scheduler stopped")

    return lifespan


class SteppedScheduler:
    """Runs the same jobs deterministically on a caller-driven clock (tests, replays).

    ``run_until(t)`` runs every job occurrence due at or before ``t`` in time order, each with
    its own due time as ``now``, exactly as the real scheduler would have at that speed.
    """

    def __init__(self, jobs: Sequence[JobSpec], runner: JobRunner, start: datetime) -> None:
        self._jobs = list(jobs)
        self._runner = runner
        self._due = {spec.name: start for spec in self._jobs}

    def run_until(self, moment: datetime) -> None:
        """Run every occurrence due up to ``moment``."""
        while True:
            order = {spec.name: i for i, spec in enumerate(self._jobs)}
            due = [s for s in self._jobs if self._due[s.name] <= moment]
            if not due:
                return
            spec = min(due, key=lambda s: (self._due[s.name], order[s.name]))
            at = self._due[spec.name]
            self._runner.run(spec.name, spec.run, at)
            self._due[spec.name] = at + spec.interval
