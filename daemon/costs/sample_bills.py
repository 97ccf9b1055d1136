"""Sample cloud bills for ``tcowatch demo``: a deterministic month and a half of daily lines
from three clouds and an LLM API, dated relative to the demo's start, with a weekly rhythm
and one cost spike (so the anomaly views have something to find).

These are made-up numbers, labelled ``source = sample:bills``; nothing else uses them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from collectors.base import CostLine

SOURCE = "sample:bills"
CENT = Decimal("0.01")

# (provider, service, category, typical USD per day, region)
SERVICES: tuple[tuple[str, str, str, float, str], ...] = (
    ("AWS", "Amazon Elastic Compute Cloud - Compute", "Compute", 410.0, "us-east-1"),
    ("AWS", "Amazon Simple Storage Service", "Storage", 38.0, "us-east-1"),
    ("AWS", "Amazon Bedrock", "AI and Machine Learning", 95.0, "us-east-1"),
    ("Microsoft", "Virtual Machines", "Compute", 260.0, "westeurope"),
    ("Microsoft", "Azure OpenAI", "AI and Machine Learning", 120.0, "westeurope"),
    ("Google Cloud", "Vertex AI", "AI and Machine Learning", 75.0, "us-central1"),
    ("DeepSeek", "DeepSeek API", "AI and Machine Learning", 22.0, "global"),
)
SPIKE_DAYS_AGO = 3
"""The EC2 line of this day (relative to the demo start) is about three times its usual."""


def sample_bill_lines(now: datetime, *, days: int = 45, seed: int = 42) -> list[CostLine]:
    """Daily lines for the ``days`` complete days before ``now`` (UTC)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lines: list[CostLine] = []
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        weekday_factor = 0.75 if day.weekday() >= 5 else 1.0
        for provider, service, category, typical, region in SERVICES:
            rng = random.Random(f"{seed}:{day.date()}:{service}")
            amount = typical * weekday_factor * rng.uniform(0.9, 1.1)
            if back == SPIKE_DAYS_AGO and service.startswith("Amazon Elastic"):
                amount *= 3.1
            cost = Decimal(str(amount)).quantize(CENT, rounding=ROUND_HALF_UP)
            month = day.replace(day=1)
            next_month = (month + timedelta(days=32)).replace(day=1)
            lines.append(
                CostLine(
                    row_key=f"{day.date()}:{provider}:{service}",
                    provider=provider,
                    billed_cost=cost,
                    effective_cost=cost,
                    list_cost=(cost * Decimal("1.08")).quantize(CENT, rounding=ROUND_HALF_UP),
                    billing_currency="USD",
                    charge_period_start=day,
                    charge_period_end=day + timedelta(days=1),
                    billing_period_start=month,
                    billing_period_end=next_month,
                    charge_category="Usage",
                    service_name=service,
                    service_category=category,
                    region_id=region,
                    billing_account_id="demo-account",
                    tags={"team": "ml-platform", "env": "prod"},
                )
            )
    return lines
