"""``tcowatch rules check`` and ``tcowatch rules test``: output and exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import main

DATA = Path(__file__).parent / "data" / "rules"

GOOD = """
groups:
  - name: gpu-paging
    rules:
      - {name: GpuIdle, kind: gpu_idle, labels: {severity: page}}
      - {name: GpuIdle, kind: gpu_idle, labels: {severity: critical}}
  - name: fleet
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def test_check_prints_a_summary_per_good_file_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    assert main(["rules", "check", str(good), str(DATA / "gpu.rules.yaml")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{good}: 2 groups, 2 rules OK",
        f"{DATA / 'gpu.rules.yaml'}: 1 group, 1 rule OK",
    ]
    assert err == ""


def test_check_prints_each_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(
        tmp_path,
        "bad.yaml",
        "groups:\n  - name: gpu\n    rules:\n      - {name: X, kind: gpu_idle, params: {window: soon}}\n",
    )
    assert main(["rules", "check", str(good), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{good}: 2 groups, 2 rules OK"]
    assert err.splitlines() == [
        f'tcowatch: {bad}: line 4: groups[0].rules[0].params.window: expected a duration like "10m", got "soon"'
    ]


def test_check_finds_duplicates_across_the_files_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", "groups:\n  - name: fleet\n")
    assert main(["rules", "check", str(first), str(second)]) == 2
    _, err = capsys.readouterr()
    assert err.splitlines() == [
        f'tcowatch: {second}: line 2: groups[0].name: group "fleet" is already defined in {first} groups[1]'
    ]


def test_test_exits_0_when_every_test_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(DATA / "gpu.test.yaml")]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        f"Unit testing: {DATA / 'gpu.test.yaml'}",
        "  SUCCESS: 4 alert checks in 1 test",
    ]


def test_test_exits_1_with_a_diff_when_a_test_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(DATA / "gpu.rules.yaml", tmp_path)
    text = (DATA / "gpu.test.yaml").read_text(encoding="utf-8")
    failing = write(tmp_path, "gpu.test.yaml", text.replace("eval_time: 12m", "eval_time: 11m"))
    assert main(["rules", "test", str(DATA / "gpu.test.yaml"), str(failing)]) == 1
    out, _ = capsys.readouterr()
    assert "  FAILED: 1 failure; 4 alert checks in 1 test" in out
    assert "    alertname GpuIdle at eval_time 11m (- expected, + got):" in out
    assert "      (got no firing alert)" in out


def test_test_exits_2_for_an_invalid_file_even_when_others_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(DATA / "gpu.rules.yaml", tmp_path)
    text = (DATA / "gpu.test.yaml").read_text(encoding="utf-8")
    failing = write(tmp_path, "fail.test.yaml", text.replace("eval_time: 12m", "eval_time: 11m"))
    invalid = write(
        tmp_path,
        "invalid.test.yaml",
        "rule_files: [gpu.rules.yaml]\ntests:\n  - promql_expr_test: [{expr: up, eval_time: 1m}]\n",
    )
    assert main(["rules", "test", str(failing), str(invalid)]) == 2
    out, err = capsys.readouterr()
    assert f"Unit testing: {invalid}\n  INVALID: 1 problem(s)" in out
    assert err.splitlines() == [
        f"tcowatch: {invalid}: line 3: tests[0].promql_expr_test: not supported: tcowatch rules "
        "have no PromQL expressions; test the alerts with alert_rule_test"
    ]


def test_the_console_command_runs_the_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "rules", "test", "gpu.test.yaml"],
        cwd=DATA,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "SUCCESS" in result.stdout
    assert "Traceback" not in result.stderr
