"""Latest values stay flat as history grows: the screen's "latest value for every community" at 7 vs 28 days.

    .venv/bin/python bench/latest_values.py            # 7 vs 28 days of hourly history, ~6,000 communities
    .venv/bin/python bench/latest_values.py --quick    # 2 vs 8 days, fewer samples

Two databases with the same demo city (~6,000 communities) and the same current snapshot (`current_values`,
written by `cityops.storage.upsert_observations` from the newest rows); only the depth of the history in
`observations` differs: every community-level reported indicator at its own interval (hourly, daily) for
7 days in one and 28 days in the other. History is written directly with executemany (sorted by primary key,
the secondary index rebuilt afterwards with its own DDL) rather than simulated, to keep the build to a minute.

Figure (target ≤ 1.2×): `cityops.readings.current_frame` for hotline_complaints over all community ids — what
every "latest value of every community" view asks. Also measured (info): `children_readings` for every street
(the map's colours one drill level down, all 210 streets), and `unit_readings` of one community (the KPI cards,
which also read the previous period's value from history). Median of interleaved samples; ratio = 28 d / 7 d.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

TARGET = 1.2
INDICATOR = "hotline_complaints"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short-days", type=float, default=7, help="history of the baseline (default %(default)s)")
    parser.add_argument("--long-days", type=float, default=28, help="history of the other (default %(default)s)")
    parser.add_argument("--samples", type=int, default=61,
                        help="timed calls of the main query per database, alternating (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=7,
                        help="interleaved blocks for the two informational reads (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 2 vs 8 days, 15 samples, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.short_days, args.long_days, args.samples, args.rounds = 2, 8, 15, 3
    return args


def community_indicators(catalog, ids):
    """(indicator id, interval seconds) of every reported indicator measured per community."""
    from cityops.hierarchy import Level

    return [(ids[i.key], i.interval_seconds) for i in catalog.reported() if i.level == Level.COMMUNITY]


def synthetic_value(unit_ids: np.ndarray, indicator_id: int, times: np.ndarray) -> np.ndarray:
    """A deterministic value per (unit, indicator, bucket), so both databases agree wherever they overlap."""
    mixed = (unit_ids[:, None] * 2654435761 + indicator_id * 40503 + (times // 60) * 97) % 1000
    return mixed / 100.0


def write_history(path: Path, unit_ids: np.ndarray, indicators, now: int, days: float, desc: str) -> int:
    """Hourly (or daily) rows for `days` up to `now` for every unit and indicator; returns the rows written.

    Each unit reports at its own offset in the interval, as the simulator does. The newest row per
    (unit, indicator) is the same in every database, whatever `days` is.
    """
    from tqdm import tqdm

    connection = sqlite3.connect(path, isolation_level=None)
    written = 0
    try:
        index_sql = [sql for (sql,) in connection.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observations' AND sql IS NOT NULL")]
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        for sql in index_sql:
            name = sql.split("INDEX", 1)[1].split("ON", 1)[0].strip().strip('"')
            connection.execute(f'DROP INDEX "{name}"')
        statement = "INSERT INTO observations (unit_id, indicator_id, observed_at, value, run_id) VALUES (?,?,?,?,NULL)"
        chunk = 100
        with tqdm(total=len(unit_ids), unit="unit", desc=desc, leave=False, file=sys.stderr) as bar:
            for start in range(0, len(unit_ids), chunk):
                units = unit_ids[start:start + chunk]
                connection.execute("BEGIN")
                for indicator_id, interval in indicators:  # (unit, indicator, time) order: the primary key's
                    steps = max(1, int(days * 86400 // interval))
                    offsets = (units * 7919 % interval)[:, None]
                    newest = (now - offsets) // interval * interval + offsets  # each unit's latest report <= now
                    times = newest - interval * np.arange(steps - 1, -1, -1, dtype=np.int64)[None, :]
                    values = synthetic_value(units, indicator_id, times)
                    count = times.size
                    connection.executemany(statement, zip(
                        np.repeat(units, steps).tolist(), [indicator_id] * count,
                        times.ravel().tolist(), values.ravel().tolist()))
                    written += count
                connection.execute("COMMIT")
                bar.update(len(units))
        print(f"{desc}: rebuilding the observations index on {written:,} rows …", file=sys.stderr, flush=True)
        for sql in index_sql:
            connection.execute(sql)
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    return written


def write_snapshot(path: Path, unit_ids: np.ndarray, indicators) -> int:
    """current_values from the newest row of every (unit, indicator), through upsert_observations."""
    from cityops.db import session_scope
    from cityops.storage import upsert_observations

    url = common.sqlite_url(path)
    connection = sqlite3.connect(path)
    try:
        latest = connection.execute(
            "SELECT unit_id, indicator_id, max(observed_at), value FROM observations GROUP BY unit_id, indicator_id"
        ).fetchall()
    finally:
        connection.close()
    rows = [{"unit_id": u, "indicator_id": i, "observed_at": t, "value": v, "run_id": None} for u, i, t, v in latest]
    with session_scope(url) as session:
        upsert_observations(session, rows)
    common.release(url)
    return len(rows)


def snapshot_of(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT unit_id, indicator_id, observed_at, value FROM current_values "
                                  "ORDER BY unit_id, indicator_id").fetchall()
    finally:
        connection.close()


class Queries:
    """The three reads, bound to one database."""

    def __init__(self, path: Path, now: int):
        from cityops.catalog import load_catalog
        from cityops.db import session_scope
        from cityops.hierarchy import Level
        from cityops.scope import Viewer, viewer_scope
        from cityops.storage import indicator_ids
        from cityops.tree import load_tree

        self.url = common.sqlite_url(path)
        self.now = now
        self.catalog = load_catalog(common.settings_for(path).catalog_path)
        with session_scope(self.url) as session:
            self.ids = indicator_ids(session, self.catalog)
            tree = load_tree(session)
            self.scope = viewer_scope(session, Viewer())
            self.communities = tree.at_level(Level.COMMUNITY).index.tolist()
            self.streets = tree.at_level(Level.STREET).index.tolist()
            self.community = self.communities[len(self.communities) // 2]

    def _session(self):
        from cityops.db import session_scope

        return session_scope(self.url)

    def latest_all_communities(self) -> int:
        """The query itself, with the viewer's scope resolved beforehand (so no unit-tree reload is timed)."""
        from cityops.hierarchy import Level
        from cityops.readings import current_frame

        with self._session() as session:
            frame = current_frame(session, self.scope, self.catalog[INDICATOR], self.ids[INDICATOR],
                                  self.communities, Level.COMMUNITY, self.now)
        return len(frame)

    def children_of_every_street(self) -> int:
        from cityops.readings import children_readings

        with self._session() as session:
            return sum(len(children_readings(session, self.scope, self.catalog, self.ids, street, INDICATOR,
                                             self.now)) for street in self.streets)

    def kpis_of_one_community(self) -> int:
        from cityops.readings import unit_readings

        with self._session() as session:
            readings = unit_readings(session, self.scope, self.catalog, self.ids, self.community, self.now)
        return sum(r.value is not None for r in readings.values())


def _timed(call) -> float:
    """Milliseconds of one call, after a full garbage collection: otherwise about one call in five also pays for
    collecting its predecessors' garbage (~50 ms), which says nothing about the query."""
    gc.collect()
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure_alternating(calls: dict, samples: int, bar) -> dict[str, list[float]]:
    """Milliseconds per call, alternating databases call by call (for reads that do not load the unit tree)."""
    times = {db: [] for db in calls}
    for call in calls.values():
        call()  # warm-up
    order = list(calls)
    for sample in range(samples):
        for db in (order if sample % 2 == 0 else order[::-1]):  # ABBA: neither database always goes first
            times[db].append(_timed(calls[db]))
        bar.update()
    return times


def measure_blocks(calls: dict, rounds: int, per_round: int, bar) -> dict[str, list[float]]:
    """Milliseconds per call in blocks: the unit tree is cached for one database at a time (cityops.tree), so
    each block starts with an untimed warm-up call and databases alternate block by block."""
    times = {db: [] for db in calls}
    order = list(calls)
    for round_ in range(rounds):
        for db in (order if round_ % 2 == 0 else order[::-1]):
            call = calls[db]
            call()
            times[db].extend(_timed(call) for _ in range(per_round))
        bar.update()
    return times


def same_answers(queries: dict, name: str) -> None:
    answers = {db: getattr(bound, name)() for db, bound in queries.items()}
    if len(set(answers.values())) != 1:
        raise RuntimeError(f"{name} answered differently on the two databases: {answers}")


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    folder = common.temp_dir("latest")
    from cityops.catalog import load_catalog
    from cityops.db import session_scope
    from cityops.hierarchy import Level
    from cityops.storage import indicator_ids
    from cityops.tree import load_tree

    now = int(time.time())
    paths = {}
    counts = {}
    for label, days in (("short", args.short_days), ("long", args.long_days)):
        path = common.city_database(folder, f"history-{days:g}d.db")
        url = common.sqlite_url(path)
        catalog = load_catalog(common.settings_for(path).catalog_path)
        with session_scope(url) as session:
            ids = indicator_ids(session, catalog)
            unit_ids = np.asarray(load_tree(session).at_level(Level.COMMUNITY).index.to_numpy(), dtype=np.int64)
        common.release(url)
        indicators = community_indicators(catalog, ids)
        counts[label] = write_history(path, np.sort(unit_ids), indicators, now, days, f"{days:g} d history")
        write_snapshot(path, unit_ids, indicators)
        paths[label] = path
    if snapshot_of(paths["short"]) != snapshot_of(paths["long"]):
        raise RuntimeError("the two databases' current snapshots differ; the comparison would be meaningless")

    from tqdm import tqdm

    queries = {label: Queries(path, now) for label, path in paths.items()}
    names = ["latest_all_communities", "children_of_every_street", "kpis_of_one_community"]
    for name in names:
        same_answers(queries, name)
    samples = {}
    bound = {name: {db: getattr(q, name) for db, q in queries.items()} for name in names}
    with tqdm(total=args.samples + 2 * args.rounds, desc="timing", unit="round", file=sys.stderr, leave=False) as bar:
        samples["latest_all_communities"] = measure_alternating(bound["latest_all_communities"], args.samples, bar)
        samples["kpis_of_one_community"] = measure_blocks(bound["kpis_of_one_community"], args.rounds, 5, bar)
        samples["children_of_every_street"] = measure_blocks(bound["children_of_every_street"], args.rounds, 1, bar)
    count = len(queries["short"].communities)
    labels = {
        "latest_all_communities": f"current_frame({INDICATOR}) for all {count:,} communities",
        "children_of_every_street": f"children_readings of all {len(queries['short'].streets)} streets (map colours)",
        "kpis_of_one_community": "unit_readings of one community (KPI cards, reads history for the change)",
    }
    figures = []
    for name in names:
        long_ms, short_ms = common.median(samples[name]["long"]), common.median(samples[name]["short"])
        ratio = long_ms / short_ms
        if name == "latest_all_communities":
            target, passed = common.at_most(ratio, TARGET)
        else:
            target, passed = "none (info)", None
        figures.append(Figure(f"{labels[name]}: {args.long_days:g} d vs {args.short_days:g} d history",
                              f"{long_ms:.1f} ms", f"{short_ms:.1f} ms", ratio, target, passed))
    notes = [
        f"observations rows: {counts['short']:,} ({args.short_days:g} d) vs {counts['long']:,} ({args.long_days:g} d); "
        f"same units, identical current_values snapshot ({len(snapshot_of(paths['short'])):,} rows)",
        f"medians, warm caches, SQLite, one process, gc.collect() before each timed call: current_frame "
        f"{args.samples} calls per database alternating call by call (viewer scope resolved once); unit_readings {args.rounds} interleaved blocks of 5 and "
        f"children_readings {args.rounds} blocks of 1, each block after an untimed warm-up call",
        "history: every community-level reported indicator at its interval, synthetic values, written with "
        "executemany; street- and district-level history is not included",
    ]
    for label in paths.values():
        common.release(common.sqlite_url(label))
    report = Report("latest_values", "Latest values vs history depth", figures, notes, seconds=clock.seconds,
                    quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
