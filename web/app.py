"""The Litestar app factory: board, JSON API, probes and ``/metrics`` over one ``Services``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment
from litestar import Litestar, Response, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from daemon.exporter import ExpositionCache
from daemon.services import Services
from web.auth import PUBLIC, access_guard, build_access, forbidden, principal_of, unauthorized
from web.controllers.alerts import AlertsController
from web.controllers.anomalies import AnomaliesController
from web.controllers.audit import AuditController
from web.controllers.board import BoardController
from web.controllers.channels import ChannelsController
from web.controllers.costs import CostsController
from web.controllers.debt import DebtController
from web.controllers.fleet import FleetController
from web.controllers.health import HealthController
from web.controllers.login import LoginController
from web.controllers.rollbacks import RollbacksController
from web.controllers.tco import TcoController

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
MISSING = "\u2013"
"""Shown for a reading that is not reported (an en dash)."""
EXPOSITION_MEDIA_TYPE = "text/plain; version=0.0.4"
"""Prometheus text format 0.0.4; Litestar appends ``charset=utf-8``."""
CSRF_EXCLUDE = ["^/metrics", "^/healthz$", "^/readyz$", "^/api/"]

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def _gib(value: float | None) -> str:
    return MISSING if value is None else f"{value / 2**30:.1f}"


def _percent(ratio: float | None) -> str:
    return MISSING if ratio is None else f"{ratio * 100:.0f}%"


def _number(value: float | None, digits: int = 0) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _when(moment: datetime | None) -> str:
    return MISSING if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _bar_width(ratio: float | None) -> str:
    """Percentage width of a 0..1 ratio, clamped, for an inline CSS bar."""
    if ratio is None:
        return "0"
    return f"{min(max(ratio, 0.0), 1.0) * 100:.0f}"


def _money(amount: Any) -> str:
    """``Amount`` (or ``None``) as ``1,234.56 USD``; small unit prices keep four decimals."""
    if amount is None:
        return MISSING
    value = amount.amount
    places = "0.0001" if abs(value) < 10 else "0.01"
    return f"{value.quantize(Decimal(places)):,} {amount.currency}"


def _count(value: Any) -> str:
    """A large count in millions or billions (``12.3 M``)."""
    if value is None:
        return MISSING
    number = float(value)
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:.1f} {unit}"
    return f"{number:.0f}"


def _configure_jinja(engine: JinjaTemplateEngine) -> None:
    env: Environment = engine.engine
    env.filters.update(
        gib=_gib,
        percent=_percent,
        number=_number,
        when=_when,
        bar_width=_bar_width,
        money=_money,
        count=_count,
    )
    env.trim_blocks = True
    env.lstrip_blocks = True
    engine.register_template_callable("current_principal", lambda ctx: principal_of(ctx["request"]))


def _metrics_handler(services: Services) -> Any:
    exposition = ExpositionCache(services.state, services.registry)

    @get("/metrics", sync_to_thread=False, include_in_schema=False, opt={PUBLIC: True})
    def metrics() -> Response[bytes]:
        """The app-owned registry in the Prometheus text format, rendered once per change."""
        return Response(exposition.render(), media_type=EXPOSITION_MEDIA_TYPE)

    return metrics


def create_app(
    services: Services, *, extra_handlers: Sequence[ControllerRouterHandler] = ()
) -> Litestar:
    """Build the web app over ``services``; never starts I/O itself.

    Access (``web.auth``): every route needs a login, an API token or ``web.anonymous_read``
    to read, and ``editor`` or more to write, unless marked ``opt={PUBLIC: True}``; forms are
    CSRF-checked. ``extra_handlers`` are mounted beside the board's own (tests, plugins).
    The ``services.lifespans`` run (in order) around the app's life. Raises Litestar's
    ``ImproperlyConfiguredException`` only on a programming error in the wiring.
    """

    async def provide_services() -> Services:
        return services

    access = build_access(services, CSRF_EXCLUDE)
    lifespans = cast(Sequence[Lifespan], services.lifespans)
    public = {PUBLIC: True}
    return Litestar(
        route_handlers=[
            BoardController,
            FleetController,
            CostsController,
            TcoController,
            AnomaliesController,
            RollbacksController,
            DebtController,
            AlertsController,
            ChannelsController,
            LoginController,
            AuditController,
            Router("/", route_handlers=[HealthController], opt=public),
            _metrics_handler(services),
            create_static_files_router(
                path="/static", directories=[WEB_DIR / "static"], opt=public
            ),
            *extra_handlers,
        ],
        dependencies={"services": Provide(provide_services, use_cache=True)},
        guards=[access_guard],
        middleware=[access.session.middleware],
        exception_handlers={
            NotAuthorizedException: unauthorized,
            PermissionDeniedException: forbidden,
        },
        state=State(access.state),
        template_config=TemplateConfig(
            directory=WEB_DIR / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=_configure_jinja,
        ),
        csrf_config=access.csrf,
        lifespan=list(lifespans),
        logging_config=None,  # the process configures logging once (daemon/cli.py)
    )
