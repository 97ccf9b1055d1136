"""The TCO page as data: measured inputs from the store, form parsing, and the five-year table.

``measure_tco`` reads the last ``WINDOW`` (30 days) of rollups: the GPUs that reported, their
sample-weighted mean utilization, the tokens served (scaled to a month of 730 hours when the
store holds less than the window) and what those tokens would cost on the cloud API at the
price book's standard (not off-peak) prices, plus the per-GPU depreciation of the configured
GPU cost models. ``tco_defaults`` turns ``costs.tco`` and those measurements into the form's
initial values; ``parse_tco`` turns submitted values back into ``TcoInputs`` (through
``daemon.costs.tco.inputs_from_measurements``) and ``tco_report`` computes the table with
``daemon.costs.tco.compute_tco`` and the break-even monthly token volume.

Measured prices are used only when they are in the TCO's currency (no live FX); otherwise the
measurement is shown with a note and the field stays empty.

How submitted measurements apply:

- ``tokens_per_month`` with ``cloud_price_per_million``: cloud usage on the API basis; either
  alone changes no input (the price still gives the break-even volume);
- ``cloud_gpu_price_per_hour`` (with ``gpus`` and ``utilization``): cloud usage on the
  rented-GPU basis; ``utilization`` without it is shown only;
- ``gpu_capex_per_year`` (with ``gpus``): hardware depreciation.

Error contract: ``parse_tco`` raises ``daemon.board.costs.InputError`` naming the field for a
value that is not a number, negative, too large, a ``years`` outside 1-30, a bad currency, or
a combination ``inputs_from_measurements`` refuses. ``measure_tco`` raises only database
errors; missing data leaves a measurement ``None`` with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from daemon.board.costs import rolled_until, rollup_spans
from daemon.board.errors import InputError
from daemon.config import CostsConfig, TcoConfig
from daemon.costs.figures import DEFAULT_CLOUD, Money, cost_model, price_book
from daemon.costs.localcost import GpuCostModel, break_even_tokens_per_month
from daemon.costs.tco import (
    CATEGORY_LABELS,
    HOURS_PER_YEAR,
    MAX_INPUT,
    MONEY_FIELDS,
    TcoInputs,
    compute_tco,
    inputs_from_measurements,
)
from daemon.store.models import Gpu, GpuRollup, InferenceRollup

logger = logging.getLogger(__name__)

WINDOW: Final = timedelta(days=30)
"""How far back ``measure_tco`` looks."""
HOURS_PER_MONTH: Final = HOURS_PER_YEAR / 12
"""730 hours: the month the TCO's yearly figures divide into."""
MIN_OBSERVED_HOURS: Final = Decimal(1)
"""Less traffic history than this gives no monthly token volume (scaling minutes to a month
multiplies noise)."""
MAX_YEARS: Final = 30
MILLION: Final = Decimal(1_000_000)
MEASURED_FIELDS: Final = (
    "tokens_per_month",
    "cloud_price_per_million",
    "gpus",
    "gpu_capex_per_year",
    "utilization",
    "cloud_gpu_price_per_hour",
)
"""Form fields fed to ``inputs_from_measurements`` (and the break-even price)."""
FORM_FIELDS: Final = ("years", "currency", *MONEY_FIELDS, *MEASURED_FIELDS)
"""Every field of the TCO form, in display order."""
_WHOLE: Final = frozenset({"upgrades", "gpus"})


@dataclass(frozen=True, slots=True)
class TcoMeasurements:
    """What the store says about the last ``window_days`` (``None``: not measurable)."""

    window_days: int
    gpus: int | None
    utilization: Decimal | None
    """Sample-weighted mean utilization ratio (0..1) of the GPUs that reported."""
    tokens: Decimal | None
    """Prompt and generation tokens served in the window."""
    observed_hours: Decimal | None
    """From the first traffic in the window to ``now``."""
    tokens_per_month: Decimal | None
    """``tokens`` scaled to 730 hours."""
    cloud_price_per_million: Money | None
    """What the same token mix costs per million on the cloud API (standard prices)."""
    gpu_capex_per_year: Money | None
    """Mean depreciation per GPU per year of the reporting GPUs' cost models."""
    notes: list[str] = field(default_factory=list)


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _gpu_measurements(session: Session, start: datetime, end: datetime) -> tuple[set[str], Any]:
    """Reporting GPUs and their sample-weighted mean utilization over ``[start, end)``."""
    uuids: set[str] = set()
    weighted = Decimal(0)
    samples = 0
    ratio = col(GpuRollup.avg_utilization_ratio)
    for resolution, lo, hi in rollup_spans(start, end, rolled_until(session, GpuRollup)):
        window = (
            col(GpuRollup.resolution_seconds) == resolution,
            col(GpuRollup.bucket_start) >= lo,
            col(GpuRollup.bucket_start) < hi,
        )
        uuids.update(session.exec(select(GpuRollup.gpu_uuid).where(*window).distinct()).all())
        total, count = session.execute(
            sa_select(
                func.sum(ratio * col(GpuRollup.samples)), func.sum(col(GpuRollup.samples))
            ).where(*window, ratio.is_not(None))
        ).one()
        weighted += _dec(total)
        samples += int(count or 0)
    utilization = (weighted / samples).quantize(Decimal("0.0001")) if samples else None
    return uuids, utilization


@dataclass
class _Tokens:
    prompt: Decimal = Decimal(0)
    generation: Decimal = Decimal(0)
    hits: Decimal = Decimal(0)


def _model_tokens(
    session: Session, start: datetime, end: datetime
) -> tuple[dict[str, _Tokens], datetime | None]:
    """Tokens per served model over ``[start, end)`` and the first bucket with traffic."""
    per_model: dict[str, _Tokens] = {}
    first: datetime | None = None
    for resolution, lo, hi in rollup_spans(start, end, rolled_until(session, InferenceRollup)):
        query = (
            sa_select(
                col(InferenceRollup.model),
                func.sum(col(InferenceRollup.prompt_tokens)),
                func.sum(col(InferenceRollup.generation_tokens)),
                func.sum(col(InferenceRollup.cache_hits)),
                func.min(col(InferenceRollup.bucket_start)),
            )
            .where(
                col(InferenceRollup.resolution_seconds) == resolution,
                col(InferenceRollup.bucket_start) >= lo,
                col(InferenceRollup.bucket_start) < hi,
            )
            .group_by(col(InferenceRollup.model))
        )
        for model, prompt, generation, hits, earliest in session.execute(query):
            tokens = per_model.setdefault(model, _Tokens())
            tokens.prompt += _dec(prompt)
            tokens.generation += _dec(generation)
            tokens.hits += _dec(hits)
            if earliest is not None and (prompt or generation):
                moment = _as_utc(earliest)
                first = moment if first is None else min(first, moment)
    return per_model, first


def _cloud_price(
    costs: CostsConfig, per_model: Mapping[str, _Tokens], now: datetime, notes: list[str]
) -> Money | None:
    """The blended API price per million of the measured token mix (one currency only)."""
    book = price_book(costs)
    clouds = {w.model: (w.cloud_provider, w.cloud_model) for w in costs.workloads}
    cost = Decimal(0)
    tokens = Decimal(0)
    currencies: set[str] = set()
    for model, used in sorted(per_model.items()):
        provider, cloud_model = clouds.get(model, DEFAULT_CLOUD)
        try:
            price = book.price_at(provider, cloud_model, now)
        except KeyError as exc:
            notes.append(f"model {model!r}: {exc.args[0]}")
            return None
        hits = min(used.hits, used.prompt)
        cost += (
            hits * price.input_cache_hit
            + (used.prompt - hits) * price.input_cache_miss
            + used.generation * price.output
        )
        tokens += used.prompt + used.generation
        currencies.add(price.currency)
    if len(currencies) > 1:
        notes.append(f"cloud prices are in several currencies ({', '.join(sorted(currencies))})")
        return None
    if tokens <= 0 or not currencies:
        return None
    return Money((cost / tokens).quantize(Decimal("0.0001")), currencies.pop())


def _gpu_capex(
    session: Session, models: Mapping[str, GpuCostModel], uuids: set[str], notes: list[str]
) -> Money | None:
    if not uuids:
        return None
    names = dict(session.exec(select(Gpu.uuid, Gpu.name).where(col(Gpu.uuid).in_(uuids))).all())
    per_year: list[Decimal] = []
    currencies: set[str] = set()
    missing: set[str] = set()
    for uuid in uuids:
        model = models.get(names.get(uuid, ""))
        if model is None:
            missing.add(names.get(uuid) or uuid)
            continue
        per_year.append(model.purchase_price / model.depreciation_years)
        currencies.add(model.currency)
    if missing:
        notes.append(
            "no costs.gpu_models entry for "
            + ", ".join(repr(m) for m in sorted(missing))
            + ": no measured depreciation"
        )
        return None
    if len(currencies) != 1:
        notes.append("GPU cost models use several currencies: no measured depreciation")
        return None
    mean = sum(per_year, Decimal(0)) / len(per_year)
    return Money(mean.quantize(Decimal("0.01")), currencies.pop())


def measure_tco(
    session: Session,
    now: datetime,
    costs: CostsConfig,
    *,
    models: Mapping[str, GpuCostModel] | None = None,
    window: timedelta = WINDOW,
) -> TcoMeasurements:
    """GPUs, utilization, monthly tokens and the prices that go with them over ``window``.

    Prices come from ``costs`` (price book, workloads' cloud models); depreciation from
    ``models`` (GPU cost models by GPU name; default: ``costs.gpu_models``).
    """
    if models is None:
        models = {m.gpu_model: cost_model(m) for m in costs.gpu_models}
    end = _as_utc(now)
    start = end - window
    notes: list[str] = []
    uuids, utilization = _gpu_measurements(session, start, end)
    per_model, first = _model_tokens(session, start, end)
    tokens = sum((t.prompt + t.generation for t in per_model.values()), Decimal(0))
    observed = None if first is None else Decimal((end - first) // timedelta(seconds=1)) / 3600
    per_month = None
    if tokens > 0 and observed is not None:
        if observed < MIN_OBSERVED_HOURS:
            notes.append("less than an hour of traffic: no monthly token volume yet")
        else:
            per_month = (tokens * HOURS_PER_MONTH / min(observed, _hours(window))).quantize(
                Decimal(1)
            )
            if observed < _hours(window):
                notes.append(
                    f"tokens measured over {observed.quantize(Decimal('0.1'))} h, "
                    f"scaled to a month of {HOURS_PER_MONTH} h"
                )
    if not uuids:
        notes.append(f"no GPU reported in the last {window.days} days")
    if tokens <= 0:
        notes.append(f"no tokens served in the last {window.days} days")
    return TcoMeasurements(
        window_days=window.days,
        gpus=len(uuids) if uuids else None,
        utilization=utilization,
        tokens=tokens if tokens > 0 else None,
        observed_hours=None if observed is None else observed.quantize(Decimal("0.01")),
        tokens_per_month=per_month,
        cloud_price_per_million=_cloud_price(costs, per_model, end, notes) if tokens else None,
        gpu_capex_per_year=_gpu_capex(session, models, uuids, notes),
        notes=notes,
    )


def _hours(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(seconds=1)) / 3600


def _text(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def config_values(tco: TcoConfig) -> dict[str, str]:
    """``costs.tco`` as form values (strings)."""
    values = {"years": str(tco.years), "currency": tco.currency}
    for name in MONEY_FIELDS:
        values[name] = _text(getattr(tco, name))
    return values


def tco_defaults(tco: TcoConfig, measured: TcoMeasurements) -> tuple[dict[str, str], list[str]]:
    """The form's initial values: ``costs.tco`` plus the measurements; and notes on the
    measured prices left out because they are in another currency than ``tco.currency``."""
    values = config_values(tco)
    notes: list[str] = []
    if measured.tokens_per_month is not None:
        values["tokens_per_month"] = _text(measured.tokens_per_month)
    if measured.gpus is not None:
        values["gpus"] = str(measured.gpus)
    if measured.utilization is not None:
        values["utilization"] = _text(measured.utilization)
    for name, money in (
        ("cloud_price_per_million", measured.cloud_price_per_million),
        ("gpu_capex_per_year", measured.gpu_capex_per_year),
    ):
        if money is None:
            continue
        if money.currency == tco.currency:
            values[name] = _text(money.amount)
        else:
            notes.append(
                f"{name}: measured {_text(money.amount)} {money.currency}, but the TCO is in "
                f"{tco.currency} (no live FX): enter it in {tco.currency} to use it"
            )
    return values, notes


@dataclass(frozen=True, slots=True)
class TcoRequest:
    """Parsed form values: the inputs to compute, the cloud API price for the break-even, and
    the values as given (to show them again in the form)."""

    inputs: TcoInputs
    cloud_price_per_million: Decimal | None
    values: dict[str, str]


def _number(name: str, text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise InputError(name, f"expected a number, got {text!r}") from None
    if not value.is_finite():
        raise InputError(name, f"expected a finite number, got {text!r}")
    if value < 0:
        raise InputError(name, f"must not be negative, got {text}")
    if value >= MAX_INPUT:
        raise InputError(name, f"must be below 1e15, got {text}")
    if name in _WHOLE and value != value.to_integral_value():
        raise InputError(name, f"expected a whole number, got {text}")
    if name == "utilization" and value > 1:
        raise InputError(name, f"expected a ratio between 0 and 1, got {text}")
    return value


def _years(text: str) -> int:
    try:
        years = int(text)
    except ValueError:
        raise InputError("years", f"expected a whole number of years, got {text!r}") from None
    if not 1 <= years <= MAX_YEARS:
        raise InputError("years", f"must be between 1 and {MAX_YEARS}, got {years}")
    return years


def _currency(text: str) -> str:
    code = text.upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InputError("currency", f"expected an ISO 4217 code like USD, got {text!r}")
    return code


def _error(exc: ValueError, default_field: str) -> InputError:
    head, sep, tail = str(exc).partition(": ")
    if sep and head in FORM_FIELDS:
        return InputError(head, tail)
    return InputError(default_field, str(exc))


def parse_tco(values: Mapping[str, str | None], tco: TcoConfig) -> TcoRequest:
    """Submitted form values over ``costs.tco`` (an empty or missing field keeps the config's
    value; measured fields stay unset). See the module docstring for how measurements apply.

    Raises ``InputError`` naming the first bad field.
    """
    given = {
        name: text.strip()
        for name in FORM_FIELDS
        if (text := values.get(name)) is not None and text.strip()
    }
    merged = {**config_values(tco), **{k: v for k, v in given.items() if k not in MEASURED_FIELDS}}
    base: dict[str, Any] = {
        "years": _years(merged["years"]),
        "currency": _currency(merged["currency"]),
    }
    for name in MONEY_FIELDS:
        base[name] = _number(name, merged[name])
    numbers = {name: _number(name, given[name]) for name in MEASURED_FIELDS if name in given}
    try:
        inputs = TcoInputs(**base)
    except ValueError as exc:
        raise _error(exc, "years") from None
    price = numbers.get("cloud_price_per_million")
    gpus = int(numbers["gpus"]) if "gpus" in numbers else None
    options: dict[str, Any] = {}
    if "tokens_per_month" in numbers and price is not None:
        options.update(tokens_per_month=numbers["tokens_per_month"], cloud_price_per_million=price)
    if "cloud_gpu_price_per_hour" in numbers:
        options["cloud_gpu_price_per_hour"] = numbers["cloud_gpu_price_per_hour"]
        if "utilization" in numbers:
            options["utilization"] = numbers["utilization"]
    if "gpu_capex_per_year" in numbers:
        options["gpu_capex_per_year"] = numbers["gpu_capex_per_year"]
    if options:
        try:
            inputs = inputs_from_measurements(inputs, gpus=gpus, **options)
        except ValueError as exc:
            raise _error(exc, "gpus") from None
    shown = {**config_values(tco), **given}
    shown["currency"] = inputs.currency
    return TcoRequest(inputs=inputs, cloud_price_per_million=price, values=shown)


@dataclass(frozen=True, slots=True)
class TcoLine:
    """One category over the horizon on each side (0 where it does not apply)."""

    category: str
    label: str
    local: Decimal
    cloud: Decimal


@dataclass(frozen=True, slots=True)
class TcoYearLine:
    """Cumulative cost at the end of ``year`` on each side."""

    year: int
    local: Decimal
    cloud: Decimal


@dataclass(frozen=True, slots=True)
class TcoReport:
    """The five-year (``years``) table, its totals and the break-even, in ``currency``."""

    currency: str
    years: int
    rows: list[TcoLine]
    local_total: Decimal
    cloud_total: Decimal
    difference: Decimal
    """Local minus cloud: positive means the cloud is cheaper over the horizon."""
    cheaper: str
    yearly: list[TcoYearLine]
    break_even_year: int | None
    break_even_tokens_per_month: Decimal | None
    """Monthly tokens at which the cloud (its ops, DR and API usage at
    ``cloud_price_per_million``) costs what local does over the horizon: above it, local is
    cheaper. ``None`` without a price."""
    break_even_note: str
    cloud_price_per_million: Decimal | None
    inputs: dict[str, str]
    measured_fields: list[str]
    """Inputs replaced by measurements (``hardware_depreciation_per_year``,
    ``cloud_usage_per_year``)."""


def break_even_tokens(inputs: TcoInputs, local_total: Decimal, price: Decimal) -> Decimal:
    """Monthly tokens at which the cloud's horizon total equals ``local_total``.

    ``cloud_ops + cloud_dr`` over the horizon plus ``tokens * 12 * years * price / 1e6``;
    0 when local costs no more than the cloud's fixed costs alone. ``ValueError`` for a price
    of 0 or less (``daemon.costs.localcost.break_even_tokens_per_month``).
    """
    fixed = (inputs.cloud_ops_per_year + inputs.cloud_dr_per_year) * inputs.years
    gap = max(local_total - fixed, Decimal(0))
    return break_even_tokens_per_month(
        local_monthly_cost=gap / (12 * inputs.years), cloud_price_per_million=price
    ).quantize(Decimal(1))


def tco_report(request: TcoRequest) -> TcoReport:
    """Compute the table of ``request``; pure and exact, it raises nothing."""
    inputs = request.inputs
    result = compute_tco(inputs)
    price = request.cloud_price_per_million
    if price is None:
        tokens, note = None, "give a cloud API price per million tokens for the break-even volume"
    elif price <= 0:
        tokens, note = None, "no break-even against a free cloud API"
    else:
        tokens = break_even_tokens(inputs, result.local_total, price)
        note = (
            f"above {tokens:,} tokens a month local costs less than the cloud API at "
            f"{format(price, 'f')} {inputs.currency} per million tokens"
        )
    return TcoReport(
        currency=result.currency,
        years=result.years,
        rows=[
            TcoLine(r.category, CATEGORY_LABELS[r.category], r.local, r.cloud) for r in result.rows
        ],
        local_total=result.local_total,
        cloud_total=result.cloud_total,
        difference=result.difference,
        cheaper=result.cheaper,
        yearly=[TcoYearLine(y.year, y.local, y.cloud) for y in result.yearly],
        break_even_year=result.break_even_year,
        break_even_tokens_per_month=tokens,
        break_even_note=note,
        cloud_price_per_million=price,
        inputs=request.values,
        measured_fields=sorted(inputs.measured),
    )
