"""``tcowatch import focus`` and ``export focus``: exit codes, one-line errors, summaries."""

from __future__ import annotations

import argparse
import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from daemon.cli_costs import _progress, add_cost_commands, cmd_export, cmd_import
from daemon.store.db import open_store
from daemon.store.models import CostRecord
from tests.daemon.test_focus_import import focus_csv


def parse(*argv: str) -> argparse.Namespace:
    """The arguments as ``tcowatch`` parses them (same ``common`` options as daemon.cli)."""
    parser = argparse.ArgumentParser(prog="tcowatch")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
        p.add_argument("--config", type=Path)
        if db:
            p.add_argument("--db")

    add_cost_commands(sub, common)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TCOWATCH_STORE__URL", "TCOWATCH_DB"):
        monkeypatch.delenv(name, raising=False)


def errors(err: str) -> list[str]:
    """The CLI's own lines on stderr (log records, such as a first migration, aside)."""
    return [line for line in err.splitlines() if line.startswith("tcowatch: ")]


def stored(db: Path) -> tuple[int, Decimal]:
    engine = open_store(f"sqlite:///{db}")
    with Session(engine) as session:
        count, total = session.execute(select(func.count(), func.sum(CostRecord.billed_cost))).one()
    engine.dispose()
    return int(count), Decimal(total or 0).quantize(Decimal("0.01"))


def test_it_imports_files_and_prints_one_summary_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jan = focus_csv(tmp_path / "exports" / "jan.csv", "2025-01", ["1.10", "2.20"])
    feb = focus_csv(tmp_path / "exports" / "feb.csv", "2025-02", ["3.00"])
    db = tmp_path / "t.db"
    assert cmd_import(parse("import", "focus", str(jan), str(feb), "--db", str(db))) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{jan}: imported 2 rows (0 rejected) into source focus:exports, billing periods 2025-01",
        f"{feb}: imported 1 rows (0 rejected) into source focus:exports, billing periods 2025-02",
    ]
    assert stored(db) == (3, Decimal("6.30"))


def test_it_replaces_on_reimport_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jan = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.10", "2.20"])
    db = tmp_path / "t.db"
    args = parse("import", "focus", str(jan), "--db", str(db), "--source", "focus:mine")
    assert cmd_import(args) == 0
    assert cmd_import(args) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.endswith("into source focus:mine, billing periods 2025-01; replaced 2 stored rows")
    assert stored(db) == (2, Decimal("3.30"))


def test_it_reads_the_focus_files_of_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "azure"
    focus_csv(folder / "20250101-20250131" / "part_0.csv", "2025-01", ["1.00"], resource="a")
    focus_csv(folder / "20250101-20250131" / "part_1.csv", "2025-01", ["2.00"], resource="b")
    db = tmp_path / "t.db"
    assert cmd_import(parse("import", "focus", str(folder), "--db", str(db))) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert stored(db) == (2, Decimal("3.00"))


def test_it_exits_2_in_one_line_for_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    missing = tmp_path / "nope.csv"
    assert cmd_import(parse("import", "focus", str(missing), "--db", str(db))) == 2
    assert errors(capsys.readouterr().err) == [f"tcowatch: {missing}: file not found"]
    assert not db.exists()


def test_it_exits_1_with_file_line_and_column_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = focus_csv(tmp_path / "bad.csv", "2025-01", ["1.00", "2.00", "1,000.00"])
    db = tmp_path / "t.db"
    assert cmd_import(parse("import", "focus", str(bad), "--db", str(db))) == 1
    (line,) = errors(capsys.readouterr().err)
    assert line.startswith(f"tcowatch: {bad}:4: BilledCost: ")
    assert stored(db) == (0, Decimal("0.00"))


def test_it_skips_bad_rows_when_asked_and_reports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = focus_csv(tmp_path / "bad.csv", "2025-01", ["1.00", "2.00", "1,000.00"])
    db = tmp_path / "t.db"
    assert cmd_import(parse("import", "focus", str(bad), "--db", str(db), "--skip-bad-rows")) == 0
    captured = capsys.readouterr()
    assert "imported 2 rows (1 rejected)" in captured.out
    assert errors(captured.err)[0].startswith(f"tcowatch: {bad}:4: BilledCost: ")
    assert stored(db) == (2, Decimal("3.00"))


def test_it_reports_an_unreadable_file_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Foo,Bar\n1,2\n")
    assert cmd_import(parse("import", "focus", str(bad), "--db", str(tmp_path / "t.db"))) == 1
    (line,) = errors(capsys.readouterr().err)
    assert line.startswith(f"tcowatch: {bad}")


def test_it_shows_a_row_counter_with_a_rate_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with _progress(screen) as advance:
        step = advance("focus:aws")
        step(5000)
        step(2500)
    assert "focus:aws" in screen.getvalue()
    assert "7,500 rows" in screen.getvalue()

    plain = io.StringIO()
    with _progress(plain) as advance:
        advance("focus:aws")(10)
    assert plain.getvalue() == ""


def test_export_exits_2_without_gpu_cost_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("export", "focus", "--db", str(tmp_path / "t.db"))
    assert cmd_export(args) == 2
    assert errors(capsys.readouterr().err) == [
        "tcowatch: no costs.gpu_models configured: add one per GPU model (see README)"
    ]


def test_export_writes_a_focus_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "costs:\n  gpu_models:\n"
        "    - {gpu_model: NVIDIA H100 80GB HBM3, currency: USD, purchase_price: 30000,\n"
        "       depreciation_years: 5, power_price_per_kwh: 0.12, pue: 1.3}\n"
    )
    out = tmp_path / "local.csv"
    args = parse(
        "export", "focus", "--config", str(config), "--db", str(tmp_path / "t.db"),
        "--from", "2025-01-01", "--to", "2025-01-31", "--output", str(out),
    )  # fmt: skip
    assert cmd_export(args) == 0
    header = next(csv.reader(out.open(newline="")))
    assert {"BilledCost", "ChargePeriodStart", "ProviderName"} <= set(header)
    assert "wrote 0 FOCUS lines (2025-01-01 to 2025-01-31, USD)" in capsys.readouterr().err


def test_export_rejects_a_malformed_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("export", "focus", "--from", "2025-13-01")
    assert "expected a date like 2025-01-31, got '2025-13-01'" in capsys.readouterr().err


def test_export_exits_2_for_an_inverted_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "costs:\n  gpu_models:\n    - {gpu_model: H100, purchase_price: 30000,"
        " depreciation_years: 5, power_price_per_kwh: 0.12}\n"
    )
    args = parse(
        "export", "focus", "--config", str(config), "--db", str(tmp_path / "t.db"),
        "--from", "2025-02-01", "--to", "2025-01-31",
    )  # fmt: skip
    assert cmd_export(args) == 2
    assert errors(capsys.readouterr().err) == [
        "tcowatch: --to 2025-01-31 is before --from 2025-02-01"
    ]
