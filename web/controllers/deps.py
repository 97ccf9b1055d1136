"""The one dependency every controller takes: the process's ``Services``."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from daemon.services import Services

ServicesDep: TypeAlias = NamedDependency[SkipValidation[Services]]
"""Inject ``services`` by name, handed over as is (it holds locks and an engine)."""
