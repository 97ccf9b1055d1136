"""Rule unit tests in promtool's format, run through the real rules and engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.rule_tests import RuleTestResult, alert_diff, report_lines, run_test_file

DATA = Path(__file__).parent / "data" / "rules"

IDLE_RULES = """
groups:
  - name: gpu
    rules:
      - name: GpuIdle
        kind: gpu_idle
        for: 5m
        params: {window: 5m, min_minutes: 3}
        labels: {severity: warning}
        annotations:
          summary: "GPU {{ labels.gpu }} on {{ labels.node }} is idle"
"""

IDLE_GPU = """
      - series: 'tcowatch_gpu_utilization_ratio{node="n1", gpu="0", uuid="GPU-1"}'
        values: '0.01x30'
      - series: 'tcowatch_gpu_memory_used_bytes{node="n1", gpu="0", uuid="GPU-1"}'
        values: '8e9x30'
"""

IDLE_ALERT = """
          - exp_labels: {severity: warning, node: n1, gpu: "0", uuid: GPU-1}
            exp_annotations: {summary: "GPU 0 on n1 is idle"}
"""


def run(tmp_path: Path, test: str, rules: str = IDLE_RULES) -> RuleTestResult:
    (tmp_path / "rules.yaml").write_text(rules.lstrip("\n"), encoding="utf-8")
    path = tmp_path / "test.yaml"
    path.write_text(test.lstrip("\n"), encoding="utf-8")
    return run_test_file(path, display="test.yaml")


def idle_test(cases: str, series: str = IDLE_GPU, extra: str = "") -> str:
    return f"""
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - name: idle
    interval: 1m
{extra}    input_series:{series}
    alert_rule_test:{cases}
"""


def test_the_shipped_example_passes() -> None:
    result = run_test_file(DATA / "gpu.test.yaml")
    assert result.problems == ()
    assert result.failures == ()
    assert (result.tests, result.checks) == (1, 4)
    assert report_lines(result)[-1] == "  SUCCESS: 4 alert checks in 1 test"


def test_for_holds_the_alert_pending_and_pending_alerts_are_not_compared(tmp_path: Path) -> None:
    # 3 minutes of data at 2m -> pending at 2m; for: 5m -> firing at 7m.
    result = run(
        tmp_path,
        idle_test(
            """
      - {eval_time: 6m, alertname: GpuIdle}
      - eval_time: 7m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT
        ),
    )
    assert result.passed, report_lines(result)


def test_it_reports_a_readable_diff_when_an_alert_fires_too_early(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 6m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT
        ),
    )
    assert not result.passed and result.problems == ()
    (failure,) = result.failures
    assert failure.test == 'tests[0] "idle"'
    assert failure.title == "alertname GpuIdle at eval_time 6m (- expected, + got)"
    assert failure.lines == (
        '- {alertname="GpuIdle", gpu="0", node="n1", severity="warning", uuid="GPU-1"}',
        '-     summary: "GPU 0 on n1 is idle"',
        "      (pending for 4m, fires after for: 5m)",
        "  (got no firing alert)",
    )
    lines = report_lines(result)
    assert lines[1] == "  FAILED: 1 failure; 1 alert check in 1 test"
    assert lines[2] == '  tests[0] "idle":'


def test_it_shows_annotation_differences_under_one_label_set(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 10m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT.replace("is idle", "is asleep")
        ),
    )
    (failure,) = result.failures
    assert failure.lines == (
        '  {alertname="GpuIdle", gpu="0", node="n1", severity="warning", uuid="GPU-1"}',
        '-     summary: "GPU 0 on n1 is asleep"',
        '+     summary: "GPU 0 on n1 is idle"',
    )


def test_every_annotation_must_be_expected_as_in_promtool(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 10m
        alertname: GpuIdle
        exp_alerts:
          - exp_labels: {severity: warning, node: n1, gpu: 0, uuid: GPU-1}"""
        ),
    )
    (failure,) = result.failures
    assert '-     summary: "GPU 0 on n1 is idle"' not in failure.lines
    assert '+     summary: "GPU 0 on n1 is idle"' in failure.lines


def test_it_marks_unexpected_alerts_with_plus(tmp_path: Path) -> None:
    result = run(tmp_path, idle_test("\n      - {eval_time: 10m, alertname: GpuIdle}"))
    (failure,) = result.failures
    assert failure.lines == (
        "  (expected no firing alert)",
        '+ {alertname="GpuIdle", gpu="0", node="n1", severity="warning", uuid="GPU-1"}',
        '+     summary: "GPU 0 on n1 is idle"',
    )


def test_an_eval_time_between_evaluations_uses_the_one_before(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test(
            """
      - {eval_time: 6m59s, alertname: GpuIdle}
      - eval_time: 7m30s
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT
        ),
    )
    assert result.passed, report_lines(result)


def test_keep_firing_for_and_resolution_follow_the_engine(tmp_path: Path) -> None:
    rules = IDLE_RULES.replace("for: 5m", "for: 0s\n        keep_firing_for: 3m")
    series = IDLE_GPU.replace("'0.01x30'", "'0.01x9 0.9x20'")  # busy from 10m
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 12m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT
            + """
      - {eval_time: 13m, alertname: GpuIdle}""",
            series=series,
        ),
        rules=rules,
    )
    # Not idle any more from 10m; keep_firing_for keeps it firing until 13m.
    assert result.passed, report_lines(result)


def test_missing_samples_do_not_count_as_minutes(tmp_path: Path) -> None:
    series = IDLE_GPU.replace("'0.01x30'", "'0.01 _x8 0.01x20'").replace(
        "'8e9x30'", "'8e9 _x8 8e9x20'"
    )
    # Window 5m, min_minutes 3: at 11m the window (6m, 11m] holds 9m..11m: pending at 11m.
    result = run(
        tmp_path,
        idle_test(
            """
      - {eval_time: 15m, alertname: GpuIdle}
      - eval_time: 16m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT,
            series=series,
        ),
    )
    assert result.passed, report_lines(result)


def test_a_stale_gpu_is_down_and_never_idle(tmp_path: Path) -> None:
    series = IDLE_GPU.replace("'0.01x30'", "'0.01x9 stale'")
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 9m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT
            + """
      - {eval_time: 10m, alertname: GpuIdle}""",
            series=series,
        ),
    )
    assert result.passed, report_lines(result)


def test_start_timestamp_moves_the_whole_timeline(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 7m
        alertname: GpuIdle
        exp_alerts:"""
            + IDLE_ALERT,
            extra="    start_timestamp: '2025-03-01T12:00:00Z'\n",
        ),
    )
    assert result.passed, report_lines(result)


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (
            "\n      - {series: 'up{job=\"x\"}', values: '1'}",
            "line 7: tests[0].input_series[0].series: tests[0] \"idle\": unknown series 'up'; "
            "tcowatch series are: tcowatch_cloud_cost,",
        ),
        (
            '\n      - {series: \'tcowatch_gpu_power_watts{node="n", gpu="0", uuid="u", job="x"}\', values: \'1\'}',
            "line 7: tests[0].input_series[0].series: unknown label 'job' for "
            "tcowatch_gpu_power_watts (labels: node, gpu, uuid, model_name)",
        ),
        (
            "\n      - {series: 'tcowatch_gpu_power_watts{node=\"n\"}', values: '1'}",
            "line 7: tests[0].input_series[0].series: tcowatch_gpu_power_watts needs the labels "
            "node, gpu and uuid",
        ),
        (
            '\n      - {series: \'tcowatch_gpu_power_watts{node="n", gpu="0", uuid="u"}\', values: \'1 soon\'}',
            "line 7: tests[0].input_series[0].values: item 2 'soon': expected a number",
        ),
        (
            '\n      - {series: \'tcowatch_gpu_power_watts{node="n", gpu="x", uuid="u"}\', values: \'1\'}',
            "line 7: tests[0].input_series[0].series: label gpu must be the GPU index",
        ),
        (
            IDLE_GPU
            + '      - {series: \'tcowatch_gpu_power_watts{node="n2", gpu="0", uuid="GPU-1"}\'}',
            'line 11: tests[0].input_series[2].series: uuid "GPU-1" has node "n2" here but "n1" '
            "in input_series[0]",
        ),
        (
            IDLE_GPU + IDLE_GPU,
            "line 12: tests[0].input_series[2].series: the same series as input_series[0]",
        ),
        (
            "\n      - {series: 'tcowatch_cloud_cost{provider=\"aws\", currency=\"USD\"}', values: '1 Inf'}",
            "line 7: tests[0].input_series[0].series: tcowatch_cloud_cost values must be finite",
        ),
    ],
)
def test_bad_input_series_make_the_file_invalid(tmp_path: Path, series: str, expected: str) -> None:
    result = run(
        tmp_path, idle_test("\n      - {eval_time: 1m, alertname: GpuIdle}", series=series)
    )
    assert result.failures == ()
    assert result.problems and result.problems[0].startswith(expected), result.problems


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        (
            idle_test("\n      - {eval_time: 1m, alertname: GpuIdle}").replace(
                "    alert_rule_test:",
                "    promql_expr_test: [{expr: up, eval_time: 1m}]\n    alert_rule_test:",
            ),
            "line 12: tests[0].promql_expr_test: not supported: tcowatch rules have no PromQL "
            "expressions; test the alerts with alert_rule_test",
        ),
        (
            idle_test("\n      - {eval_time: 1m, alertname: GpuIdel}"),
            "line 13: tests[0].alert_rule_test[0].alertname: no rule is named 'GpuIdel' in the "
            "rule files (rules: GpuIdle)",
        ),
        (
            idle_test("\n      - {eval_time: soon, alertname: GpuIdle}"),
            'line 13: tests[0].alert_rule_test[0].eval_time: expected a duration like "15s", got "soon"',
        ),
        (
            idle_test(
                "\n      - {eval_time: 1m, alertname: GpuIdle}",
                extra="    external_url: http://x\n",
            ),
            "line 6: tests[0].external_url: not supported",
        ),
        (
            idle_test("\n      - {eval_time: 1m, alertname: GpuIdle}").replace(
                "evaluation_interval: 1m", "group_eval_order: [gpu, other]"
            ),
            "line 2: group_eval_order[1]: no group 'other' in the rule files",
        ),
        (
            idle_test("\n      - {eval_time: 1m, alertname: GpuIdle}").replace(
                "rules.yaml", "nope.yaml"
            ),
            "rule_files: nope.yaml: file not found",
        ),
        ("tests: [\n", "line 2, column 1: invalid YAML"),
        ("- a list\n", "the top level must be a mapping with tests:"),
    ],
)
def test_invalid_test_files_name_line_and_key_path(
    tmp_path: Path, test: str, expected: str
) -> None:
    result = run(tmp_path, test)
    assert result.problems and result.problems[0].startswith(expected), result.problems
    assert report_lines(result)[-1].startswith("  INVALID:")


def test_a_bad_rule_file_makes_the_test_file_invalid(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test("\n      - {eval_time: 1m, alertname: GpuIdle}"),
        rules=IDLE_RULES.replace("window: 5m", "window: soon"),
    )
    assert result.problems == (
        "rule_files: rules.yaml: line 7: groups[0].rules[0].params.window: expected a duration "
        'like "10m", got "soon"',
    )


def test_a_rule_that_raises_fails_its_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rules.gpu_idle import GpuIdleRule

    def broken(self: GpuIdleRule, ctx: object) -> list[object]:
        raise RuntimeError("division by zero in the rule")

    monkeypatch.setattr(GpuIdleRule, "evaluate", broken)
    result = run(tmp_path, idle_test("\n      - {eval_time: 1m, alertname: GpuIdle}"))
    (failure,) = result.failures
    assert failure.title == "rule GpuIdle (group gpu) at 0s"
    assert failure.lines == (
        "evaluation failed, the test stops here: division by zero in the rule",
    )


def test_alert_diff_pairs_multiple_alerts() -> None:
    a = ((("alertname", "X"), ("gpu", "0")), (("summary", "a"),))
    b = ((("alertname", "X"), ("gpu", "1")), ())
    c = ((("alertname", "X"), ("gpu", "2")), ())
    assert alert_diff([a, b], [b, c]) == [
        '- {alertname="X", gpu="0"}',
        '-     summary: "a"',
        '  {alertname="X", gpu="1"}',
        '+ {alertname="X", gpu="2"}',
    ]


# --- the other rule kinds through the test format ---------------------------------------------


def test_threshold_rules_read_the_named_series(tmp_path: Path) -> None:
    rules = """
groups:
  - name: power
    rules:
      - name: GpuPowerHigh
        kind: threshold
        for: 2m
        params:
          series: tcowatch_gpu_power_watts
          aggregation: avg
          window: 5m
          op: ">"
          value: 600
        labels: {severity: critical}
        annotations:
          summary: "GPU {{ labels.gpu }} on {{ labels.node }} averages {{ value }} W"
"""
    test = """
rule_files: [rules.yaml]
tests:
  - input_series:
      - series: 'tcowatch_gpu_power_watts{node="n1", gpu="0", uuid="GPU-1", model_name="H100"}'
        values: '500x4 700x10'
    alert_rule_test:
      - {eval_time: 8m, alertname: GpuPowerHigh}
      - eval_time: 9m
        alertname: GpuPowerHigh
        exp_alerts:
          - exp_labels: {severity: critical, node: n1, gpu: "0", uuid: GPU-1}
            exp_annotations: {summary: "GPU 0 on n1 averages 700.0 W"}
"""
    # avg over (t-5m, t] first exceeds 600 at 7m (500 500 700 700 700): pending, firing at 9m.
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


@pytest.mark.parametrize(("by", "labels"), [("[]", "{}"), ("[node]", "{node: n1}")])
def test_fleet_utilization_averages_the_gpus(tmp_path: Path, by: str, labels: str) -> None:
    rules = f"""
rules:
  - name: FleetUnderused
    kind: fleet_utilization
    params: {{window: 10m, below: 0.3, min_minutes: 5, by: {by}}}
"""
    test = f"""
rule_files: [rules.yaml]
tests:
  - input_series:
      - series: 'tcowatch_gpu_utilization_ratio{{node="n1", gpu="0", uuid="GPU-1"}}'
        values: '0.2x20'
      - series: 'tcowatch_gpu_utilization_ratio{{node="n1", gpu="1", uuid="GPU-2"}}'
        values: '0.3x20'
    alert_rule_test:
      - {{eval_time: 3m, alertname: FleetUnderused}}
      - eval_time: 4m
        alertname: FleetUnderused
        exp_alerts:
          - exp_labels: {labels}
"""
    # Five minutes of data at 4m; (0.2 + 0.3) / 2 = 0.25 < 0.3.
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


def test_cost_anomaly_judges_the_last_complete_day(tmp_path: Path) -> None:
    rules = """
groups:
  - name: costs
    interval: 1h
    rules:
      - name: CloudCostAnomaly
        kind: cost_anomaly
        labels: {severity: warning}
        annotations:
          summary: "{{ labels.service }} spent {{ value | money('USD') }} more than usual"
"""
    test = """
rule_files: [rules.yaml]
evaluation_interval: 1d
tests:
  - interval: 1d
    input_series:
      - series: 'tcowatch_cloud_cost{provider="aws", service="AmazonEC2", account="1234", currency="USD"}'
        values: '100.25x20 400.25'
      - series: 'tcowatch_cloud_cost{provider="aws", service="AmazonS3", account="1234", currency="USD"}'
        values: '20x21'
    alert_rule_test:
      - {eval_time: 21d, alertname: CloudCostAnomaly}
      - eval_time: 22d
        alertname: CloudCostAnomaly
        exp_alerts:
          - exp_labels: {severity: warning, provider: aws, service: AmazonEC2, account: "1234"}
            exp_annotations: {summary: "AmazonEC2 spent 300.00 USD more than usual"}
"""
    # Day 21 (400.25 against a median of 100.25) becomes complete at 22d.
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


def test_rollbacks_come_from_input_records(tmp_path: Path) -> None:
    rules = """
rules:
  - name: RollbackSlaBreached
    kind: rollback_sla
    params: {default_target: 4h}
"""
    test = """
rule_files: [rules.yaml]
evaluation_interval: 30m
tests:
  - input_records:
      rollbacks:
        - {service: checkout, from_version: v2, to_version: v1, started_at: 1h, restored_at: 6h}
    alert_rule_test:
      - {eval_time: 5h, alertname: RollbackSlaBreached}
      - eval_time: 5h30m
        alertname: RollbackSlaBreached
        exp_alerts:
          - exp_labels: {service: checkout, rollback_id: "1", from_version: v2, to_version: v1}
      - {eval_time: 6h, alertname: RollbackSlaBreached}
"""
    # Open from 1h: 4h (not > 4h) at 5h, breached at 5h30m, restored at 6h.
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


def test_debts_come_from_input_records(tmp_path: Path) -> None:
    rules = """
rules:
  - name: DebtOverdue
    kind: debt_overdue
    params: {min_severity: high}
    annotations: {summary: "{{ labels.title }} is {{ value }} days overdue"}
"""
    test = """
rule_files: [rules.yaml]
evaluation_interval: 1d
tests:
  - start_timestamp: 2025-06-01T00:00:00Z
    input_records:
      debts:
        - {title: Upgrade CUDA, owner: ana, severity: high, due_date: 2025-06-02T00:00:00Z}
        - {title: Rename metric, owner: bo, severity: low, due_date: -1d}
        - {title: Done already, severity: critical, status: done, due_date: -1d}
    alert_rule_test:
      - {eval_time: 1d, alertname: DebtOverdue}
      - eval_time: 3d
        alertname: DebtOverdue
        exp_alerts:
          - exp_labels: {debt_id: "1", title: Upgrade CUDA, owner: ana, severity: high}
            exp_annotations: {summary: "Upgrade CUDA is 2.0 days overdue"}
"""
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


def test_bad_input_records_name_their_key_path(tmp_path: Path) -> None:
    test = """
rule_files: [rules.yaml]
tests:
  - input_records:
      rollbacks:
        - {service: checkout, started_at: yesterday}
"""
    result = run(tmp_path, test)
    (problem,) = result.problems
    assert problem.startswith(
        "line 5: tests[0].input_records.rollbacks[0].started_at: expected an offset like"
    )


def test_cache_hit_rate_reads_counters_and_gauges(tmp_path: Path) -> None:
    rules = """
rules:
  - name: CacheHitRateLow
    kind: cache_hit_rate
    params: {window: 15m, below: 0.3, min_queries: 1000, min_minutes: 5}
"""
    test = """
rule_files: [rules.yaml]
tests:
  - input_series:
      - series: 'tcowatch_llm_cache_queries{node="n1", model="llama", instance="a"}'
        values: '500x20'
      - series: 'tcowatch_llm_cache_hits{node="n1", model="llama", instance="a"}'
        values: '50x20'
      - series: 'tcowatch_llm_cache_hit_ratio{node="n2", model="qwen", instance="b"}'
        values: '0.1x20'
    alert_rule_test:
      - {eval_time: 0m, alertname: CacheHitRateLow}
      - eval_time: 1m
        alertname: CacheHitRateLow
        exp_alerts:
          - exp_labels: {model: llama}
      - eval_time: 4m
        alertname: CacheHitRateLow
        exp_alerts:
          - exp_labels: {model: llama}
          - exp_labels: {model: qwen}
"""
    # llama: 1000 queried tokens by 1m; qwen (gauge only): 5 minutes of readings by 4m.
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


def test_request_volatility_reads_daily_requests(tmp_path: Path) -> None:
    rules = """
rules:
  - name: DemandVolatile
    kind: request_volatility
    params: {lookback_days: 14, min_days: 7}
"""
    test = """
rule_files: [rules.yaml]
evaluation_interval: 1d
tests:
  - interval: 1d
    input_series:
      - series: 'tcowatch_llm_requests{node="n1", model="llama", instance="a"}'
        values: '100 300 100 300 100 300 100 300'
    alert_rule_test:
      - {eval_time: 6d, alertname: DemandVolatile}
      - eval_time: 7d
        alertname: DemandVolatile
        exp_alerts:
          - exp_labels: {model: llama}
"""
    # Mean 200, population std 100: 0.5 > 0.3 once 7 days are complete.
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


def test_budgets_come_from_input_records(tmp_path: Path) -> None:
    rules = """
rules:
  - name: BudgetOverrun
    kind: budget_forecast
    annotations: {summary: "{{ labels.budget }} forecast at {{ value | percent(0) }}"}
"""
    test = """
rule_files: [rules.yaml]
tests:
  - input_records:
      budgets:
        - {name: gpu-cloud, amount: 1000, currency: EUR, month_to_date: 600, forecast: 1300}
        - {name: small, amount: 1000, month_to_date: 100, forecast: 400}
    alert_rule_test:
      - eval_time: 0m
        alertname: BudgetOverrun
        exp_alerts:
          - exp_labels: {budget: gpu-cloud, currency: EUR}
            exp_annotations: {summary: "gpu-cloud forecast at 130%"}
"""
    result = run(tmp_path, test, rules=rules)
    assert result.passed, report_lines(result)


@pytest.mark.parametrize(("min_minutes", "fires"), [(5, True), (6, False)])
def test_a_window_holds_the_samples_after_now_minus_window_up_to_now(
    tmp_path: Path, min_minutes: int, fires: bool
) -> None:
    rules = IDLE_RULES.replace("for: 5m", "for: 0s").replace(
        "min_minutes: 3", f"min_minutes: {min_minutes}"
    )
    cases = "\n      - {eval_time: 20m, alertname: GpuIdle" + ("" if fires else "}")
    if fires:
        cases += (
            ", exp_alerts: [{exp_labels: {severity: warning, node: n1, gpu: '0', uuid: GPU-1},"
            " exp_annotations: {summary: GPU 0 on n1 is idle}}]}"
        )
    # A 5m window at 20m is (15m, 20m]: five samples, never six.
    result = run(tmp_path, idle_test(cases), rules=rules)
    assert result.passed, report_lines(result)


def test_keys_left_empty_take_their_defaults_as_in_promtool(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        idle_test(
            """
      - eval_time: 2m
        alertname: GpuIdle
        exp_alerts:
      - eval_time: 7m
        alertname: GpuIdle
        exp_alerts:
          - exp_labels: {severity: warning, node: n1, gpu: "0", uuid: GPU-1}
            exp_annotations:"""
        ),
    )
    (failure,) = result.failures  # 7m: every annotation must be expected
    assert failure.title == "alertname GpuIdle at eval_time 7m (- expected, + got)"
    assert failure.lines[-1] == '+     summary: "GPU 0 on n1 is idle"'
