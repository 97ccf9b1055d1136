"""The TCO calculator and ``tcowatch tco``: the source analysis's reproduction, per-year view,
measured inputs, flags and config."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from daemon import cli_tco
from daemon.cli_tco import add_tco_commands, cmd_tco
from daemon.config import ConfigError
from daemon.costs.tco import TcoInputs, compute_tco, inputs_from_measurements


def test_it_reproduces_the_source_analysis_totals_exactly() -> None:
    inputs = TcoInputs(
        currency="CNY",
        years=5,
        hardware_depreciation_per_year=Decimal("80000"),
        ops_staff_per_year=Decimal("240000"),
        dr_per_year=Decimal("120000"),
        upgrade_cost_per_event=Decimal("50000"),
        upgrades=Decimal(3),
        cloud_ops_per_year=Decimal("60000"),
        cloud_dr_per_year=Decimal("30000"),
        cloud_usage_per_year=Decimal("48000"),
    )
    result = compute_tco(inputs)
    assert result.local_total == Decimal("2350000")
    assert result.cloud_total == Decimal("690000")
    assert result.difference == Decimal("1660000")
    assert result.cheaper == "cloud"
    assert result.currency == "CNY"
    rows = {r.category: (r.local, r.cloud) for r in result.rows}
    assert rows == {
        "hardware_depreciation": (Decimal("400000"), Decimal(0)),
        "operations_staff": (Decimal("1200000"), Decimal("300000")),
        "disaster_recovery": (Decimal("600000"), Decimal("150000")),
        "upgrades_migration": (Decimal("150000"), Decimal(0)),
        "cloud_usage": (Decimal(0), Decimal("240000")),
    }


def test_it_defaults_to_the_source_analysis_inputs() -> None:
    result = compute_tco(TcoInputs())
    assert (result.local_total, result.cloud_total) == (Decimal("2350000"), Decimal("690000"))


def test_it_gives_cumulative_yearly_rows_ending_at_the_totals() -> None:
    result = compute_tco(TcoInputs())
    assert [y.year for y in result.yearly] == [1, 2, 3, 4, 5]
    assert result.yearly[0].local == Decimal("470000")  # 80k+240k+120k + 150k/5
    assert result.yearly[0].cloud == Decimal("138000")
    assert (result.yearly[-1].local, result.yearly[-1].cloud) == (
        result.local_total,
        result.cloud_total,
    )
    assert result.break_even_year is None


def test_it_reports_the_first_year_local_is_not_dearer() -> None:
    cheap_local = TcoInputs(
        hardware_depreciation_per_year=Decimal(10),
        ops_staff_per_year=Decimal(0),
        dr_per_year=Decimal(0),
        upgrade_cost_per_event=Decimal(0),
        upgrades=Decimal(0),
        cloud_usage_per_year=Decimal(1_000_000),
    )
    result = compute_tco(cheap_local)
    assert result.break_even_year == 1
    assert result.cheaper == "local"


def test_it_honours_a_shorter_horizon() -> None:
    result = compute_tco(TcoInputs(years=3))
    # 3 years of each yearly cost; the three upgrade events fall within the horizon.
    assert result.local_total == Decimal(440_000 * 3 + 150_000)
    assert result.cloud_total == Decimal(138_000 * 3)
    assert len(result.yearly) == 3


def test_it_serialises_money_as_strings() -> None:
    data = compute_tco(TcoInputs()).as_dict()
    assert data["local_total"] == "2350000"
    assert data["cloud_total"] == "690000"
    assert data["break_even_year"] is None
    assert isinstance(data["rows"], list) and data["rows"][0]["label"] == "Hardware depreciation"


@pytest.mark.parametrize(
    "field",
    ["ops_staff_per_year", "cloud_usage_per_year", "upgrades", "upgrade_cost_per_event"],
)
def test_it_rejects_a_negative_input_naming_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: must not be negative"):
        TcoInputs(**{field: Decimal("-1")})  # type: ignore[arg-type]


def test_it_rejects_floats_and_bad_years() -> None:
    with pytest.raises(ValueError, match=r"^dr_per_year: expected a Decimal"):
        TcoInputs(dr_per_year=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^years:"):
        TcoInputs(years=0)
    with pytest.raises(ValueError, match=r"^cloud_ops_per_year: expected a finite"):
        TcoInputs(cloud_ops_per_year=Decimal("NaN"))


def test_it_rejects_absurdly_large_inputs() -> None:
    with pytest.raises(ValueError, match=r"^upgrades: must be below 1e15"):
        TcoInputs(upgrades=Decimal("1e20"))


def test_it_accepts_ints_as_decimals() -> None:
    inputs = TcoInputs(ops_staff_per_year=100)  # type: ignore[arg-type]
    assert inputs.ops_staff_per_year == Decimal(100)
    assert isinstance(inputs.ops_staff_per_year, Decimal)


def test_it_prices_cloud_usage_from_measured_tokens() -> None:
    measured = inputs_from_measurements(
        TcoInputs(),
        tokens_per_month=Decimal(2_000_000_000),
        cloud_price_per_million=Decimal("0.28"),
    )
    assert measured.cloud_usage_per_year == Decimal("6720")  # 2e9 * 12 * 0.28 / 1e6
    assert measured.measured == frozenset({"cloud_usage_per_year"})
    assert compute_tco(measured).cloud_total == Decimal(90_000 * 5 + 6720 * 5)
    assert measured.ops_staff_per_year == TcoInputs().ops_staff_per_year


def test_it_derives_depreciation_from_measured_gpu_count() -> None:
    per_year = inputs_from_measurements(
        TcoInputs(),
        tokens_per_month=Decimal(0),
        cloud_price_per_million=Decimal(1),
        gpus=8,
        gpu_capex_per_year=Decimal("62500"),
    )
    assert per_year.hardware_depreciation_per_year == Decimal("500000")
    per_hour = inputs_from_measurements(TcoInputs(), gpus=2, gpu_capex_per_hour=Decimal("1.5"))
    assert per_hour.hardware_depreciation_per_year == Decimal("26280")  # 2 * 1.5 * 8760
    assert per_hour.measured == frozenset({"hardware_depreciation_per_year"})


def test_it_prices_elastic_cloud_gpus_by_measured_utilization() -> None:
    measured = inputs_from_measurements(
        TcoInputs(),
        gpus=4,
        utilization=Decimal("0.25"),
        cloud_gpu_price_per_hour=Decimal("2.00"),
    )
    assert measured.cloud_usage_per_year == Decimal("17520")  # 4 * 0.25 * 8760 * 2


def test_it_rejects_inconsistent_measurements() -> None:
    with pytest.raises(ValueError, match=r"^cloud_price_per_million: needed"):
        inputs_from_measurements(TcoInputs(), tokens_per_month=Decimal(1))
    with pytest.raises(ValueError, match=r"^tokens_per_month: must not be negative"):
        inputs_from_measurements(
            TcoInputs(), tokens_per_month=Decimal(-1), cloud_price_per_million=Decimal(1)
        )
    with pytest.raises(ValueError, match=r"^gpus: needed"):
        inputs_from_measurements(TcoInputs(), gpu_capex_per_year=Decimal(1))
    with pytest.raises(ValueError, match=r"^utilization: expected a ratio"):
        inputs_from_measurements(
            TcoInputs(), gpus=1, utilization=Decimal(2), cloud_gpu_price_per_hour=Decimal(1)
        )
    with pytest.raises(ValueError, match=r"^utilization: only used"):
        inputs_from_measurements(TcoInputs(), utilization=Decimal("0.5"))
    with pytest.raises(ValueError, match=r"^cloud_gpu_price_per_hour: give either"):
        inputs_from_measurements(
            TcoInputs(),
            tokens_per_month=Decimal(1),
            cloud_price_per_million=Decimal(1),
            gpus=1,
            utilization=Decimal("0.5"),
            cloud_gpu_price_per_hour=Decimal(1),
        )


# --- the ``tcowatch tco`` command -------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tcowatch")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path)
        if db:
            p.add_argument("--db")

    add_tco_commands(sub, common)
    return parser.parse_args(list(argv))


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory: no tcowatch.yaml, no TCOWATCH_ environment overrides."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("TCOWATCH_"):
            monkeypatch.delenv(key)
    return tmp_path


def _json_out(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert cmd_tco(_parse("tco", "--json", *argv)) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_it_prints_the_source_analysis_as_json_by_default(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _json_out(capsys)
    assert (data["local_total"], data["cloud_total"]) == ("2350000", "690000")
    assert data["difference"] == "1660000"
    assert data["currency"] == "CNY"
    assert data["inputs"]["ops_staff_per_year"] == "240000"
    assert [y["year"] for y in data["yearly"]] == [1, 2, 3, 4, 5]


def test_it_prints_a_table_with_totals(no_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_tco(_parse("tco")) == 0
    out = capsys.readouterr().out
    assert "TCO over 5 years (CNY)" in out
    assert "2,350,000" in out and "690,000" in out and "1,660,000" in out
    assert "Upgrades / migration" in out and "150,000" in out


def test_it_takes_inputs_from_flags(no_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _json_out(
        capsys,
        "--years",
        "3",
        "--currency",
        "usd",
        "--ops-staff-per-year",
        "100000",
        "--upgrades",
        "0",
        "--cloud-usage-per-year",
        "12000.50",
    )
    assert data["currency"] == "USD" and data["years"] == 3
    assert data["local_total"] == str((80_000 + 100_000 + 120_000) * 3)
    assert Decimal(data["cloud_total"]) == Decimal("306001.50")  # (60000+30000+12000.50) * 3


def test_it_replaces_guesses_with_measured_flags(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _json_out(
        capsys,
        "--tokens-per-month",
        "2000000000",
        "--cloud-price-per-million",
        "0.28",
        "--gpus",
        "8",
        "--gpu-capex-per-year",
        "10000",
    )
    assert Decimal(data["inputs"]["cloud_usage_per_year"]) == Decimal("6720")
    assert Decimal(data["inputs"]["hardware_depreciation_per_year"]) == Decimal("80000")
    assert data["inputs"]["measured"] == [
        "cloud_usage_per_year",
        "hardware_depreciation_per_year",
    ]


@pytest.mark.parametrize(
    ("argv", "source", "problem"),
    [
        (
            ["--ops-staff-per-year", "x"],
            "--ops-staff-per-year",
            "expected a non-negative number, got 'x'",
        ),
        (["--dr-per-year", "-5"], "--dr-per-year", "expected a non-negative number, got '-5'"),
        (
            ["--upgrade-cost", "1e999999999"],
            "--upgrade-cost",
            "expected a number below 1e15, got '1e999999999'",
        ),
        (["--years", "0"], "--years", "expected a whole number of at least 1, got '0'"),
        (["--currency", "yuan"], "--currency", "expected an ISO 4217 code, got 'yuan'"),
        (["--tokens-per-month", "5"], "--cloud-price-per-million", None),
    ],
)
def test_it_rejects_a_bad_flag_naming_it(
    no_config: Path, argv: list[str], source: str, problem: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        cmd_tco(_parse("tco", *argv))
    assert caught.value.source == source
    if problem is not None:
        assert caught.value.problems == [problem]


def test_it_reads_the_config_section_when_the_config_has_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tco = SimpleNamespace(
        years=5,
        currency="CNY",
        hardware_depreciation_per_year=Decimal(0),
        ops_staff_per_year=Decimal(0),
        dr_per_year=Decimal(0),
        upgrade_cost_per_event=Decimal(0),
        upgrades=Decimal(0),
        cloud_ops_per_year=Decimal(1),
        cloud_dr_per_year=Decimal(1),
        cloud_usage_per_year=Decimal(1),
    )
    config = SimpleNamespace(costs=SimpleNamespace(tco=tco))
    monkeypatch.setattr(cli_tco, "load_config", lambda path: (config, Path("tcowatch.yaml")))
    data = _json_out(capsys, "--cloud-usage-per-year", "3")
    assert data["local_total"] == "0"
    assert data["cloud_total"] == "25"  # (1 + 1 + 3) * 5: the flag beats the config
    assert data["break_even_year"] == 1


def test_it_reports_a_bad_config_section_as_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SimpleNamespace(costs=SimpleNamespace(tco=SimpleNamespace(dr_per_year=Decimal(-1))))
    monkeypatch.setattr(cli_tco, "load_config", lambda path: (config, Path("tcowatch.yaml")))
    with pytest.raises(ConfigError) as caught:
        cmd_tco(_parse("tco"))
    assert caught.value.source == "costs.tco"
    assert caught.value.problems == ["dr_per_year: must not be negative, got -1"]


def test_the_tcowatch_cli_exits_2_with_one_line_for_a_bad_number(no_config: Path) -> None:
    from daemon import cli

    if "tco" not in cli.COMMANDS:
        pytest.skip("tco is not registered in daemon.cli yet")
    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "tco", "--ops-staff-per-year", "x"],
        cwd=no_config,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tcowatch: --ops-staff-per-year: expected a non-negative number, got 'x'"
    )


def test_it_fills_measured_inputs_from_the_store_and_skips_other_currencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.board import tco as board_tco
    from daemon.board.tco import TcoMeasurements
    from daemon.costs.figures import Money
    from daemon.store.db import open_store

    db = tmp_path / "m.db"
    open_store(f"sqlite:///{db}").dispose()
    measured = TcoMeasurements(
        window_days=30,
        gpus=8,
        utilization=Decimal("0.4"),
        tokens=Decimal("1000000"),
        observed_hours=Decimal("720"),
        tokens_per_month=Decimal("2000000000"),
        cloud_price_per_million=Money(Decimal("1.10"), "USD"),
        gpu_capex_per_year=Money(Decimal("60000"), "CNY"),
        notes=["a note"],
    )
    monkeypatch.setattr(board_tco, "measure_tco", lambda *a, **k: measured)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path)
        if db:
            p.add_argument("--db")

    add_tco_commands(sub, common)
    args = parser.parse_args(["tco", "--measured", "--json", "--db", str(db)])
    monkeypatch.chdir(tmp_path)
    assert cmd_tco(args) == 0
    out, err = capsys.readouterr()
    inputs = json.loads(out)["inputs"]
    assert "a note" in err
    assert "cloud_price_per_million is in USD, the TCO in CNY: not used" in err
    assert args.gpus == "8" and args.gpu_capex_per_year == "60000"
    assert args.tokens_per_month is None and args.cloud_price_per_million is None
    assert inputs["hardware_depreciation_per_year"] == "480000"  # 8 GPUs x 60,000
    assert inputs["measured"] == ["hardware_depreciation_per_year"]
