"""Configuration: validation by key path, environment overrides, masking, documentation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.config import (
    Config,
    ConfigError,
    config_keys,
    effective_config_yaml,
    env_overrides,
    load_config,
)
from tests.conftest import REPO_ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tcowatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return info.value.problems


def test_it_lists_every_problem_by_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
collectors:
  nvml:
    interval: fast
  simulated:
    nodes: 0
web:
  port: 70000
  colour: blue
rules:
  - name: GpuIdle
    kind: gpu_idle
    params: {window: soon}
  - name: Other
    kind: no_such_kind
""",
    )
    problems = problems_of(path)
    assert 'collectors.nvml.interval: expected a duration like "15s", got "fast"' in problems
    assert any(p.startswith("collectors.simulated.nodes: ") for p in problems)
    assert any(p.startswith("web.port: ") for p in problems)
    assert "web.colour: unknown key" in problems
    assert any(p.startswith("rules.0.params.window: ") and "soon" in p for p in problems)
    assert any(p.startswith("rules.1.kind: unknown rule kind") for p in problems)
    assert len(problems) == 6


def test_it_names_the_line_of_a_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "web:\n  port: 8080\n  host: [unclosed\n")
    (problem,) = problems_of(path)
    assert problem.startswith("line ") and "invalid YAML" in problem


def test_it_rejects_a_missing_explicit_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "absent.yaml") == ["file not found"]


def test_it_uses_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, path = load_config(None, {})
    assert path == Path("tcowatch.yaml")
    assert config.web.port == 8080
    assert [r.name for r in config.rules][:2] == ["GpuIdle", "FleetUtilizationLow"]
    assert {r.kind for r in config.rules} == {
        "gpu_idle",
        "fleet_utilization",
        "cache_hit_rate",
        "cost_anomaly",
        "budget_forecast",
        "rollback_sla",
        "debt_overdue",
        "request_volatility",
    }


def test_it_applies_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "web:\n  port: 8080\n")
    environ = {
        "TCOWATCH_WEB__PORT": "9090",
        "TCOWATCH_COLLECTORS__NVML__ENABLED": "false",
        "TCOWATCH_COLLECTORS__NVML__INTERVAL": "5s",
        "TCOWATCH_TEST_POSTGRES_URL": "ignored",
        "OTHER": "x",
    }
    config, _ = load_config(path, environ)
    assert config.web.port == 9090
    assert config.collectors.nvml.enabled is False
    assert config.collectors.nvml.interval == timedelta(seconds=5)
    assert env_overrides({"TCOWATCH_NOPE": "1"}) == {}


def test_it_reports_bad_environment_values_by_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    problems = problems_of(path, {"TCOWATCH_COLLECTORS__NVML__INTERVAL": "fast"})
    assert problems == ['collectors.nvml.interval: expected a duration like "15s", got "fast"']


def test_it_masks_secrets_in_the_effective_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
channels:
  - name: ops
    url: https://hooks.example.internal/T0KEN-IN-URL
    secret: signing-key-123
""",
    )
    config, _ = load_config(path, {})
    text = effective_config_yaml(config)
    assert "T0KEN-IN-URL" not in text and "signing-key-123" not in text
    assert "**" in text
    assert "for: 10m" in text


def test_it_rejects_duplicate_names_and_bad_urls(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
channels:
  - {name: a, url: "https://x.example/1"}
  - {name: a, url: "ftp://x.example/2"}
""",
    )
    problems = problems_of(path)
    assert any(p == "channels.1.url: expected an http:// or https:// URL" for p in problems)


def test_the_example_config_is_valid_and_equals_the_defaults() -> None:
    config, _ = load_config(REPO_ROOT / "tcowatch.example.yaml", {})
    assert config == Config()


def test_every_config_key_is_in_the_readme_reference() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    reference = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in config_keys() if f"`{key}`" not in reference]
    assert missing == []


def test_it_reports_a_broken_annotation_template_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
rules:
  - name: GpuIdle
    kind: gpu_idle
    annotations: {summary: "{{ labels.gpu "}
""",
    )
    (problem,) = problems_of(path)
    assert problem.startswith("rules.0.annotations.summary: ")
