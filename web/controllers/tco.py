"""TCO calculator: ``GET /tco`` (form and five-year table) and ``GET /api/v1/tco`` (JSON).

The calculation writes nothing, so the form submits with **GET**: no CSRF token, no editor
role and no audit entry are needed, any reader can use it, and a result is a link that can be
shared or bookmarked. Without query parameters both routes start from ``costs.tco`` and the
last 30 days measured in the store (GPUs, utilization, tokens per month, and the prices that
go with them when they are in the TCO's currency); with parameters they compute exactly what
was given (an empty field keeps the config's value). A bad value is a 400 naming the field:
JSON for the API, the form again with the error beside the field for the page.
Everything else lives in ``daemon.board.tco``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from litestar.response import Template

from daemon.board.errors import InputError
from daemon.board.tco import (
    FORM_FIELDS,
    TcoMeasurements,
    TcoReport,
    config_values,
    measure_tco,
    parse_tco,
    tco_defaults,
    tco_report,
)
from daemon.services import Services
from daemon.store.db import session_scope
from web.controllers.costs import cost_settings, gpu_cost_models
from web.controllers.deps import ServicesDep

logger = logging.getLogger(__name__)

FIELDS: dict[str, tuple[str, str]] = {
    "years": ("Horizon (years)", "1 to 30"),
    "currency": ("Currency", "ISO 4217 code of every amount below"),
    "hardware_depreciation_per_year": ("Hardware depreciation / year", "local"),
    "ops_staff_per_year": ("Operations staff / year", "local"),
    "dr_per_year": ("Disaster recovery / year", "local"),
    "upgrade_cost_per_event": ("One upgrade or migration", "local"),
    "upgrades": ("Upgrades over the horizon", "local, a whole number"),
    "cloud_ops_per_year": ("Operations / year", "cloud"),
    "cloud_dr_per_year": ("Disaster recovery / year", "cloud"),
    "cloud_usage_per_year": (
        "API or GPU usage / year",
        "cloud; replaced when tokens and a price are given",
    ),
    "tokens_per_month": ("Tokens per month", "measured: prompt + generation, scaled to 730 h"),
    "gpus": ("GPUs", "measured: GPUs that reported"),
    "utilization": (
        "Utilization (0-1)",
        "measured: mean GPU utilization; used with a cloud GPU price",
    ),
    "cloud_price_per_million": (
        "Cloud API price / million tokens",
        "with tokens: replaces cloud usage; gives the break-even",
    ),
    "gpu_capex_per_year": (
        "Depreciation per GPU / year",
        "with GPUs: replaces hardware depreciation",
    ),
    "cloud_gpu_price_per_hour": (
        "Cloud GPU price / hour",
        "rented-GPU basis: GPUs x utilization x 8760 h",
    ),
}
"""Label and hint of every form field (``daemon.board.tco.FORM_FIELDS``)."""
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Horizon", ("years", "currency")),
    (
        "Local (self-hosted)",
        (
            "hardware_depreciation_per_year",
            "ops_staff_per_year",
            "dr_per_year",
            "upgrade_cost_per_event",
            "upgrades",
        ),
    ),
    ("Cloud", ("cloud_ops_per_year", "cloud_dr_per_year", "cloud_usage_per_year")),
    ("Measured, last 30 days", ("tokens_per_month", "gpus", "utilization")),
    (
        "Prices for the measurements",
        ("cloud_price_per_million", "gpu_capex_per_year", "cloud_gpu_price_per_hour"),
    ),
)
INPUT_FOR_ROW = {
    "hardware_depreciation": "hardware_depreciation_per_year",
    "cloud_usage": "cloud_usage_per_year",
}
"""Table rows an input measurement can replace."""

Field = Annotated[str | None, QueryParameter(max_length=64, description="see the TCO form")]


@dataclass(frozen=True, slots=True)
class TcoAnswer:
    """The table, what the store measured over the last 30 days, and whether the inputs came
    from the config and the measurements (``prefilled``) or from the query."""

    table: TcoReport
    measurements: TcoMeasurements
    prefilled: bool
    notes: list[str]


@dataclass(frozen=True, slots=True)
class _Outcome:
    answer: TcoAnswer | None
    values: dict[str, str]
    measurements: TcoMeasurements
    notes: list[str]
    error: InputError | None


def _compute(services: Services, given: Mapping[str, str | None]) -> _Outcome:
    """Measure, then parse ``given`` (or the prefilled values when it is empty) and compute."""
    costs = cost_settings(services)
    with session_scope(services.engine) as session:
        measured = measure_tco(session, services.now(), costs, models=gpu_cost_models(services))
    prefilled = not any(v is not None and v.strip() for v in given.values())
    notes = list(measured.notes)
    if prefilled:
        values, currency_notes = tco_defaults(costs.tco, measured)
        notes.extend(currency_notes)
    else:
        values = {k: v.strip() for k, v in given.items() if v is not None}
    try:
        request = parse_tco(values, costs.tco)
    except InputError as exc:
        shown = {**config_values(costs.tco), **values} if not prefilled else values
        return _Outcome(None, shown, measured, notes, exc)
    answer = TcoAnswer(tco_report(request), measured, prefilled, notes)
    return _Outcome(answer, request.values, measured, notes, None)


def _given(query: Any) -> dict[str, str | None]:
    return {name: query.get(name) for name in FORM_FIELDS}


class TcoController(Controller):
    """TCO calculator form and its JSON twin."""

    path = "/"
    tags = ["tco"]

    @get("/tco", sync_to_thread=True, include_in_schema=False)
    def tco_page(self, services: ServicesDep, request: Request[Any, Any, Any]) -> Template:
        """The form and, for valid inputs, the table; a bad value answers 400 with the form
        and the error beside its field."""
        outcome = _compute(services, _given(request.query_params))
        context = {
            "title": services.title,
            "answer": outcome.answer,
            "values": outcome.values,
            "measurements": outcome.measurements,
            "notes": outcome.notes,
            "error": outcome.error,
            "fields": FIELDS,
            "groups": GROUPS,
            "input_for_row": INPUT_FOR_ROW,
        }
        status = 400 if outcome.error is not None else 200
        return Template(template_name="tco.html.j2", context=context, status_code=status)

    @get("/api/v1/tco", sync_to_thread=True)
    def tco(
        self,
        services: ServicesDep,
        years: Field = None,
        currency: Field = None,
        hardware_depreciation_per_year: Field = None,
        ops_staff_per_year: Field = None,
        dr_per_year: Field = None,
        upgrade_cost_per_event: Field = None,
        upgrades: Field = None,
        cloud_ops_per_year: Field = None,
        cloud_dr_per_year: Field = None,
        cloud_usage_per_year: Field = None,
        tokens_per_month: Field = None,
        gpus: Field = None,
        utilization: Field = None,
        cloud_price_per_million: Field = None,
        gpu_capex_per_year: Field = None,
        cloud_gpu_price_per_hour: Field = None,
    ) -> TcoAnswer:
        """The five-year local vs cloud table and break-even. No parameters: ``costs.tco``
        with the last 30 days' measurements; otherwise exactly the given inputs."""
        given = {
            "years": years,
            "currency": currency,
            "hardware_depreciation_per_year": hardware_depreciation_per_year,
            "ops_staff_per_year": ops_staff_per_year,
            "dr_per_year": dr_per_year,
            "upgrade_cost_per_event": upgrade_cost_per_event,
            "upgrades": upgrades,
            "cloud_ops_per_year": cloud_ops_per_year,
            "cloud_dr_per_year": cloud_dr_per_year,
            "cloud_usage_per_year": cloud_usage_per_year,
            "tokens_per_month": tokens_per_month,
            "gpus": gpus,
            "utilization": utilization,
            "cloud_price_per_million": cloud_price_per_million,
            "gpu_capex_per_year": gpu_capex_per_year,
            "cloud_gpu_price_per_hour": cloud_gpu_price_per_hour,
        }
        outcome = _compute(services, given)
        if outcome.error is not None:
            exc = outcome.error
            raise ValidationException(
                detail=str(exc),
                extra=[{"key": exc.field, "message": exc.reason, "source": "query"}],
            )
        assert outcome.answer is not None
        return outcome.answer
