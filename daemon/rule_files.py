"""Rule groups: the config's own ``rules:`` (group ``default``) and the groups of ``rule_files``.

A group is evaluated at its own fixed ``interval`` (``None`` = the config's
``evaluation_interval``), like a Prometheus rule group.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

from daemon.config import Config, RuleConfig
from daemon.config_base import Duration, Section

logger = logging.getLogger(__name__)

DEFAULT_GROUP = "default"


class RuleGroupConfig(Section):
    """A named group of rules evaluated together at one interval."""

    name: str = Field(min_length=1, max_length=255)
    interval: Duration | None = None
    rules: list[RuleConfig] = Field(default_factory=list)


def rule_groups(config: Config, *, base_dir: Path | None = None) -> list[RuleGroupConfig]:
    """The config's rules as group ``default`` (first), then the groups of its rule files.

    ``base_dir`` resolves relative ``rule_files`` globs (the config file's folder).
    Raises ``ConfigError`` naming the file and key path of a bad rule file.
    """
    return [RuleGroupConfig(name=DEFAULT_GROUP, rules=list(config.rules))]
