"""``tcowatch rules test``: rule unit tests in the file format of ``promtool test rules``.

A test file names ``rule_files`` (globs, relative to the test file), an
``evaluation_interval`` (default ``1m``) and ``tests``. Each test gives ``input_series`` in the
promtool notation (``rules.expanding``) under the names of ``rules.series.SERIES``, optional
``input_records`` (rollbacks, debts, budgets: records that are not series; a tcowatch
extension) and ``alert_rule_test`` cases (``eval_time``, ``alertname``, ``exp_alerts`` with
``exp_labels`` and ``exp_annotations``). ``daemon.rule_test_inputs`` says how the inputs
become rule contexts.

How a test runs, as promtool runs it: sample ``i`` of every series lies at ``start + i *
interval`` (``start`` = the test's ``start_timestamp``, default 1970-01-01T00:00Z, a Thursday;
``interval`` defaults to ``evaluation_interval``). Every rule of every group is evaluated at
``start``, ``start + evaluation_interval``, ... up to the last ``eval_time``, through
``rules.engine.step``, so ``for`` and ``keep_firing_for`` behave as in production. Group
``interval``s are not used (as in promtool); ``group_eval_order`` is checked and orders the
groups, which changes nothing since tcowatch rules do not read each other's results;
``fuzzy_compare`` is accepted and has no effect. A case is checked against the evaluation at
or just before its ``eval_time``: the alerts of its alertname, over all groups, in state
**firing** (pending alerts are not compared, as in promtool), by labels (``alertname`` and the
rule's labels included; ``exp_labels`` need not repeat ``alertname``) and rendered annotations
(every annotation of the rule, as in promtool).

Not supported, and reported as errors rather than ignored: ``promql_expr_test`` (tcowatch
rules have no PromQL), ``external_labels`` and ``external_url`` (templates see only ``labels``
and ``value``).

Error contract: ``run_test_file`` never raises for bad input. An invalid test file (YAML,
keys, notation, unknown series, an alertname no rule has, unsupported keys, bad rule files)
comes back as ``RuleTestResult.problems``, each with its line and key path; a rule that
raises while evaluated is a failure of its test.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, PlainValidator, ValidationError, field_validator

from daemon.config import ConfigError, RuleConfig
from daemon.config_base import Duration
from daemon.rule_files import (
    KeyPath,
    RuleGroupConfig,
    load_rule_groups,
    located,
    read_yaml_lines,
    validation_problems,
)
from daemon.rule_test_inputs import (
    EPOCH,
    InputRecords,
    InputSeriesConfig,
    InvalidInput,
    LenientSection,
    TestInputs,
    Where,
    load_series,
    time_point,
)
from rules.base import Rule, load_rule_class
from rules.durations import format_duration
from rules.engine import STATE_FIRING, STATE_PENDING, AlertInstance, AlertRuleSpec, step

logger = logging.getLogger(__name__)

DEFAULT_EVALUATION_INTERVAL = timedelta(minutes=1)
MAX_EVALUATIONS = 1_000_000
"""The most evaluation steps one test may need (``eval_time / evaluation_interval``)."""


# --- the file format --------------------------------------------------------------------------


def _start_timestamp(value: Any) -> datetime:
    """Unix seconds or RFC 3339, as promtool's ``start_timestamp``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return EPOCH + timedelta(seconds=value)
    if isinstance(value, str | datetime | date):
        point = time_point(value)
        if isinstance(point, datetime):
            return point
    raise ValueError(f'expected Unix seconds or a time like "2025-01-01T00:00:00Z", got {value!r}')


StartTimestamp = Annotated[datetime, PlainValidator(_start_timestamp)]


class ExpectedAlert(LenientSection):
    """One expected firing alert: its labels (``alertname`` optional) and annotations."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    exp_labels: dict[str, str] = Field(default_factory=dict)
    exp_annotations: dict[str, str] = Field(default_factory=dict)


class AlertTestCase(LenientSection):
    """The firing alerts of ``alertname`` expected at ``eval_time`` (none when empty)."""

    eval_time: Duration
    alertname: str = Field(min_length=1)
    exp_alerts: list[ExpectedAlert] = Field(default_factory=list)


_UNSUPPORTED = {
    "promql_expr_test": "not supported: tcowatch rules have no PromQL expressions; test the "
    "alerts with alert_rule_test",
    "external_labels": "not supported: tcowatch templates see only labels and value",
    "external_url": "not supported: tcowatch templates see only labels and value",
}


class TestGroupConfig(LenientSection):
    """One test: its series, records and alert checks."""

    __test__ = False  # not a pytest class

    name: str = ""
    interval: Duration | None = None
    start_timestamp: StartTimestamp | None = None
    input_series: list[InputSeriesConfig] = Field(default_factory=list)
    input_records: InputRecords = InputRecords()
    alert_rule_test: list[AlertTestCase] = Field(default_factory=list)
    promql_expr_test: Any = None
    external_labels: Any = None
    external_url: Any = None

    @field_validator("promql_expr_test", "external_labels", "external_url")
    @classmethod
    def _unsupported(cls, value: Any, info: Any) -> Any:
        if value is not None:
            raise ValueError(_UNSUPPORTED[info.field_name])
        return value

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError('expected a positive duration like "1m"')
        return value


class TestFileConfig(LenientSection):
    """A test file (promtool layout)."""

    __test__ = False  # not a pytest class

    rule_files: list[str] = Field(default_factory=list)
    evaluation_interval: Duration = DEFAULT_EVALUATION_INTERVAL
    group_eval_order: list[str] = Field(default_factory=list)
    fuzzy_compare: bool = False
    """Accepted for compatibility; it only affects promql_expr_test, which is not supported."""
    tests: list[TestGroupConfig] = Field(default_factory=list)

    @field_validator("evaluation_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError('expected a positive duration like "1m"')
        return value


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertCheckFailure:
    """A failed ``alert_rule_test`` case (or a rule that raised): ``lines`` is the readable diff."""

    test: str
    """``tests[0] "name"``."""
    title: str
    """``alertname GpuIdle at eval_time 15m (- expected, + got)`` or the rule that failed."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class RuleTestResult:
    """The outcome of one test file: invalid (``problems``), or its tests, alert checks
    (``alert_rule_test`` cases) and failures."""

    display: str
    problems: tuple[str, ...] = ()
    tests: int = 0
    checks: int = 0
    failures: tuple[AlertCheckFailure, ...] = ()

    @property
    def passed(self) -> bool:
        """Valid and every check passed."""
        return not self.problems and not self.failures


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadedRule:
    group: str
    rule: Rule
    spec: AlertRuleSpec


def _load_rules(groups: Sequence[RuleGroupConfig]) -> list[_LoadedRule]:
    loaded = []
    for group in groups:
        for config in group.rules:
            loaded.append(_LoadedRule(group.name, _rule(config), _spec(config)))
    return loaded


def _rule(config: RuleConfig) -> Rule:
    rule: Rule = load_rule_class(config.kind)(config.params)
    return rule


def _spec(config: RuleConfig) -> AlertRuleSpec:
    return AlertRuleSpec(
        name=config.name,
        kind=config.kind,
        for_=config.for_,
        keep_firing_for=config.keep_firing_for,
        labels=dict(config.labels),
        annotations=dict(config.annotations),
    )


Alert = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
"""An alert as compared: sorted labels, sorted annotations."""


def _as_alert(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Alert:
    return tuple(sorted(labels.items())), tuple(sorted(annotations.items()))


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _label_set(labels: Sequence[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}={_quote(v)}" for k, v in labels) + "}"


def alert_diff(
    expected: Sequence[Alert],
    got: Sequence[Alert],
    pending: Mapping[tuple[tuple[str, str], ...], str] | None = None,
) -> list[str]:
    """Lines comparing two alert lists: ``- `` expected only, ``+ `` got only, ``  `` both.

    Each alert is its label set on one line, then its annotations indented below it. Alerts
    with the same labels but other annotations show the labels once and the differing
    annotations as ``-``/``+`` pairs. ``pending`` notes expected alerts that are only pending.
    """
    pending = pending or {}
    missing = sorted(expected)
    extra = sorted(got)
    same = []
    for alert in list(missing):
        if alert in extra:
            missing.remove(alert)
            extra.remove(alert)
            same.append(alert)
    pairs = []
    for alert in list(missing):
        partner = next((g for g in extra if g[0] == alert[0]), None)
        if partner is not None:
            missing.remove(alert)
            extra.remove(partner)
            pairs.append((alert, partner))
    entries: list[tuple[tuple[tuple[str, str], ...], int, list[str]]] = []
    for labels, notes in same:
        body = [f"      {name}: {_quote(value)}" for name, value in notes]
        entries.append((labels, 0, [f"  {_label_set(labels)}", *body]))
    for (labels, want), (_, have) in pairs:
        lines = [f"  {_label_set(labels)}"]
        want_map, have_map = dict(want), dict(have)
        for name in sorted(want_map.keys() | have_map.keys()):
            if want_map.get(name) == have_map.get(name):
                lines.append(f"      {name}: {_quote(want_map[name])}")
                continue
            if name in want_map:
                lines.append(f"-     {name}: {_quote(want_map[name])}")
            if name in have_map:
                lines.append(f"+     {name}: {_quote(have_map[name])}")
        entries.append((labels, 1, lines))
    for sign, alerts in (("-", missing), ("+", extra)):
        for labels, notes in alerts:
            lines = [f"{sign} {_label_set(labels)}"]
            lines += [f"{sign}     {name}: {_quote(value)}" for name, value in notes]
            if sign == "-" and labels in pending:
                lines.append(f"      ({pending[labels]})")
            entries.append((labels, 2 if sign == "-" else 3, lines))
    return [line for _, _, lines in sorted(entries, key=lambda e: (e[0], e[1])) for line in lines]


@dataclass
class _TestRun:
    name: str
    index: int
    failures: list[AlertCheckFailure] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"tests[{self.index}]" + (f" {_quote(self.name)}" if self.name else "")


def _check(
    case: AlertTestCase,
    rules: Sequence[_LoadedRule],
    states: Sequence[Mapping[str, AlertInstance]],
    now: datetime,
    run: _TestRun,
) -> None:
    got: list[Alert] = []
    pending: dict[tuple[tuple[str, str], ...], str] = {}
    for loaded, alerts in zip(rules, states, strict=True):
        if loaded.spec.name != case.alertname:
            continue
        for alert in alerts.values():
            if alert.state == STATE_FIRING:
                got.append(_as_alert(alert.labels, alert.annotations))
            elif alert.state == STATE_PENDING:
                since = format_duration(now - alert.active_at)
                pending[_as_alert(alert.labels, {})[0]] = (
                    f"pending for {since}, fires after for: {format_duration(loaded.spec.for_)}"
                )
    expected = [
        _as_alert(
            {k: v for k, v in exp.exp_labels.items() if v != ""} | {"alertname": case.alertname},
            exp.exp_annotations,
        )
        for exp in case.exp_alerts
    ]  # an empty label value is no label, as in the engine
    if sorted(expected) == sorted(got):
        return
    when = format_duration(case.eval_time)
    title = f"alertname {case.alertname} at eval_time {when} (- expected, + got)"
    lines = alert_diff(expected, got, pending)
    if not expected:
        lines.insert(0, "  (expected no firing alert)")
    if not got:
        lines.append("  (got no firing alert)")
    run.failures.append(AlertCheckFailure(run.label, title, tuple(lines)))


def _run_test(
    test: TestGroupConfig,
    index: int,
    rules: Sequence[_LoadedRule],
    evaluation_interval: timedelta,
    where: Where,
) -> _TestRun:
    run = _TestRun(test.name, index)
    start = test.start_timestamp or EPOCH
    interval = test.interval or evaluation_interval
    series = load_series(
        test.input_series, start, interval, lambda p: where(("tests", index, *p)), run.label
    )
    inputs = TestInputs(series, test.input_records, start)
    cases: dict[int, list[AlertTestCase]] = defaultdict(list)
    for case in test.alert_rule_test:
        cases[case.eval_time // evaluation_interval].append(case)
    last = max(cases, default=-1)
    states: list[dict[str, AlertInstance]] = [{} for _ in rules]
    for tick in range(last + 1):
        now = start + evaluation_interval * tick
        for position, loaded in enumerate(rules):
            try:
                findings = loaded.rule.evaluate(inputs.context(loaded.rule, now))
                states[position], _ = step(loaded.spec, states[position], findings, now)
            except Exception as exc:  # noqa: BLE001 - a broken rule is a failed test, not a crash
                offset = format_duration(now - start)
                run.failures.append(
                    AlertCheckFailure(
                        run.label,
                        f"rule {loaded.spec.name} (group {loaded.group}) at {offset}",
                        (f"evaluation failed, the test stops here: {exc}",),
                    )
                )
                return run
        for case in cases.get(tick, []):
            _check(case, rules, states, now, run)
    return run


def _validate_cases(
    config: TestFileConfig, rules: Sequence[_LoadedRule], where: Where
) -> list[str]:
    problems = []
    names = {loaded.spec.name for loaded in rules}
    for index, test in enumerate(config.tests):
        for position, case in enumerate(test.alert_rule_test):
            if case.alertname not in names:
                known = ", ".join(sorted(names)) or "none"
                path = ("tests", index, "alert_rule_test", position, "alertname")
                problems.append(
                    f"{where(path)}: no rule is named {case.alertname!r} in the rule files "
                    f"(rules: {known})"
                )
        last = max((case.eval_time for case in test.alert_rule_test), default=timedelta(0))
        if last // config.evaluation_interval > MAX_EVALUATIONS:
            problems.append(
                f"{where(('tests', index))}: eval_time {format_duration(last)} needs more than "
                f"{MAX_EVALUATIONS:,} evaluations; raise evaluation_interval"
            )
    return problems


def _group_order_problems(
    config: TestFileConfig, groups: Sequence[RuleGroupConfig], where: Where
) -> list[str]:
    problems = []
    known = {group.name for group in groups}
    seen: set[str] = set()
    for index, name in enumerate(config.group_eval_order):
        if name in seen:
            problems.append(f"{where(('group_eval_order', index))}: group {name!r} is listed twice")
        elif name not in known:
            problems.append(
                f"{where(('group_eval_order', index))}: no group {name!r} in the rule files"
            )
        seen.add(name)
    return problems


def run_test_file(path: Path, *, display: str | None = None) -> RuleTestResult:
    """Run every test of one test file; never raises for bad input (see the module docstring).

    ``display`` is how results name the file (default: ``path`` as given).
    """
    source = display if display is not None else str(path)
    try:
        data, lines = read_yaml_lines(path, source)
    except ConfigError as exc:
        return RuleTestResult(source, problems=tuple(exc.problems))

    def where(key_path: KeyPath) -> str:
        return located(key_path, lines)

    if not isinstance(data, Mapping):
        return RuleTestResult(source, problems=("the top level must be a mapping with tests:",))
    try:
        config = TestFileConfig.model_validate(data)
    except ValidationError as exc:
        return RuleTestResult(source, problems=tuple(validation_problems(exc, lines)))
    try:
        groups = load_rule_groups(config.rule_files, base_dir=path.parent)
    except ConfigError as exc:
        return RuleTestResult(source, problems=tuple(f"rule_files: {p}" for p in exc.problems))
    order = {name: index for index, name in enumerate(config.group_eval_order)}
    groups = sorted(groups, key=lambda g: order.get(g.name, len(order)))  # stable
    rules = _load_rules(groups)
    problems = _group_order_problems(config, groups, where) + _validate_cases(config, rules, where)
    if problems:
        return RuleTestResult(source, problems=tuple(problems))
    checks = 0
    failures: list[AlertCheckFailure] = []
    invalid: list[str] = []
    for index, test in enumerate(config.tests):
        try:
            run = _run_test(test, index, rules, config.evaluation_interval, where)
        except InvalidInput as exc:
            invalid.extend(exc.problems)
            continue
        checks += len(test.alert_rule_test)
        failures.extend(run.failures)
    if invalid:
        return RuleTestResult(source, problems=tuple(invalid))
    logger.debug(
        "%s: %d tests, %d checks, %d failed", source, len(config.tests), checks, len(failures)
    )
    return RuleTestResult(source, tests=len(config.tests), checks=checks, failures=tuple(failures))


def report_lines(result: RuleTestResult) -> list[str]:
    """The human-readable outcome of one file (its ``problems`` are printed by the caller)."""
    lines = [f"Unit testing: {result.display}"]
    if result.problems:
        lines.append(f"  INVALID: {len(result.problems)} problem(s)")
        return lines
    checks = f"{result.checks} alert check" + ("" if result.checks == 1 else "s")
    summary = f"{checks} in {result.tests} test" + ("" if result.tests == 1 else "s")
    if not result.failures:
        lines.append(f"  SUCCESS: {summary}")
        return lines
    failed = len(result.failures)
    lines.append(f"  FAILED: {failed} failure{'' if failed == 1 else 's'}; {summary}")
    test = None
    for failure in result.failures:
        if failure.test != test:
            test = failure.test
            lines.append(f"  {test}:")
        lines.append(f"    {failure.title}:")
        lines.extend(f"      {line}" for line in failure.lines)
    return lines
