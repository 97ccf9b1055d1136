"""The ``tco`` and ``advise`` commands: five-year local vs cloud cost, and placement advice.

``tcowatch tco`` takes its inputs from flags, else from the config's ``costs.tco`` section,
else from the source analysis's numbers; measured token volume and GPU counts can replace the
guesses. ``tcowatch advise`` places each workload of ``costs.workloads`` with the reasons,
reading request volatility and GPU utilization from the store when it has data.

Errors: a bad flag value raises :class:`daemon.config.ConfigError` naming the flag (one line,
exit 2 through ``daemon.cli``); everything else follows ``daemon.cli_common``'s exit codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from daemon.cli_common import EXIT_OK
from daemon.config import ConfigError, load_config
from daemon.costs.advisor import Advice, Readiness, Workload, advise, daily_volatility
from daemon.costs.tco import (
    MAX_INPUT,
    MONEY_FIELDS,
    TcoInputs,
    TcoResult,
    compute_tco,
    inputs_from_measurements,
)

logger = logging.getLogger(__name__)

AddCommon = Callable[..., None]

TCO_FLAGS: dict[str, str] = {
    "hardware_depreciation_per_year": "--hardware-depreciation-per-year",
    "ops_staff_per_year": "--ops-staff-per-year",
    "dr_per_year": "--dr-per-year",
    "upgrade_cost_per_event": "--upgrade-cost",
    "upgrades": "--upgrades",
    "cloud_ops_per_year": "--cloud-ops-per-year",
    "cloud_dr_per_year": "--cloud-dr-per-year",
    "cloud_usage_per_year": "--cloud-usage-per-year",
}
"""Each :class:`TcoInputs` number and the flag that sets it."""

MEASURED_FLAGS: dict[str, str] = {
    "tokens_per_month": "--tokens-per-month",
    "cloud_price_per_million": "--cloud-price-per-million",
    "gpu_capex_per_year": "--gpu-capex-per-year",
}
"""Measured numbers for :func:`inputs_from_measurements` (``--gpus`` is the fourth)."""


def add_tco_commands(sub: Any, common: AddCommon) -> None:
    """Register ``tco`` and ``advise`` on the CLI's sub-parsers."""
    tco = sub.add_parser("tco", help="five-year total cost of ownership: local vs cloud")
    common(tco)
    tco.add_argument("--years", default=None, help="horizon in years (default 5)")
    tco.add_argument("--currency", default=None, help="ISO 4217 code (default CNY)")
    for dest, flag in TCO_FLAGS.items():
        tco.add_argument(flag, dest=dest, default=None, metavar="N", help=_flag_help(dest))
    for dest, flag in MEASURED_FLAGS.items():
        tco.add_argument(flag, dest=dest, default=None, metavar="N", help=_flag_help(dest))
    tco.add_argument("--gpus", default=None, metavar="N", help="measured GPU count")
    tco.add_argument(
        "--measured",
        action="store_true",
        help="take GPU count, tokens per month, the cloud price of that token mix and GPU "
        "depreciation from the last 30 days in the store (flags still win)",
    )
    tco.add_argument("--json", action="store_true", help="JSON (amounts as strings)")

    adv = sub.add_parser("advise", help="local / cloud / hybrid placement per workload")
    common(adv)
    adv.add_argument("--days", type=int, default=14, help="measurement window in days")
    adv.add_argument("--json", action="store_true", help="JSON instead of a table")


def _flag_help(dest: str) -> str:
    return {
        "upgrades": "upgrade/migration events over the horizon (default 3)",
        "upgrade_cost_per_event": "cost of one upgrade/migration (default 50000)",
        "tokens_per_month": "measured tokens per month (with --cloud-price-per-million)",
        "cloud_price_per_million": "cloud API price per million tokens",
        "gpu_capex_per_year": "per-GPU depreciation per year (with --gpus)",
    }.get(dest, dest.replace("_", " "))


def _number(flag: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise ConfigError(flag, [f"expected a non-negative number, got {text!r}"])
    if value >= MAX_INPUT:
        raise ConfigError(flag, [f"expected a number below 1e15, got {text!r}"])
    return value


def _whole(flag: str, text: str, *, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(flag, [f"expected a whole number of at least {minimum}, got {text!r}"])
    return value


def _config_section(config: Any, name: str) -> Any:
    """``config.costs.<name>``, or None while the config has no ``costs`` section."""
    return getattr(getattr(config, "costs", None), name, None)


def _configured_inputs(config: Any) -> dict[str, Any]:
    section = _config_section(config, "tco")
    values: dict[str, Any] = {}
    if section is None:
        return values
    for name in ("years", "currency", *MONEY_FIELDS):
        value = getattr(section, name, None)
        if value is None:
            continue
        if isinstance(value, float):  # never do arithmetic on a float amount
            value = Decimal(str(value))
        values[name] = value
    return values


def tco_inputs_from_args(args: argparse.Namespace, config: Any) -> TcoInputs:
    """Flags over ``config.costs.tco`` over the defaults, then measured replacements.

    Raises ``ConfigError`` naming the flag (or ``costs.tco``) for a bad value.
    """
    values = _configured_inputs(config)
    try:
        TcoInputs(**values)
    except ValueError as exc:
        raise ConfigError("costs.tco", [str(exc)]) from None
    if getattr(args, "years", None) is not None:
        values["years"] = _whole("--years", args.years, minimum=1)
    if getattr(args, "currency", None) is not None:
        currency = args.currency.strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise ConfigError("--currency", [f"expected an ISO 4217 code, got {args.currency!r}"])
        values["currency"] = currency
    for dest, flag in TCO_FLAGS.items():
        if getattr(args, dest, None) is not None:
            values[dest] = _number(flag, getattr(args, dest))
    base = TcoInputs(**values)
    measured = {
        dest: _number(flag, getattr(args, dest))
        for dest, flag in MEASURED_FLAGS.items()
        if getattr(args, dest, None) is not None
    }
    gpus_text = getattr(args, "gpus", None)
    gpus = None if gpus_text is None else _whole("--gpus", gpus_text, minimum=0)
    if not measured and gpus is None:
        return base
    try:
        return inputs_from_measurements(base, gpus=gpus, **measured)
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise ConfigError(f"--{field.replace('_', '-')}", [problem]) from None


def _fill_measured(args: argparse.Namespace, config: Any, config_path: Path) -> list[str]:
    """For ``--measured``: put what the store measured into the flags the user left empty;
    returns the notes on what could not be measured."""
    from daemon.board.tco import measure_tco
    from daemon.costs.figures import Money
    from daemon.store.db import session_scope

    engine = _open_session_factory(args, config, config_path)
    if engine is None:
        return ["no database yet: nothing measured"]
    try:
        with session_scope(engine) as session:
            measured = measure_tco(session, datetime.now(UTC), config.costs)
    finally:
        engine.dispose()
    notes = list(measured.notes)
    currency = (getattr(args, "currency", None) or config.costs.tco.currency).strip().upper()
    for dest in (*MEASURED_FLAGS, "gpus"):
        value = getattr(measured, dest)
        if getattr(args, dest, None) is not None or value is None:
            continue
        if isinstance(value, Money):  # never converted: no live FX
            if value.currency != currency:
                notes.append(f"{dest} is in {value.currency}, the TCO in {currency}: not used")
                continue
            value = value.amount
        setattr(args, dest, str(value))
    if args.tokens_per_month is not None and args.cloud_price_per_million is None:
        notes.append("no cloud price in the TCO's currency: measured tokens not used")
        args.tokens_per_month = None
    return notes


def cmd_tco(args: argparse.Namespace) -> int:
    """``tcowatch tco``: print the local vs cloud comparison as a table or ``--json``."""
    config, config_path = load_config(getattr(args, "config", None))
    if getattr(args, "measured", False):
        for note in _fill_measured(args, config, config_path):
            print(f"tcowatch: measured: {note}", file=sys.stderr)
    inputs = tco_inputs_from_args(args, config)
    result = compute_tco(inputs)
    if getattr(args, "json", False):
        print(json.dumps({**result.as_dict(), "inputs": inputs.as_dict()}, indent=2))
    else:
        _print_tco(result, inputs)
    return EXIT_OK


def _fmt_money(amount: Decimal) -> str:
    return f"{amount:,.2f}".removesuffix(".00")


def _print_tco(result: TcoResult, inputs: TcoInputs) -> None:
    from rich.table import Table

    table = Table(title=f"TCO over {result.years} years ({result.currency})")
    table.add_column("category")
    table.add_column("local", justify="right")
    table.add_column("cloud", justify="right")
    for row in result.rows:
        table.add_row(row.label, _fmt_money(row.local), _fmt_money(row.cloud))
    table.add_section()
    table.add_row("Total", _fmt_money(result.local_total), _fmt_money(result.cloud_total))
    table.add_row("Difference (local - cloud)", _fmt_money(result.difference), "")
    console = _console()
    console.print(table)
    if result.break_even_year is None:
        console.print(f"Local never costs less than the cloud within {result.years} years.")
    else:
        console.print(f"Local costs no more than the cloud from year {result.break_even_year}.")
    if inputs.measured:
        console.print("Measured instead of guessed: " + ", ".join(sorted(inputs.measured)))


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


@dataclass(frozen=True)
class Measurements:
    """What the store says about one workload over a window (None: no data)."""

    daily_requests: list[float]
    volatility: float | None
    utilization: float | None


def measure_workload(session: Any, model: str, *, start: datetime, end: datetime) -> Measurements:
    """Daily request counts, their volatility and the mean utilization of the model's GPUs.

    Reads hourly rollups (per-minute ones when no hour is rolled yet) in ``[start, end)``.
    Days from the first one with traffic to the window's end count, a quiet day as 0. Never
    raises for missing data; store errors propagate.
    """
    from sqlmodel import col, select

    from daemon.store.models import GpuRollup, InferenceRollup

    def rows(resolution: int) -> list[InferenceRollup]:
        query = select(InferenceRollup).where(
            InferenceRollup.model == model,
            InferenceRollup.resolution_seconds == resolution,
            col(InferenceRollup.bucket_start) >= start,
            col(InferenceRollup.bucket_start) < end,
        )
        return list(session.exec(query))

    resolution = 3600
    found = rows(resolution)
    if not found:
        resolution = 60
        found = rows(resolution)
    per_day: dict[datetime, float] = defaultdict(float)
    gpus: set[str] = set()
    for row in found:
        day = _as_utc(row.bucket_start).replace(hour=0, minute=0, second=0, microsecond=0)
        per_day[day] += row.requests
        gpus.update(row.gpu_uuids or [])
    daily: list[float] = []
    if per_day:
        day = min(per_day)
        while day < end:
            daily.append(per_day.get(day, 0.0))
            day += timedelta(days=1)
    utilization = None
    if gpus:
        query = select(GpuRollup).where(
            col(GpuRollup.gpu_uuid).in_(sorted(gpus)),
            GpuRollup.resolution_seconds == resolution,
            col(GpuRollup.bucket_start) >= start,
            col(GpuRollup.bucket_start) < end,
        )
        weighted = [
            (g.avg_utilization_ratio, g.samples)
            for g in session.exec(query)
            if g.avg_utilization_ratio is not None
        ]
        total = sum(w for _, w in weighted)
        utilization = sum(v * w for v, w in weighted) / total if total else None
    return Measurements(daily, daily_volatility(daily), utilization)


def _utcnow() -> datetime:
    """The current time; tests replace it."""
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _field(item: Any, key: str, default: Any = None) -> Any:
    """A config item's field: a pydantic model's attribute or a mapping's key."""
    if isinstance(item, dict):
        return item.get(key, default)
    return getattr(item, key, default)


def _workload(item: Any) -> Workload:
    try:
        return Workload(
            name=str(_field(item, "name")),
            latency_need=_field(item, "latency_need", "batch"),
            data_sensitivity=_field(item, "data_sensitivity", "internal"),
            model=_field(item, "model"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError("costs.workloads", [str(exc)]) from None


def _readiness(config: Any) -> Readiness:
    section = _config_section(config, "readiness")
    if section is None:
        return Readiness()
    return Readiness(
        k8s_certified_engineers=bool(getattr(section, "k8s_certified_engineers", False)),
        monitoring_24x7=bool(getattr(section, "monitoring_24x7", False)),
        dr_drills_passed=bool(getattr(section, "dr_drills_passed", False)),
    )


def _optional_money(item: Any, key: str) -> Decimal | None:
    value = _field(item, key)
    if value is None:
        return None
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _open_session_factory(args: argparse.Namespace, config: Any, config_path: Path) -> Any:
    """An engine on the store if it exists; None for a SQLite file that is not there yet."""
    from daemon.store.db import open_store, resolve_url

    store_url = getattr(getattr(config, "store", None), "url", None)
    url = resolve_url(getattr(args, "db", None) or store_url, config_path)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        logger.info("no database at %s: advising without measurements", url)
        return None
    return open_store(url)


def cmd_advise(args: argparse.Namespace) -> int:
    """``tcowatch advise``: one advice per workload of ``costs.workloads``, with reasons."""
    config, config_path = load_config(getattr(args, "config", None))
    items = list(_config_section(config, "workloads") or [])
    days = getattr(args, "days", 14)
    if days < 1:
        raise ConfigError("--days", [f"expected at least 1, got {days}"])
    workloads = [_workload(item) for item in items]
    readiness = _readiness(config)
    currency = getattr(_config_section(config, "tco"), "currency", None)
    end = _utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    engine = _open_session_factory(args, config, config_path) if workloads else None
    figures = _cost_figures(engine, config)
    advices: list[tuple[Advice, Measurements]] = []
    for item, workload in zip(items, workloads, strict=True):
        measured = Measurements([], None, None)
        if engine is not None:
            from daemon.store.db import session_scope

            with session_scope(engine) as session:
                measured = measure_workload(
                    session, workload.model or workload.name, start=start, end=end
                )
        local, cloud, measured_currency = _measured_prices(figures, workload.model or workload.name)
        advice = advise(
            workload,
            volatility=measured.volatility,
            utilization=measured.utilization,
            local_cost_per_million=_optional_money(item, "local_cost_per_million") or local,
            cloud_price_per_million=_optional_money(item, "cloud_price_per_million") or cloud,
            readiness=readiness,
            currency=measured_currency or currency,
        )
        advices.append((advice, measured))
    if getattr(args, "json", False):
        print(json.dumps({"workloads": [_advice_json(a, m) for a, m in advices]}, indent=2))
    elif not advices:
        print("tcowatch: no workloads configured (costs.workloads)", file=sys.stderr)
    else:
        _print_advice(a for a, _ in advices)
    return EXIT_OK


def _cost_figures(engine: Any, config: Any) -> Any:
    """Today's cost figures from the store (``None`` without a store or a costs section)."""
    from daemon.config import CostsConfig

    if engine is None or not isinstance(getattr(config, "costs", None), CostsConfig):
        return None
    from daemon.costs.figures import CostFiguresJob
    from daemon.state import LiveState

    return CostFiguresJob(engine, LiveState(), config.costs).run(_utcnow())


def _measured_prices(figures: Any, model: str) -> tuple[Decimal | None, Decimal | None, str | None]:
    """Measured self-hosted cost per million (allocation basis) and the cloud cost of the same
    token mix, when both are in one currency; otherwise what is known."""
    if figures is None:
        return None, None, None
    local = figures.cost_per_million.get((model, "allocation"))
    cloud = next(
        (money for (m, _, _), money in figures.cloud_equivalent.items() if m == model), None
    )
    if local is not None and cloud is not None and local.currency != cloud.currency:
        return None, None, None  # no live FX: do not compare different currencies
    known = local if local is not None else cloud
    currency = known.currency if known is not None else None
    return (
        local.amount if local is not None else None,
        cloud.amount if cloud is not None else None,
        currency,
    )


def _advice_json(advice: Advice, measured: Measurements) -> dict[str, object]:
    return {
        **advice.as_dict(),
        "measurements": {
            "daily_requests": measured.daily_requests,
            "volatility": measured.volatility,
            "utilization": measured.utilization,
        },
    }


def _print_advice(advices: Iterable[Advice]) -> None:
    from rich.table import Table

    table = Table(title="Placement advice")
    for column in ("workload", "placement", "score", "reasons"):
        table.add_column(column)
    for advice in advices:
        table.add_row(
            advice.workload, advice.placement, f"{advice.score:+d}", "\n".join(advice.reasons)
        )
    _console().print(table)
