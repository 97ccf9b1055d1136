"""Streaming reader of FOCUS cost files (CSV, gzip CSV, Parquet) into validated ``CostLine``s.

``open_focus(path)`` sniffs the format from the first bytes (gzip magic ``1f 8b``, Parquet
``PAR1``, anything else is UTF-8 CSV with or without a BOM), reads the header, detects the
FOCUS version from the columns (the oldest version defining all of them, see
``focus_columns.detect_version``) and checks the columns an import needs: ``BilledCost``,
``BillingCurrency``, ``ChargePeriodStart``, ``ChargePeriodEnd``. Every other column is optional.

``FocusReader.rows()`` then streams one ``CostLine`` per data row, validating each cell:

- the literal ``null`` and the empty string are null in every column;
- decimals are plain or E-notation (``Decimal(text)``; no currency symbol, separator, ``+`` or
  space); datetimes are ISO 8601 ``YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM)``: an explicit offset is
  required (naive and other formats such as ``5/1/25`` are rejected) and converted to UTC;
- ``ChargeCategory``, ``ChargeClass``, ``ChargeFrequency``, ``PricingCategory``,
  ``CommitmentDiscountStatus``/``Category``, ``CapacityReservationStatus`` take the FOCUS 1.2
  values; ``BillingCurrency`` is an ISO 4217 code; ``Tags``/``SkuPriceDetails`` are JSON
  objects with unique keys and scalar values; ``ChargePeriodEnd >= ChargePeriodStart`` (and the
  same for the billing period).

Mapping: ``CostLine.provider`` is the first non-null of ``ServiceProviderName`` (1.3),
``ProviderName``, ``PublisherName``, else ``"unknown"``. ``CostLine.extra`` keeps every other
non-null cell (``x_`` columns, FOCUS columns without a ``CostLine`` field, unknown columns and
the provider columns themselves) as its validated text, so nothing is lost.

Two paths give the same lines: CSV files are parsed and validated a batch at a time by Arrow
(``focus_arrow``: whole columns at once, handed out as ``LineColumns`` by ``batches()``); the
first batch it does not accept (a bad or unusual cell, a row of the wrong width, bad UTF-8)
and the rest of the file go through the row path (Python's ``csv`` module and
``focus_columns.RowMapper``), which names every bad row by its physical line. Parquet always
takes the row path.

``row_key`` is the row's ordinal in the file (10 decimal digits) followed by 22 hex digits of
SHA-256 over the file name and the file's bytes (``focus_columns.row_keys``), hashed in one
pass when the file is opened. The same file always gives the same keys, identical rows get
distinct keys without remembering earlier rows (so memory stays flat), identical part files of
one export differ by name, and a file's keys ascend, so storing it appends to the key index.
Changing any byte of a file changes all its keys, which is fine because an import replaces
whole billing periods.

Error contract: ``open_focus`` raises ``FocusFileError`` (a ``ValueError``) for unreadable,
unsupported or non-FOCUS files; ``rows()`` raises ``FocusRowError`` (a ``ValueError``) at the
first bad row when ``on_error="stop"`` and records it when ``"skip"``, and raises
``FocusFileError`` for damage that ends the stream (broken gzip, CSV quoting, bad UTF-8).
``batches()`` behaves the same. (The Arrow path reads a stray character after a closing
quote, ``"a"b``, as part of the value where the row path refuses the file: see
``focus_arrow``.)
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import count, islice
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from collectors.base import CostLine
from collectors.focus_arrow import READ_ERRORS, ArrowCsv, ArrowMapper
from collectors.focus_batch import LineColumns
from collectors.focus_columns import (
    COLUMNS,
    LEGACY_RENAMES,
    NO_FILE_KEY,
    REQUIRED,
    BadCell,
    BatchFailed,
    CellError,
    RowMapper,
    detect_version,
    file_key,
    legacy_columns,
    to_currency,
)

logger = logging.getLogger(__name__)

MAX_KEPT_ERRORS = 1000
"""Rejected rows kept in ``FocusReader.rejected``; later ones are only counted."""

BATCH_ROWS = 1024
"""Rows validated together, column by column (a bad row sends its batch row by row)."""

KEY_CHUNK_BYTES = 1 << 20
"""Bytes read at a time while hashing a file for its row keys."""

OnError = Literal["stop", "skip"]


class FocusFileError(ValueError):
    """The file as a whole cannot be read as FOCUS (format, header, encoding, framing)."""


class FocusRowError(ValueError):
    """One bad data row: ``str()`` is ``"{path}:{line}: {column}: {message}"``.

    ``line`` is the physical line where the CSV record starts (the header is line 1); for
    Parquet it is the 1-based row number and ``str()`` says ``row N`` instead.
    """

    def __init__(
        self, path: str, line: int, column: str | None, message: str, *, row_based: bool = False
    ) -> None:
        where = f"row {line}" if row_based else str(line)
        text = f"{path}:{where}: {column}: {message}" if column else f"{path}:{where}: {message}"
        super().__init__(text)
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.row_based = row_based


@dataclass(frozen=True)
class FocusFileInfo:
    """What ``open_focus`` learnt from the header."""

    version: str
    """``"1.0"``..``"1.3"``: the oldest FOCUS version defining every column present."""
    columns: tuple[str, ...]
    format: Literal["csv", "csv.gz", "parquet"] = "csv"
    unknown_columns: tuple[str, ...] = ()
    """Columns that are neither FOCUS nor ``x_`` (kept in ``extra``; worth a warning)."""
    assumed_currency: str | None = None
    """Set when the file has no ``BillingCurrency`` column and ``default_currency`` was used."""


# --- sources: (line or row number, cell texts) -------------------------------------------------

Source = Iterator[tuple[Sequence[int], Sequence[Sequence[str]]]]
"""Batches of (line or row numbers, rows of cell texts)."""
Sources = Callable[[int], Source]
"""A file's ``Source`` after skipping its first N data records (already read another way)."""
_STREAM_ERRORS = (csv.Error, UnicodeDecodeError, EOFError, OSError, zlib.error)


def _sniff(path: Path) -> Literal["csv", "csv.gz", "parquet"]:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise FocusFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if magic.startswith(b"\x1f\x8b"):
        return "csv.gz"
    if magic == b"PAR1":
        return "parquet"
    if magic.startswith(b"PK\x03\x04"):
        raise FocusFileError(f"{path}: a zip archive; unzip it and import the file inside")
    if path.suffix.lower() == ".parquet":
        raise FocusFileError(f"{path}: named .parquet but lacks the Parquet magic bytes PAR1")
    return "csv"


def _file_part(path: Path) -> str:
    """``focus_columns.file_key`` of the file (one pass over its bytes)."""

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as fh:
            while chunk := fh.read(KEY_CHUNK_BYTES):
                yield chunk

    try:
        return file_key(path.name, chunks())
    except OSError as exc:
        raise FocusFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _record_lines(row: Sequence[str]) -> int:
    """Physical lines a CSV record spans (quoted fields may hold CR, LF or CRLF)."""
    text = "".join(row)
    return 1 + text.count("\n") + text.count("\r") - text.count("\r\n")


def _csv_batches(path: Path, stream: IO[str], reader: Any, skip: int = 0) -> Source:
    try:
        while skip > 0:  # records the columnar path delivered (blank lines are no records)
            record = next(reader, None)
            if record is None:
                break
            skip -= 1 if record else 0
        done = reader.line_num  # physical lines read so far
        while rows := list(islice(reader, BATCH_ROWS)):
            lines: Sequence[int] = range(done + 1, done + 1 + len(rows))
            if reader.line_num - done != len(rows):  # some record spans several lines
                starts, at = [], done + 1
                for row in rows:
                    starts.append(at)
                    at += _record_lines(row) if row else 1
                lines = starts
            done = reader.line_num
            if [] in rows:  # csv yields [] for a blank line
                kept = [(n, row) for n, row in zip(lines, rows, strict=True) if row]
                lines, rows = [n for n, _ in kept], [row for _, row in kept]
            if rows:
                yield lines, rows
    except _STREAM_ERRORS as exc:
        raise FocusFileError(f"{path}:{reader.line_num + 1}: unreadable: {exc}") from None
    finally:
        stream.close()


def _open_csv(path: Path, compressed: bool) -> tuple[tuple[str, ...], Sources, Callable[[], None]]:
    # utf-8-sig strips a leading BOM; newline="" lets csv handle quoted newlines itself
    # the stream is closed by the row generator or by FocusReader.close()
    stream: IO[str] = (
        gzip.open(path, "rt", encoding="utf-8-sig", newline="")  # noqa: SIM115
        if compressed
        else path.open(encoding="utf-8-sig", newline="")
    )
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader, None)
    except _STREAM_ERRORS as exc:
        stream.close()
        raise FocusFileError(f"{path}:1: unreadable header: {exc}") from None
    if not header:
        stream.close()
        raise FocusFileError(f"{path}: empty file (no header line)")
    return tuple(header), partial(_csv_batches, path, stream, reader), stream.close


def _iso_utc(value: datetime) -> str:
    # Parquet timestamps without a time zone are taken as UTC, as FOCUS prescribes
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"


def _parquet_renderer(path: Path, name: str, type_: Any) -> Callable[[Any], list[str]]:
    """Typed Parquet values -> the text a FOCUS CSV would hold (null -> "")."""
    import pyarrow as pa  # type: ignore[import-untyped]

    types = pa.types
    if types.is_dictionary(type_):
        type_ = type_.value_type
    if types.is_timestamp(type_):
        unit = pa.timestamp("us", tz=type_.tz)  # datetime holds microseconds

        def timestamps(array: Any) -> list[str]:
            values = array.cast(unit, safe=False).to_pylist()
            return ["" if v is None else _iso_utc(v) for v in values]

        return timestamps

    def kind(*names: str) -> bool:
        return any(getattr(types, n, lambda _t: False)(type_) for n in names)

    fmt: Callable[[Any], str]
    if kind(
        "is_string", "is_large_string", "is_string_view", "is_null", "is_decimal", "is_integer"
    ):
        fmt = str
    elif kind("is_floating"):
        fmt = repr  # shortest round-trip text, then Decimal(text) like any CSV cell
    elif kind("is_boolean"):
        fmt = lambda v: "true" if v else "false"  # noqa: E731
    elif kind("is_date"):
        fmt = lambda v: f"{v.isoformat()}T00:00:00Z"  # noqa: E731
    elif kind("is_map"):
        fmt = lambda v: json.dumps(dict(v), default=str)  # noqa: E731
    elif kind("is_struct", "is_list", "is_large_list"):
        fmt = lambda v: json.dumps(v, default=str)  # noqa: E731
    else:
        raise FocusFileError(f"{path}: column {name} has unsupported Parquet type {type_}")

    def render(array: Any) -> list[str]:
        return ["" if v is None else fmt(v) for v in array.to_pylist()]

    return render


def _open_parquet(path: Path) -> tuple[tuple[str, ...], Sources, Callable[[], None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    fh = path.open("rb")
    try:
        pfile = pq.ParquetFile(fh)
        schema = pfile.schema_arrow
        columns = tuple(str(name) for name in schema.names)
        renderers = [_parquet_renderer(path, f.name, f.type) for f in schema]
    except (pa.ArrowException, OSError) as exc:
        fh.close()
        raise FocusFileError(f"{path}: unreadable Parquet: {exc}") from None
    except FocusFileError:
        fh.close()
        raise

    def batches(skip: int) -> Source:
        assert skip == 0  # Parquet has no columnar path to hand over from
        done = 0
        try:
            for batch in pfile.iter_batches(batch_size=BATCH_ROWS):
                texts = [render(batch.column(i)) for i, render in enumerate(renderers)]
                rows = list(zip(*texts, strict=True))
                yield range(done + 1, done + 1 + len(rows)), rows
                done += len(rows)
        except (pa.ArrowException, OSError) as exc:
            raise FocusFileError(f"{path}:row {done + 1}: unreadable Parquet: {exc}") from None
        finally:
            fh.close()

    return columns, batches, fh.close


# --- the reader ---------------------------------------------------------------------------------


class FocusReader:
    """An open FOCUS file. Use as a context manager; iterate ``rows()`` or ``batches()`` once.

    Memory does not grow with the file: rows are read, validated and handed out a batch at a
    time. CSV goes through the columnar path (``focus_arrow``) while every batch is clean and
    through the row path from the first batch that is not (see ``batches``).
    """

    def __init__(
        self,
        path: Path,
        info: FocusFileInfo,
        sources: Sources,
        mapper: RowMapper,
        close: Callable[[], None],
        arrow: Callable[[], ArrowCsv] | None = None,
        file_part: str = NO_FILE_KEY,
    ) -> None:
        self.path = path
        self.info = info
        self.rejected: list[FocusRowError] = []
        self.rejected_count = 0
        self.rows_read = 0
        self._sources = sources
        self._mapper = mapper
        self._close = close
        self._arrow = arrow
        self._file_part = file_part
        self._started = False

    def __enter__(self) -> FocusReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file. Never raises."""
        try:
            self._close()
        except OSError:  # pragma: no cover - closing a file opened for reading
            logger.debug("closing %s failed", self.path, exc_info=True)

    def rows(self, *, on_error: OnError = "stop") -> Iterator[CostLine]:
        """Yield each valid data row as a ``CostLine``.

        ``"stop"`` raises ``FocusRowError`` at the first bad row; ``"skip"`` records it in
        ``rejected`` (the first ``MAX_KEPT_ERRORS``; ``rejected_count`` counts all) and goes on.
        ``rows_read`` counts data rows, bad ones included. Raises ``FocusFileError`` for damage
        that ends the stream, ``RuntimeError`` when called a second time (or after
        ``batches``).
        """
        for batch in self.batches(on_error=on_error):
            yield from batch.lines()

    def batches(self, *, on_error: OnError = "stop") -> Iterator[LineColumns]:
        """Yield the valid rows batch by batch, column by column (same rows as ``rows()``).

        A CSV file is parsed and checked a batch at a time by Arrow; the first batch holding
        anything it does not accept (or that it cannot read: bad UTF-8, a row of the wrong
        width, broken gzip) and the rest of the file go through the row path instead, which
        names each bad row exactly (``path:line: column: message``, physical lines) and keeps
        the same row keys. In stop mode the valid rows before a bad one are yielded before
        ``FocusRowError`` is raised. Errors as for ``rows()``.
        """
        if on_error not in ("stop", "skip"):
            raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
        if self._started:
            raise RuntimeError("FocusReader.rows() can be iterated only once")
        self._started = True
        done = 0
        if self._arrow is not None:
            handed_over = yield from self._columnar()
            if handed_over is None:
                logger.debug("%s: %d rows read (columnar)", self.path, self.rows_read)
                return
            done = handed_over
        yield from self._row_batches(self._sources(done), on_error)
        logger.debug(
            "%s: %d rows read, %d rejected", self.path, self.rows_read, self.rejected_count
        )

    def _columnar(self) -> Generator[LineColumns, None, int | None]:
        """Arrow batches while they are clean; the records delivered at a hand-over, else
        ``None``."""
        assert self._arrow is not None
        mapper = ArrowMapper(self.info.columns, self.info.assumed_currency, self._file_part)
        done = 0
        try:
            stream = self._arrow()
        except READ_ERRORS as exc:
            logger.debug("%s: row path from the start: %s", self.path, exc)
            return 0
        try:
            for batch in stream:
                columns = mapper.map(batch, done + 1)
                if columns is None:
                    logger.debug("%s: row path from data row %d (a bad row)", self.path, done + 1)
                    return done
                self.rows_read += columns.size
                done += columns.size
                yield columns
        except READ_ERRORS as exc:
            logger.debug("%s: row path from data row %d: %s", self.path, done + 1, exc)
            return done
        finally:
            stream.close()
        return None

    def _row_batches(self, source: Source, on_error: OnError) -> Iterator[LineColumns]:
        path, row_based = str(self.path), self.info.format == "parquet"
        width, mapper = len(self.info.columns), self._mapper
        for lines, rows in source:
            first = self.rows_read + 1
            self.rows_read += len(rows)
            if all(len(cells) == width for cells in rows):
                try:
                    yield LineColumns.from_lines(mapper.many(rows, first))
                    continue
                except BatchFailed:
                    pass
            good: list[CostLine] = []
            for ordinal, line, cells in zip(count(first), lines, rows):
                try:
                    if len(cells) != width:
                        raise BadCell(
                            None, f"expected {width} fields like the header, got {len(cells)}"
                        )
                    good.append(mapper.one(cells, ordinal))
                except BadCell as bad:
                    error = FocusRowError(path, line, bad.column, bad.message, row_based=row_based)
                    if on_error == "stop":
                        if good:
                            yield LineColumns.from_lines(good)
                        raise error from None
                    self.rejected_count += 1
                    if len(self.rejected) < MAX_KEPT_ERRORS:
                        self.rejected.append(error)
            if good:
                yield LineColumns.from_lines(good)


def _check_header(path: Path, columns: tuple[str, ...], default_currency: str | None) -> None:
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise FocusFileError(f"{path}: duplicate column(s) in the header: {', '.join(duplicates)}")
    missing = [c for c in REQUIRED if c not in columns]
    if default_currency is not None and "BillingCurrency" in missing:
        missing.remove("BillingCurrency")
    legacy = legacy_columns(columns)
    problems = []
    if missing:
        hint = " (or give a default currency)" if missing == ["BillingCurrency"] else ""
        problems.append(f"missing mandatory FOCUS column(s) {', '.join(missing)}{hint}")
    if legacy and (not missing or len(legacy) > 1):
        renames = ", ".join(f"{old} (renamed {LEGACY_RENAMES[old]} in 1.0)" for old in legacy)
        problems.append(f"pre-1.0 FOCUS column names are not supported: {renames}")
    if problems:
        raise FocusFileError(f"{path}: not a FOCUS 1.0-1.3 file: {'; '.join(problems)}")


def open_focus(path: Path, *, default_currency: str | None = None) -> FocusReader:
    """Open a FOCUS CSV (plain or gzip, BOM or not) or Parquet file and check its header.

    ``default_currency`` (an ISO 4217 code) is used only when the file has no
    ``BillingCurrency`` column (the FOCUS spec's own example files omit it); without it such a
    file is refused. Raises ``FocusFileError`` for an unreadable or unsupported file, duplicate
    or pre-1.0 column names, or missing mandatory columns (all of them listed); ``ValueError``
    for a malformed ``default_currency``.
    """
    if default_currency is not None:
        try:
            to_currency(default_currency)
        except CellError as bad:
            raise ValueError(f"default_currency: {bad}") from None
    fmt = _sniff(path)
    arrow: Callable[[], ArrowCsv] | None = None
    if fmt == "parquet":
        columns, sources, close = _open_parquet(path)
    else:
        columns, sources, close = _open_csv(path, compressed=fmt == "csv.gz")
        arrow = partial(ArrowCsv, path, compressed=fmt == "csv.gz", columns=columns)
    try:
        _check_header(path, columns, default_currency)
    except FocusFileError:
        close()
        raise
    assumed = default_currency if "BillingCurrency" not in columns else None
    unknown = tuple(c for c in columns if c not in COLUMNS and not c.startswith("x_"))
    info = FocusFileInfo(detect_version(columns), columns, fmt, unknown, assumed)
    try:
        part = _file_part(path)
    except FocusFileError:
        close()
        raise
    if unknown:
        logger.info("%s: non-FOCUS columns kept in extra: %s", path, ", ".join(unknown))
    mapper = RowMapper(columns, assumed, part)
    return FocusReader(path, info, sources, mapper, close, arrow, part)


__all__ = [
    "MAX_KEPT_ERRORS",
    "FocusFileError",
    "FocusFileInfo",
    "FocusReader",
    "FocusRowError",
    "open_focus",
]
