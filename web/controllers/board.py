"""The board's overview page (``GET /``) and its JSON twin (``GET /api/v1/overview``).

Two caches per app keep a page load cheap under concurrent readers:

- the store part (spend by source, 7-day utilization, idle waste, cache hit rates) is read by
  ``daemon.board.overview`` in a worker thread and kept 15 s, and at most until the process
  clock's minute changes (``OverviewCache``: one reader refreshes, the others get the previous
  figures meanwhile); what comes from hour rollups is kept until the next hour is rolled
  (``HourlyMemo``), so a refresh reads bills and the last hour's minutes only;
- the ``Overview`` built from the live state and those figures, and the page content rendered
  from it, are kept until the live state's version or the store figures change (every few
  seconds in a running server). Only the header (``as of``) and the account bar are rendered
  for every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.response import Template
from markupsafe import Markup

from daemon.board.overview import StoreOverview, StoreOverviewResult, load_store_overview
from daemon.board.overview_cache import HourlyMemo, OverviewCache
from daemon.costs.localcost import GpuCostModel
from daemon.services import Services
from daemon.state import LiveView
from web.charts import sparkline
from web.controllers.deps import ServicesDep
from web.controllers.overview import Overview, build_overview

logger = logging.getLogger(__name__)

CACHE_KEY = "overview_caches"
"""``app.state`` key of the app's ``OverviewCaches``."""
BODY_TEMPLATE = "board_body.html.j2"
TOP_ALERTS = 10
"""Alerts listed on the page (firing first); the rest are one click away on ``/alerts``."""
SPARK_WIDTH, SPARK_HEIGHT = 240, 36


@dataclass
class _Page:
    """An overview built for one live-state version and one store computation."""

    version: int
    store: StoreOverviewResult
    overview: Overview
    body: Markup | None = None
    """The page content, rendered on first use."""


@dataclass
class OverviewCaches:
    """The per-app caches (see the module docstring)."""

    store: OverviewCache[StoreOverviewResult] = field(default_factory=OverviewCache)
    hours: HourlyMemo = field(default_factory=HourlyMemo)
    page: _Page | None = None


def overview_caches(state: State) -> OverviewCaches:
    """The app's caches (created on first use; handlers run on the app's event loop)."""
    caches = state.get(CACHE_KEY)
    if caches is None:
        caches = OverviewCaches()
        state[CACHE_KEY] = caches
    return caches


def _cost_models(view: LiveView) -> dict[str, GpuCostModel]:
    figures = view.costs
    return dict(figures.gpu_models) if figures is not None else {}


async def _page(services: Services, state: State, now: datetime) -> _Page:
    caches = overview_caches(state)
    version = services.state.version  # read before the view: a newer view only rebuilds again
    store = caches.store.peek(now)
    if store is None:
        models = _cost_models(services.state.view())
        load = partial(load_store_overview, services.engine, now, models, caches.hours)
        store = await anyio.to_thread.run_sync(caches.store.get, now, load)
    page = caches.page
    if page is None or page.version != version or page.store is not store:
        overview = build_overview(
            services.state.view(), now=now, title=services.title, demo=services.demo, store=store
        )
        page = _Page(version, store, overview)
        caches.page = page
    return page


async def current_overview(services: Services, state: State) -> Overview:
    """The overview as of ``services.now()`` (cached parts, see the module docstring)."""
    now = services.now()
    page = await _page(services, state, now)
    return replace(page.overview, generated_at=now)


def utilization_sparkline(store: StoreOverview | None) -> Markup | None:
    """The 7-day hourly fleet utilization as an inline SVG; hours without data are gaps."""
    if store is None:
        return None
    history = store.utilization
    ratios = {p.hour: p.ratio for p in history.points}
    hours: list[datetime] = []
    hour = history.since
    last = max(ratios) if ratios else history.since
    while hour <= last:
        hours.append(hour)
        hour += timedelta(hours=1)
    return sparkline(
        [ratios.get(h) for h in hours],
        SPARK_WIDTH,
        SPARK_HEIGHT,
        y_max=1.0,
        label="fleet utilization, hourly, last 7 days",
    )


def _body(request: Request[Any, Any, Any], page: _Page) -> Markup:
    if page.body is None:
        engine = request.app.template_engine
        assert engine is not None, "create_app configures templates"
        html = engine.get_template(BODY_TEMPLATE).render(
            overview=page.overview,
            top_alerts=TOP_ALERTS,
            utilization_chart=utilization_sparkline(page.overview.store),
        )
        page.body = Markup(html)  # rendered with autoescape on: every outside value is escaped
    return page.body


class BoardController(Controller):
    """The overview: live state plus cached store figures (see the module docstring)."""

    path = "/"
    tags = ["board"]

    @get("/", include_in_schema=False)
    async def index(self, services: ServicesDep, request: Request[Any, Any, Any]) -> Template:
        """Render the overview page; escapes every user-supplied value."""
        now = services.now()
        page = await _page(services, request.app.state, now)
        return Template(
            template_name="board.html.j2",
            context={
                "overview": replace(page.overview, generated_at=now),
                "body": _body(request, page),
            },
        )

    @get("/api/v1/overview")
    async def overview(self, services: ServicesDep, request: Request[Any, Any, Any]) -> Overview:
        """Return the data behind the overview page."""
        return await current_overview(services, request.app.state)
