"""The board's overview page (``GET /``) and its JSON twin (``GET /api/v1/overview``)."""

from __future__ import annotations

import logging

from litestar import Controller, get
from litestar.response import Template

from daemon.services import Services
from web.controllers.deps import ServicesDep
from web.controllers.overview import Overview, build_overview

logger = logging.getLogger(__name__)


def _overview(services: Services) -> Overview:
    return build_overview(
        services.state.view(), now=services.now(), title=services.title, demo=services.demo
    )


class BoardController(Controller):
    """Fleet overview: GPUs, alerts and collector health from the live state (no I/O)."""

    path = "/"
    tags = ["board"]

    @get("/", include_in_schema=False)
    async def index(self, services: ServicesDep) -> Template:
        """Render the overview page; escapes every user-supplied value."""
        return Template(template_name="board.html.j2", context={"overview": _overview(services)})

    @get("/api/v1/overview")
    async def overview(self, services: ServicesDep) -> Overview:
        """Return the data behind the overview page."""
        return _overview(services)
