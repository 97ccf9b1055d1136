from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from rules.base import CostSeries, Rule, RuleConfigError, RuleContext, load_rule_class
from rules.cost_anomaly import CostAnomalyRule, median, median_absolute_deviation

NOW = datetime(2026, 8, 20, 0, 30, tzinfo=UTC)
JUDGED = date(2026, 8, 19)  # a Wednesday, the last complete day
LABELS = {"provider": "aws", "service": "Amazon EC2", "account": "111122223333"}
D = Decimal

# Guards switched off, to test one guard at a time.
OPEN = {"sensitivity": 0, "min_impact": 0, "min_impact_percent": 0, "min_cost": 0}


def _series(
    history: list[Decimal] | Callable[[date], Decimal],
    actual: Decimal,
    *,
    days: int = 28,
    by_dimension: Mapping[str, Mapping[str, tuple[Decimal, ...]]] | None = None,
) -> CostSeries:
    """``days`` history days before ``JUDGED`` (a list, or a function of the day), then
    ``actual`` on ``JUDGED``."""
    dates = tuple(JUDGED - timedelta(days=n) for n in range(days, -1, -1))
    costs = [history(day) for day in dates[:-1]] if callable(history) else list(history)
    assert len(costs) == days
    return CostSeries(
        labels=LABELS,
        currency="USD",
        days=dates,
        costs=(*costs, actual),
        by_dimension=by_dimension or {},
    )


def _flat(value: str, days: int = 28) -> list[Decimal]:
    return [D(value)] * days


def _ctx(*series: CostSeries) -> RuleContext:
    return RuleContext(now=NOW, window=timedelta(days=29), costs=series)


def test_it_is_registered_and_declares_what_it_needs():
    rule: Rule = CostAnomalyRule({})
    assert load_rule_class("cost_anomaly") is CostAnomalyRule
    assert rule.kind == "cost_anomaly"
    assert rule.needs == frozenset({"costs"})
    assert rule.series_names == frozenset()


def test_it_has_documented_defaults():
    rule = CostAnomalyRule({})
    assert rule.lookback_days == 28
    assert rule.window == timedelta(days=29)
    assert rule.min_history_days == 14
    assert rule.seasonality == "none"
    assert rule.sensitivity == D("3.0")
    assert rule.min_impact == D("10")
    assert rule.min_impact_percent == D("20")
    assert rule.min_cost == D("1")
    assert rule.direction == "up"
    assert rule.root_cause_top == 3


def test_it_reports_a_spike_with_decimal_details():
    history = [D("95.50"), D("104.50")] * 14
    findings = CostAnomalyRule({}).evaluate(_ctx(_series(history, D("400.00"))))
    assert len(findings) == 1
    finding = findings[0]
    assert dict(finding.labels) == LABELS
    assert finding.value == pytest.approx(300.0)
    assert finding.details == {
        "day": "2026-08-19",
        "expected": "100.00",
        "actual": "400.00",
        "impact": "300.00",
        "impact_percent": "300.00",
        "currency": "USD",
        "root_causes": [],
    }


def test_it_does_not_report_normal_variation():
    history = [D("90"), D("110")] * 14
    assert CostAnomalyRule({}).evaluate(_ctx(_series(history, D("125")))) == []


def test_it_fires_at_exactly_the_sensitivity_and_not_just_below():
    # median 100, MAD 10 -> scale 1.4826 * 10 = 14.826; z = 3 at an impact of 44.478
    history = [D("90"), D("110")] * 14
    rule = CostAnomalyRule({**OPEN, "sensitivity": 3})
    assert len(rule.evaluate(_ctx(_series(history, D("144.478"))))) == 1
    assert rule.evaluate(_ctx(_series(history, D("144.477")))) == []


def test_it_floors_the_spread_at_five_percent_of_the_median():
    # flat 100: MAD 0 floored to 5 -> scale 7.413; z = 3 at an impact of 22.239
    rule = CostAnomalyRule({**OPEN, "sensitivity": 3})
    assert len(rule.evaluate(_ctx(_series(_flat("100"), D("122.239"))))) == 1
    assert rule.evaluate(_ctx(_series(_flat("100"), D("122.238")))) == []


def test_it_needs_the_absolute_minimum_impact():
    rule = CostAnomalyRule({**OPEN, "min_impact": 10})
    assert len(rule.evaluate(_ctx(_series(_flat("100"), D("110"))))) == 1
    assert rule.evaluate(_ctx(_series(_flat("100"), D("109.99")))) == []


def test_it_needs_the_minimum_impact_percent():
    rule = CostAnomalyRule({**OPEN, "min_impact_percent": 20})
    assert len(rule.evaluate(_ctx(_series(_flat("100"), D("120"))))) == 1
    assert rule.evaluate(_ctx(_series(_flat("100"), D("119.99")))) == []


def test_it_needs_the_minimum_cost():
    rule = CostAnomalyRule({**OPEN, "min_cost": 1})
    assert len(rule.evaluate(_ctx(_series(_flat("0.10"), D("1.00"))))) == 1
    assert rule.evaluate(_ctx(_series(_flat("0.10"), D("0.99")))) == []


def test_the_default_minimum_cost_and_impact_keep_tiny_series_quiet():
    assert CostAnomalyRule({}).evaluate(_ctx(_series(_flat("0.01"), D("0.90")))) == []


def test_it_needs_the_minimum_history():
    rule = CostAnomalyRule({})
    assert len(rule.evaluate(_ctx(_series(_flat("100", 14), D("400"), days=14)))) == 1
    assert rule.evaluate(_ctx(_series(_flat("100", 13), D("400"), days=13))) == []


def test_it_only_uses_the_lookback_as_baseline():
    # 60 days: an expensive old month, then a cheap recent lookback; the spike is judged
    # against the recent 28 days only.
    history = [D("1000")] * 32 + [D("100")] * 28
    findings = CostAnomalyRule({}).evaluate(_ctx(_series(history, D("400"), days=60)))
    assert findings[0].details["expected"] == "100"


def test_it_treats_a_rise_from_zero_as_an_infinite_percentage():
    findings = CostAnomalyRule({}).evaluate(_ctx(_series(_flat("0"), D("50"))))
    assert len(findings) == 1
    assert findings[0].details["expected"] == "0"
    assert findings[0].details["impact_percent"] == "Infinity"


def test_it_rounds_the_impact_percent_to_two_decimals():
    findings = CostAnomalyRule({}).evaluate(_ctx(_series(_flat("300"), D("1000"))))
    assert findings[0].details["impact_percent"] == "233.33"


def test_it_reports_drops_only_with_direction_both():
    series = _series(_flat("500"), D("100"))
    assert CostAnomalyRule({}).evaluate(_ctx(series)) == []
    findings = CostAnomalyRule({"direction": "both"}).evaluate(_ctx(series))
    assert findings[0].value == pytest.approx(-400.0)
    assert findings[0].details["impact"] == "-400"
    assert findings[0].details["impact_percent"] == "-80.00"


def _weekly(day: date) -> Decimal:
    return D("500") if day.weekday() == JUDGED.weekday() else D("100")


def test_it_does_not_report_a_weekly_pattern_with_weekday_seasonality():
    series = _series(_weekly, D("500"))
    assert CostAnomalyRule({"seasonality": "weekday"}).evaluate(_ctx(series)) == []
    # without seasonality the same day looks like a spike
    assert len(CostAnomalyRule({}).evaluate(_ctx(series))) == 1


def test_it_reports_a_real_spike_with_weekday_seasonality():
    findings = CostAnomalyRule({"seasonality": "weekday"}).evaluate(
        _ctx(_series(_weekly, D("1500")))
    )
    assert len(findings) == 1
    assert findings[0].details["expected"] == "500"
    assert findings[0].details["impact"] == "1000"


def test_it_needs_three_same_weekdays_with_weekday_seasonality():
    rule = CostAnomalyRule({"seasonality": "weekday"})
    # 20 history days hold only two earlier Wednesdays
    short = _series(_weekly, D("1500"), days=20)
    assert rule.evaluate(_ctx(short)) == []
    assert len(CostAnomalyRule({}).evaluate(_ctx(short))) == 1
    assert len(rule.evaluate(_ctx(_series(_weekly, D("1500"), days=21)))) == 1


def test_it_needs_min_history_days_over_seven_same_weekdays_when_that_is_more_than_three():
    assert CostAnomalyRule({"seasonality": "weekday"}).min_weekday_points == 3
    rule = CostAnomalyRule({"seasonality": "weekday", "lookback_days": 35, "min_history_days": 35})
    assert rule.min_weekday_points == 5
    assert len(rule.evaluate(_ctx(_series(_weekly, D("1500"), days=35)))) == 1
    assert rule.evaluate(_ctx(_series(_weekly, D("1500"), days=34))) == []


def test_it_ranks_root_causes_by_impact_across_dimensions():
    def dimension(stable: str, spike: str) -> tuple[Decimal, ...]:
        return (*[D(stable)] * 28, D(spike))

    by_dimension = {
        "sku_id": {
            "BoxUsage:p5.48xlarge": dimension("60", "310"),
            "BoxUsage:t3.micro": dimension("10", "10"),
            "EBS:VolumeUsage": dimension("30", "20"),
        },
        "region_id": {
            "us-east-1": dimension("70", "300"),
            "eu-west-1": dimension("30", "40"),
        },
    }
    series = _series(_flat("100"), D("340"), by_dimension=by_dimension)
    findings = CostAnomalyRule({}).evaluate(_ctx(series))
    assert findings[0].details["root_causes"] == [
        {
            "dimension": "sku_id",
            "value": "BoxUsage:p5.48xlarge",
            "expected": "60",
            "actual": "310",
            "impact": "250",
        },
        {
            "dimension": "region_id",
            "value": "us-east-1",
            "expected": "70",
            "actual": "300",
            "impact": "230",
        },
        {
            "dimension": "region_id",
            "value": "eu-west-1",
            "expected": "30",
            "actual": "40",
            "impact": "10",
        },
    ]
    top_one = CostAnomalyRule({"root_cause_top": 1}).evaluate(_ctx(series))
    assert [c["value"] for c in top_one[0].details["root_causes"]] == ["BoxUsage:p5.48xlarge"]
    assert (
        CostAnomalyRule({"root_cause_top": 0}).evaluate(_ctx(series))[0].details["root_causes"]
        == []
    )


def test_it_compares_root_causes_with_the_same_weekday_baseline():
    dates = [JUDGED - timedelta(days=n) for n in range(28, 0, -1)]
    sku = (*[_weekly(day) for day in dates], D("1500"))
    series = _series(_weekly, D("1500"), by_dimension={"sku_id": {"gpu": sku}})
    findings = CostAnomalyRule({"seasonality": "weekday"}).evaluate(_ctx(series))
    assert findings[0].details["root_causes"][0]["expected"] == "500"


def test_it_skips_malformed_series_without_raising():
    bad = CostSeries(labels=LABELS, currency="USD", days=(JUDGED,), costs=())
    empty = CostSeries(labels=LABELS, currency="USD", days=(), costs=())
    odd_dimension = _series(_flat("100"), D("400"), by_dimension={"sku_id": {"x": (D("1"),)}})
    findings = CostAnomalyRule({}).evaluate(_ctx(bad, empty, odd_dimension))
    assert len(findings) == 1
    assert findings[0].details["root_causes"] == []


def test_median_and_mad_stay_decimal():
    assert median([D("3"), D("1"), D("2")]) == D("2")
    assert median([D("1.10"), D("1.20")]) == D("1.15")
    assert isinstance(median([D("1"), D("2")]), Decimal)
    assert median_absolute_deviation([D("1"), D("2"), D("9")], D("2")) == D("1")
    with pytest.raises(ValueError):
        median([])


def test_it_rejects_unknown_params_naming_the_key():
    with pytest.raises(RuleConfigError) as info:
        CostAnomalyRule({"lookback": 28})
    assert info.value.path == "lookback"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"lookback_days": 0}, "lookback_days"),
        ({"lookback_days": "28d"}, "lookback_days"),
        ({"min_history_days": 29}, "min_history_days"),
        ({"min_history_days": 2.5}, "min_history_days"),
        ({"seasonality": "weekly"}, "seasonality"),
        ({"seasonality": "weekday", "lookback_days": 14}, "lookback_days"),
        ({"sensitivity": -1}, "sensitivity"),
        ({"sensitivity": "high"}, "sensitivity"),
        ({"min_impact": "ten dollars"}, "min_impact"),
        ({"min_impact": -5}, "min_impact"),
        ({"min_impact_percent": True}, "min_impact_percent"),
        ({"min_cost": [1]}, "min_cost"),
        ({"direction": "down"}, "direction"),
        ({"root_cause_top": -1}, "root_cause_top"),
    ],
)
def test_it_rejects_bad_values_naming_the_key(params, path):
    with pytest.raises(RuleConfigError) as info:
        CostAnomalyRule(params)
    assert info.value.path == path


def test_it_reads_money_params_exactly():
    rule = CostAnomalyRule({"min_impact": 0.1, "min_cost": "12.50"})
    assert rule.min_impact == D("0.1")
    assert rule.min_cost == D("12.50")
