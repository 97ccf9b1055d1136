"""Building blocks of config sections, shared by ``daemon.config`` and the modules whose
sections it includes (routing, channels), so those can define their own models without a
circular import.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from rules.durations import format_duration, parse_duration

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A Prometheus-style duration (``"30s"``, ``"1h30m"``), serialised back the same way."""

Money = Annotated[Decimal, Field(ge=0)]
"""A non-negative amount; YAML numbers are read through their text, so 0.1 stays 0.1."""


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
