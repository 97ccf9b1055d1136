"""Fleet: nodes and GPUs (``/fleet``), one GPU (``/fleet/gpus/{uuid}``), and their JSON twins
(``/api/v1/fleet``, ``/api/v1/fleet/gpus/{uuid}``).

Read only. Live readings come from ``services.state`` (no I/O), history from the store through
``daemon.board.fleet`` (aggregated in SQL). Charts are inline SVG from ``web.charts``.
An unknown UUID is a 404 (a page for the HTML route, JSON for the API).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, QueryParameter
from litestar.response import Template
from markupsafe import Markup

from daemon.board.fleet import FleetPage, list_fleet
from daemon.board.fleet_detail import GpuDetail, Series, gpu_detail
from daemon.services import Services
from daemon.store.db import session_scope
from web.charts import line_chart, sparkline, strip_legend, utilization_strip
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="GPUs per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, description="GPUs to skip")]
NodeFilter = Annotated[
    str | None, QueryParameter(max_length=255, description="exact node name, e.g. gpu-node-01")
]
IdleFilter = Annotated[
    bool | None,
    QueryParameter(description="true: only GPUs classified idle now; false: only the others"),
]
IdleChoice = Annotated[
    str | None, QueryParameter(max_length=8, description="true, false, or empty for all")
]
HTML_LIMIT = 100
"""Default page size of the HTML page: a typical fleet fits on one page."""
GIB = 2**30
CHART_WIDTH = 420


def _idle_choice(value: str | None) -> bool | None:
    """The HTML form's ``idle`` value: empty = all; ``ValidationException`` for anything else."""
    choice = (value or "").strip().lower()
    if choice in ("", "all"):
        return None
    if choice in ("true", "1", "yes"):
        return True
    if choice in ("false", "0", "no"):
        return False
    raise ValidationException(
        detail="Validation failed for GET /fleet",
        extra=[{"key": "idle", "source": "query", "message": "expected true, false or empty"}],
    )


def _page(
    services: Services, node: str | None, idle: bool | None, limit: int, offset: int
) -> FleetPage:
    view = services.state.view()
    with session_scope(services.engine) as session:
        return list_fleet(
            session,
            view,
            now=services.now(),
            node=node or None,
            idle=idle,
            limit=limit,
            offset=offset,
        )


def _detail(services: Services, uuid: str) -> GpuDetail | None:
    view = services.state.view()
    with session_scope(services.engine) as session:
        return gpu_detail(session, view, uuid, now=services.now())


def _link(page: FleetPage, offset: int, idle: bool | None) -> str:
    """The fleet page with ``page``'s node filter and page size, ``idle`` and ``offset``."""
    query: dict[str, str | int] = {"limit": page.limit, "offset": offset}
    if page.node:
        query["node"] = page.node
    if idle is not None:
        query["idle"] = "true" if idle else "false"
    return f"/fleet?{urlencode(query)}"


def _idle_links(page: FleetPage) -> list[tuple[str, str, bool]]:
    """(label, href, current) of the idle filter's choices, keeping the node filter."""
    choices: list[tuple[str, bool | None]] = [
        ("all", None),
        ("idle now", True),
        ("not idle", False),
    ]
    return [(label, _link(page, 0, value), page.idle is value) for label, value in choices]


def _api_link(page: FleetPage) -> str:
    return _link(page, page.offset, page.idle).replace("/fleet?", "/api/v1/fleet?", 1)


def _row_charts(page: FleetPage) -> dict[str, dict[str, Markup]]:
    charts: dict[str, dict[str, Markup]] = {}
    for gpu in page.items:
        charts[gpu.uuid or f"{gpu.node}/{gpu.index}"] = {
            "strip": utilization_strip(
                gpu.utilization_last_hour, cell_width=2, label="utilization, last hour"
            ),
            "trend": sparkline(gpu.utilization_7d, 84, 20, y_max=1.0, label="utilization, 7 days"),
        }
    return charts


def _series_charts(series: Series, power_max: float | None, memory_max: int | None) -> Any:
    util = [
        (p.start, None if p.utilization_ratio is None else p.utilization_ratio * 100)
        for p in series.points
    ]
    power = [(p.start, p.power_watts) for p in series.points]
    memory = [
        (p.start, None if p.memory_used_bytes is None else p.memory_used_bytes / GIB)
        for p in series.points
    ]
    return {
        "utilization": line_chart(util, width=CHART_WIDTH, y_label="utilization %", y_max=100.0),
        "power": line_chart(power, width=CHART_WIDTH, y_label="power W", y_max=power_max or None),
        "memory": line_chart(
            memory,
            width=CHART_WIDTH,
            y_label="memory GiB",
            y_max=memory_max / GIB if memory_max else None,
        ),
    }


def _detail_context(services: Services, detail: GpuDetail) -> dict[str, Any]:
    gpu = detail.gpu
    return {
        "d": detail,
        "title": services.title,
        "strip": utilization_strip(
            gpu.utilization_last_hour, cell_width=6, height=18, label="utilization, last hour"
        ),
        "legend": strip_legend(),
        "day": _series_charts(detail.day, gpu.power_limit_watts, gpu.memory_total_bytes),
        "week": _series_charts(detail.week, gpu.power_limit_watts, gpu.memory_total_bytes),
    }


class FleetController(Controller):
    """Fleet: nodes and GPUs, a GPU's detail page, and their JSON twins."""

    path = "/"
    tags = ["fleet"]

    @get("/fleet", sync_to_thread=True, include_in_schema=False)
    def fleet_page(
        self,
        services: ServicesDep,
        node: NodeFilter = None,
        idle: IdleChoice = None,
        limit: Limit = HTML_LIMIT,
        offset: Offset = 0,
    ) -> Template:
        """Nodes and their GPUs with utilization strips, power, memory, cost and idle hours."""
        page = _page(services, node, _idle_choice(idle), limit, offset)
        newer = _link(page, max(offset - limit, 0), page.idle) if offset > 0 else None
        older = _link(page, offset + limit, page.idle) if offset + limit < page.total else None
        return Template(
            template_name="fleet.html.j2",
            context={
                "page": page,
                "charts": _row_charts(page),
                "legend": strip_legend(),
                "idle_links": _idle_links(page),
                "api_link": _api_link(page),
                "previous": newer,
                "next": older,
                "title": services.title,
            },
        )

    @get("/fleet/gpus/{uuid:str}", sync_to_thread=True, include_in_schema=False)
    def gpu_page(self, services: ServicesDep, uuid: FromPath[str]) -> Template:
        """One GPU: 24 h and 7 d charts, processes, MIG, alerts and costs; 404 if unknown."""
        detail = _detail(services, uuid)
        if detail is None:
            return Template(
                template_name="fleet_missing.html.j2",
                context={"uuid": uuid, "title": services.title},
                status_code=404,
            )
        return Template(
            template_name="fleet_gpu.html.j2", context=_detail_context(services, detail)
        )

    @get("/api/v1/fleet", sync_to_thread=True)
    def fleet(
        self,
        services: ServicesDep,
        node: NodeFilter = None,
        idle: IdleFilter = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> FleetPage:
        """GPUs by node with live readings, last-hour and 7-day utilization, costs, idle hours."""
        return _page(services, node, idle, limit, offset)

    @get("/api/v1/fleet/gpus/{uuid:str}", sync_to_thread=True)
    def gpu(self, services: ServicesDep, uuid: FromPath[str]) -> GpuDetail:
        """One GPU with its 24 h (5-minute) and 7 d (hourly) series; 404 for an unknown UUID."""
        detail = _detail(services, uuid)
        if detail is None:
            raise NotFoundException(detail=f"no GPU with UUID {uuid!r}")
        return detail
