"""Liveness (``/healthz``) and readiness (``/readyz``) probes."""

from __future__ import annotations

import logging

from litestar import Controller, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)


class HealthController(Controller):
    """Kubernetes-style probes. Neither raises: a broken dependency shows as 503 on readyz."""

    path = "/"
    tags = ["health"]

    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """The process is alive and serving; does no I/O."""
        return {"status": "ok"}

    @get("/readyz", sync_to_thread=True)
    def readyz(self, services: ServicesDep) -> Response[dict[str, object]]:
        """200 when ``services.readiness()`` reports no problem, else 503 listing them."""
        problems = services.readiness()
        if problems:
            logger.debug("not ready: %s", "; ".join(problems))
            return Response(
                {"status": "not ready", "problems": list(problems)},
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response({"status": "ready"}, status_code=HTTP_200_OK)
