"""Rule groups: the config's own ``rules:`` (group ``default``) and the groups of ``rule_files``.

A rule file is YAML in the Prometheus layout, with tcowatch rules inside::

    groups:
      - name: gpu
        interval: 1m          # optional; default: the config's evaluation_interval
        rules:
          - {name: GpuIdle, kind: gpu_idle, for: 10m, params: {...}, labels: {...}}

or, for one group named after the file (``gpu.yaml`` -> group ``gpu``), a top-level
``rules:`` list. A group is evaluated at its own fixed ``interval``, like a Prometheus group.

Uniqueness, across the config and every rule file: group names are unique (``default`` is the
config's own group); an alertname may repeat (Prometheus allows it) only when the rules'
``labels`` maps, as written, differ, so that two rules can never produce the same alert.

Error contract: ``load_rule_file`` raises ``ConfigError(<file>, problems)``;
``load_rule_groups`` and ``rule_groups`` raise ``ConfigError("rule_files", problems)``. Each
problem names the file (for the last two), the line when the YAML has it and the key path:
``rules.yaml: line 7: groups[0].rules[1].params.window: expected a duration like "10m", got
"soon"``. Nothing else is raised for bad input.
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from daemon.config import Config, ConfigError, RuleConfig
from daemon.config_base import Duration, Section

logger = logging.getLogger(__name__)

DEFAULT_GROUP = "default"

KeyPath = tuple[str | int, ...]
"""A key path inside a YAML document: mapping keys and list indexes."""

_GLOB_CHARS = re.compile(r"[*?\[]")
_RULE_MESSAGE = re.compile(
    r"^((?:kind|params|labels|annotations)(?:\.[^:\s]+|\[\d+\])*): (.*)$", re.DOTALL
)
_PROMETHEUS_KEYS = frozenset({"alert", "expr", "record"})


class RuleGroupConfig(Section):
    """A named group of rules evaluated together at one interval."""

    name: str = Field(min_length=1, max_length=255)
    interval: Duration | None = None
    rules: list[RuleConfig] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError('expected a positive duration like "1m"')
        return value


class _RuleFileModel(Section):
    groups: list[RuleGroupConfig] = Field(default_factory=list)
    rules: list[RuleConfig] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_layout(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "groups" in data and "rules" in data:
            raise ValueError("use either groups: or rules: at the top level, not both")
        return data


@dataclass(frozen=True)
class RuleFile:
    """One loaded rule file: its groups, where each group sits in the YAML, its line map."""

    path: Path
    display: str
    """How problems name the file (as given, or relative to the config's folder)."""
    groups: tuple[RuleGroupConfig, ...]
    group_paths: tuple[KeyPath, ...]
    """Key path of each group (``("groups", 0)``; ``()`` for a top-level ``rules:`` file)."""
    lines: Mapping[KeyPath, int] = field(default_factory=dict)

    @property
    def rule_count(self) -> int:
        """How many rules the file holds, over all its groups."""
        return sum(len(group.rules) for group in self.groups)

    def where(self, path: KeyPath) -> str:
        """``line N: key.path`` for a key path of this file (``key.path`` alone without a line)."""
        return located(path, self.lines)


def format_key_path(path: KeyPath) -> str:
    """``("groups", 0, "rules", 1, "for")`` -> ``groups[0].rules[1].for``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def line_of(path: KeyPath, lines: Mapping[KeyPath, int]) -> int | None:
    """The line of the deepest prefix of ``path`` that the YAML recorded (1-based)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def located(path: KeyPath, lines: Mapping[KeyPath, int]) -> str:
    """``line N: key.path`` (``key.path`` alone when the YAML has no line for it)."""
    line = line_of(path, lines)
    key = format_key_path(path)
    if line is None:
        return key
    return f"line {line}: {key}" if key else f"line {line}"


def read_yaml_lines(path: Path, display: str | None = None) -> tuple[Any, dict[KeyPath, int]]:
    """Read a YAML document and the line of every key and list item in it.

    Raises ``ConfigError(display or path, ...)`` for an unreadable file or a YAML syntax error
    (naming its line and column).
    """
    source = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(source, [f"cannot read the file: {reason}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _record_lines(node, (), lines, depth=0)
    return data, lines


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], depth: int) -> None:
    if depth > 64:  # aliases can nest deeply; the lines near the top are what problems need
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            child = (*path, str(key_node.value))
            lines.setdefault(child, key_node.start_mark.line + 1)
            _record_lines(value_node, child, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines, depth + 1)


def _message_path(text: str) -> KeyPath:
    parts: list[str | int] = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return tuple(parts)


def validation_problems(
    exc: ValidationError, lines: Mapping[KeyPath, int], prefix: KeyPath = ()
) -> list[str]:
    """Turn pydantic errors into ``line N: key.path: message`` problems (``prefix`` is the key
    path of the validated value inside the document)."""
    problems: list[str] = []
    for error in exc.errors():
        loc: KeyPath = (*prefix, *("for" if part == "for_" else part for part in error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message.removeprefix("Assertion failed, ")
        if message == "Extra inputs are not permitted":
            message = "unknown key"
            if loc and loc[-1] in _PROMETHEUS_KEYS:
                message += " (tcowatch rules use name:, kind: and params:, not PromQL alert:/expr:)"
        elif message == "Field required":
            message = "required"
        matched = _RULE_MESSAGE.match(message)
        if matched:
            loc = (*loc, *_message_path(matched.group(1)))
            message = matched.group(2)
        where = located(loc, lines)
        problems.append(f"{where}: {message}" if where else message)
    return problems


def load_rule_file(path: Path, *, display: str | None = None) -> RuleFile:
    """Read and validate one rule file (see the module docstring for the layout).

    Raises ``ConfigError(display or path, problems)``: every problem of the file, each with
    its line and key path. Group names must be unique inside the file.
    """
    source = display if display is not None else str(path)
    data, lines = read_yaml_lines(path, source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, ["the top level must be a mapping with groups: (or rules:)"])
    try:
        model = _RuleFileModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc, lines)) from None
    if model.rules is not None:
        groups: tuple[RuleGroupConfig, ...] = (
            RuleGroupConfig(name=path.stem, rules=list(model.rules)),
        )
        group_paths: tuple[KeyPath, ...] = ((),)
    else:
        groups = tuple(model.groups)
        group_paths = tuple(("groups", index) for index in range(len(groups)))
    rule_file = RuleFile(path, source, groups, group_paths, lines)
    problems: list[str] = []
    first: dict[str, int] = {}
    for index, group in enumerate(groups):
        if group.name in first:
            where = rule_file.where(("groups", index, "name"))
            earlier = first[group.name]
            problems.append(
                f'{where}: group "{group.name}" is defined twice (first at groups[{earlier}])'
            )
        first.setdefault(group.name, index)
    if problems:
        raise ConfigError(source, problems)
    return rule_file


def _rule_path(rule_file: RuleFile, group_index: int, rule_index: int) -> KeyPath:
    return (*rule_file.group_paths[group_index], "rules", rule_index)


def duplicate_problems(
    files: Sequence[RuleFile], default: RuleGroupConfig | None = None
) -> dict[str, list[str]]:
    """Problems across files (and the config's ``default`` group, when given), by file display:
    a group name used twice, or one alertname with the same ``labels`` twice."""
    problems: dict[str, list[str]] = {}
    groups_seen: dict[str, str] = {}
    alerts_seen: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
    hint = "give one of the two rules a distinguishing label"
    if default is not None:
        groups_seen[default.name] = "the config (its own rules: form that group)"
        for index, rule in enumerate(default.rules):
            alerts_seen[(rule.name, frozenset(rule.labels.items()))] = (
                f"the config's rules[{index}]; {hint}, or set rules: [] in the config to keep "
                "only the rule files"
            )
    for rule_file in files:
        found = problems.setdefault(rule_file.display, [])
        for group_index, group in enumerate(rule_file.groups):
            group_path = rule_file.group_paths[group_index]
            if group.name in groups_seen:
                where = rule_file.where((*group_path, "name") if group_path else ("rules",))
                found.append(
                    f'{where}: group "{group.name}" is already defined in {groups_seen[group.name]}'
                )
            else:
                groups_seen[group.name] = (
                    f"{rule_file.display} {format_key_path(group_path)}".rstrip()
                )
            for rule_index, rule in enumerate(group.rules):
                rule_path = _rule_path(rule_file, group_index, rule_index)
                key = (rule.name, frozenset(rule.labels.items()))
                if key in alerts_seen:
                    found.append(
                        f'{rule_file.where((*rule_path, "name"))}: alertname "{rule.name}" with '
                        f"the same labels is already defined in {alerts_seen[key]}"
                    )
                else:
                    place = f"{rule_file.display} {format_key_path(rule_path)}"
                    alerts_seen[key] = f"{place}; {hint}"
    return {display: found for display, found in problems.items() if found}


def expand_rule_files(patterns: Sequence[str], base_dir: Path) -> tuple[list[Path], list[str]]:
    """Resolve ``rule_files`` patterns (globs, ``**`` included) against ``base_dir``.

    Returns the files in a stable order (patterns in order, each glob's matches sorted, no
    repeats) and the problems: a plain path that does not exist. A glob that matches nothing is
    allowed (logged), as in Prometheus.
    """
    files: list[Path] = []
    problems: list[str] = []
    for pattern in patterns:
        full = Path(pattern).expanduser()
        if not full.is_absolute():
            full = base_dir / full
        if _GLOB_CHARS.search(pattern):
            matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                logger.warning("rule_files pattern %r matches no file", pattern)
        elif full.is_file():
            matches = [full]
        else:
            problems.append(f"{pattern}: file not found")
            matches = []
        for match in matches:
            if match not in files:
                files.append(match)
    return files, problems


def _display(path: Path, base_dir: Path) -> str:
    try:
        return str(path.relative_to(base_dir))
    except ValueError:
        return str(path)


def load_rule_files(
    patterns: Sequence[str], *, base_dir: Path, default: RuleGroupConfig | None = None
) -> list[RuleFile]:
    """Load every file the patterns name and check them together (with ``default``).

    Raises ``ConfigError("rule_files", problems)``, each problem prefixed with its file.
    """
    paths, problems = expand_rule_files(patterns, base_dir)
    files: list[RuleFile] = []
    by_file: dict[str, list[str]] = {}
    for path in paths:
        display = _display(path, base_dir)
        try:
            files.append(load_rule_file(path, display=display))
        except ConfigError as exc:
            by_file[display] = list(exc.problems)
    for display, found in duplicate_problems(files, default).items():
        by_file.setdefault(display, []).extend(found)
    for path in paths:
        display = _display(path, base_dir)
        problems.extend(f"{display}: {problem}" for problem in by_file.get(display, []))
    if problems:
        raise ConfigError("rule_files", problems)
    return files


def load_rule_groups(
    patterns: Sequence[str], *, base_dir: Path, default: RuleGroupConfig | None = None
) -> list[RuleGroupConfig]:
    """The groups of the files the patterns name, files and groups in a stable order.

    Raises ``ConfigError("rule_files", problems)`` (see ``load_rule_files``).
    """
    files = load_rule_files(patterns, base_dir=base_dir, default=default)
    return [group for rule_file in files for group in rule_file.groups]


def rule_groups(config: Config, *, base_dir: Path | None = None) -> list[RuleGroupConfig]:
    """The config's rules as group ``default`` (first), then the groups of its rule files.

    ``base_dir`` resolves relative ``rule_files`` globs (the config file's folder; default the
    working directory). Raises ``ConfigError("rule_files", problems)`` naming the file, line
    and key path of each problem.
    """
    default = RuleGroupConfig(name=DEFAULT_GROUP, rules=list(config.rules))
    if not config.rule_files:
        return [default]
    base = base_dir if base_dir is not None else Path(".")
    return [default, *load_rule_groups(config.rule_files, base_dir=base, default=default)]
