"""The cost file commands: ``import focus PATH...`` and ``export focus``.

``import focus`` reads FOCUS files (CSV, gzip CSV, Parquet; a folder means the FOCUS files
under it) into the store. Files are grouped by source (``--source``, else
``focus:<export folder>``, see ``daemon.costs.focus_import.default_source``) and each group is
imported in one transaction, so the parts of one export add up and re-importing replaces.
``export focus`` writes self-hosted GPU and token costs as a FOCUS 1.2 CSV.

Exit codes (``daemon.cli_common``): 0 done (rows skipped with ``--skip-bad-rows`` are reported,
not failures); 1 a file failed (its group rolled back: nothing of it is stored); 2 usage
problems (a missing file, no GPU cost model configured); 3 the store is unavailable. Errors are
one line each on stderr: ``tcowatch: FILE:LINE: COLUMN: message``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from daemon.cli_common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from daemon.config import Config
    from daemon.costs.focus_import import ImportResult

AddCommon = Callable[..., None]
MAX_PRINTED_ERRORS = 20
NO_GPU_MODELS = "no costs.gpu_models configured: add one per GPU model (see README)"


def add_cost_commands(sub: Any, common: AddCommon) -> None:
    """Register ``import`` (``focus``) and ``export`` (``focus``) on the CLI's sub-parsers."""
    imp = sub.add_parser("import", help="import cloud bills into the store")
    imp_sub = imp.add_subparsers(dest="import_format", required=True, metavar="FORMAT")
    focus_in = imp_sub.add_parser("focus", help="FOCUS files: CSV, gzip CSV or Parquet")
    common(focus_in)
    focus_in.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="files, or folders to read"
    )
    focus_in.add_argument(
        "--source",
        default=None,
        help="source name (default: focus:<export folder>); re-importing replaces its periods",
    )
    focus_in.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip and report rows that fail validation instead of stopping",
    )
    focus_in.add_argument(
        "--default-currency",
        default=None,
        metavar="CODE",
        help="BillingCurrency of files without that column (e.g. the FOCUS spec's examples)",
    )

    exp = sub.add_parser("export", help="export self-hosted costs")
    exp_sub = exp.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    focus_out = exp_sub.add_parser("focus", help="GPU-hours and tokens as a FOCUS 1.2 CSV")
    common(focus_out)
    focus_out.add_argument(
        "--from", dest="from_date", type=_date, default=None,
        help="first day, YYYY-MM-DD (default: the first of this month)",
    )  # fmt: skip
    focus_out.add_argument(
        "--to", dest="to_date", type=_date, default=None,
        help="last day, included, YYYY-MM-DD (default: today)",
    )  # fmt: skip
    focus_out.add_argument("--output", default="-", help="CSV file, or - for stdout (default)")
    focus_out.add_argument(
        "--currency", default=None, help="billing currency (default: the GPU models' currency)"
    )


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2025-01-31, got {text!r}") from None


def _error(text: str) -> None:
    print(f"tcowatch: {text}", file=sys.stderr)


def _load(args: argparse.Namespace) -> tuple[Config, Path]:
    from daemon.cli_common import setup_logging
    from daemon.config import load_config

    config, config_path = load_config(getattr(args, "config", None))
    setup_logging(config.log_level)
    return config, config_path


def _engine(args: argparse.Namespace, config: Config, config_path: Path) -> Engine:
    from daemon.store.db import open_store, resolve_url

    return open_store(resolve_url(getattr(args, "db", None) or config.store.url, config_path))


def cmd_import(args: argparse.Namespace) -> int:
    """``tcowatch import focus PATH...``: import FOCUS files, one transaction per source."""
    from daemon.costs.focus_import import default_source, focus_files

    missing = [path for path in args.paths if not path.exists()]
    for path in missing:
        _error(f"{path}: file not found")
    if missing:
        return EXIT_CONFIG
    files = focus_files(args.paths)
    if not files:
        _error(f"{', '.join(map(str, args.paths))}: no FOCUS files (.csv, .csv.gz, .parquet)")
        return EXIT_CONFIG
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(args.source or default_source(path), []).append(path)
    config, config_path = _load(args)
    engine = _engine(args, config, config_path)
    on_error = "skip" if args.skip_bad_rows else "stop"
    failed = False
    try:
        with _progress(sys.stderr) as advance:
            for source, paths in groups.items():
                failed |= not _import_group(
                    engine, source, paths, on_error, advance, args.default_currency
                )
    finally:
        engine.dispose()
    return EXIT_FAILURE if failed else EXIT_OK


def _import_group(
    engine: Engine,
    source: str,
    paths: Sequence[Path],
    on_error: str,
    advance: Callable[[str], Callable[[int], None]],
    default_currency: str | None,
) -> bool:
    from collectors.focus import FocusFileError, FocusRowError
    from daemon.costs.focus_import import FocusImportError, import_focus_files

    try:
        results = import_focus_files(
            engine,
            paths,
            source=source,
            on_error="skip" if on_error == "skip" else "stop",
            progress=advance(source),
            default_currency=default_currency,
        )
    except (FocusFileError, FocusRowError, FocusImportError) as exc:
        _error(_located(exc, paths))
        if len(paths) > 1:
            _error(f"nothing imported into source {source}: its {len(paths)} files rolled back")
        return False
    for result in results:
        print(_summary(result))
        for problem in result.errors[:MAX_PRINTED_ERRORS]:
            _error(problem)
        if result.rows_rejected > len(result.errors[:MAX_PRINTED_ERRORS]):
            more = result.rows_rejected - len(result.errors[:MAX_PRINTED_ERRORS])
            _error(f"{result.path}: {more} more rows rejected")
    return True


def _located(exc: Exception, paths: Sequence[Path]) -> str:
    """The error as one line that starts with the file it is about."""
    text = " ".join(str(exc).split())
    if any(text.startswith(str(path)) for path in paths):
        return text
    where = getattr(exc, "path", None) or (paths[0] if len(paths) == 1 else None)
    return f"{where}: {text}" if where is not None else text


def _summary(result: ImportResult) -> str:
    periods = ", ".join(_period(p) for p in result.billing_periods) or "none"
    replaced = f"; replaced {result.replaced_rows} stored rows" if result.replaced_rows else ""
    return (
        f"{result.path}: imported {result.rows_imported} rows ({result.rows_rejected} rejected) "
        f"into source {result.source}, billing periods {periods}{replaced}"
    )


def _period(start: datetime) -> str:
    if start.day == 1 and start.time() == time(0):
        return start.strftime("%Y-%m")
    return start.isoformat().replace("+00:00", "Z")


@contextmanager
def _progress(stream: IO[str]) -> Iterator[Callable[[str], Callable[[int], None]]]:
    """A row counter with a rate on a terminal; nothing otherwise.

    Yields ``advance(description) -> callback(rows)`` for one group of files.
    """
    if not stream.isatty():
        yield lambda _description: lambda _rows: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:>12,.0f} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(file=stream)) as progress:

        def advance(description: str) -> Callable[[int], None]:
            task = progress.add_task(description, total=None, rate="")

            def step(rows: int) -> None:
                progress.advance(task, rows)
                speed = progress.tasks[task].speed
                progress.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

            return step

        yield advance


def cmd_export(args: argparse.Namespace) -> int:
    """``tcowatch export focus``: self-hosted GPU and token costs as a FOCUS 1.2 CSV."""
    config, config_path = _load(args)
    models = _gpu_models(config)
    if not models:
        _error(NO_GPU_MODELS)
        return EXIT_CONFIG
    today = datetime.now(UTC).date()
    first = args.from_date or today.replace(day=1)
    last = args.to_date or today
    if last < first:
        _error(f"--to {last} is before --from {first}")
        return EXIT_CONFIG
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    currencies = {model.currency for model in models.values()}
    currency = args.currency or (
        currencies.pop() if len(currencies) == 1 else config.costs.display_currency
    )
    engine = _engine(args, config, config_path)
    try:
        count = _write_export(engine, models, start, end, currency, args.output)
    finally:
        engine.dispose()
    where = "stdout" if args.output == "-" else args.output
    _error(f"wrote {count} FOCUS lines ({first} to {last}, {currency}) to {where}")
    return EXIT_OK


def _gpu_models(config: Config) -> dict[str, Any]:
    configured = getattr(getattr(config, "costs", None), "gpu_models", None) or []
    if not configured:
        return {}
    from daemon.costs.localcost import GpuCostModel

    models: dict[str, Any] = {}
    for entry in configured:
        fields = entry.model_dump() if hasattr(entry, "model_dump") else dict(entry)
        models[fields["gpu_model"]] = GpuCostModel(**fields)
    return models


def _write_export(
    engine: Engine,
    models: dict[str, Any],
    start: datetime,
    end: datetime,
    currency: str,
    output: str,
) -> int:
    from sqlmodel import Session

    from daemon.costs.export import self_hosted_lines, write_focus_csv

    with Session(engine) as session:
        lines = self_hosted_lines(session, start=start, end=end, models=models, currency=currency)
        if output == "-":
            return write_focus_csv(lines, sys.stdout)
        with open(output, "w", newline="", encoding="utf-8") as out:
            return write_focus_csv(lines, out)
