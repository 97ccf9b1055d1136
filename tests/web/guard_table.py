"""``guard_table(app)``: every (method, route) of an app with sample path parameters filled in.

Access tests walk it, so a route added later is checked without anyone listing it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute

from web.auth import PUBLIC

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAMPLES: dict[Any, str] = {
    int: "1",
    float: "1.5",
    str: "x",
    Path: "x",
    uuid.UUID: "00000000-0000-4000-8000-000000000001",
    date: "2026-01-01",
    datetime: "2026-01-01T00:00:00Z",
    Decimal: "1",
}


@dataclass(frozen=True, slots=True)
class RouteCase:
    """One method of one route; ``path`` is callable as is."""

    method: str
    route: str
    path: str
    public: bool
    handler: str

    @property
    def writes(self) -> bool:
        return self.method not in SAFE_METHODS


def guard_table(app: Litestar) -> list[RouteCase]:
    """Every HTTP method of every route (auto-generated OPTIONS aside), sorted."""
    cases: list[RouteCase] = []
    for route in app.routes:
        assert isinstance(route, HTTPRoute), f"unexpected route kind {route!r}: extend guard_table"
        values = {
            name: SAMPLES.get(definition.type, "1")
            for name, definition in route.path_parameters.items()
        }
        path = route.path_format.format(**values)
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method == "OPTIONS" and handler.handler_name == "options_handler":
                    continue
                cases.append(
                    RouteCase(
                        method=method,
                        route=route.path,
                        path=path,
                        public=bool(handler.opt.get(PUBLIC)),
                        handler=handler.handler_name,
                    )
                )
    return sorted(cases, key=lambda c: (c.route, c.method))
