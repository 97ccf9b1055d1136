"""FOCUS import: ours vs ``pandas.read_csv`` + ``DataFrame.to_sql``, with DuckDB as the floor.

Generates a FOCUS 1.2 CSV (the 21 mandatory columns plus ten conditional ones, ``Tags`` as
JSON; deterministic, seeded) in a temporary folder, then runs each method in a fresh
subprocess so that its peak RSS is its own:

- ``ours``: ``import_focus`` into a fresh SQLite store (schema migrated and libraries loaded
  before the clock starts, as for the others), as ``tcowatch import focus`` does it: every row
  validated (datatypes, ISO 8601 UTC datetimes, JSON tags, allowed values) and stored in one
  transaction; the import has the database to itself, so it uses a rollback journal with
  ``synchronous=FULL`` rather than WAL (``focus_import._rollback_journal``). The store is
  empty, so this is a first import: the secondary indexes are built after the lines are in.
- ``ours (WAL)``: the same with ``sole_writer=False``, as the daemon's folder watcher imports
  while the board reads: WAL with ``synchronous=NORMAL`` throughout.
- ``ours (store not empty)``: the same file into a store that already holds the quarter-size
  file under another source (imported before the clock starts): every index is updated line
  by line, as for every import after the first.
- ``pandas``: ``pandas.read_csv`` then ``DataFrame.to_sql`` into a fresh SQLite file (its own
  table, inferred types, no validation: money as float, no index, no constraint).
- ``duckdb``: ``CREATE TABLE ... AS SELECT * FROM read_csv(...)`` into a DuckDB file.
- ``ours (1/4 rows)``: ``ours`` on a file a quarter the size, to show that peak memory does not
  grow with the file.

With ``--repeat N`` every method runs N times, interleaved (the machine's load changes while
the benchmark runs); the table shows the median time, the spread (min-max) and the highest
peak RSS. Prints rows/s, peak RSS and the ratios to pandas.

Run: ``python bench/bench_focus_import.py [--rows 1000000] [--repeat 3] [--profile]`` (needs the
``bench`` extra: pandas, duckdb).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = (
    "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart",
    "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "InvoiceIssuerName", "ProviderName",
    "PublisherName", "ServiceCategory", "ServiceName", "ServiceSubcategory", "ResourceId",
    "ResourceName", "RegionId", "SkuId", "SubAccountId", "PricingUnit", "PricingQuantity",
    "ConsumedQuantity", "ConsumedUnit", "ListCost", "ContractedCost", "BilledCost",
    "EffectiveCost", "Tags",
)  # fmt: skip
SERVICES = (
    ("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "Hours"),
    ("Amazon Simple Storage Service", "Storage", "Object Storage", "GB-Hours"),
    ("Amazon SageMaker", "AI and Machine Learning", "Machine Learning", "Hours"),
    ("Amazon Bedrock", "AI and Machine Learning", "Generative AI", "1000 Tokens"),
    ("AWS Lambda", "Compute", "Serverless Compute", "Requests"),
    ("Amazon Relational Database Service", "Databases", "Relational Databases", "Hours"),
)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-northeast-1")
TAGS = (
    "{}",
    '{"team":"web","env":"prod"}',
    '{"team":"ml","env":"prod","model":"deepseek-v3"}',
    '{"team":"data","env":"dev","cost-center":"4711"}',
    '{"owner":"sre","gpu":true}',
)
PERIOD = datetime(2025, 1, 1, tzinfo=UTC)


def _money(rng: random.Random, top: int) -> str:
    """A decimal string with 8 fractional digits, made from integers (never a float)."""
    units = rng.randrange(top * 10**8)
    return f"{units // 10**8}.{units % 10**8:08d}"


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` FOCUS 1.2 rows for January 2025 to ``path``."""
    rng = random.Random(seed)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    hours = [
        ((PERIOD + timedelta(hours=h)).strftime(stamp),
         (PERIOD + timedelta(hours=h + 1)).strftime(stamp))
        for h in range(31 * 24)
    ]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for n in range(rows):
            service, category, subcategory, unit = SERVICES[n % len(SERVICES)]
            start, end = hours[n % len(hours)]
            region = REGIONS[(n // 7) % len(REGIONS)]
            account = f"{100000000000 + (n % 13):012d}"
            billed = _money(rng, 50)
            quantity = f"{rng.randrange(1, 10**6)}.{rng.randrange(100):02d}"
            writer.writerow(
                (
                    "123456789012", "Example Corp", "USD", "2025-01-01T00:00:00Z",
                    "2025-02-01T00:00:00Z", start, end, "Usage", "", f"{service} usage",
                    "Usage-Based", "Amazon Web Services, Inc.", "AWS", "AWS", category,
                    service, subcategory,
                    f"arn:aws:ec2:{region}:{account}:instance/i-{n:017x}", f"node-{n % 997}",
                    region, f"SKU{n % 211:05d}", account, unit, quantity, quantity, unit,
                    billed, billed, billed, billed, TAGS[n % len(TAGS)],
                )
            )  # fmt: skip


def child(method: str, csv_path: Path, target: Path, profile: bool, seed: Path | None) -> None:
    """Run one method and print a JSON line: rows, seconds, peak RSS (KiB)."""
    if method in ("ours", "ours-wal"):
        from functools import partial

        from daemon.costs.focus_import import import_focus as import_any
        from daemon.store.db import open_store

        import_focus = partial(import_any, sole_writer=method == "ours")

        engine = open_store(f"sqlite:///{target}")
        if seed is not None:  # a store that already holds lines: no first-import shortcut
            import_focus(engine, seed, source="focus:seed")
        # libraries load before the clock, as for pandas and duckdb: pyarrow's compute
        # functions import pandas on first use when it is installed (as here, for the baseline)
        with contextlib.suppress(ImportError):
            import pandas  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
        started = time.perf_counter()
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            result = profiler.runcall(import_focus, engine, csv_path, source="focus:bench")
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(30)
        else:
            result = import_focus(engine, csv_path, source="focus:bench")
        rows = result.rows_imported
        assert result.rows_rejected == 0, result.errors
    elif method == "pandas":
        import sqlite3

        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        started = time.perf_counter()
        frame = pd.read_csv(csv_path)
        with sqlite3.connect(target) as connection:
            frame.to_sql("cost_record", connection, index=False)
        rows = len(frame)
    elif method == "duckdb":
        import duckdb

        started = time.perf_counter()
        with duckdb.connect(str(target)) as connection:
            connection.execute(
                "CREATE TABLE cost_record AS SELECT * FROM read_csv(?, header = true)",
                [str(csv_path)],
            )
            (rows,) = connection.execute("SELECT count(*) FROM cost_record").fetchone() or (0,)
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_kib": peak}))


def measure(
    method: str, csv_path: Path, target: Path, profile: bool = False, seed: Path | None = None
) -> dict[str, float]:
    for leftover in target.parent.glob(f"{target.name}*"):  # a previous round's file, WAL
        leftover.unlink()
    command = [sys.executable, __file__, "--child", method, str(csv_path), str(target)]
    if profile:
        command.append("--profile")
    if seed is not None:
        command.extend(["--seed", str(seed)])
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if profile:
        sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds, the spread, the highest peak RSS of a method's runs."""
    seconds = sorted(run["seconds"] for run in runs)
    return {
        "rows": runs[0]["rows"],
        "seconds": statistics.median(seconds),
        "fastest": seconds[0],
        "slowest": seconds[-1],
        "peak_kib": max(run["peak_kib"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method (median)")
    parser.add_argument("--profile", action="store_true", help="cProfile ours (to stderr)")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "CSV", "TARGET"))
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, csv_path, target = args.child
        child(method, Path(csv_path), Path(target), args.profile, args.seed)
        return
    with tempfile.TemporaryDirectory(prefix="tcowatch-bench-") as tmp:
        folder = Path(tmp)
        big, small = folder / "focus-big.csv", folder / "focus-small.csv"
        started = time.perf_counter()
        generate(big, args.rows)
        generate(small, max(1, args.rows // 4))
        size = big.stat().st_size / 2**20
        print(
            f"generated {args.rows:,} FOCUS rows ({size:,.0f} MiB) and {args.rows // 4:,} "
            f"in {time.perf_counter() - started:.1f} s; {max(1, args.repeat)} run(s) each\n"
        )
        plan: dict[str, Callable[[], dict[str, float]]] = {
            "ours": lambda: measure("ours", big, folder / "ours.db", args.profile),
            "ours (WAL)": lambda: measure("ours-wal", big, folder / "ours-wal.db"),
            "ours (store not empty)": lambda: measure("ours", big, folder / "ours2.db", seed=small),
            "pandas": lambda: measure("pandas", big, folder / "pandas.db"),
            "duckdb": lambda: measure("duckdb", big, folder / "duck.duckdb"),
            "ours (1/4 rows)": lambda: measure("ours", small, folder / "ours-small.db"),
        }
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in plan}
        for _ in range(max(1, args.repeat)):
            for name, method in plan.items():
                measured[name].append(method())
        runs = {name: summary(results) for name, results in measured.items()}
    base = runs["pandas"]
    base_rate = base["rows"] / base["seconds"]
    print(f"{'method':<23} {'rows':>10} {'seconds':>8} {'min-max':>13} {'rows/s':>9}"
          f" {'peak MiB':>9} {'speed vs pandas':>16} {'memory vs pandas':>17}")  # fmt: skip
    for name, run in runs.items():
        rate = run["rows"] / run["seconds"]
        spread = f"{run['fastest']:.1f}-{run['slowest']:.1f}"
        print(
            f"{name:<23} {run['rows']:>10,.0f} {run['seconds']:>8.2f} {spread:>13} {rate:>9,.0f} "
            f"{run['peak_kib'] / 1024:>9.0f} {rate / base_rate:>15.2f}x "
            f"{run['peak_kib'] / base['peak_kib']:>16.2f}x"
        )
    ours, quarter = runs["ours"], runs["ours (1/4 rows)"]
    print(
        f"\nours: peak RSS {quarter['peak_kib'] / 1024:.0f} MiB at {quarter['rows']:,.0f} rows, "
        f"{ours['peak_kib'] / 1024:.0f} MiB at {ours['rows']:,.0f} rows "
        f"(x{ours['peak_kib'] / quarter['peak_kib']:.2f} for x{ours['rows'] / quarter['rows']:.0f}"
        " the rows)"
    )


if __name__ == "__main__":
    main()
