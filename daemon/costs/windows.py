"""GPU and model usage over a time window, aggregated in the database.

A fleet of 1,024 GPUs writes 1.5 million minute rows a day; cost figures need only a few sums
per GPU, so these queries return one row per GPU (or per model instance) instead of every
minute. Costs are linear in those sums (see ``window_cost``), so nothing is approximated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from daemon.costs.localcost import GpuCostModel
from daemon.store.models import GpuRollup, InferenceRollup

HOUR = Decimal(3600)
RECENT = timedelta(minutes=5)
"""Which GPUs an instance runs on is read from its rows of the last few minutes."""


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


@dataclass(frozen=True)
class GpuUsage:
    """One GPU over the window (per-minute rollups)."""

    seconds: Decimal
    """Covered time: buckets x bucket length."""
    joules: Decimal
    """Measured energy, or average power x time for buckets without an energy reading."""
    idle_seconds: Decimal
    idle_weighted_joules: Decimal
    """sum of joules x idle share of each bucket: the energy spent while idle."""
    avg_power_watts: Decimal | None


@dataclass
class ModelUsage:
    """One served model over the window."""

    prompt_tokens: Decimal = Decimal(0)
    generation_tokens: Decimal = Decimal(0)
    cache_hits: Decimal = Decimal(0)
    gpu_uuids: set[str] = field(default_factory=set)

    @property
    def tokens(self) -> Decimal:
        """Prompt and generation tokens."""
        return self.prompt_tokens + self.generation_tokens


def gpu_usage(session: Session, since: datetime) -> dict[str, GpuUsage]:
    """Per GPU: covered time, energy, idle time and idle energy since ``since``."""
    seconds = col(GpuRollup.resolution_seconds)
    joules = func.coalesce(
        col(GpuRollup.energy_joules), func.coalesce(col(GpuRollup.avg_power_watts), 0) * seconds
    )
    rows = session.execute(
        sa_select(
            col(GpuRollup.gpu_uuid),
            func.sum(seconds),
            func.sum(joules),
            func.sum(col(GpuRollup.idle_seconds)),
            func.sum(joules * col(GpuRollup.idle_seconds) / seconds),
            func.avg(col(GpuRollup.avg_power_watts)),
        )
        .where(col(GpuRollup.resolution_seconds) == 60, col(GpuRollup.bucket_start) >= since)
        .group_by(col(GpuRollup.gpu_uuid))
    ).all()
    return {
        uuid: GpuUsage(
            seconds=_dec(covered),
            joules=_dec(energy),
            idle_seconds=_dec(idle),
            idle_weighted_joules=_dec(idle_energy),
            avg_power_watts=None if power is None else _dec(power),
        )
        for uuid, covered, energy, idle, idle_energy, power in rows
    }


def model_usage(session: Session, since: datetime, now: datetime) -> dict[str, ModelUsage]:
    """Per served model: tokens and cache hits since ``since``, and the GPUs it runs on."""
    usage: dict[str, ModelUsage] = defaultdict(ModelUsage)
    for model, prompt, generation, hits in session.exec(
        select(
            InferenceRollup.model,
            func.sum(col(InferenceRollup.prompt_tokens)),
            func.sum(col(InferenceRollup.generation_tokens)),
            func.sum(col(InferenceRollup.cache_hits)),
        )
        .where(InferenceRollup.resolution_seconds == 60, col(InferenceRollup.bucket_start) >= since)
        .group_by(col(InferenceRollup.model))
    ):
        entry = usage[model]
        entry.prompt_tokens, entry.generation_tokens = _dec(prompt), _dec(generation)
        entry.cache_hits = min(_dec(hits), entry.prompt_tokens)
    for model, uuids in session.exec(
        select(InferenceRollup.model, InferenceRollup.gpu_uuids).where(
            InferenceRollup.resolution_seconds == 60,
            col(InferenceRollup.bucket_start) >= max(since, now - RECENT),
        )
    ):
        usage[model].gpu_uuids.update(uuids or [])
    return dict(usage)


def window_cost(model: GpuCostModel, usage: GpuUsage) -> tuple[Decimal, Decimal]:
    """(all cost of the GPU over the window, the part spent while busy).

    Both are sums of per-bucket costs, which are linear in time and energy:
    cost = hours x (capex + fixed per hour) + energy cost of the joules; the idle part charges
    the idle seconds and the energy drawn while idle.
    """
    per_hour = model.capex_per_hour + model.fixed_per_hour
    total = usage.seconds / HOUR * per_hour + model.energy_cost(usage.joules)
    idle = usage.idle_seconds / HOUR * per_hour + model.energy_cost(usage.idle_weighted_joules)
    return total, max(Decimal(0), total - idle)
