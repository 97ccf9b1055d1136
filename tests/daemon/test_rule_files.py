"""Rule files: layouts, key-path errors with lines, uniqueness, globs, the config key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.config import Config, ConfigError, default_rules, load_config
from daemon.rule_files import (
    DEFAULT_GROUP,
    expand_rule_files,
    load_rule_file,
    load_rule_groups,
    rule_groups,
)

DATA = Path(__file__).parent / "data" / "rules"

GPU_RULE = """
      - name: GpuIdle
        kind: gpu_idle
        labels: {severity: warning}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rule_file(path, display=path.name)
    assert info.value.source == path.name
    return info.value.problems


def test_it_loads_the_prometheus_layout() -> None:
    rule_file = load_rule_file(DATA / "gpu.rules.yaml")
    (group,) = rule_file.groups
    assert group.name == "gpu"
    assert group.interval == timedelta(minutes=1)
    (rule,) = group.rules
    assert (rule.name, rule.kind, rule.for_) == ("GpuIdle", "gpu_idle", timedelta(minutes=10))
    assert rule.keep_firing_for == timedelta(minutes=5)
    assert rule_file.rule_count == 1


def test_it_names_a_top_level_rules_list_after_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "fleet.rules.yaml", "rules:" + GPU_RULE.replace("      ", "  "))
    (group,) = load_rule_file(path).groups
    assert group.name == "fleet.rules"
    assert group.interval is None
    assert [r.name for r in group.rules] == ["GpuIdle"]


def test_an_empty_file_has_no_groups(tmp_path: Path) -> None:
    assert load_rule_file(write(tmp_path, "empty.yaml", "# nothing yet\n")).groups == ()


def test_it_names_file_line_and_key_path_of_a_bad_param(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
groups:
  - name: gpu
    rules:
      - name: GpuIdle
        kind: gpu_idle
      - name: GpuIdleSoon
        kind: gpu_idle
        params:
          window: soon
""",
    )
    assert problems_of(path) == [
        'line 9: groups[0].rules[1].params.window: expected a duration like "10m", got "soon"'
    ]


def test_it_lists_every_problem_of_a_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
groups:
  - name: gpu
    interval: 0s
    limit: 3
    rules:
      - name: Bad-Name
        kind: gpu_idle
      - name: Unknown
        kind: gpu_melting
      - alert: PromStyle
        expr: up == 0
""",
    )
    problems = problems_of(path)
    assert 'line 3: groups[0].interval: expected a positive duration like "1m"' in problems
    assert "line 4: groups[0].limit: unknown key" in problems
    assert any(
        p.startswith("line 6: groups[0].rules[0].name: String should match") for p in problems
    )
    assert any(
        p.startswith("line 9: groups[0].rules[1].kind: unknown rule kind 'gpu_melting'")
        for p in problems
    )
    assert any(
        p.startswith("line 10: groups[0].rules[2].alert: unknown key (tcowatch rules use name:")
        for p in problems
    )
    assert "line 10: groups[0].rules[2].kind: required" in problems


def test_it_reports_a_yaml_syntax_error_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "groups:\n  - name: [gpu\n")
    (problem,) = problems_of(path)
    assert problem.startswith("line 3, column 1: invalid YAML:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just a list\n", "the top level must be a mapping with groups: (or rules:)"),
        ("groups: []\nrules: []\n", "use either groups: or rules: at the top level, not both"),
        (
            "groups:\n  - name: a\n  - name: a\n",
            'line 3: groups[1].name: group "a" is defined twice (first at groups[0])',
        ),
    ],
)
def test_it_rejects_bad_layouts(tmp_path: Path, text: str, expected: str) -> None:
    assert problems_of(write(tmp_path, "r.yaml", text)) == [expected]


def test_it_rejects_an_unreadable_file(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "missing.yaml")
    assert problem.startswith("cannot read the file:")


def test_it_keeps_group_names_unique_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "groups:\n  - name: gpu\n    rules:" + GPU_RULE)
    write(tmp_path, "b.yaml", "groups:\n  - name: gpu\n")
    with pytest.raises(ConfigError) as info:
        load_rule_groups(["*.yaml"], base_dir=tmp_path)
    assert info.value.source == "rule_files"
    assert info.value.problems == [
        'b.yaml: line 2: groups[0].name: group "gpu" is already defined in a.yaml groups[0]'
    ]


def test_an_alertname_may_repeat_only_with_other_labels(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "groups:\n  - name: one\n    rules:" + GPU_RULE)
    write(
        tmp_path,
        "b.yaml",
        "groups:\n  - name: two\n    rules:" + GPU_RULE.replace("warning", "critical"),
    )
    groups = load_rule_groups(["a.yaml", "b.yaml"], base_dir=tmp_path)
    assert [g.name for g in groups] == ["one", "two"]

    write(tmp_path, "c.yaml", "groups:\n  - name: three\n    rules:" + GPU_RULE)
    with pytest.raises(ConfigError) as info:
        load_rule_groups(["a.yaml", "c.yaml"], base_dir=tmp_path)
    (problem,) = info.value.problems
    assert problem.startswith(
        'c.yaml: line 4: groups[0].rules[0].name: alertname "GpuIdle" with the same labels is '
        "already defined in a.yaml groups[0].rules[0]; give one of the two rules a distinguishing"
    )


def test_rule_groups_puts_the_default_group_first_then_files_in_a_stable_order(
    tmp_path: Path,
) -> None:
    write(tmp_path, "rules/b.yaml", "groups:\n  - name: b1\n  - name: b2\n")
    write(tmp_path, "rules/a.yaml", "groups:\n  - name: a1\n")
    write(tmp_path, "extra.yaml", "rules:" + GPU_RULE.replace("warning", "page"))
    config = Config(rule_files=["extra.yaml", "rules/*.yaml", "rules/a.yaml"])
    groups = rule_groups(config, base_dir=tmp_path)
    assert [g.name for g in groups] == [DEFAULT_GROUP, "extra", "a1", "b1", "b2"]
    assert [r.name for r in groups[0].rules] == [r.name for r in default_rules()]


def test_rule_groups_without_rule_files_is_the_default_group() -> None:
    (group,) = rule_groups(Config(rules=[]))
    assert group.name == DEFAULT_GROUP and group.rules == []


def test_a_file_group_clashing_with_the_config_rules_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "groups:\n  - name: default\n  - name: gpu\n    rules:" + GPU_RULE)
    with pytest.raises(ConfigError) as info:
        rule_groups(Config(rule_files=["a.yaml"]), base_dir=tmp_path)
    first, second = info.value.problems
    assert first.startswith('a.yaml: line 2: groups[0].name: group "default" is already defined')
    assert "the config's rules[0]" in second and "set rules: []" in second


def test_it_expands_globs_and_reports_missing_plain_files(tmp_path: Path) -> None:
    a = write(tmp_path, "r/a.yaml", "")
    b = write(tmp_path, "r/deep/b.yaml", "")
    files, problems = expand_rule_files(
        ["r/**/*.yaml", "nothing/*.yaml", "r/a.yaml", "gone.yaml"], tmp_path
    )
    assert files == [a, b]
    assert problems == ["gone.yaml: file not found"]
    absolute, _ = expand_rule_files([str(b)], Path("/nonexistent"))
    assert absolute == [b]


def test_load_config_validates_rule_files_relative_to_the_config(tmp_path: Path) -> None:
    write(
        tmp_path,
        "conf/rules/gpu.yaml",
        "groups:\n  - name: gpu\n    rules:\n      - {name: X, kind: gpu_idle, params: {window: soon}}\n",
    )
    config_path = write(tmp_path, "conf/tcowatch.yaml", "rule_files: ['rules/*.yaml', 'no.yaml']\n")
    with pytest.raises(ConfigError) as info:
        load_config(config_path, {})
    assert info.value.source == str(config_path)
    assert info.value.problems == [
        "rule_files: no.yaml: file not found",
        "rule_files: rules/gpu.yaml: line 4: groups[0].rules[0].params.window: expected a "
        'duration like "10m", got "soon"',
    ]


def test_load_config_accepts_good_rule_files(tmp_path: Path) -> None:
    write(tmp_path, "rules/gpu.yaml", "groups:\n  - name: gpu\n    rules:" + GPU_RULE)
    config_path = write(tmp_path, "tcowatch.yaml", "rules: []\nrule_files: ['rules/*.yaml']\n")
    config, _ = load_config(config_path, {})
    assert config.rule_files == ["rules/*.yaml"]
    assert [g.name for g in rule_groups(config, base_dir=tmp_path)] == [DEFAULT_GROUP, "gpu"]


def test_load_config_rejects_an_empty_rule_file_pattern(tmp_path: Path) -> None:
    config_path = write(tmp_path, "tcowatch.yaml", "rule_files: ['']\n")
    with pytest.raises(ConfigError) as info:
        load_config(config_path, {})
    assert info.value.problems[0].startswith("rule_files.0: String should have at least 1")
