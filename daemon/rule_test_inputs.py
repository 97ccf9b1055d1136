"""The inputs of a rule unit test (``daemon.rule_tests``): ``input_series`` under the names of
``rules.series.SERIES`` and ``input_records``, turned into the ``RuleContext`` a rule sees.

A sample at time ``t`` stands for the per-minute rollup of the minute that **ends** at ``t``,
so a rule of window ``w`` evaluated at ``now`` sees the samples in ``(now - w, now]``: the
value given for ``t`` is visible at ``t``, as in promtool, and the window holds the same
minutes the daemon reads (``daemon.rule_context``: buckets starting in ``[now - w, now)``).
Missing samples (``_``) and staleness markers are no sample. Each field follows the daemon's
context builder:

- ``gpus``: one ``GpuWindow`` per ``uuid`` of the ``tcowatch_gpu_*`` series (labels ``node``,
  ``gpu``, ``uuid``, and optionally ``model_name``, the GPU's name, which the daemon takes from
  its inventory). ``minutes`` = distinct minutes with a sample; averages and the utilization
  maximum of the samples; power limit and memory size = their latest sample at or before
  ``now``; ``inference_tokens`` = the node's prompt + generation tokens in the window
  (``None`` without any); ``down`` when the latest utilization sample is ``stale``.
- ``models``: one ``ModelWindow`` per (model, node) of the ``tcowatch_llm_*`` series: sums,
  ``minutes`` with a sample, ``cache_hit_ratio`` = the gauge in the latest minute that has
  one (averaged over instances).
- ``costs``: one ``CostSeries`` per ``tcowatch_cloud_cost`` series (labels ``provider``,
  ``service``, ``account``, ``currency``), samples summed per UTC day, over the complete days
  of the window (its length rounded up to days, ending yesterday), zero-filled from the
  series' first day with a sample to yesterday. ``currency`` is a series label only where
  one provider/service/account has several currencies. No ``by_dimension`` (no root causes).
- ``daily_requests``: ``tcowatch_llm_requests`` per model per complete day, days with samples.
- ``series``: each named series with its samples in the window (``model_name`` left out);
  ``tcowatch_cloud_cost`` per day as for ``costs``. Series without samples are left out.
- ``rollbacks``, ``debts``, ``budgets``: from ``input_records``. A rollback exists from its
  ``started_at``, is open until its ``restored_at`` and stays visible for a window after it;
  debts that are ``done`` are left out; budgets are taken as given. Times are offsets from
  the test start (``30m``, ``-2d``) or RFC 3339 times.

Error contract: ``load_series`` raises ``InvalidInput`` listing every bad series (unknown
name or label, bad notation, conflicting GPU labels, a series given twice), each with its
line and key path; ``TestInputs.context`` does not raise.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, model_validator

from daemon.config_base import Duration, Money, Section
from daemon.rule_context import CLOUD_COST, complete_days, day_start
from daemon.rule_files import KeyPath
from rules.base import (
    BudgetView,
    CostSeries,
    DebtView,
    GpuWindow,
    ModelWindow,
    RollbackView,
    Rule,
    RuleContext,
    Series,
)
from rules.durations import parse_duration
from rules.expanding import Marker, NotationError, parse_series, parse_values
from rules.series import SERIES

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
_GPU_PREFIX = "tcowatch_gpu_"
_GPU_LABELS = ("node", "gpu", "uuid")
GPU_NAME_LABEL = "model_name"
_GPU_ROLLUPS = (
    "tcowatch_gpu_utilization_ratio",
    "tcowatch_gpu_power_watts",
    "tcowatch_gpu_memory_used_bytes",
    "tcowatch_gpu_energy_joules",
    "tcowatch_gpu_idle_seconds",
)
_MODEL_SUMS = {
    "tcowatch_llm_prompt_tokens": "prompt_tokens",
    "tcowatch_llm_generation_tokens": "generation_tokens",
    "tcowatch_llm_requests": "requests",
    "tcowatch_llm_cache_queries": "cache_queries",
    "tcowatch_llm_cache_hits": "cache_hits",
}
_MODEL_RATIO = "tcowatch_llm_cache_hit_ratio"

Where = Callable[[KeyPath], str]
"""Turns a key path inside the test into ``line N: tests[0].input_series[1].series``."""


# --- the file format of the inputs ------------------------------------------------------------


def time_point(value: Any) -> datetime | timedelta:
    """An offset from the test start (``30m``, ``-2d``) or an absolute time (RFC 3339).

    Raises ``ValueError`` naming the expected forms.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        try:
            offset = parse_duration(text.removeprefix("-"), example="30m")
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return time_point(moment)
        else:
            return -offset if text.startswith("-") else offset
    raise ValueError(
        f'expected an offset like "30m" or "-2d", or a time like "2025-01-01T00:00:00Z", '
        f"got {value!r}"
    )


TimePoint = Annotated[datetime | timedelta, PlainValidator(time_point)]


class LenientSection(Section):
    """A section of a test file where a key set to null takes its default, as promtool reads
    ``exp_alerts:`` with nothing after it (no alerts expected)."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value is not None}
        return data


class InputSeriesConfig(LenientSection):
    """One input series: ``series: 'name{labels}'`` and ``values`` in the expanding notation."""

    series: str
    values: str = ""


class RollbackRecord(LenientSection):
    """A rollback, for ``rollback_sla`` (``id`` defaults to its position, from 1)."""

    id: int | None = None
    service: str
    from_version: str = ""
    to_version: str = ""
    started_at: TimePoint
    restored_at: TimePoint | None = None
    sla_target: Duration = timedelta(0)
    """0 = the rule's default target."""
    reason: str = ""
    owner: str = ""


class DebtRecord(LenientSection):
    """A technical-debt item, for ``debt_overdue`` (``id`` defaults to its position, from 1)."""

    id: int | None = None
    title: str
    status: Literal["backlog", "planned", "in_progress", "done"] = "backlog"
    owner: str = ""
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    monthly_cost: Money = Decimal(0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    due_date: TimePoint | None = None


class BudgetRecord(LenientSection):
    """A monthly budget and its month so far, for ``budget_forecast`` (taken as given)."""

    name: str
    amount: Money
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    month_to_date: Money = Decimal(0)
    forecast: Money | None = None
    provider: str | None = None
    service: str | None = None


class InputRecords(LenientSection):
    """Records that are not series (a tcowatch extension of the promtool format)."""

    rollbacks: list[RollbackRecord] = Field(default_factory=list)
    debts: list[DebtRecord] = Field(default_factory=list)
    budgets: list[BudgetRecord] = Field(default_factory=list)


class InvalidInput(Exception):
    """Bad input series; ``problems`` are ``line N: key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- series -----------------------------------------------------------------------------------


@dataclass
class Samples:
    """One input series: its numeric samples (ascending) and staleness markers."""

    name: str
    labels: dict[str, str]
    times: list[datetime] = field(default_factory=list)
    values: list[Decimal] = field(default_factory=list)
    stale: list[datetime] = field(default_factory=list)
    first: datetime | None = None
    """The first sample of any kind (number or stale marker)."""

    def window(self, start: datetime, end: datetime) -> tuple[list[datetime], list[Decimal]]:
        """The numeric samples with ``start < t <= end``."""
        low = bisect.bisect_right(self.times, start)
        high = bisect.bisect_right(self.times, end)
        return self.times[low:high], self.values[low:high]

    def floats(self, start: datetime, end: datetime) -> list[float]:
        """``window`` values as floats."""
        return [float(v) for v in self.window(start, end)[1]]

    def latest(self, now: datetime) -> Decimal | None:
        """The latest numeric sample at or before ``now``."""
        index = bisect.bisect_right(self.times, now)
        return self.values[index - 1] if index else None

    def stale_at(self, now: datetime) -> bool:
        """Whether the latest sample at or before ``now`` is a staleness marker."""
        stale = bisect.bisect_right(self.stale, now)
        if not stale:
            return False
        index = bisect.bisect_right(self.times, now)
        return not index or self.stale[stale - 1] > self.times[index - 1]


def load_series(
    items: Sequence[InputSeriesConfig],
    start: datetime,
    interval: timedelta,
    where: Where,
    test: str,
) -> list[Samples]:
    """Parse and check a test's ``input_series``; sample ``i`` lies at ``start + i * interval``.

    ``where`` locates a key path relative to the test; ``test`` names the test in messages.
    Raises ``InvalidInput`` with every problem found.
    """
    problems: list[str] = []
    loaded: list[Samples] = []
    seen: dict[tuple[str, frozenset[tuple[str, str]]], int] = {}
    gpus: dict[str, tuple[dict[str, str], int]] = {}
    for index, item in enumerate(items):
        try:
            name, labels = parse_series(item.series)
        except NotationError as exc:
            problems.append(f"{where(('input_series', index, 'series'))}: {exc}")
            continue
        try:
            values = parse_values(item.values)
        except NotationError as exc:
            problems.append(f"{where(('input_series', index, 'values'))}: {exc}")
            continue
        problem = _series_problem(name, labels, values, test)
        if problem is None:
            key = (name, frozenset(labels.items()))
            problem = f"the same series as input_series[{seen[key]}]" if key in seen else None
            seen.setdefault(key, index)
        if problem is None and name.startswith(_GPU_PREFIX):
            problem = _gpu_conflict(labels, index, gpus)
        if problem is not None:
            problems.append(f"{where(('input_series', index, 'series'))}: {problem}")
            continue
        loaded.append(_samples(name, labels, values, start, interval))
    if problems:
        raise InvalidInput(problems)
    return loaded


def _samples(
    name: str,
    labels: dict[str, str],
    values: Sequence[Decimal | Marker],
    start: datetime,
    interval: timedelta,
) -> Samples:
    samples = Samples(name, labels)
    for position, value in enumerate(values):
        if value is Marker.MISSING:
            continue
        moment = start + interval * position
        samples.first = samples.first or moment
        if value is Marker.STALE:
            samples.stale.append(moment)
        else:
            samples.times.append(moment)
            samples.values.append(value)
    return samples


def _series_problem(
    name: str, labels: Mapping[str, str], values: Sequence[Decimal | Marker], test: str
) -> str | None:
    if name not in SERIES:
        return f"{test}: unknown series {name!r}; tcowatch series are: " + ", ".join(sorted(SERIES))
    allowed = SERIES[name].labels
    if name.startswith(_GPU_PREFIX):
        allowed = (*allowed, GPU_NAME_LABEL)
    for label in labels:
        if label not in allowed:
            return f"unknown label {label!r} for {name} (labels: {', '.join(allowed)})"
    if name.startswith(_GPU_PREFIX):
        if not all(labels.get(label) for label in _GPU_LABELS):
            return f"{name} needs the labels node, gpu and uuid"
        if not labels["gpu"].isdigit():
            return f'label gpu must be the GPU index (a whole number), got "{labels["gpu"]}"'
    if name.startswith("tcowatch_llm_") and not (labels.get("model") and labels.get("node")):
        return f"{name} needs the labels model and node"
    if name == CLOUD_COST:
        if not (labels.get("provider") and labels.get("currency")):
            return f"{name} needs the labels provider and currency (service, account optional)"
        if any(isinstance(v, Decimal) and not v.is_finite() for v in values):
            return f"{name} values must be finite amounts"
    return None


def _gpu_conflict(
    labels: Mapping[str, str], index: int, gpus: dict[str, tuple[dict[str, str], int]]
) -> str | None:
    """A GPU (``uuid``) keeps its node, index and (when given) model name in every series."""
    known, first = gpus.setdefault(labels["uuid"], (dict(labels), index))
    for label in (*_GPU_LABELS, GPU_NAME_LABEL):
        mine, theirs = labels.get(label), known.get(label)
        if mine and theirs and mine != theirs:
            return (
                f'uuid "{labels["uuid"]}" has {label} "{mine}" here but "{theirs}" in '
                f"input_series[{first}]"
            )
        if mine and not theirs:
            known[label] = mine
    return None


# --- contexts ---------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _minutes(moments: Iterable[datetime]) -> int:
    return len({(moment - EPOCH) // _MINUTE for moment in moments})


def _whole(value: Decimal | None) -> int | None:
    return int(value) if value is not None and value.is_finite() else None


@dataclass(frozen=True)
class _Rollback:
    view: RollbackView
    restored_at: datetime | None


class TestInputs:
    """A test's series and records; ``context`` builds what a rule sees at ``now``."""

    __test__ = False  # not a pytest class

    def __init__(self, series: Sequence[Samples], records: InputRecords, start: datetime) -> None:
        self.by_name: dict[str, list[Samples]] = defaultdict(list)
        for samples in series:
            self.by_name[samples.name].append(samples)

        def at(point: datetime | timedelta) -> datetime:
            return start + point if isinstance(point, timedelta) else point

        self.rollbacks = tuple(
            _Rollback(
                RollbackView(
                    id=r.id if r.id is not None else position,
                    service=r.service,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    started_at=at(r.started_at),
                    restored_at=at(r.restored_at) if r.restored_at is not None else None,
                    sla_target=r.sla_target,
                    reason=r.reason,
                    owner=r.owner,
                ),
                at(r.restored_at) if r.restored_at is not None else None,
            )
            for position, r in enumerate(records.rollbacks, start=1)
        )
        self.debts = tuple(
            DebtView(
                id=d.id if d.id is not None else position,
                title=d.title,
                status=d.status,
                owner=d.owner,
                severity=d.severity,
                monthly_cost=d.monthly_cost,
                currency=d.currency,
                due_date=at(d.due_date) if d.due_date is not None else None,
            )
            for position, d in enumerate(records.debts, start=1)
            if d.status != "done"
        )
        self.budgets = tuple(
            BudgetView(
                name=b.name,
                currency=b.currency,
                amount=b.amount,
                month_to_date=b.month_to_date,
                forecast=b.forecast,
                provider=b.provider,
                service=b.service,
            )
            for b in records.budgets
        )

    def context(self, rule: Rule, now: datetime) -> RuleContext:
        """The context of ``rule`` at ``now``: only the fields in ``rule.needs``."""
        window: timedelta = rule.window
        needs: frozenset[str] = getattr(rule, "needs", frozenset())
        start = now - window
        parts: dict[str, Any] = {}
        if "gpus" in needs:
            parts["gpus"] = self.gpus(start, now)
        if "models" in needs:
            parts["models"] = self.models(start, now)
        if "costs" in needs:
            parts["costs"] = self.costs(complete_days(now, window))
        if "daily_requests" in needs:
            parts["daily_requests"] = self.daily_requests(complete_days(now, window))
        if "series" in needs:
            names: frozenset[str] = getattr(rule, "series_names", frozenset())
            parts["series"] = self.series(names, window, now)
        if "budgets" in needs:
            parts["budgets"] = self.budgets
        if "rollbacks" in needs:
            parts["rollbacks"] = self.rollback_views(window, now)
        if "debts" in needs:
            parts["debts"] = self.debts
        return RuleContext(now=now, window=window, **parts)

    def gpus(self, start: datetime, now: datetime) -> tuple[GpuWindow, ...]:
        """Every GPU seen by ``now``, over ``(start, now]``."""
        by_uuid: dict[str, dict[str, Samples]] = defaultdict(dict)
        for name, all_samples in self.by_name.items():
            if name.startswith(_GPU_PREFIX):
                for samples in all_samples:
                    if samples.first is not None and samples.first <= now:
                        by_uuid[samples.labels["uuid"]][name] = samples
        tokens = self._node_tokens(start, now)
        return tuple(
            _gpu_window(uuid, by_uuid[uuid], start, now, tokens) for uuid in sorted(by_uuid)
        )

    def _node_tokens(self, start: datetime, now: datetime) -> dict[str, float]:
        tokens: dict[str, float] = {}
        for name in ("tcowatch_llm_prompt_tokens", "tcowatch_llm_generation_tokens"):
            for samples in self.by_name.get(name, []):
                values = samples.floats(start, now)
                if values:
                    node = samples.labels["node"]
                    tokens[node] = tokens.get(node, 0.0) + sum(values)
        return tokens

    def models(self, start: datetime, now: datetime) -> tuple[ModelWindow, ...]:
        """One window per (model, node) with samples in ``(start, now]``."""
        sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        moments: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        gauges: dict[tuple[str, str], dict[datetime, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for name in (*_MODEL_SUMS, _MODEL_RATIO):
            for samples in self.by_name.get(name, []):
                times, values = samples.window(start, now)
                key = (samples.labels["model"], samples.labels["node"])
                moments[key].extend(times)
                for moment, value in zip(times, values, strict=True):
                    if name == _MODEL_RATIO:
                        gauges[key][moment].append(float(value))
                    else:
                        sums[key][_MODEL_SUMS[name]] += float(value)
        windows = []
        for key in sorted(k for k, v in moments.items() if v):
            latest = gauges[key][max(gauges[key])] if gauges[key] else []
            windows.append(
                ModelWindow(
                    model=key[0],
                    node=key[1],
                    minutes=_minutes(moments[key]),
                    cache_hit_ratio=_mean(latest),
                    **sums[key],
                )
            )
        return tuple(windows)

    def _daily_costs(self, days: tuple[date, ...]) -> list[tuple[Samples, dict[date, Decimal]]]:
        result = []
        for samples in self.by_name.get(CLOUD_COST, []):
            daily: dict[date, Decimal] = defaultdict(Decimal)
            for moment, value in zip(samples.times, samples.values, strict=True):
                if days[0] <= moment.date() <= days[-1]:
                    daily[moment.date()] += value
            if daily:
                result.append((samples, daily))
        return result

    def costs(self, days: tuple[date, ...]) -> tuple[CostSeries, ...]:
        """One ``CostSeries`` per cost series with a sample in ``days``."""
        daily = self._daily_costs(days)
        currencies: dict[tuple[str, str, str], int] = defaultdict(int)
        for samples, _ in daily:
            currencies[_cost_key(samples)] += 1
        result = []
        for samples, by_day in daily:
            span = tuple(d for d in days if d >= min(by_day))
            labels = dict(zip(("provider", "service", "account"), _cost_key(samples), strict=True))
            if currencies[_cost_key(samples)] > 1:
                labels["currency"] = samples.labels["currency"]
            result.append(
                CostSeries(
                    labels=labels,
                    currency=samples.labels["currency"],
                    days=span,
                    costs=tuple(by_day.get(d, Decimal(0)) for d in span),
                )
            )
        return tuple(result)

    def daily_requests(self, days: tuple[date, ...]) -> dict[str, tuple[float, ...]]:
        """Requests per model per day of ``days`` that has samples, ascending."""
        per_model: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
        for samples in self.by_name.get("tcowatch_llm_requests", []):
            for moment, value in zip(samples.times, samples.values, strict=True):
                if days[0] <= moment.date() <= days[-1]:
                    per_model[samples.labels["model"]][moment.date()] += float(value)
        return {
            model: tuple(by_day[d] for d in sorted(by_day))
            for model, by_day in sorted(per_model.items())
        }

    def series(self, names: Iterable[str], window: timedelta, now: datetime) -> tuple[Series, ...]:
        """The named series over the window (``tcowatch_cloud_cost``: per complete day)."""
        result = []
        for name in sorted(names):
            if name == CLOUD_COST:
                days = complete_days(now, window)
                for samples, by_day in self._daily_costs(days):
                    span = [d for d in days if d >= min(by_day)]
                    points = tuple((day_start(d), float(by_day.get(d, 0))) for d in span)
                    result.append(Series(name=name, labels=dict(samples.labels), points=points))
                continue
            for samples in self.by_name.get(name, []):
                times, values = samples.window(now - window, now)
                if times:
                    labels = {k: v for k, v in samples.labels.items() if k != GPU_NAME_LABEL}
                    points = tuple((t, float(v)) for t, v in zip(times, values, strict=True))
                    result.append(Series(name=name, labels=labels, points=points))
        return tuple(result)

    def rollback_views(self, window: timedelta, now: datetime) -> tuple[RollbackView, ...]:
        """Rollbacks started by ``now`` that are open then or were restored within the window
        (a restore after ``now`` has not happened yet)."""
        views = []
        for rollback in self.rollbacks:
            view, restored = rollback.view, rollback.restored_at
            if view.started_at > now:
                continue
            if restored is not None and restored > now:
                views.append(_open(view))
            elif restored is None or restored >= now - window:
                views.append(view)
        return tuple(views)


def _cost_key(samples: Samples) -> tuple[str, str, str]:
    return (
        samples.labels.get("provider", ""),
        samples.labels.get("service", ""),
        samples.labels.get("account", ""),
    )


def _open(view: RollbackView) -> RollbackView:
    return RollbackView(
        id=view.id,
        service=view.service,
        from_version=view.from_version,
        to_version=view.to_version,
        started_at=view.started_at,
        restored_at=None,
        sla_target=view.sla_target,
        reason=view.reason,
        owner=view.owner,
    )


def _gpu_window(
    uuid: str,
    series: Mapping[str, Samples],
    start: datetime,
    now: datetime,
    node_tokens: Mapping[str, float],
) -> GpuWindow:
    """One GPU over ``(start, now]`` from its ``tcowatch_gpu_*`` series (keyed by name)."""

    def floats(name: str) -> list[float]:
        return series[name].floats(start, now) if name in series else []

    def latest(name: str) -> Decimal | None:
        return series[name].latest(now) if name in series else None

    moments = [
        moment
        for name in _GPU_ROLLUPS
        if name in series
        for moment in series[name].window(start, now)[0]
    ]
    labels = next(iter(series.values())).labels
    util = floats("tcowatch_gpu_utilization_ratio")
    limit = latest("tcowatch_gpu_power_limit_watts")
    utilization = series.get("tcowatch_gpu_utilization_ratio")
    names = [s.labels.get(GPU_NAME_LABEL, "") for s in series.values()]
    return GpuWindow(
        uuid=uuid,
        node=labels["node"],
        index=int(labels["gpu"]),
        name=next((n for n in names if n), ""),
        minutes=_minutes(moments),
        avg_utilization_ratio=_mean(util),
        max_utilization_ratio=max(util) if util else None,
        avg_power_watts=_mean(floats("tcowatch_gpu_power_watts")),
        power_limit_watts=float(limit) if limit is not None else None,
        avg_memory_used_bytes=_mean(floats("tcowatch_gpu_memory_used_bytes")),
        memory_total_bytes=_whole(latest("tcowatch_gpu_memory_total_bytes")),
        inference_tokens=node_tokens.get(labels["node"]),
        down=utilization is not None and utilization.stale_at(now),
    )
