"""Alert evaluation after an ingest cycle against the ingest itself, same run, same database.

    .venv/bin/python bench/alert_evaluation.py            # best of 5
    .venv/bin/python bench/alert_evaluation.py --quick    # one sample

Setting: the demo city (~6,000 communities) with the simulator's history where the rules look — the last 7 hours
(thresholds, rate of change against the previous period, roll-up completeness) and the same hours 1 to 4 weeks
back (anomaly baselines, rate of change against last week) — and the rules of data/alerts.yaml evaluated once up
to an hour ago, so the alert cursors and open episodes are those of a deployment that has been running.

One sample, on a fresh copy of that database: the ingest cycle is `run_connector` of the simulator for the last
hour (every community, every indicator: ~37 k records, roll-ups included, and the checkpoint of SQLite's
write-ahead log that its writes call for); the evaluation is what the scheduler
then does (`AlertJob.evaluate` with the indicators the run touched: every rule, every level, the silence rules,
storing the alerts, events and notifications it makes). Figure: evaluation seconds / ingest seconds (target ≤ 0.2×).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

TARGET = 0.2
HOUR = 3600
WEEK = 7 * 86400


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="samples; the best of each counts (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one sample")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    return args


def alert_job(settings):
    from cityops.alerts.job import AlertJob
    from cityops.catalog import load_catalog

    return AlertJob(settings, load_catalog(settings.catalog_path))


def running_deployment(folder: Path, now: int) -> Path:
    """The city with history where the rules look, evaluated up to an hour ago (see the module docstring)."""

    def build(path: Path) -> None:
        common.city_database(folder, name=path.name)
        settings = common.settings_for(path)
        windows = [(now - k * WEEK - 2 * HOUR, now - k * WEEK + HOUR) for k in (4, 3, 2, 1)]
        windows.append((now - 7 * HOUR, now - HOUR))
        for position, (start, end) in enumerate(windows, 1):
            summary = common.run_simulator(settings, since=start, now=end, desc=f"history {position}/{len(windows)}")
            if summary.status != "ok":
                raise RuntimeError(f"simulator history failed: {summary}")
        report = alert_job(settings).evaluate(None, now=now - HOUR)
        print(f"warm-up evaluation: {report.judged:,} judgements, {dict(report.stored.changes)}", file=sys.stderr)
        common.release(settings.database_url)

    template = folder / f"alerts-{now}.db"
    build(template)
    return template


def checkpoint(path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def sample(template: Path, folder: Path, index: int, now: int):
    path = folder / f"sample-{index}.db"
    common.copy_sqlite(template, path)
    settings = common.settings_for(path)
    job = alert_job(settings)
    job.config  # the rules file is read before timing, as a running scheduler has it
    started = time.perf_counter()
    summary = common.run_simulator(settings, since=now - HOUR, now=now, desc=f"ingest #{index + 1}")
    # The ingest's pages are moved from SQLite's write-ahead log into the database within its own time: left in
    # the log, whichever commit comes next (here the evaluation's) would pay for them.
    checkpoint(path)
    ingest = time.perf_counter() - started
    if summary.status != "ok":
        raise RuntimeError(f"the ingest cycle did not finish cleanly: {summary}")
    started = time.perf_counter()
    report = job.evaluate(summary.touched, now=now, fresh=summary.fresh)
    evaluation = time.perf_counter() - started
    common.release(settings.database_url)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return summary, ingest, report, evaluation


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    folder = common.temp_dir("alerts")
    now = int(time.time()) // HOUR * HOUR + HOUR // 2
    template = running_deployment(folder, now)
    ingests, evaluations, last = [], [], None
    for index in range(args.repeats):
        summary, ingest, report, evaluation = sample(template, folder, index, now)
        ingests.append(ingest)
        evaluations.append(evaluation)
        last = (summary, report)
        print(f"sample {index + 1}/{args.repeats}: ingest {ingest:.2f} s ({summary.accepted:,} records), "
              f"evaluation {evaluation:.3f} s ({report.judged:,} judgements, {dict(report.stored.changes)})",
              file=sys.stderr)
    summary, report = last
    ratio = min(evaluations) / min(ingests)
    target, passed = common.at_most(ratio, TARGET)
    figures = [Figure(f"evaluating every alert rule after an ingest cycle vs the ingest ({summary.accepted:,} "
                      f"records, {len(summary.touched)} indicators)", f"{min(evaluations):.3f} s",
                      f"{min(ingests):.2f} s ingest", ratio, target, passed)]
    notes = [f"best of {args.repeats} sample(s) each; evaluation samples "
             f"{', '.join(f'{s:.3f} s' for s in evaluations)}, "
             f"ingest samples {', '.join(f'{s:.2f} s' for s in ingests)}",
             f"last evaluation: {report.judged:,} judgements, changes {dict(report.stored.changes) or 'none'}, "
             f"{report.closed} closed after recovery"]
    result = Report("alert_evaluation", "Alert evaluation after an ingest cycle (vs the ingest)", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    result.publish()
    return result


if __name__ == "__main__":
    main()
