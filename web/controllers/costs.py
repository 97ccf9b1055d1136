"""Costs: cloud bills by provider, service and account, local cost, trends, CSV export.

Routes (the controller sits at ``/`` because its URLs do not share one prefix):

- ``GET /costs``: the page; ``GET /costs.csv``: the bill rows as a CSV attachment;
- ``GET /api/v1/costs``: rows (paginated), totals per currency, local cost, budgets;
- ``GET /api/v1/costs/daily``: daily cloud and local series per currency.

All take the same query: ``from`` / ``to`` (UTC days, inclusive; default this month),
``provider``, ``service``, ``account`` (exact) and ``tag`` (a tag key to break down by). The
queries live in ``daemon.board.costs``; a bad period is a 400 naming ``from`` or ``to``.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Response, get
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from litestar.response import Template
from markupsafe import Markup

from daemon.board.costs import (
    LOCAL_SOURCE,
    BillRow,
    BudgetRow,
    CostQuery,
    CurrencyTotal,
    Dimensions,
    LocalCost,
    TagRow,
    Trend,
    bill_rows,
    budget_rows,
    cloud_trends,
    cost_query,
    currency_totals,
    dimensions,
    local_cost,
    parse_day,
    tag_keys,
    tag_rows,
)
from daemon.board.errors import InputError
from daemon.config import CostsConfig
from daemon.costs.budget import Budget
from daemon.costs.figures import cost_model
from daemon.costs.localcost import GpuCostModel
from daemon.services import Services
from daemon.store.db import session_scope
from web.charts import line_chart
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

FromDay = Annotated[
    str | None,
    QueryParameter(
        name="from", format="date", max_length=32, description="first UTC day (default: the 1st)"
    ),
]
ToDay = Annotated[
    str | None,
    QueryParameter(
        name="to", format="date", max_length=32, description="last UTC day (default: today)"
    ),
]
Dimension = Annotated[str | None, QueryParameter(max_length=255, description="exact match")]
TagKey = Annotated[
    str | None, QueryParameter(max_length=255, description="tag key to break down by")
]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="rows per page (1-500)")]
Offset = Annotated[int, QueryParameter(ge=0, description="rows to skip")]

CSV_HEADER = ("provider", "service", "account", "currency", "amount", "lines", "sources")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cost_settings(services: Services) -> CostsConfig:
    """The ``costs`` config section the process runs with (``Services.costs``), or the
    defaults while ``Services`` does not carry it."""
    found = getattr(services, "costs", None)
    return found if isinstance(found, CostsConfig) else CostsConfig()


def gpu_cost_models(services: Services) -> dict[str, GpuCostModel]:
    """GPU cost models by GPU name: from the config, else those of the latest cost figures."""
    configured = cost_settings(services).gpu_models
    if configured:
        return {m.gpu_model: cost_model(m) for m in configured}
    figures = services.state.view().costs
    return dict(getattr(figures, "gpu_models", None) or {})


def budgets(services: Services) -> list[Budget]:
    """Monthly budgets: from the config, else the amounts the latest cost figures carry."""
    configured = cost_settings(services).budgets
    if configured:
        return [Budget(b.name, b.amount, b.currency, b.provider, b.service) for b in configured]
    figures = services.state.view().costs
    amounts = getattr(figures, "budget_amount", None) or {}
    return [Budget(name, m.amount, m.currency) for name, m in sorted(amounts.items())]


@dataclass(frozen=True, slots=True)
class CostsPage:
    """The costs page: bill rows (one page of them), totals per currency, the local cost of
    the same period and this month's budgets. ``first_day`` / ``last_day`` are inclusive."""

    first_day: date
    last_day: date
    provider: str | None
    service: str | None
    account: str | None
    items: list[BillRow]
    total: int
    limit: int
    offset: int
    totals: list[CurrencyTotal]
    local: LocalCost
    budgets: list[BudgetRow]
    tag: str | None
    tags: list[TagRow]
    tag_keys: list[str]
    local_source: str = LOCAL_SOURCE


@dataclass(frozen=True, slots=True)
class DailyCosts:
    """Daily series over the period: ``cloud`` (bills) and ``local`` (cost model), one per
    currency, zero-filled."""

    first_day: date
    last_day: date
    series: list[Trend]


def _query(
    services: Services,
    first: str | None,
    last: str | None,
    provider: str | None,
    service: str | None,
    account: str | None,
    tag: str | None = None,
) -> CostQuery:
    return cost_query(
        now=services.now(),
        first=parse_day("from", first),
        last=parse_day("to", last),
        provider=provider,
        service=service,
        account=account,
        tag=tag,
    )


def _bad_query(exc: InputError) -> ValidationException:
    return ValidationException(
        detail=str(exc), extra=[{"key": exc.field, "message": exc.reason, "source": "query"}]
    )


def _page(services: Services, q: CostQuery, limit: int, offset: int) -> CostsPage:
    models = gpu_cost_models(services)
    with session_scope(services.engine) as session:
        rows = bill_rows(session, q)
        local = local_cost(session, q, models)
        budget = budget_rows(session, budgets(services), services.now())
        tags = tag_rows(session, q, q.tag) if q.tag else []
        keys = tag_keys(session, q)
    return CostsPage(
        first_day=q.first,
        last_day=q.last,
        provider=q.provider,
        service=q.service,
        account=q.account,
        items=rows[offset : offset + limit],
        total=len(rows),
        limit=limit,
        offset=offset,
        totals=currency_totals(rows),
        local=local,
        budgets=budget,
        tag=q.tag,
        tags=tags,
        tag_keys=keys,
    )


def _link(q: CostQuery, path: str = "/costs", **extra: Any) -> str:
    query: dict[str, Any] = {"from": q.first.isoformat(), "to": q.last.isoformat()}
    for name in ("provider", "service", "account", "tag"):
        value = getattr(q, name)
        if value:
            query[name] = value
    query.update({k: v for k, v in extra.items() if v is not None})
    return f"{path}?{urlencode(query)}"


def _charts(trends: list[Trend]) -> list[tuple[Trend, Markup]]:
    charted = []
    for trend in trends:
        what = "Cloud spend" if trend.kind == "cloud" else "Local cost"
        points = [(datetime.combine(p.day, time(), UTC), float(p.amount)) for p in trend.points]
        chart = line_chart(
            points, width=520, height=150, y_label=f"{what} per day, {trend.currency}"
        )
        charted.append((trend, chart))
    return charted


def _safe_cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def bills_csv(rows: list[BillRow]) -> str:
    """The rows as CSV with a header; amounts as plain decimal strings."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow(
            (
                _safe_cell(r.provider),
                _safe_cell(r.service),
                _safe_cell(r.account),
                r.currency,
                format(r.amount, "f"),
                r.lines,
                _safe_cell(" ".join(r.sources)),
            )
        )
    return out.getvalue()


class CostsController(Controller):
    """Costs: cloud bills by provider, service and account, local cost, trends, CSV export."""

    path = "/"
    tags = ["costs"]

    @get("/costs", sync_to_thread=True, include_in_schema=False)
    def costs_page(
        self,
        services: ServicesDep,
        first: FromDay = None,
        last: ToDay = None,
        provider: Dimension = None,
        service: Dimension = None,
        account: Dimension = None,
        tag: TagKey = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Template:
        """The costs page; a bad period shows the form again with the error (400)."""
        try:
            q = _query(services, first, last, provider, service, account, tag)
        except InputError as exc:
            context = {"error": exc, "title": services.title, "values": {}}
            return Template(template_name="costs.html.j2", context=context, status_code=400)
        page = _page(services, q, limit, offset)
        with session_scope(services.engine) as session:
            dims: Dimensions = dimensions(session, q)
            trends = cloud_trends(session, q)
        newer = _link(q, offset=max(offset - limit, 0), limit=limit) if offset > 0 else None
        more = offset + limit < page.total
        older = _link(q, offset=offset + limit, limit=limit) if more else None
        context = {
            "page": page,
            "dims": dims,
            "charts": _charts(trends + page.local.trends),
            "title": services.title,
            "csv_link": _link(q, "/costs.csv"),
            "json_link": _link(q, "/api/v1/costs"),
            "daily_link": _link(q, "/api/v1/costs/daily"),
            "newer": newer,
            "older": older,
            "error": None,
        }
        return Template(template_name="costs.html.j2", context=context)

    @get("/costs.csv", sync_to_thread=True)
    def costs_csv(
        self,
        services: ServicesDep,
        first: FromDay = None,
        last: ToDay = None,
        provider: Dimension = None,
        service: Dimension = None,
        account: Dimension = None,
    ) -> Response[str]:
        """Cloud spend per provider / service / account / currency as a CSV attachment."""
        try:
            q = _query(services, first, last, provider, service, account)
        except InputError as exc:
            raise _bad_query(exc) from None
        with session_scope(services.engine) as session:
            rows = bill_rows(session, q)
        name = f"costs-{q.first.isoformat()}-{q.last.isoformat()}.csv"
        return Response(
            bills_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @get("/api/v1/costs", sync_to_thread=True)
    def costs(
        self,
        services: ServicesDep,
        first: FromDay = None,
        last: ToDay = None,
        provider: Dimension = None,
        service: Dimension = None,
        account: Dimension = None,
        tag: TagKey = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> CostsPage:
        """Cloud spend rows with totals per currency (never summed across currencies), the
        local cost of the same period, and this month's budgets."""
        try:
            q = _query(services, first, last, provider, service, account, tag)
        except InputError as exc:
            raise _bad_query(exc) from None
        return _page(services, q, limit, offset)

    @get("/api/v1/costs/daily", sync_to_thread=True)
    def costs_daily(
        self,
        services: ServicesDep,
        first: FromDay = None,
        last: ToDay = None,
        provider: Dimension = None,
        service: Dimension = None,
        account: Dimension = None,
    ) -> DailyCosts:
        """Daily cloud spend (filtered) and local cost (never filtered) per currency."""
        try:
            q = _query(services, first, last, provider, service, account)
        except InputError as exc:
            raise _bad_query(exc) from None
        models = gpu_cost_models(services)
        with session_scope(services.engine) as session:
            series = cloud_trends(session, q) + local_cost(session, q, models).trends
        return DailyCosts(first_day=q.first, last_day=q.last, series=series)
