"""Ingest throughput: the connector runner against a raw executemany of the same rows, same run, same file type.

    .venv/bin/python bench/ingest.py            # 12 h of the demo city (~440 k records), best of 3
    .venv/bin/python bench/ingest.py --quick    # 3 h, one sample

Runner: `run_connector` with the `simulator` instance of data/connectors.yaml on a fresh SQLite database holding
the demo city (~6,000 communities), over a backfill window; its time is the wall clock of the whole call, so it
includes the simulator generating records, validation, upserts, the current-value snapshot, the roll-up queue
and computing the roll-ups afterwards — everything ingest costs.

Baseline: the same (unit_id, indicator_id, observed_at, value) rows, in the order the runner stored them, written
with sqlite3's executemany into one plain table with the same primary key (WITHOUT ROWID, like observations),
in a copy of the same database file with the pragmas the app's connections have (read from one: WAL,
synchronous=NORMAL, the page cache size), 50,000 rows per commit. Figure: records/s of each and the ratio runner/raw (target ≥ 0.30×).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

TARGET = 0.30
BATCH = 50_000

RAW_TABLE = """CREATE TABLE raw_observations (
    unit_id INTEGER NOT NULL, indicator_id SMALLINT NOT NULL, observed_at BIGINT NOT NULL, value FLOAT,
    PRIMARY KEY (unit_id, indicator_id, observed_at)) WITHOUT ROWID"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=12, help="backfill window in hours (default %(default)s: "
                        "about 440 k records for the demo city)")
    parser.add_argument("--repeats", type=int, default=3, help="samples of each; the best counts (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 3 h window, 1 sample")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.repeats = min(args.hours, 3), 1
    return args


def run_runner(template: Path, folder: Path, index: int, since: int, now: int):
    """One runner sample on a fresh copy of the city database: (records, seconds, summary, path)."""
    path = folder / f"runner-{index}.db"
    common.copy_sqlite(template, path)
    settings = common.settings_for(path)
    started = time.perf_counter()
    summary = common.run_simulator(settings, since=since, now=now, desc=f"runner #{index + 1}")
    seconds = time.perf_counter() - started
    if summary.status != "ok":
        raise RuntimeError(f"the runner did not finish cleanly: {summary}")
    common.release(settings.database_url)
    return summary.accepted, seconds, summary, path


def stored_rows(path: Path) -> list[tuple]:
    """The rows the runner stored, in the order it wrote them (time order, as the simulator streams)."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT unit_id, indicator_id, observed_at, value FROM observations "
                                  "ORDER BY observed_at, indicator_id, unit_id").fetchall()
    finally:
        connection.close()


def run_raw(template: Path, folder: Path, index: int, rows: list[tuple]) -> float:
    """One baseline sample: executemany into a plain table in a copy of the same database; returns seconds."""
    return run_raw_table(template, folder, index, rows, RAW_TABLE, "raw_observations",
                         ("unit_id", "indicator_id", "observed_at", "value"))


def run_raw_table(template: Path, folder: Path, index: int, rows: list[tuple], table_ddl: str, table: str,
                  columns: tuple[str, ...], label: str = "raw") -> float:
    """executemany of `rows` (tuples of `columns`) into the table `table_ddl` creates, in a copy of the database
    with the app connections' pragmas, BATCH rows per commit; returns seconds."""
    from tqdm import tqdm

    path = folder / f"{table}-{index}.db"
    common.copy_sqlite(template, path)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # The pragmas of the app's own connections (cityops.db), read from one, so the two cannot drift apart.
        for name, value in app_pragmas(path).items():
            connection.execute(f"PRAGMA {name}={value}")
        connection.execute(table_ddl)
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        with tqdm(total=len(rows), unit="rec", unit_scale=True, desc=f"{label} #{index + 1}", leave=False,
                  file=sys.stderr) as bar:
            started = time.perf_counter()
            for offset in range(0, len(rows), BATCH):
                connection.execute("BEGIN")
                connection.executemany(statement, rows[offset:offset + BATCH])
                connection.execute("COMMIT")
                bar.update(min(BATCH, len(rows) - offset))
            seconds = time.perf_counter() - started
        stored = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if stored != len(rows):
            raise RuntimeError(f"raw baseline stored {stored} rows in {table}, expected {len(rows)}")
    finally:
        connection.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return seconds


PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "cache_size", "busy_timeout")


def app_pragmas(path: Path) -> dict[str, object]:
    """The pragmas an app connection to this database has (cityops.db.engine_for sets them)."""
    from cityops.db import engine_for

    url = common.sqlite_url(path)
    with engine_for(url).connect() as connection:
        values = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in PRAGMAS}
    common.release(url)
    return values


def fetch_only(template: Path, since: int, now: int) -> tuple[int, float]:
    """Diagnostics: the simulator's fetch() alone (records generated, nothing stored)."""
    from cityops.catalog import load_catalog
    from cityops.db import session_scope
    from cityops.tree import load_tree
    from connectors.base import ConnectorContext
    from connectors.runner import build_connector

    settings = common.settings_for(template)
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
    context = ConnectorContext(catalog=load_catalog(settings.catalog_path), tree=tree, now=now,
                               timezone=settings.timezone)
    connector = build_connector(common.simulator_instance(settings), context)
    started = time.perf_counter()
    count = sum(len(item) if hasattr(item, "frame") else 1 for item in connector.fetch(str(since)))
    seconds = time.perf_counter() - started
    common.release(settings.database_url)
    return count, seconds


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    folder = common.temp_dir("ingest")
    template = common.city_database(folder, "template.db")
    now = int(time.time())
    since = now - int(args.hours * 3600)

    runner_samples: list[tuple[int, float]] = []
    rollup_samples: list[float] = []
    raw_samples: list[float] = []
    rows: list[tuple] = []
    last_summary = None
    for index in range(args.repeats):
        records, seconds, last_summary, path = run_runner(template, folder, index, since, now)
        runner_samples.append((records, seconds))
        rollup_samples.append(last_summary.rollup_seconds)
        if not rows:
            rows = stored_rows(path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        raw_samples.append(run_raw(template, folder, index, rows))
        print(f"sample {index + 1}/{args.repeats}: runner {records / seconds:,.0f} rec/s ({seconds:.1f} s), "
              f"raw {len(rows) / raw_samples[-1]:,.0f} rec/s ({raw_samples[-1]:.2f} s)", file=sys.stderr)

    runner_rate = max(records / seconds for records, seconds in runner_samples)
    raw_rate = max(len(rows) / seconds for seconds in raw_samples)
    ratio = runner_rate / raw_rate
    target, passed = common.at_least(ratio, TARGET)
    # The same samples without the roll-up computation that follows the commits (it reads back what was
    # stored and can run apart from ingest: the work is queued in the same transaction as the records).
    stored_rate = max(records / (seconds - rollup)
                      for (records, seconds), rollup in zip(runner_samples, rollup_samples))
    stored_ratio = stored_rate / raw_rate
    stored_target, stored_passed = common.at_least(stored_ratio, TARGET)
    generated, generate_seconds = fetch_only(template, since, now)
    records = runner_samples[0][0]
    figures = [
        Figure(f"ingest through the runner vs raw executemany ({records:,} records, {args.hours:g} h window)",
               f"{runner_rate:,.0f} rec/s", f"{raw_rate:,.0f} rec/s", ratio, target, passed),
        Figure("the same, records committed and roll-ups queued (roll-up computation excluded)",
               f"{stored_rate:,.0f} rec/s", f"{raw_rate:,.0f} rec/s", stored_ratio, stored_target, stored_passed),
        Figure("roll-up computation after the commits (all levels, every touched bucket)",
               f"{min(rollup_samples):.1f} s", f"{min(s for _, s in runner_samples):.1f} s runner",
               min(rollup_samples) / min(s for _, s in runner_samples), "none (info)", None),
        Figure("share of the runner's time spent generating records (simulator fetch alone)",
               f"{generate_seconds:.1f} s ({generated / generate_seconds:,.0f} rec/s)",
               f"{min(s for _, s in runner_samples):.1f} s runner",
               generate_seconds / min(s for _, s in runner_samples), "none (info)", None),
    ]
    notes = [
        f"best of {args.repeats} sample(s) each, interleaved; fresh database copy per sample; "
        f"runner samples {', '.join(f'{s:.1f} s' for _, s in runner_samples)}, raw samples "
        f"{', '.join(f'{s:.2f} s' for s in raw_samples)}",
        "runner time is the wall clock of run_connector (fetch, validation, upserts, current-value snapshot, "
        f"roll-up queue and roll-ups); RunSummary.seconds of the last sample: {last_summary.seconds:.1f} s",
        "raw: sqlite3 executemany of the same rows into a plain WITHOUT ROWID table with the same primary key, "
        f"the app connections' pragmas ({', '.join(f'{k}={v}' for k, v in app_pragmas(template).items())}), "
        "50,000 rows per commit",
    ]
    report = Report("ingest", "Ingest throughput (runner vs raw executemany)", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
