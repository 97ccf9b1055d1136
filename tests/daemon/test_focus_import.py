"""FOCUS files into the store: reconciled to the cent, replaced not duplicated, atomic."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from collectors import focus, focus_arrow
from collectors.base import CostLine
from collectors.focus import FocusFileError, FocusRowError, open_focus
from daemon.costs.focus_import import (
    FocusImportError,
    FocusWatcher,
    OnError,
    default_source,
    import_focus,
    import_focus_files,
    with_billing_period,
)
from daemon.costs.ledger import add_lines
from daemon.store.db import open_store, session_scope
from daemon.store.models import CostRecord
from tests.conftest import SHARED_FIXTURES

SPEC = SHARED_FIXTURES / "focus" / "spec-v1.2"
SPEC_FILES = sorted(
    [
        *(SPEC / "commitment_discount_scenarios").glob("*.csv"),
        *(SPEC / "commitment_discount_flexibility").glob("*.csv"),
    ]
)
SAAS_FILES = sorted((SPEC / "saas_examples").rglob("*.csv"))
SPEC_TYPOS = {
    "commitment_discount_purchase_scenario_2": {4},
    "commitment_discount_purchase_scenario_3": {5},
}
"""Lines of the spec's own examples whose ChargePeriodEnd is ``2023-02-01T30:00:00Z``."""

HEADER = (
    "BillingAccountId,BillingCurrency,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,"
    "ChargePeriodEnd,ChargeCategory,ProviderName,ServiceName,ResourceId,BilledCost,"
    "EffectiveCost,Tags"
)


def focus_csv(path: Path, month: str, costs: list[str], *, resource: str = "vm") -> Path:
    """A small valid FOCUS file: one hourly line per cost, in billing period ``month``."""
    year, mon = (int(part) for part in month.split("-"))
    end = f"{year + mon // 12}-{mon % 12 + 1:02d}"
    lines = [HEADER]
    for hour, cost in enumerate(costs):
        cost = f'"{cost}"' if "," in cost else cost
        lines.append(
            f"acct-1,USD,{month}-01T00:00:00Z,{end}-01T00:00:00Z,{month}-01T{hour:02d}:00:00Z,"
            f"{month}-01T{hour + 1:02d}:00:00Z,Usage,AWS,Amazon EC2,{resource}-{hour},{cost},"
            f'{cost},"{{""team"": ""ml""}}"'
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def raw_sums(path: Path, skip_lines: set[int] = set()) -> tuple[int, Decimal, Decimal]:  # noqa: B006
    """Lines, SUM(BilledCost) and SUM(EffectiveCost) straight from the CSV, with Decimal."""
    count, billed, effective = 0, Decimal(0), Decimal(0)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if reader.line_num in skip_lines:
                continue
            count += 1
            billed += Decimal(row["BilledCost"])
            if row.get("EffectiveCost") not in (None, "", "null"):
                effective += Decimal(row["EffectiveCost"])
    return count, billed, effective


def stored_sums(engine: Engine, source: str) -> tuple[int, Decimal, Decimal]:
    with Session(engine) as session:
        count, billed, effective = session.execute(
            select(
                func.count(),
                func.sum(CostRecord.billed_cost),
                func.sum(CostRecord.effective_cost),
            ).where(col(CostRecord.source) == source)
        ).one()
    cent = Decimal("0.01")
    return (
        int(count),
        Decimal(billed or 0).quantize(cent),
        Decimal(effective or 0).quantize(cent),
    )


def cents(sums: tuple[int, Decimal, Decimal]) -> tuple[int, Decimal, Decimal]:
    cent = Decimal("0.01")
    return sums[0], sums[1].quantize(cent), sums[2].quantize(cent)


@pytest.fixture
def engine(db_url: str) -> Engine:
    return open_store(db_url)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path / 'store.db'}")


def test_it_reconciles_every_spec_fixture_to_the_cent(engine: Engine) -> None:
    assert len(SPEC_FILES) == 11
    for path in SPEC_FILES:
        source = f"spec:{path.stem}"
        bad_lines = SPEC_TYPOS.get(path.stem, set())
        if bad_lines:
            with pytest.raises(FocusRowError) as caught:
                import_focus(engine, path, source=source, default_currency="USD")
            assert (caught.value.line, caught.value.column) == (min(bad_lines), "ChargePeriodEnd")
            assert stored_sums(engine, source)[0] == 0
        mode: OnError = "skip" if bad_lines else "stop"
        result = import_focus(engine, path, source=source, on_error=mode, default_currency="USD")
        expected = cents(raw_sums(path, skip_lines=bad_lines))
        assert (result.rows_imported, result.rows_rejected) == (expected[0], len(bad_lines))
        assert stored_sums(engine, source) == expected, path
        assert result.billing_periods == [datetime(2023, 1, 1, tzinfo=UTC)]


def test_it_replaces_a_reimported_period_instead_of_duplicating(
    engine: Engine, tmp_path: Path
) -> None:
    path = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.10", "2.20", "3.30"])
    first = import_focus(engine, path, source="focus:t")
    second = import_focus(engine, path, source="focus:t")
    assert first.replaced_rows == 0 and second.replaced_rows == 3
    assert first.import_batch != second.import_batch
    assert stored_sums(engine, "focus:t") == (3, Decimal("6.60"), Decimal("6.60"))
    with Session(engine) as session:
        batches = set(session.exec(select(CostRecord.import_batch)).all())
    assert batches == {second.import_batch}


def test_it_keeps_other_billing_periods_and_sources(engine: Engine, tmp_path: Path) -> None:
    jan = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.10", "2.20"])
    feb = focus_csv(tmp_path / "feb.csv", "2025-02", ["10.00"])
    import_focus(engine, jan, source="focus:t")
    import_focus(engine, feb, source="focus:t")
    import_focus(engine, jan, source="focus:other")
    assert stored_sums(engine, "focus:t") == (3, Decimal("13.30"), Decimal("13.30"))
    jan_again = focus_csv(tmp_path / "jan2.csv", "2025-01", ["5.00"])
    result = import_focus(engine, jan_again, source="focus:t")
    assert result.replaced_rows == 2
    assert stored_sums(engine, "focus:t") == (2, Decimal("15.00"), Decimal("15.00"))
    assert stored_sums(engine, "focus:other") == (2, Decimal("3.30"), Decimal("3.30"))


def test_it_adds_up_the_parts_of_one_period_imported_together(
    engine: Engine, tmp_path: Path
) -> None:
    part1 = focus_csv(tmp_path / "x-00001.csv", "2025-01", ["1.00", "2.00"], resource="a")
    part2 = focus_csv(tmp_path / "x-00002.csv", "2025-01", ["4.00"], resource="b")
    results = import_focus_files(engine, [part1, part2], source="focus:x")
    assert [r.rows_imported for r in results] == [2, 1]
    assert stored_sums(engine, "focus:x") == (3, Decimal("7.00"), Decimal("7.00"))
    import_focus_files(engine, [part1, part2], source="focus:x")
    assert stored_sums(engine, "focus:x") == (3, Decimal("7.00"), Decimal("7.00"))


def test_it_rolls_a_file_with_a_bad_row_back_in_stop_mode(engine: Engine, tmp_path: Path) -> None:
    good = focus_csv(tmp_path / "good.csv", "2025-01", ["1.00", "2.00"])
    import_focus(engine, good, source="focus:t")
    bad = focus_csv(tmp_path / "bad.csv", "2025-01", ["7.00", "$8.00", "9.00"])
    with pytest.raises(FocusRowError) as caught:
        import_focus(engine, bad, source="focus:t")
    assert str(caught.value).startswith(f"{bad}:3: BilledCost: ")
    assert (caught.value.line, caught.value.column) == (3, "BilledCost")
    assert stored_sums(engine, "focus:t") == (2, Decimal("3.00"), Decimal("3.00"))


def test_it_skips_and_reports_bad_rows_in_skip_mode(engine: Engine, tmp_path: Path) -> None:
    bad = focus_csv(tmp_path / "bad.csv", "2025-01", ["7.00", "$8.00", "9.00"])
    result = import_focus(engine, bad, source="focus:t", on_error="skip")
    assert (result.rows_imported, result.rows_rejected) == (2, 1)
    assert len(result.errors) == 1 and result.errors[0].startswith(f"{bad}:3: BilledCost: ")
    assert stored_sums(engine, "focus:t") == (2, Decimal("16.00"), Decimal("16.00"))


@pytest.mark.parametrize("path", SAAS_FILES, ids=lambda p: p.stem)
def test_it_rejects_the_non_conformant_saas_examples(sqlite_engine: Engine, path: Path) -> None:
    with pytest.raises((FocusRowError, FocusFileError)) as caught:
        import_focus(sqlite_engine, path, source="focus:saas")
    message = str(caught.value)
    assert str(path) in message
    assert "expected" in message or "missing" in message
    assert stored_sums(sqlite_engine, "focus:saas")[0] == 0


def test_it_stores_exactly_what_the_ledger_stores(engine: Engine, tmp_path: Path) -> None:
    path = next(p for p in SPEC_FILES if "with_2_resources" in p.name)
    import_focus(engine, path, source="fast", default_currency="USD")
    with open_focus(path, default_currency="USD") as reader, session_scope(engine) as session:
        lines = [with_billing_period(line) for line in reader.rows()]
        add_lines(session, lines, source="ledger", import_batch="b")
    skip = {"id", "source", "import_batch"}

    def rows(source: str) -> list[dict[str, object]]:
        with Session(engine) as session:
            records = session.exec(select(CostRecord).where(col(CostRecord.source) == source)).all()
            return sorted(
                ({k: v for k, v in r.model_dump().items() if k not in skip} for r in records),
                key=lambda r: str(r["row_key"]),
            )

    fast, ledger = rows("fast"), rows("ledger")
    assert len(fast) == raw_sums(path)[0] and fast == ledger
    assert any(r["extra"] for r in fast) and any(r["consumed_quantity"] is None for r in fast)


def test_it_reports_progress_in_rows(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.00"] * 5)
    seen: list[int] = []
    import_focus(sqlite_engine, path, source="focus:t", progress=seen.append)
    assert sum(seen) == 5


def test_it_files_a_line_without_a_billing_period_under_its_charge_month() -> None:
    line = CostLine(
        row_key="k",
        provider="AWS",
        billed_cost=Decimal("1"),
        billing_currency="USD",
        charge_period_start=datetime(2024, 12, 31, 23, tzinfo=UTC),
        charge_period_end=datetime(2025, 1, 1, tzinfo=UTC),
    )
    filed = with_billing_period(line)
    assert filed.billing_period_start == datetime(2024, 12, 1, tzinfo=UTC)
    assert filed.billing_period_end == datetime(2025, 1, 1, tzinfo=UTC)
    own = replace(line, billing_period_start=datetime(2025, 1, 1, tzinfo=UTC))
    assert with_billing_period(own) is own


def test_it_names_the_default_source_after_the_export_folder(tmp_path: Path) -> None:
    part = tmp_path / "aws-focus" / "data" / "BILLING_PERIOD=2025-01" / "aws-focus-00001.csv.gz"
    assert default_source(part) == "focus:aws-focus"
    assert default_source(tmp_path / "azure" / "20250101-20250131" / "part_0.csv") == (
        "focus:azure"
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def old(path: Path, at: float = 1_700_000_000.0) -> Path:
    os.utime(path, (at, at))
    return path


def test_it_watches_a_folder_imports_new_files_and_skips_unchanged_ones(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "aws"
    old(focus_csv(folder / "jan.csv", "2025-01", ["1.00", "2.00"]))
    (folder / "notes.txt").write_text("not FOCUS")
    watcher = FocusWatcher(sqlite_engine, [folder], clock=Clock(1_800_000_000.0))
    first = watcher.run_once()
    assert [(r.path.name, r.source, r.rows_imported) for r in first] == [
        ("jan.csv", "focus:aws", 2)
    ]
    assert watcher.run_once() == []
    old(focus_csv(folder / "feb.csv", "2025-02", ["5.00"]))
    assert [r.path.name for r in watcher.run_once()] == ["feb.csv"]
    assert stored_sums(sqlite_engine, "focus:aws") == (3, Decimal("8.00"), Decimal("8.00"))


def test_it_waits_for_a_file_that_is_still_being_written(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    path = old(focus_csv(folder / "jan.csv", "2025-01", ["1.00"]), at=1_800_000_000.0)
    watcher = FocusWatcher(sqlite_engine, [folder], clock=Clock(1_800_000_001.0))
    assert watcher.run_once() == []
    old(focus_csv(path, "2025-01", ["1.00", "2.00"]), at=1_800_000_000.5)
    assert watcher.run_once() == []
    (result,) = watcher.run_once()
    assert result.rows_imported == 2


def test_it_retries_a_failed_file_only_after_it_changes(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "drop"
    path = folder / "jan.csv"
    folder.mkdir()
    path.write_text("Foo,Bar\n1,2\n")
    old(path)
    watcher = FocusWatcher(sqlite_engine, [folder], clock=Clock(1_800_000_000.0))
    with caplog.at_level(logging.ERROR, logger="daemon.costs.focus_import"):
        assert watcher.run_once() == []
        assert watcher.run_once() == []
    failures = [r for r in caplog.records if "jan.csv" in r.getMessage()]
    assert len(failures) == 1
    old(focus_csv(path, "2025-01", ["3.00"]), at=1_700_000_100.0)
    (result,) = watcher.run_once()
    assert result.rows_imported == 1


def test_it_reimports_the_sibling_parts_of_a_changed_period(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "aws"
    part1 = old(focus_csv(folder / "p-00001.csv", "2025-01", ["1.00"], resource="a"))
    part2 = old(focus_csv(folder / "p-00002.csv", "2025-01", ["2.00"], resource="b"))
    watcher = FocusWatcher(sqlite_engine, [folder], clock=Clock(1_800_000_000.0))
    assert sorted(r.path for r in watcher.run_once()) == [part1, part2]
    old(focus_csv(part2, "2025-01", ["20.00", "30.00"], resource="b"), at=1_700_000_500.0)
    assert sorted(r.path for r in watcher.run_once()) == [part1, part2]
    assert stored_sums(sqlite_engine, "focus:aws") == (3, Decimal("51.00"), Decimal("51.00"))


def test_it_refuses_two_watched_folders_with_one_source_name(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="focus:exports"):
        FocusWatcher(sqlite_engine, [tmp_path / "a" / "exports", tmp_path / "b" / "exports"])


def test_it_drops_the_old_period_of_a_file_that_now_holds_another(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    path = old(focus_csv(folder / "latest.csv", "2025-01", ["1.00", "2.00"]))
    watcher = FocusWatcher(sqlite_engine, [folder], clock=Clock(1_800_000_000.0))
    watcher.run_once()
    old(focus_csv(path, "2025-02", ["7.00"]), at=1_700_000_900.0)
    (result,) = watcher.run_once()
    assert result.billing_periods == [datetime(2025, 2, 1, tzinfo=UTC)]
    assert stored_sums(sqlite_engine, "focus:drop") == (1, Decimal("7.00"), Decimal("7.00"))


def varied_csv(path: Path, count: int) -> Path:
    """Valid lines with every spelling the columnar and row paths must store alike."""
    header = [
        "BilledCost",
        "BillingCurrency",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "EffectiveCost",
        "ListCost",
        "ConsumedQuantity",
        "ProviderName",
        "ResourceId",
        "Tags",
        "x_Note",
        "ChargeDescription",
    ]
    costs = ["1.50", "1E+3", "-2.5e-3", ".5", "0.12345678", "7.", "123456789.98765432"]
    starts = ["2025-01-01T00:00:00Z", "2024-12-31T16:00:00-08:00", "2025-01-01T00:00:00.5Z"]
    tags = ['{"team":"ml","gpu":true,"n":2.5,"none":null}', "", '{"é":"ü"}', "null"]
    notes = ['say "hi"', "back\\slash", "tab\there", "naïve", "line\nbreak", "plain", ""]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for n in range(count):
            period = ("", "") if n % 4 == 0 else ("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z")
            writer.writerow(
                [
                    costs[n % len(costs)],
                    "USD",
                    starts[n % len(starts)],
                    "2025-01-01T01:00:00Z",
                    *period,
                    ["3.25", "", "null"][n % 3],
                    costs[(n + 1) % len(costs)],
                    "null" if n % 2 else "12.5",
                    "" if n % 3 == 0 else "AWS",
                    f"i-{n}",
                    tags[n % len(tags)],
                    notes[n % len(notes)],
                    "Amazon Web Services, Inc.",
                ]
            )
    return path


def no_arrow(*_args: object, **_kwargs: object) -> None:
    raise OSError("columnar path disabled by the test")


def stored_rows(engine: Engine, source: str) -> list[dict[str, object]]:
    skip = {"id", "source", "import_batch"}
    with Session(engine) as session:
        records = session.exec(select(CostRecord).where(col(CostRecord.source) == source)).all()
        return sorted(
            ({k: v for k, v in r.model_dump().items() if k not in skip} for r in records),
            key=lambda r: str(r["row_key"]),
        )


def test_it_stores_the_same_rows_from_the_columnar_and_the_row_path(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = varied_csv(tmp_path / "varied.csv", 50)
    monkeypatch.setattr(focus_arrow, "BATCH_ROWS", 8)
    import_focus(engine, path, source="columnar")
    with open_focus(path) as reader, session_scope(engine) as session:
        lines = [with_billing_period(line) for line in reader.rows()]
        add_lines(session, lines, source="ledger", import_batch="b")
    monkeypatch.setattr(focus, "ArrowCsv", no_arrow)
    import_focus(engine, path, source="rows")
    columnar = stored_rows(engine, "columnar")
    assert len(columnar) == 50
    assert columnar == stored_rows(engine, "rows") == stored_rows(engine, "ledger")
    assert {r["billing_period_start"] for r in columnar} == {datetime(2025, 1, 1, tzinfo=UTC)}
    notes = {str(r["extra"].get("x_Note")) for r in columnar if isinstance(r["extra"], dict)}
    assert {'say "hi"', "line\nbreak", "naïve", "back\\slash"} <= notes


def test_it_gives_the_sqlite_connection_its_cache_size_back(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    with sqlite_engine.connect() as connection:
        before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    import_focus(sqlite_engine, focus_csv(tmp_path / "jan.csv", "2025-01", ["1.00"]), source="t")
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == before


def test_it_imports_part_files_with_identical_lines_into_one_source(tmp_path) -> None:
    from decimal import Decimal as D

    from sqlalchemy import func
    from sqlmodel import Session, select

    from daemon.costs.focus_import import import_focus_files
    from daemon.store.db import open_store
    from daemon.store.models import CostRecord

    text = (
        "BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart\n"
        "0.00,USD,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,2026-01-01T00:00:00Z\n"
        "1.25,USD,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,2026-01-01T00:00:00Z\n"
    )
    parts = [tmp_path / f"export-0000{i}.csv" for i in (1, 2)]
    for part in parts:
        part.write_text(text)
    engine = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    for _ in range(2):  # importing again replaces, never duplicates
        import_focus_files(engine, parts, source="focus:export")
    with Session(engine) as session:
        total, rows = session.exec(select(func.sum(CostRecord.billed_cost), func.count())).one()
    assert (D(str(total)), rows) == (D("2.50"), 4)
    engine.dispose()


def cost_record_indexes(engine: Engine) -> list[tuple[str, str | None]]:
    """Name and ``CREATE`` statement of every index on ``cost_record`` (SQLite)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'cost_record' ORDER BY name"
        ).all()
    return [(str(name), sql) for name, sql in rows]


def test_it_builds_the_same_indexes_after_a_first_import(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    before = cost_record_indexes(sqlite_engine)
    assert any(sql for _, sql in before)  # secondary indexes the first import rebuilds
    jan = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.00", "2.00"])
    feb = focus_csv(tmp_path / "feb.csv", "2025-02", ["4.00"])
    results = import_focus_files(sqlite_engine, [jan, feb], source="focus:t")
    assert [r.replaced_rows for r in results] == [0, 0]
    assert cost_record_indexes(sqlite_engine) == before
    assert stored_sums(sqlite_engine, "focus:t") == (3, Decimal("7.00"), Decimal("7.00"))
    again = import_focus(sqlite_engine, jan, source="focus:t")  # not empty: deletes the period
    assert again.replaced_rows == 2
    assert stored_sums(sqlite_engine, "focus:t") == (3, Decimal("7.00"), Decimal("7.00"))


def test_it_keeps_the_indexes_when_a_first_import_fails(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    before = cost_record_indexes(sqlite_engine)
    good = focus_csv(tmp_path / "good.csv", "2025-01", ["1.00"])
    bad = focus_csv(tmp_path / "bad.csv", "2025-02", ["7.00", "$8.00"])
    with pytest.raises(FocusRowError):
        import_focus_files(sqlite_engine, [good, bad], source="focus:t")
    assert cost_record_indexes(sqlite_engine) == before
    with pytest.raises(FocusImportError):  # the same lines twice
        import_focus_files(sqlite_engine, [good, good], source="focus:t")
    assert cost_record_indexes(sqlite_engine) == before
    assert stored_sums(sqlite_engine, "focus:t")[0] == 0


def test_it_refuses_a_row_key_stored_in_another_period_and_keeps_the_old_lines(
    engine: Engine, tmp_path: Path
) -> None:
    old = focus_csv(tmp_path / "old.csv", "2025-01", ["1.00", "2.00"])
    import_focus(engine, old, source="focus:t")
    jan = focus_csv(tmp_path / "jan.csv", "2025-01", ["3.00"])
    with open_focus(jan) as reader:
        line = next(reader.rows())
    feb = datetime(2025, 2, 1, tzinfo=UTC)
    clash = replace(  # another period's line that holds jan.csv's row key
        line,
        billing_period_start=feb,
        billing_period_end=datetime(2025, 3, 1, tzinfo=UTC),
        charge_period_start=feb,
        charge_period_end=datetime(2025, 2, 2, tzinfo=UTC),
        billed_cost=Decimal("5.00"),
        effective_cost=Decimal("5.00"),
    )
    with session_scope(engine) as session:
        add_lines(session, [clash], source="focus:t", import_batch="other")
    with pytest.raises(FocusImportError, match="row key is already stored"):
        import_focus(engine, jan, source="focus:t")  # replaces January, meets February's key
    assert stored_sums(engine, "focus:t") == (3, Decimal("8.00"), Decimal("8.00"))


def test_it_refuses_one_file_twice_in_a_call_into_an_empty_store(
    engine: Engine, tmp_path: Path
) -> None:
    jan = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.00", "2.00"])
    with pytest.raises(FocusImportError, match="row key is already stored"):
        import_focus_files(engine, [jan, jan], source="focus:t")
    assert stored_sums(engine, "focus:t")[0] == 0


def journal_mode(path: Path) -> str:
    """The journal mode a new plain connection to the SQLite file finds."""
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def connection_pragmas(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as connection:
        return tuple(
            connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout")
        )


def test_it_imports_with_a_rollback_journal_when_alone_then_returns_to_wal(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alone.db"
    engine = open_store(f"sqlite:///{db}")
    before = connection_pragmas(engine)
    assert before[0] == "wal"
    seen: list[str] = []
    path = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.00", "2.00"])
    import_focus(engine, path, source="focus:t", progress=lambda _n: seen.append(journal_mode(db)))
    assert seen == ["delete"]
    assert journal_mode(db) == "wal" and connection_pragmas(engine) == before
    bad = focus_csv(tmp_path / "bad.csv", "2025-02", ["7.00", "$8.00"])
    with pytest.raises(FocusRowError):
        import_focus(engine, bad, source="focus:t")
    assert journal_mode(db) == "wal" and connection_pragmas(engine) == before
    assert stored_sums(engine, "focus:t") == (2, Decimal("3.00"), Decimal("3.00"))
    engine.dispose()


def test_it_stays_in_wal_when_another_connection_has_the_database_open(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.db"
    engine = open_store(f"sqlite:///{db}")
    reader = sqlite3.connect(db)
    try:
        reader.execute("SELECT count(*) FROM cost_record").fetchone()
        seen: list[str] = []
        path = focus_csv(tmp_path / "jan.csv", "2025-01", ["1.00", "2.00"])
        import_focus(
            engine,
            path,
            source="focus:t",
            progress=lambda _n: seen.append(reader.execute("PRAGMA journal_mode").fetchone()[0]),
        )
        assert seen == ["wal"]
        assert reader.execute("SELECT count(*) FROM cost_record").fetchone() == (2,)
    finally:
        reader.close()
    engine.dispose()
