"""The FOCUS file reader: formats, versions, validation messages, mapping and streaming."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import threading
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from collectors import focus, focus_arrow
from collectors.base import CostLine
from collectors.focus import FocusFileError, FocusRowError, open_focus
from collectors.focus_columns import RowMapper

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "focus"
SPEC = FIXTURES / "spec-v1.2"
COMMITMENT_FILES = sorted(SPEC.glob("commitment_discount_*/*.csv"))
SAAS_FILES = sorted(SPEC.glob("saas_examples/**/*.csv"))
# The spec's own example data has one impossible time, hour 30, in two files: those rows are
# rejected (never "fixed" silently) and the rest reconciles.
SPEC_TYPOS = {
    "commitment_discount_purchase_scenario_2.csv": 4,
    "commitment_discount_purchase_scenario_3.csv": 5,
}
BASE = ["BilledCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd"]
GOOD = ["1.50", "USD", "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_all(path: Path, default_currency: str | None = None) -> list[CostLine]:
    with open_focus(path, default_currency=default_currency) as reader:
        return list(reader.rows())


def without_keys(lines: list[CostLine]) -> list[CostLine]:
    """The lines with their row keys blanked (keys include the file name)."""
    return [dataclasses.replace(line, row_key="") for line in lines]


def raw_sums(path: Path, skip_lines: set[int]) -> tuple[Decimal, Decimal]:
    """BilledCost and EffectiveCost totals straight from the CSV text, line by line."""
    text = path.read_text(encoding="utf-8-sig").splitlines()
    header = text[0].split(",")
    billed = effective = Decimal(0)
    for number, line in enumerate(text[1:], start=2):
        if not line.strip() or number in skip_lines:
            continue
        row = dict(zip(header, line.split(","), strict=True))
        billed += Decimal(row["BilledCost"])
        effective += Decimal(row["EffectiveCost"])
    return billed, effective


@pytest.mark.parametrize("path", COMMITMENT_FILES, ids=lambda p: p.name)
def test_it_imports_the_spec_examples_and_reconciles_to_the_cent(path: Path) -> None:
    with open_focus(path, default_currency="USD") as reader:
        lines = list(reader.rows(on_error="skip"))
        rejected = [(e.line, e.column) for e in reader.rejected]
    typo = SPEC_TYPOS.get(path.name)
    assert rejected == ([(typo, "ChargePeriodEnd")] if typo else [])
    billed, effective = raw_sums(path, {typo} if typo else set())
    assert sum(line.billed_cost for line in lines) == billed
    assert sum(line.effective_cost or Decimal(0) for line in lines) == effective
    assert all(line.billing_currency == "USD" for line in lines)
    assert len({line.row_key for line in lines}) == len(lines)


def test_it_names_the_impossible_hour_in_the_spec_example() -> None:
    path = SPEC / "commitment_discount_scenarios" / "commitment_discount_purchase_scenario_2.csv"
    with open_focus(path, default_currency="USD") as reader, pytest.raises(FocusRowError) as err:
        list(reader.rows())
    assert str(err.value) == (
        f"{path}:4: ChargePeriodEnd: expected an ISO 8601 UTC datetime like"
        " 2025-01-01T00:00:00Z, got '2023-02-01T30:00:00Z'"
    )


def test_it_maps_a_spec_example_row_with_extra_and_null_literals() -> None:
    path = SPEC / "commitment_discount_scenarios" / "commitment_discount_usage_scenario_2.csv"
    (line,) = read_all(path, default_currency="USD")
    assert line.billed_cost == Decimal("0.00")
    assert line.effective_cost == Decimal("1.00")
    assert line.charge_period_start == datetime(2023, 1, 1, tzinfo=UTC)
    assert line.billing_period_end == datetime(2023, 2, 1, tzinfo=UTC)
    assert line.consumed_quantity is None  # the literal "null"
    assert line.consumed_unit is None
    assert line.provider == "unknown"
    assert line.charge_category == "Usage"
    assert line.extra == {
        "ChargeFrequency": "Usage-Based",
        "PricingCategory": "Committed",
        "CommitmentDiscountId": "<my-commitment-discount-id>",
        "CommitmentDiscountQuantity": "1.00",
        "CommitmentDiscountStatus": "Unused",
        "CommitmentDiscountUnit": "USD",
    }


def test_it_keeps_custom_and_unknown_columns_in_extra() -> None:
    path = SPEC / "commitment_discount_flexibility"
    path = (
        path
        / "one_hundred_percent_utilization_with_commitment_discount_flexibility_with_1_resource.csv"
    )
    with open_focus(path, default_currency="USD") as reader:
        lines = list(reader.rows())
        assert reader.info.unknown_columns == ("SkuPriceid",)
        assert reader.info.assumed_currency == "USD"
    assert lines[0].extra["x_CommitmentDiscountUnitPrice"] == "0.50"
    assert lines[0].extra["SkuPriceid"] == "VM_SMALL_COMMITTED_PURCHASE_NO_UPFRONT"
    assert lines[0].sku_id == "VM_SMALL"


def test_it_refuses_a_file_without_billing_currency_unless_given_a_default() -> None:
    path = SPEC / "commitment_discount_scenarios" / "commitment_discount_usage_scenario_1.csv"
    with pytest.raises(
        FocusFileError, match=r"missing mandatory FOCUS column\(s\) BillingCurrency"
    ):
        open_focus(path)
    with pytest.raises(ValueError, match="default_currency"):
        open_focus(path, default_currency="usd")


@pytest.mark.parametrize("path", SAAS_FILES, ids=lambda p: p.name)
def test_it_rejects_the_non_conformant_saas_examples(path: Path) -> None:
    with open_focus(path) as reader, pytest.raises(FocusRowError) as err:
        list(reader.rows())
    assert err.value.line == 2
    assert err.value.column in {"BilledCost", "BillingPeriodEnd"}
    assert str(err.value).startswith(f"{path}:2: {err.value.column}: expected ")
    with open_focus(path) as reader:
        assert list(reader.rows(on_error="skip")) == []
        assert reader.rejected_count == reader.rows_read > 0


def test_it_says_which_saas_value_is_wrong() -> None:
    money = SPEC / "saas_examples" / "simple_agreements" / "simple_saas_agreements_a1.csv"
    with open_focus(money) as reader, pytest.raises(FocusRowError) as err:
        list(reader.rows())
    assert str(err.value) == (
        f"{money}:2: BilledCost: expected a plain decimal number, got '$10,000.00 '"
    )
    date = SPEC / "saas_examples" / "virtual_currency_pricing_model_a1.csv"  # has a BOM
    with open_focus(date) as reader, pytest.raises(FocusRowError) as err:
        list(reader.rows())
    assert str(err.value) == (
        f"{date}:2: BillingPeriodEnd: expected an ISO 8601 UTC datetime like"
        " 2025-01-01T00:00:00Z, got '5/1/25'"
    )


@pytest.mark.parametrize("name", ["aws-cur-legacy-sample.csv", "azure-ea-sample.csv"])
def test_it_rejects_raw_cloud_exports_naming_the_missing_focus_columns(name: str) -> None:
    with pytest.raises(FocusFileError) as err:
        open_focus(FIXTURES / "raw-exports" / name)
    assert "missing mandatory FOCUS column(s) BilledCost, BillingCurrency, " in str(err.value)
    assert "ChargePeriodStart, ChargePeriodEnd" in str(err.value)


def test_it_rejects_focus_0_5_column_names(tmp_path: Path) -> None:
    header = [*BASE, "ChargeType", "Provider", "AmortizedCost"]
    path = write_csv(tmp_path / "old.csv", header, [[*GOOD, "Usage", "AWS", "1"]])
    with pytest.raises(FocusFileError) as err:
        open_focus(path)
    message = str(err.value)
    assert "pre-1.0 FOCUS column names are not supported" in message
    assert "ChargeType (renamed ChargeCategory in 1.0)" in message
    assert "Provider (renamed ProviderName in 1.0)" in message
    assert "AmortizedCost (renamed EffectiveCost in 1.0)" in message


@pytest.mark.parametrize(
    ("extra_column", "version"),
    [
        ("RegionName", "1.0"),
        ("SkuPriceDetails", "1.1"),
        ("InvoiceId", "1.2"),
        ("HostProviderName", "1.3"),
    ],
)
def test_it_detects_the_focus_version_from_the_columns(
    tmp_path: Path, extra_column: str, version: str
) -> None:
    path = write_csv(tmp_path / "v.csv", [*BASE, "ChargeClass", extra_column], [[*GOOD, "", ""]])
    with open_focus(path) as reader:
        assert reader.info.version == version
        assert reader.info.format == "csv"


def test_it_takes_the_provider_from_the_1_3_column_first(tmp_path: Path) -> None:
    header = [*BASE, "ServiceProviderName", "HostProviderName", "ProviderName", "PublisherName"]
    rows = [
        [*GOOD, "Acme AI", "AWS", "Old", "Pub"],
        [*GOOD, "null", "AWS", "Old", "Pub"],
        [*GOOD, "", "", "", "Pub"],
        [*GOOD, "", "AWS", "", ""],
    ]
    lines = read_all(write_csv(tmp_path / "p.csv", header, rows))
    assert [line.provider for line in lines] == ["Acme AI", "Old", "Pub", "unknown"]
    assert lines[0].extra == {
        "ServiceProviderName": "Acme AI",
        "HostProviderName": "AWS",
        "ProviderName": "Old",
        "PublisherName": "Pub",
    }


RULES = [
    ("BilledCost", "1,000.00", "expected a plain decimal number, got '1,000.00'"),
    ("BilledCost", "+1", "expected a plain decimal number, got '+1'"),
    ("BilledCost", " 1", "expected a plain decimal number, got ' 1'"),
    ("BilledCost", "1_000", "expected a plain decimal number, got '1_000'"),
    ("BilledCost", "NaN", "expected a plain decimal number, got 'NaN'"),
    ("BilledCost", "Infinity", "expected a plain decimal number, got 'Infinity'"),
    ("BilledCost", "€5", "expected a plain decimal number, got '€5'"),
    ("BilledCost", "1" * 80 + "x", "got '" + "1" * 57 + "...'"),
    ("BilledCost", "", "must not be empty or null, got ''"),
    ("BilledCost", "null", "must not be empty or null, got 'null'"),
    (
        "ChargePeriodStart",
        "5/1/25",
        "expected an ISO 8601 UTC datetime like 2025-01-01T00:00:00Z, got '5/1/25'",
    ),
    ("ChargePeriodStart", "2025-01-01", "got '2025-01-01'"),
    ("ChargePeriodStart", "2025-01-01 00:00:00Z", "got '2025-01-01 00:00:00Z'"),
    ("ChargePeriodStart", "2025-01-01T00:00:00", "got '2025-01-01T00:00:00' (no UTC offset)"),
    (
        "ChargePeriodEnd",
        "2024-12-31T23:00:00Z",
        "'2024-12-31T23:00:00Z' is before ChargePeriodStart '2025-01-01T00:00:00Z'",
    ),
    ("BillingCurrency", "usd", "expected a 3-letter ISO 4217 currency code like USD, got 'usd'"),
    ("BillingCurrency", "US$", "expected a 3-letter ISO 4217 currency code like USD, got 'US$'"),
    (
        "ChargeCategory",
        "usage",
        "expected one of Usage, Purchase, Tax, Credit, Adjustment, got 'usage'",
    ),
    ("ChargeClass", "Refund", "expected one of Correction, got 'Refund'"),
    (
        "ChargeFrequency",
        "Monthly",
        "expected one of One-Time, Recurring, Usage-Based, got 'Monthly'",
    ),
    (
        "PricingCategory",
        "On-Demand",
        "expected one of Standard, Dynamic, Committed, Other, got 'On-Demand'",
    ),
    ("CommitmentDiscountStatus", "used", "expected one of Used, Unused, got 'used'"),
    ("CapacityReservationStatus", "Idle", "expected one of Used, Unused, got 'Idle'"),
    ("ContractedCost", "1.0.0", "expected a plain decimal number, got '1.0.0'"),
    ("Tags", "not json", "expected a JSON object, got 'not json'"),
    ("Tags", "[1]", "expected a JSON object, got '[1]'"),
    ("Tags", '"team:web"', "expected a JSON object, got '\"team:web\"'"),
    ("Tags", '{"a":{"b":1}}', "key 'a' holds a dict"),
    ("Tags", '{"a":1,"a":2}', "expected a JSON object with unique keys, 'a' repeats"),
    ("SkuPriceDetails", '{"GpuCount":[8]}', "key 'GpuCount' holds a list"),
]


@pytest.mark.parametrize(("column", "value", "message"), RULES)
def test_it_rejects_a_bad_value_naming_file_line_column_and_value(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    header = BASE if column in BASE else [*BASE, column]
    good = GOOD if column in BASE else [*GOOD, ""]
    bad = list(good)
    bad[header.index(column)] = value
    path = write_csv(tmp_path / "bad.csv", header, [good, bad, good])
    with open_focus(path) as reader:
        lines = reader.rows()
        assert next(lines).row_key  # the good row before the bad one comes out first
        with pytest.raises(FocusRowError) as err:
            next(lines)
    assert str(err.value).startswith(f"{path}:3: {column}: ")
    assert message in str(err.value)
    assert (err.value.path, err.value.line, err.value.column) == (str(path), 3, column)
    with open_focus(path) as reader:
        assert len(list(reader.rows(on_error="skip"))) == 2
        assert [e.line for e in reader.rejected] == [3]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("BilledCost", "1E+3", Decimal("1E+3")),
        ("BilledCost", "-2.5e-3", Decimal("-0.0025")),
        ("BilledCost", ".5", Decimal("0.5")),
        (
            "BilledCost",
            "0.123456789012345678901234567890123",
            Decimal("0.123456789012345678901234567890123"),
        ),
        ("ChargePeriodStart", "2024-12-31T16:00:00-08:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("ChargePeriodStart", "2025-01-01T00:00:00+00:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("ChargePeriodStart", "2025-01-01T00:00:00.000Z", datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_it_accepts_e_notation_offsets_and_fractions(
    tmp_path: Path, column: str, value: str, expected: object
) -> None:
    row = list(GOOD)
    row[BASE.index(column)] = value
    (line,) = read_all(write_csv(tmp_path / "ok.csv", BASE, [row]))
    got = line.billed_cost if column == "BilledCost" else line.charge_period_start
    assert got == expected
    assert str(got) == str(expected)  # exact: no float, no rounding


def test_it_rejects_a_row_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text(",".join(BASE) + "\n" + ",".join(GOOD[:3]) + "\n")
    with open_focus(path) as reader, pytest.raises(FocusRowError) as err:
        list(reader.rows())
    assert str(err.value) == f"{path}:2: expected 4 fields like the header, got 3"


def test_it_parses_tags_and_treats_null_as_null_everywhere(tmp_path: Path) -> None:
    header = [*BASE, "Tags", "ResourceId", "x_Team", "SkuPriceDetails"]
    rows = [
        [*GOOD, '{"team":"ml","gpu":true,"n":2,"none":null}', "i-1", "ml", '{"GpuCount":8}'],
        [*GOOD, "null", "null", "null", "null"],
    ]
    first, second = read_all(write_csv(tmp_path / "t.csv", header, rows))
    assert first.tags == {"team": "ml", "gpu": True, "n": 2, "none": None}
    assert first.resource_id == "i-1"
    assert first.extra == {"x_Team": "ml", "SkuPriceDetails": '{"GpuCount":8}'}
    assert (second.tags, second.resource_id, second.extra) == ({}, None, {})


def test_it_counts_physical_lines_across_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    header = ",".join([*BASE, "ChargeDescription"])
    good = ",".join(GOOD)
    bad = ",".join(["oops", *GOOD[1:]])
    text = (
        f"{header}\r\n"
        f'{good},"two\nline"\r\n'  # lines 2-3
        f'{good},"three\r\nline\nrecord"\r\n'  # lines 4-6
        "\r\n"  # line 7: blank
        f"{bad},x\r\n"  # line 8
    )
    path = tmp_path / "multi.csv"
    path.write_bytes(text.encode())
    with open_focus(path) as reader:
        lines = list(reader.rows(on_error="skip"))
        assert [line.extra["ChargeDescription"] for line in lines] == [
            "two\nline",
            "three\r\nline\nrecord",
        ]
        assert [(e.line, e.column) for e in reader.rejected] == [(8, "BilledCost")]
        assert reader.rows_read == 3


def test_it_reads_gzip_by_its_magic_bytes_and_strips_a_bom(tmp_path: Path) -> None:
    source = SPEC / "commitment_discount_scenarios" / "commitment_discount_usage_scenario_3.csv"
    expected = read_all(source, default_currency="USD")
    data = source.read_bytes()
    (tmp_path / "bill.csv.gz").write_bytes(gzip.compress(data))
    (tmp_path / "misnamed.csv").write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + data)
    for name, fmt in [("bill.csv.gz", "csv.gz"), ("misnamed.csv", "csv.gz"), ("bom.csv", "csv")]:
        with open_focus(tmp_path / name, default_currency="USD") as reader:
            assert reader.info.format == fmt
            assert without_keys(list(reader.rows())) == without_keys(expected)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty file"),
        ("dup.csv", b"BilledCost,BilledCost\n", "duplicate column(s) in the header: BilledCost"),
        ("fake.parquet", b"BilledCost\n", "lacks the Parquet magic bytes"),
        ("bill.zip", b"PK\x03\x04rest", "a zip archive"),
        ("broken.parquet", b"PAR1 not really parquet", "unreadable Parquet"),
        ("latin1.csv", "BilledCost,Währung\n".encode("latin-1"), "unreadable header"),
    ],
)
def test_it_refuses_unreadable_files(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FocusFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_focus(path)


def test_it_stops_the_stream_on_broken_gzip_or_encoding(tmp_path: Path) -> None:
    body = (",".join(BASE) + "\n" + (",".join(GOOD) + "\n") * 5000).encode()
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(body)[:-200])
    with open_focus(truncated) as reader, pytest.raises(FocusFileError, match="unreadable"):
        list(reader.rows(on_error="skip"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(body + b"\xfc,USD,x,y\n")
    with open_focus(latin) as reader, pytest.raises(FocusFileError, match="unreadable"):
        list(reader.rows(on_error="skip"))


def test_it_keeps_the_first_errors_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(focus, "MAX_KEPT_ERRORS", 3)
    bad = ["x", *GOOD[1:]]
    rows = [GOOD, bad, bad, GOOD, bad, bad, bad, GOOD]
    path = write_csv(tmp_path / "many.csv", BASE, rows)
    with open_focus(path) as reader:
        assert len(list(reader.rows(on_error="skip"))) == 3
        assert [e.line for e in reader.rejected] == [3, 4, 6]
        assert reader.rejected_count == 5
        assert reader.rows_read == 8
        with pytest.raises(RuntimeError, match="only once"):
            list(reader.rows())


def test_it_gives_stable_distinct_row_keys(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dup.csv", BASE, [GOOD, GOOD, ["2", *GOOD[1:]]])
    first, again = read_all(path), read_all(path)
    assert [line.row_key for line in first] == [line.row_key for line in again]
    assert len({line.row_key for line in first}) == 3  # identical rows 1 and 2 differ by ordinal
    assert all(len(line.row_key) == 32 and int(line.row_key, 16) >= 0 for line in first)


def test_it_gives_row_keys_that_ascend_through_a_file_and_follow_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [[f"{n}.00", *GOOD[1:]] for n in range(1, 12)]
    path = write_csv(tmp_path / "k.csv", BASE, rows)
    keys = [line.row_key for line in read_all(path)]
    assert [key[:10] for key in keys] == [f"{n:010d}" for n in range(1, 12)]
    assert sorted(keys) == keys and len({key[10:] for key in keys}) == 1
    monkeypatch.setattr(focus_arrow, "BATCH_ROWS", 4)  # other batches, same keys
    assert [line.row_key for line in read_all(path)] == keys
    monkeypatch.setattr(focus, "ArrowCsv", no_arrow)  # the row path, same keys
    assert [line.row_key for line in read_all(path)] == keys
    rows[-1][0] = "12.00"  # one cell of the last row changes every key of the file
    changed = [line.row_key for line in read_all(write_csv(path, BASE, rows))]
    assert all(a[:10] == b[:10] and a[10:] != b[10:] for a, b in zip(keys, changed, strict=True))


def test_it_stops_the_parsing_thread_when_reading_stops_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(focus_arrow, "BLOCK_BYTES", 1 << 10)  # many blocks, the queue fills
    monkeypatch.setattr(focus_arrow, "PREFETCH_BLOCKS", 1)
    path = write_csv(tmp_path / "long.csv", BASE, [[f"{n}.00", *GOOD[1:]] for n in range(3000)])
    with open_focus(path) as reader:
        batches = reader.batches()
        assert next(batches).size < 3000
        batches.close()
    assert not [t for t in threading.enumerate() if t.name == "focus-csv" and t.is_alive()]
    with open_focus(path) as reader:
        assert sum(b.size for b in reader.batches()) == 3000  # and reads to the end


def test_it_maps_a_batch_the_same_column_by_column_as_row_by_row() -> None:
    columns = (*BASE, "Tags", "ProviderName", "ContractedCost", "x_Note", "BillingPeriodStart")
    rows = [
        [*GOOD, '{"a":1}', "AWS", "2.0", "n", "2025-01-01T00:00:00Z"],
        [*GOOD, "", "null", "", "", ""],
        ["1E+2", "EUR", "2025-01-01T01:00:00+01:00", GOOD[3], "null", "GCP", "3", "null", "null"],
    ]
    mapper = RowMapper(columns, None)
    assert mapper.many(rows, 7) == [mapper.one(row, n) for n, row in enumerate(rows, 7)]


def parquet_from_csv(source: Path, target: Path, *, typed: bool) -> None:
    with source.open(newline="", encoding="utf-8-sig") as fh:
        header, *rows = [row for row in csv.reader(fh) if row]
    arrays = []
    for i, name in enumerate(header):
        texts = [None if row[i] in ("", "null") else row[i] for row in rows]
        if typed and name.endswith(("Start", "End")):
            # aware UTC and naive (taken as UTC) timestamps
            values = [datetime.fromisoformat(t) for t in texts if t is not None]
            tz = "UTC" if name.startswith("Charge") else None
            if tz is None:
                values = [v.replace(tzinfo=None) for v in values]
            arrays.append(pa.array(values, type=pa.timestamp("ms", tz=tz)))
        elif typed and name in {
            "BilledCost",
            "EffectiveCost",
            "ListCost",
            "x_CommitmentDiscountUnitPrice",
        }:
            scales = {len(t.partition(".")[2]) for t in texts if t is not None}
            assert len(scales) == 1  # one scale per column, so the text round-trips
            arrays.append(
                pa.array(
                    [None if t is None else Decimal(t) for t in texts],
                    type=pa.decimal128(18, scales.pop()),
                )
            )
        else:
            arrays.append(pa.array(texts, type=pa.string()))
    pq.write_table(pa.table(arrays, names=header), target, row_group_size=2)


@pytest.mark.parametrize("typed", [False, True], ids=["strings", "typed"])
def test_it_reads_parquet_into_the_same_lines_as_csv(tmp_path: Path, typed: bool) -> None:
    source = SPEC / "commitment_discount_flexibility"
    source = (
        source
        / "one_hundred_percent_utilization_with_commitment_discount_flexibility_with_2_resources.csv"
    )
    target = tmp_path / "bill.parquet"
    parquet_from_csv(source, target, typed=typed)
    with open_focus(target, default_currency="USD") as reader:
        assert reader.info.format == "parquet"
        lines = list(reader.rows())
    assert without_keys(lines) == without_keys(read_all(source, default_currency="USD"))


def test_it_reports_parquet_errors_by_row_number(tmp_path: Path) -> None:
    table = pa.table(
        {
            "BilledCost": pa.array(["1.00", "abc"]),
            "BillingCurrency": pa.array(["USD", "USD"]),
            "ChargePeriodStart": pa.array([datetime(2025, 1, 1, tzinfo=UTC)] * 2),
            "ChargePeriodEnd": pa.array([datetime(2025, 1, 2, tzinfo=UTC)] * 2),
            "Tags": pa.array([[("team", "ml")], None], type=pa.map_(pa.string(), pa.string())),
        }
    )
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with open_focus(path) as reader:
        lines = list(reader.rows(on_error="skip"))
        assert [str(e) for e in reader.rejected] == [
            f"{path}:row 2: BilledCost: expected a plain decimal number, got 'abc'"
        ]
    assert lines[0].tags == {"team": "ml"}
    assert lines[0].charge_period_end == datetime(2025, 1, 2, tzinfo=UTC)


def test_it_refuses_a_parquet_column_type_it_cannot_read(tmp_path: Path) -> None:
    table = pa.table({"BilledCost": pa.array([b"\x00"], type=pa.binary())})
    path = tmp_path / "bin.parquet"
    pq.write_table(table, path)
    with pytest.raises(
        FocusFileError, match="column BilledCost has unsupported Parquet type binary"
    ):
        open_focus(path)


def generate(path: Path, rows: int) -> Path:
    header = [*BASE, "ServiceName", "ResourceId", "Tags", "x_GpuHours"]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for n in range(rows):
            hour = n % 720
            start = f"2025-01-{1 + hour // 24:02d}T{hour % 24:02d}:00:00Z"
            writer.writerow(
                [f"{n % 997}.{n % 89:02d}", "USD", start, start, "GPU", f"i-{n}", '{"t":"a"}', "1"]
            )
    return path


def peak_while_streaming(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        with open_focus(path) as reader:
            count = sum(1 for _ in reader.rows())
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_it_streams_in_flat_memory(tmp_path: Path) -> None:
    small = generate(tmp_path / "small.csv", 20_000)
    large = generate(tmp_path / "large.csv", 100_000)
    small_rows, small_peak = peak_while_streaming(small)
    large_rows, large_peak = peak_while_streaming(large)
    assert (small_rows, large_rows) == (20_000, 100_000)
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


# --- the columnar (Arrow) path and its hand-over to the row path -------------------------------

VARIED_HEADER = [
    *BASE,
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "EffectiveCost",
    "ConsumedQuantity",
    "ProviderName",
    "PublisherName",
    "ResourceId",
    "Tags",
    "ChargeCategory",
    "x_Note",
    "SkuPriceDetails",
    "ChargeDescription",
]


def varied_rows(count: int) -> list[list[str]]:
    """Valid rows exercising every spelling and escape the two paths must agree on."""
    costs = ["1.50", "1E+3", "-2.5e-3", ".5", "0.123456789012345678901234567890123", "7."]
    starts = ["2025-01-01T00:00:00Z", "2024-12-31T16:00:00-08:00", "2025-01-01T00:00:00.000Z"]
    tags = ['{"team":"ml","gpu":true,"n":2,"none":null}', "", "{}", '{"é":"ü"}', "null"]
    notes = ['say "hi"', "back\\slash", "tab\there", "naïve", "line\nbreak", "plain", "", "null"]
    rows = []
    for n in range(count):
        rows.append(
            [
                costs[n % len(costs)],
                "USD" if n % 5 else "EUR",
                starts[n % len(starts)],
                "2025-01-01T01:00:00Z",
                "" if n % 4 == 0 else "2025-01-01T00:00:00Z",
                "" if n % 4 == 0 else "2025-02-01T00:00:00Z",
                ["3.25", "", "null"][n % 3],
                "null" if n % 2 else "12",
                "" if n % 3 == 0 else "AWS",
                "Pub",
                f"i-{n}",
                tags[n % len(tags)],
                ["Usage", "Credit", ""][n % 3],
                notes[n % len(notes)],
                '{"GpuCount":8}' if n % 2 else "",
                "Amazon Web Services, Inc.",
            ]
        )
    return rows


def read_lines(path: Path) -> tuple[list[CostLine], list[str], int]:
    with open_focus(path, default_currency="USD") as reader:
        lines = list(reader.rows(on_error="skip"))
        return lines, [str(error) for error in reader.rejected], reader.rows_read


def no_arrow(*_args: object, **_kwargs: object) -> None:
    raise OSError("columnar path disabled by the test")


def spy_on_columnar(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Patch ``ArrowMapper.map`` to record, per batch, whether the columnar path took it."""
    taken: list[bool] = []
    real = focus_arrow.ArrowMapper.map

    def map_(self: focus_arrow.ArrowMapper, batch: object, first: int) -> object:
        result = real(self, batch, first)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(focus_arrow.ArrowMapper, "map", map_)
    return taken


def test_it_reads_the_same_lines_by_columns_as_by_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "varied.csv", VARIED_HEADER, varied_rows(60))
    monkeypatch.setattr(focus_arrow, "BATCH_ROWS", 7)
    taken = spy_on_columnar(monkeypatch)
    columnar = read_lines(path)
    assert taken and all(taken)  # every batch went column by column
    assert columnar[0][4].extra["x_Note"] == "line\nbreak"
    monkeypatch.setattr(focus, "ArrowCsv", no_arrow)
    assert read_lines(path) == columnar
    assert len(columnar[0]) == 60 and columnar[1] == []


def test_it_offers_floats_and_json_that_equal_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "varied.csv", VARIED_HEADER, varied_rows(30))
    monkeypatch.setattr(focus_arrow, "BATCH_ROWS", 8)
    with open_focus(path) as reader:
        batches = list(reader.batches())
    assert len(batches) == 4
    for batch in batches:
        for name in ("billed_cost", "effective_cost", "consumed_quantity"):
            values = batch.column(name)
            assert batch.floats(name) == [None if v is None else float(v) for v in values]
        for name in ("tags", "extra"):
            compact = [json.dumps(v, separators=(",", ":")) for v in batch.column(name)]
            assert batch.json(name) == compact
        coded = batch.codes("charge_period_start")
        assert coded is not None
        codes, values = coded
        assert [values[c] for c in codes] == list(batch.column("charge_period_start"))


def test_it_hands_over_at_the_first_bad_batch_counting_physical_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = ",".join([*BASE, "ChargeDescription"])
    good = ",".join(GOOD)
    bad = ",".join(["oops", *GOOD[1:]])
    text = (
        f"{header}\r\n"
        f'{good},"two\nline"\r\n'  # lines 2-3: columnar batch 1
        f'{good},"three\r\nline\nrecord"\r\n'  # lines 4-6: columnar batch 2
        "\r\n"  # line 7: blank
        f"{bad},x\r\n"  # line 8: batch 3 is bad, the row path takes over
        f"{good},y\r\n"  # line 9
        f"{bad},z\r\n"  # line 10
    )
    path = tmp_path / "multi.csv"
    path.write_bytes(text.encode())
    monkeypatch.setattr(focus_arrow, "BATCH_ROWS", 1)
    taken = spy_on_columnar(monkeypatch)
    columnar = read_lines(path)
    assert taken == [True, True, False]
    assert [line.extra["ChargeDescription"] for line in columnar[0]] == [
        "two\nline",
        "three\r\nline\nrecord",
        "y",
    ]
    assert columnar[1] == [
        f"{path}:8: BilledCost: expected a plain decimal number, got 'oops'",
        f"{path}:10: BilledCost: expected a plain decimal number, got 'oops'",
    ]
    assert columnar[2] == 5
    monkeypatch.setattr(focus, "ArrowCsv", no_arrow)
    assert read_lines(path) == columnar
    with open_focus(path) as reader:
        lines = reader.rows()
        assert [next(lines).extra["ChargeDescription"] for _ in range(2)] == [
            "two\nline",
            "three\r\nline\nrecord",
        ]
        with pytest.raises(FocusRowError, match=":8: BilledCost: "):
            next(lines)


def test_it_hands_over_when_arrow_cannot_read_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [",".join(GOOD)] * 6
    rows[3] = ",".join(GOOD[:3])  # line 5: a field short, which Arrow cannot parse
    path = tmp_path / "short.csv"
    path.write_text(",".join(BASE) + "\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(focus_arrow, "BLOCK_BYTES", 100)  # about two rows a block
    taken = spy_on_columnar(monkeypatch)
    lines, errors, read = read_lines(path)
    assert errors == [f"{path}:5: expected 4 fields like the header, got 3"]
    assert (len(lines), read) == (5, 6)
    assert taken and all(taken)  # blocks before the bad one went column by column
    monkeypatch.setattr(focus, "ArrowCsv", no_arrow)
    assert read_lines(path) == (lines, errors, read)


ALL_SPEC_CSV = sorted(SPEC.rglob("*.csv"))


@pytest.mark.parametrize("path", ALL_SPEC_CSV, ids=lambda p: p.name)
def test_it_reads_every_spec_example_the_same_on_both_paths(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columnar = read_lines(path)
    monkeypatch.setattr(focus, "ArrowCsv", no_arrow)
    assert read_lines(path) == columnar


def test_row_keys_are_stable_per_file_and_distinct_across_part_files(tmp_path: Path) -> None:
    text = (
        "BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd\n"
        "1.00,USD,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z\n"
    )
    first, second = tmp_path / "part-00001.csv", tmp_path / "part-00002.csv"
    first.write_text(text)
    second.write_text(text)
    keys_first = [line.row_key for line in read_all(first)]
    assert keys_first == [line.row_key for line in read_all(first)]  # re-import: same keys
    assert keys_first != [line.row_key for line in read_all(second)]  # identical part files
