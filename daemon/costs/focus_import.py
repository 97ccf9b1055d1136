"""Importing FOCUS files (CSV, gzip CSV, Parquet) into the ``cost_record`` table.

A billing period is the unit of replacement. Within one import call (one transaction), every
billing period met for the first time is deleted for the source before its first line is
inserted, so re-importing an export replaces it: a reader sees the old lines or the new ones,
never a mix, and nothing is counted twice. Lines without ``BillingPeriodStart`` are filed under
the calendar month (UTC) of their ``ChargePeriodStart``, stored with that period, so that they
too are replaced on re-import.

Exports split into several files per billing period (AWS Data Exports' ``-00001``,
``-00002`` parts) must be imported in ONE call (``import_focus_files``): a period is replaced
once per call, so the parts add up instead of each one replacing the previous. The CLI does
this for all paths of one source, and ``FocusWatcher`` does it for the files of one folder,
re-reading the unchanged files that share a period with a changed one.

Speed (``bench/bench_focus_import.py``): lines go to the driver as plain tuples a batch at a
time (``executemany`` on SQLite, ``COPY`` on PostgreSQL), row keys ascend through a file so the
unique key index is appended to, and a first import into an empty table on SQLite builds the
secondary indexes once at the end instead of line by line, in the same transaction.

Error contract: a file that cannot be read (``FocusFileError``), a bad row in stop mode
(``FocusRowError``, ``path:line: column: message``) or a line whose row key is already stored
for the source (``FocusImportError``) rolls the whole call back and is raised; the previous
lines stay. In skip mode bad rows are skipped and reported in ``ImportResult``. Database
errors propagate as SQLAlchemy's ``DBAPIError`` subclasses (after the rollback).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Numeric
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from collectors.base import CostLine
from collectors.focus import FocusFileError, FocusRowError, open_focus
from collectors.focus_batch import LineColumns
from daemon.costs.ledger import add_lines, delete_billing_period
from daemon.store.models import CostRecord, as_utc

logger = logging.getLogger(__name__)

OnError = Literal["stop", "skip"]
Progress = Callable[[int], None]

BULK_CACHE_KIB = 32 * 1024
"""SQLite page cache (KiB) of the import's connection while it imports."""
MAX_ERRORS = 20
"""Rejected rows listed in ``ImportResult.errors``; ``rows_rejected`` counts them all."""
FOCUS_SUFFIXES = (".csv", ".csv.gz", ".parquet")
"""File names the watcher picks up."""

_GENERIC_FOLDER = re.compile(r"^(?:data|[^=]+=.*|[\d_.:T-]+|[0-9a-fA-F]{32}|[0-9a-fA-F-]{36})$")
"""Folder names that say nothing about the export: ``data``, partitions (``BILLING_PERIOD=
2025-01``), dates and date ranges (``20250101-20250131``) and run ids (UUIDs)."""
_TABLE = CostRecord.__tablename__


class FocusImportError(ValueError):
    """A file whose lines cannot be stored (a row key already stored for the source)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class ImportResult:
    """What one file added to the store."""

    path: Path
    source: str
    import_batch: str
    """A fresh ``uuid4().hex`` per file and import: which lines came in together."""
    rows_imported: int
    rows_rejected: int
    billing_periods: list[datetime]
    """The billing periods (their starts, UTC, sorted) this file's lines belong to."""
    errors: list[str] = field(default_factory=list)
    """The first ``MAX_ERRORS`` rejected rows as ``path:line: column: message``."""
    replaced_rows: int = 0
    """Stored lines deleted because this file re-delivered their billing period."""


class _FileFailed(Exception):
    """Internal: which file of a group made the call fail, and why."""

    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(str(error))
        self.path = path
        self.error = error


def default_source(path: Path) -> str:
    """``focus:<export folder>``: the nearest enclosing folder with a meaningful name.

    Partition folders (``BILLING_PERIOD=2025-01``), ``data``, date-range and run-id folders are
    skipped, so every file of one export (any month, any part) maps to the same source and
    re-importing it replaces instead of duplicating. A file with no such folder above it uses
    its own name without suffixes.
    """
    for folder in path.resolve().parents:
        if folder.name and not _GENERIC_FOLDER.match(folder.name):
            return f"focus:{folder.name}"
    return f"focus:{path.name.split('.')[0]}"


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the calendar month of ``moment``."""
    moment = as_utc(moment)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def with_billing_period(line: CostLine) -> CostLine:
    """``line`` with a billing period: its own, else the month of its charge period."""
    if line.billing_period_start is not None:
        return line
    start = month_start(line.charge_period_start)
    return replace(line, billing_period_start=start, billing_period_end=_next_month(start))


@contextmanager
def _bulk_cache(session: Session) -> Iterator[None]:
    """On SQLite, a page cache of ``BULK_CACHE_KIB`` for the import, then the previous one.

    Row keys ascend through a file and lines come in grouped by billing period, so most index
    updates are appends; the cache holds the few places an index is written at, and it is the
    memory SQLite sorts in when a first import builds the indexes (``_begin_sqlite``). It is
    bounded, so memory stays flat however big the file. Durability is untouched (same
    journal, same ``synchronous``).
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        try:
            connection.exec_driver_sql(f"PRAGMA cache_size={int(previous or 0)}")
        except DBAPIError:  # pragma: no cover - the connection is gone; nothing to restore
            logger.debug("restoring the SQLite cache size failed", exc_info=True)


def _begin_sqlite(connection: Connection) -> list[str] | None:
    """Take SQLite's write lock now; when ``cost_record`` is empty, drop its secondary indexes.

    Returns the ``CREATE INDEX`` statements of the dropped indexes (to run before the commit),
    or ``None`` when the table holds lines. Building an index once over the sorted lines costs
    a fraction of updating it line by line; the unique row-key index stays, so duplicates are
    still refused as they come. The drop is part of the transaction: a rollback restores it,
    and readers (WAL) keep their indexed snapshot meanwhile.
    """
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        # pysqlite defers BEGIN to the first write: take the lock before reading, so that the
        # emptiness seen here holds until the commit and the DROP INDEX below is transactional
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    if connection.exec_driver_sql(f"SELECT 1 FROM {_TABLE} LIMIT 1").first() is not None:
        return None
    statements = []
    listed = connection.exec_driver_sql(f"PRAGMA index_list({_TABLE})").all()
    for _seq, name, unique, origin, *_ in listed:
        if unique or origin != "c":  # keep the row-key constraint and any unique index
            continue
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        ).scalar()
        if sql:
            statements.append(str(sql))
            connection.exec_driver_sql(f'DROP INDEX "{name}"')
    if statements:
        logger.debug("%s is empty: building %d indexes after the import", _TABLE, len(statements))
    return statements


@contextmanager
def _rollback_journal(connection: Connection) -> Iterator[bool]:
    """On SQLite in WAL mode, a rollback journal and ``synchronous=FULL`` for one import when
    no other connection has the database open; yields whether it switched.

    WAL writes every page twice: into the WAL, then into the database when the commit
    checkpoints it. A rollback journal writes a new page once and keeps only the old content of
    the pages an import changes. With FULL, the journal and the database are synced at the
    commit: a crash or a power cut rolls the import back, as in WAL, and never corrupts. The
    switch is tried without waiting and succeeds only when this is the only connection; WAL
    and the connection's ``synchronous`` come back after the commit or rollback. Meanwhile
    another process opening the database waits for the import (up to its busy timeout)
    instead of reading the previous lines. Run it outside a transaction.
    """
    driver: Any = connection.connection.driver_connection
    dbapi = connection.dialect.loaded_dbapi

    def pragma(statement: str) -> Any:
        return driver.execute(statement).fetchone()[0]

    if driver is None or pragma("PRAGMA journal_mode") != "wal":
        yield False
        return
    timeout, sync = pragma("PRAGMA busy_timeout"), pragma("PRAGMA synchronous")
    driver.execute("PRAGMA busy_timeout=0")
    try:
        switched = pragma("PRAGMA journal_mode=DELETE") == "delete"
    except dbapi.OperationalError:  # another connection has the database open
        switched = False
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(timeout)}")
    if not switched:
        yield False
        return
    driver.execute("PRAGMA synchronous=FULL")
    try:
        yield True
    finally:
        try:
            driver.execute(f"PRAGMA synchronous={int(sync)}")
            driver.execute("PRAGMA journal_mode=WAL")
        except dbapi.Error:  # the next connection of the engine switches it back on connect
            logger.warning("could not switch the database back to WAL", exc_info=True)


@contextmanager
def _import_transaction(engine: Engine, source: str, *, sole_writer: bool) -> Iterator[_Replacer]:
    """One import's transaction: commits when the body succeeds, rolls back when it raises.

    On SQLite the write lock is taken first, the page cache is enlarged (``_bulk_cache``), into
    an empty ``cost_record`` the lines go in before its secondary indexes are built
    (``_begin_sqlite``), and with ``sole_writer`` the import uses a rollback journal when it
    has the database to itself (``_rollback_journal``). Database errors propagate (after the
    rollback).
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        journal = _rollback_journal(connection) if sole_writer and sqlite else nullcontext(False)
        with journal, Session(bind=connection, expire_on_commit=False) as session:
            try:
                with _bulk_cache(session):
                    deferred = _begin_sqlite(session.connection()) if sqlite else None
                    replacer = _Replacer(session, source, empty=deferred is not None)
                    yield replacer
                    for statement in deferred or ():
                        session.connection().exec_driver_sql(statement)
                session.commit()
            except BaseException:
                session.rollback()
                raise


class _Replacer:
    """Deletes each billing period of a source once per transaction, before its first line.

    ``empty``: the table held no line when the transaction began, so a period met for the first
    time has none either (lines of this transaction belong to periods already met) and nothing
    is deleted.
    """

    def __init__(self, session: Session, source: str, *, empty: bool = False) -> None:
        self.session = session
        self.source = source
        self.empty = empty
        self.replaced: set[datetime] = set()
        self.writer = _Writer(session, source)

    def ensure(self, period: datetime) -> int:
        """Delete ``period``'s stored lines unless already done here; return how many."""
        period = as_utc(period)
        if period in self.replaced:
            return 0
        self.replaced.add(period)
        if self.empty:
            return 0
        return delete_billing_period(self.session, source=self.source, billing_period_start=period)


_MISSING = object()


def _memo(process: Callable[[Any], Any], size: int = 4096) -> Callable[[Any], Any]:
    """``process`` remembering its last results (billing files repeat their periods a lot)."""
    cache: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        result = cache.get(value, _MISSING)
        if result is _MISSING:
            result = process(value)
            if len(cache) >= size:
                cache.clear()
            cache[value] = result
        return result

    return run


def _memo_json(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A JSON bind processor remembering results per flat object (tags repeat a lot)."""
    remembered = _memo(lambda items: process(dict(items)), 1024)

    def run(value: Any) -> Any:
        try:
            return remembered(tuple(value.items()))
        except (AttributeError, TypeError):  # not a dict, or unhashable values
            return process(value)

    return run


class _Writer:
    """Inserts ``LineColumns`` a batch at a time on the driver's own cursor.

    The same rows as ``ledger.add_lines``, without its per-line work: parameters are made
    column by column, with the column types' own bind processors (remembered for the
    repeating datetimes and tags), or from the cheaper forms a batch offers when they give
    the very same stored value: on SQLite a money column is bound as ``float(Decimal)``, which
    ``LineColumns.floats`` gives straight from the text; a JSON column stores the text of the
    mapping, which ``LineColumns.json`` gives compact and ready. The rows read back
    identically through the ORM. They go to the driver as plain tuples, made one at a time
    while it consumes them (nothing per batch is kept): ``executemany`` on SQLite, ``COPY``
    on psycopg (PostgreSQL's bulk load), ``executemany`` on any other driver.
    Falls back to ``ledger.add_lines`` for a driver whose parameter style it does not write
    or a ``cost_record`` column that is not a ``CostLine`` field. Driver errors come out as
    SQLAlchemy's (``IntegrityError`` for a duplicate row key), like through ``Session``.
    """

    def __init__(self, session: Session, source: str) -> None:
        self.session = session
        self.source = source
        self.connection = connection = session.connection()
        dialect = connection.dialect
        table = CostRecord.__table__  # type: ignore[attr-defined]
        columns = [c for c in table.columns if c.name not in ("id", "source", "import_batch")]
        names = [c.name for c in columns]
        marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
        self.fast = marker is not None and set(names) <= set(CostLine.__dataclass_fields__)
        into = f"{table.name} ({', '.join(names)}, source, import_batch)"
        self.copy = f"COPY {into} FROM STDIN" if dialect.driver == "psycopg" else None
        self.plan: list[tuple[str, str, Callable[[Any], Any] | None]] = []
        for column in columns:
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            impl = getattr(column.type, "impl_instance", column.type)
            how = "plain" if process is None else "process"
            if process is not None and isinstance(impl, DateTime):
                process = _memo(process)
            elif process is not None and isinstance(impl, JSON):
                # the stored text of the mapping (SQLite binds text; COPY takes the column's
                # text): any JSON of it reads back the same
                text = self.copy is not None or isinstance(process({}), str)
                how = "json" if text else how
                process = _memo_json(process)
            elif process is not None and isinstance(impl, Numeric):
                # SQLite binds float(value): the nearest double, which LineColumns.floats has
                how = "float" if type(process(Decimal("0.1"))) is float else how
            self.plan.append((column.name, how, process))
        placeholders = ", ".join([marker or "?"] * (len(names) + 2))
        self.sql = f"INSERT INTO {into} VALUES ({placeholders})"

    def _params(self, batch: LineColumns, name: str, how: str, process: Any) -> Sequence[Any]:
        if how == "float":
            floats = batch.floats(name)
            if floats is not None:
                return floats
        elif how == "json":
            texts = batch.json(name)
            if texts is not None:
                return texts
        if process is None:
            return batch.column(name)
        coded = batch.codes(name)
        if coded is not None:
            codes, values = coded
            converted = list(map(process, values))
            if len(converted) == 1:
                return converted * len(codes)
            return list(map(converted.__getitem__, codes))
        return list(map(process, batch.column(name)))

    def add(self, batch: LineColumns, import_batch: str) -> int:
        """Insert the batch's lines (no commit); return how many."""
        if not batch.size:
            return 0
        if not self.fast:
            lines = batch.lines()
            return add_lines(self.session, lines, source=self.source, import_batch=import_batch)
        columns = [self._params(batch, *step) for step in self.plan]
        tail = (repeat(self.source, batch.size), repeat(import_batch, batch.size))
        self._write(zip(*columns, *tail, strict=False))
        return batch.size

    def _write(self, rows: Iterator[tuple[Any, ...]]) -> None:
        dialect = self.connection.dialect
        dbapi = dialect.loaded_dbapi
        # the driver's own cursor: both drivers take rows from an iterator, psycopg's has copy()
        cursor: Any = self.connection.connection.cursor()
        try:
            if self.copy is not None:
                with cursor.copy(self.copy) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self.sql, rows)
        except dbapi.Error as exc:
            statement = self.copy or self.sql
            raise DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=dialect) from exc
        finally:
            cursor.close()


def with_billing_periods(batch: LineColumns) -> LineColumns:
    """``with_billing_period`` for a batch: lines without a billing period get their month's."""
    starts = batch.column("billing_period_start")
    if None not in starts:
        return batch
    filed: dict[datetime, tuple[datetime, datetime]] = {}
    new_starts, new_ends = [], []
    for start, end, charged in zip(
        starts,
        batch.column("billing_period_end"),
        batch.column("charge_period_start"),
        strict=True,
    ):
        if start is None:
            if charged not in filed:
                first = month_start(charged)
                filed[charged] = (first, _next_month(first))
            start, end = filed[charged]
        new_starts.append(start)
        new_ends.append(end)
    return batch.replace(billing_period_start=new_starts, billing_period_end=new_ends)


def _import_file(
    path: Path,
    *,
    replacer: _Replacer,
    on_error: OnError,
    progress: Progress | None,
    default_currency: str | None,
) -> ImportResult:
    """Stream one file into the open transaction; raises ``_FileFailed`` on any file error."""
    batch_id = uuid.uuid4().hex
    periods: set[datetime] = set()
    replaced = imported = 0
    try:
        with open_focus(path, default_currency=default_currency) as reader:
            for raw in reader.batches(on_error=on_error):
                batch = with_billing_periods(raw)
                for period in set(batch.column("billing_period_start")) - periods:
                    periods.add(period)
                    replaced += replacer.ensure(period)
                imported += replacer.writer.add(batch, batch_id)
                if progress is not None:
                    progress(batch.size)
            rejected = [str(error) for error in reader.rejected[:MAX_ERRORS]]
            rejected_count = reader.rejected_count
    except (FocusFileError, FocusRowError) as exc:
        raise _FileFailed(path, exc) from exc
    except IntegrityError as exc:
        error = FocusImportError(
            path,
            f"a line's row key is already stored for source {replacer.source} (a duplicate "
            "line, or the same line in a file of another billing period)",
        )
        raise _FileFailed(path, error) from exc
    return ImportResult(
        path=path,
        source=replacer.source,
        import_batch=batch_id,
        rows_imported=imported,
        rows_rejected=rejected_count,
        billing_periods=sorted(periods),
        errors=rejected,
        replaced_rows=replaced,
    )


def import_focus_files(
    engine: Engine,
    paths: Sequence[Path],
    *,
    source: str,
    on_error: OnError = "stop",
    progress: Progress | None = None,
    default_currency: str | None = None,
    sole_writer: bool = True,
) -> list[ImportResult]:
    """Import ``paths`` into ``source`` in one transaction; one result per file, in order.

    Each billing period is replaced once for the whole call, so the parts of one export add
    up. ``progress`` is called with the number of lines stored since its previous call.
    ``default_currency`` is the ``BillingCurrency`` of files that have no such column (the
    FOCUS specification's own examples); without it such files are refused. ``sole_writer``
    (the CLI's case): on SQLite, when no other connection has the database open, import with
    a rollback journal instead of WAL, about a sixth faster (``_rollback_journal``); other
    processes that open the database meanwhile wait for the import. Pass ``False`` in a
    process whose other threads may open connections (the daemon).
    Raises ``FocusFileError``, ``FocusRowError`` (stop mode) or ``FocusImportError`` for the
    first failing file, after rolling everything back; database errors propagate.
    """
    try:
        with _import_transaction(engine, source, sole_writer=sole_writer) as replacer:
            return [
                _import_file(
                    path,
                    replacer=replacer,
                    on_error=on_error,
                    progress=progress,
                    default_currency=default_currency,
                )
                for path in paths
            ]
    except _FileFailed as failed:
        raise failed.error from None


def import_focus(
    engine: Engine,
    path: Path,
    *,
    source: str,
    on_error: OnError = "stop",
    progress: Progress | None = None,
    default_currency: str | None = None,
    sole_writer: bool = True,
) -> ImportResult:
    """Import one FOCUS file into ``source`` in one transaction (see ``import_focus_files``)."""
    results = import_focus_files(
        engine,
        [path],
        source=source,
        on_error=on_error,
        progress=progress,
        default_currency=default_currency,
        sole_writer=sole_writer,
    )
    return results[0]


Signature = tuple[int, int]
"""A file's (size, mtime_ns): when it changes, the file changed."""


@dataclass
class _Imported:
    signature: Signature
    periods: frozenset[datetime]


def _is_focus_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(FOCUS_SUFFIXES)


class FocusWatcher:
    """Imports the FOCUS files that land in watched folders (one source per folder).

    A folder ``.../exports/aws-focus`` feeds source ``<source_prefix>:aws-focus``; files are
    found recursively (``*.csv``, ``*.csv.gz``, ``*.parquet``). A file is imported once it is
    stable: unchanged since the previous look, or last modified at least ``settle_seconds``
    ago, so a file still being written waits. New and changed files of a folder are imported
    together in one transaction, with the already imported files that share a billing period
    with them (and with the periods a changed file used to hold), so multi-part exports add
    up. A file that fails is logged once and retried only when it changes. State is kept in
    memory: after a restart every file is imported once more, which replaces, not duplicates.

    Error contract: ``run_once`` raises only database errors (the folder's transaction is
    rolled back); file problems are logged and skipped.
    """

    def __init__(
        self,
        engine: Engine,
        folders: Sequence[Path],
        *,
        source_prefix: str = "focus",
        on_error: OnError = "skip",
        settle_seconds: float = 60.0,
        default_currency: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.default_currency = default_currency
        self.on_error: OnError = on_error
        self.settle_seconds = settle_seconds
        self.clock = clock
        self.sources: dict[Path, str] = {}
        for folder in folders:
            source = f"{source_prefix}:{Path(folder).name}"
            if source in self.sources.values():
                raise ValueError(f"two watched folders map to source {source}: rename one")
            self.sources[Path(folder)] = source
        self._looked: dict[Path, Signature] = {}
        self._imported: dict[Path, _Imported] = {}
        self._failed: dict[Path, Signature] = {}

    def run_once(self, now: datetime | None = None) -> list[ImportResult]:
        """Import what is new or changed in every folder; return one result per file read.

        ``now`` is accepted for the job signature and ignored: file times are compared with
        the (injectable) wall clock, since the demo's scaled clock is not the files' clock.
        """
        results: list[ImportResult] = []
        for folder, source in self.sources.items():
            results.extend(self._run_folder(folder, source))
        return results

    def _scan(self, folder: Path) -> dict[Path, Signature]:
        stable: dict[Path, Signature] = {}
        if not folder.is_dir():
            logger.debug("watched folder %s does not exist (yet)", folder)
            return stable
        wall = self.clock()
        for path in sorted(p for p in folder.rglob("*") if _is_focus_file(p)):
            try:
                info = path.stat()
            except OSError:
                continue
            signature = (info.st_size, info.st_mtime_ns)
            seen = self._looked.get(path)
            self._looked[path] = signature
            settled = wall - info.st_mtime_ns / 1e9 >= self.settle_seconds
            if seen == signature or settled:
                stable[path] = signature
        return stable

    def _run_folder(self, folder: Path, source: str) -> list[ImportResult]:
        stable = self._scan(folder)
        pending = [
            path
            for path, signature in stable.items()
            if self._failed.get(path) != signature
            and (path not in self._imported or self._imported[path].signature != signature)
        ]
        excluded: set[Path] = set()
        while pending:
            todo = [path for path in pending if path not in excluded]
            if not todo:
                return []
            try:
                return self._import_group(source, todo, stable)
            except _FileFailed as failed:
                self._failed[failed.path] = stable[failed.path]
                excluded.add(failed.path)
                logger.error("FOCUS import of %s failed: %s", failed.path, failed.error)
        return []

    def _import_group(
        self, source: str, changed: list[Path], stable: dict[Path, Signature]
    ) -> list[ImportResult]:
        changed.sort(key=lambda p: (stable[p][1], str(p)))
        done: dict[Path, ImportResult] = {}
        with _import_transaction(self.engine, source, sole_writer=False) as replacer:
            for path in changed:
                previous = self._imported.get(path)
                for period in previous.periods if previous else ():
                    replacer.ensure(period)
            queue = list(changed)
            while queue:
                path = queue.pop(0)
                done[path] = _import_file(
                    path,
                    replacer=replacer,
                    on_error=self.on_error,
                    progress=None,
                    default_currency=self.default_currency,
                )
                queue.extend(self._siblings(replacer.replaced, stable, done, queue))
        for path, result in done.items():
            self._imported[path] = _Imported(stable[path], frozenset(result.billing_periods))
            self._failed.pop(path, None)
            logger.info(
                "imported %d FOCUS lines (%d rejected) from %s into %s",
                result.rows_imported,
                result.rows_rejected,
                path,
                source,
            )
        return list(done.values())

    def _siblings(
        self,
        replaced: Iterable[datetime],
        stable: dict[Path, Signature],
        done: dict[Path, ImportResult],
        queue: list[Path],
    ) -> list[Path]:
        """Imported, unchanged files holding a period this transaction replaced."""
        periods = set(replaced)
        return [
            path
            for path, imported in self._imported.items()
            if path in stable
            and path not in done
            and path not in queue
            and stable[path] == imported.signature
            and self._failed.get(path) != stable[path]
            and imported.periods & periods
        ]


def focus_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders in ``paths`` into the FOCUS files under them (sorted); keep files."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if _is_focus_file(p)))
        else:
            found.append(path)
    return found


__all__ = [
    "FOCUS_SUFFIXES",
    "FocusImportError",
    "FocusWatcher",
    "ImportResult",
    "default_source",
    "focus_files",
    "import_focus",
    "import_focus_files",
    "month_start",
    "with_billing_period",
    "with_billing_periods",
]
