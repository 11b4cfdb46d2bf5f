"""Connector throughput and memory: records per second through each connector type, against a raw insert, and
peak memory as the source grows tenfold.

    .venv/bin/python bench/connector_types.py                    # 1,000,000-record sources (and 100,000 for memory)
    .venv/bin/python bench/connector_types.py --quick            # 100,000 (and 10,000)
    .venv/bin/python bench/connector_types.py --types sql_query http_json --records 500000

Sources. Each type has a source builder in BUILDERS: given how many records and the clock, it builds a source of
that many records for the demo city (~6,000 communities, 210 streets) and returns the connectors.yaml entry that
reads it. The records are the same for every file-, database- and API-based type: every community's five
hourly community indicators (hotline complaints, open and overdue grid incidents, fire alarms, waterlogging
depth) and every street's three hourly street indicators (AQI, PM2.5, population inflow), with realistic
values (daily cycles, Poisson counts), hour after hour up to the last full hour, so every record is unique:
- drop_folder: one CSV file as an office's Excel would export it (Chinese headers and indicator names mapped by
  `indicator_names`, times like `2026/11/26 9:00`);
- sql_query: a table in a SQLite file read with `time_format: timestamp` (SQLite keeps text: `2026-11-26
  09:00:00`) from a `start` at the first hour, so the incremental WHERE and ORDER BY are exercised;
- http_json: pages of 1,000 rows (`{"data": {"items": [...]}}`, ISO times with offset) served by
  http.server in a SUBPROCESS from pages rendered beforehand, so the server's work is not counted in the
  connector's process and is little more than sending bytes (the two processes still share the machine's
  cores: that is the cost a real API's latency would stand for);
- simulator: the configured instance of data/connectors.yaml (all 14 reported indicators), from a `since`
  chosen so that its window holds N records (at least N: the records of the boundary second all count).
Three types read sources of their own standard shape, so their records differ:
- sensorthings: a SensorThings server (FROST-like) with one Datastream per street × street-level air/noise
  indicator (210 × aqi, pm25, noise = 630, each with its Thing and ObservedProperty), and N hourly Observations
  spread over them up to the last full hour; Datastreams and Observations pages (1,000 each, @iot.nextLink with
  $skip) are rendered beforehand and served by an http.server subprocess, as for http_json;
- open311: a GeoReport v2 server whose records are service requests, which the runner turns into incidents,
  each placed in a community by point-in-polygon and upserted, then stores every community's open and overdue
  counts: the source holds N/5 incidents (200,000 at the default N: N incidents would take minutes), opened over
  the last 30 days at community centroids with a small jitter (kept inside the boundary), pages of 1,000 from an
  http.server subprocess;
- mqtt: N readings (the same records as the file, database and API sources) in QoS 1 messages of JSON lists of
  100 readings, published BEFORE the run to the connector's persistent session on a private mosquitto (started
  for the run on a free port with `max_queued_messages 0`, as operators are told to configure it: the default
  1000 per offline session would drop most of them); the session is created first by connecting with the
  connector's client id, and removed after the run.
Adding a type is one builder function and one line in BUILDERS.

Runner: each run is `connectors.runner.run_connector(..., archive_root=<tmp>)` on a fresh copy of the demo city
database, in a CHILD process (`--child`), so its memory is its own. Its time is the wall clock of the whole
call (fetch, parsing, archiving, validation, upserts, current values, roll-up queue and roll-ups). The parent
samples the child's RSS with psutil every 50 ms from its start to its end (imports included); the child also
reports the kernel's high-water mark (VmHWM) as a cross-check, and its RSS after each commit of the run.

Baselines (same run): raw sqlite3 executemany of a type's records into one plain table, in a copy of the same
database with the app connections' pragmas, 50,000 rows per commit (bench/ingest.py's `run_raw_table`); best of
the samples taken before, between and after the connector runs. By default N (unit_id, indicator_id,
observed_at, value) rows of the file, database and API sources' records, in source order, into a plain WITHOUT
ROWID table with the observations key. A type whose records are something else has a baseline of its own in
connector_sources.BASELINES: open311 inserts its N/5 service requests, all their fields as the source sent them
(no placement, no masking), into a plain table shaped like `incidents` with its key (source, external_id). The
figures' labels and the notes say which baseline each type is compared with.

Figures per type: records/s through the runner at N vs the raw rate (target ≥ 0.30×), and peak RSS at N vs at
N/10 (target ≤ 1.50×, our reading of "must stay flat as the source grows 10×"). A type below the rate target
is run once more under cProfile (at N/10, to keep the run short) and the top 10 functions by cumulative time
are printed to stderr and written to bench/results/connector_types-profiles.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

import connectors  # noqa: E402,F401  (the package; importing it also registers the built-in types)
from connectors.runner import RECENT_ROWS_LIMIT, run_connector  # noqa: E402

RATE_TARGET = 0.30
FLAT_TARGET = 1.50
MB = 1024 * 1024
PROFILE_PATH = common.RESULTS_DIR / "connector_types-profiles.txt"
# The runner's rows per transaction (its default, which the app uses).
BATCH_SIZE = inspect.signature(run_connector).parameters["batch_size"].default

from connector_sources import BASELINES, BUILDERS, City, Plan, RawBaseline  # noqa: E402
from source_servers import EMPTY_PAGES, serve_pages  # noqa: E402


@dataclass
class Run:
    """One run of one type, as the child reported it and the parent's sampler saw it."""

    type_name: str
    expected: int
    fetched: int
    accepted: int
    rejected: int
    status: str
    error: str | None
    seconds: float
    rollup_seconds: float
    rss_before: int       # the child's RSS just before run_connector (interpreter, imports, catalog)
    max_rss: int          # the kernel's high-water mark of the child (VmHWM)
    peak_rss: int         # the highest of the parent's psutil samples of the child
    commits: list[tuple[float, int]]  # (monotonic time, RSS) after each commit inside the run's loop
    samples: list[tuple[float, int]]  # the parent's samples (monotonic time, RSS)
    noun: str = "records"  # the source's, as Source
    detail: str = ""
    note: str = ""

    @property
    def unit(self) -> str:
        return "rec/s" if self.noun == "records" else f"{self.noun}/s"

    @property
    def rate(self) -> float:
        return self.fetched / self.seconds

    @property
    def final_peak(self) -> int:
        """The peak after the last commit inside the loop: the final commit and the roll-ups."""
        after = self.commits[-1][0] if self.commits else 0.0
        return max((rss for moment, rss in self.samples if moment > after), default=self.peak_rss)

    @property
    def clean(self) -> bool:
        return self.status == "ok" and self.accepted == self.expected == self.fetched

    @property
    def problem(self) -> str:
        return (f"status {self.status}, {self.fetched:,} fetched, {self.accepted:,} accepted, {self.rejected:,} "
                f"rejected of {self.expected:,}{f': {self.error}' if self.error else ''}")


def run_in_child(type_name: str, plan: Plan, workdir: Path, profile: Path | None = None) -> Run:
    """Build the type's source, run it in a child process on a fresh city database, sample its RSS."""
    from server_memory import RssSampler

    workdir.mkdir(parents=True)
    source = BUILDERS[type_name](plan, workdir)
    try:
        database = workdir / "city.db"
        common.copy_sqlite(plan.city.template, database)  # a fresh copy of the demo city for every run
        connectors_yaml = workdir / "connectors.yaml"
        connectors_yaml.write_text(json.dumps({"connectors": [source.entry]}, ensure_ascii=False),
                                   encoding="utf-8")  # JSON is YAML
        job = {"database": str(database), "connectors": str(connectors_yaml), "name": source.entry["name"],
               "module": source.module, "since": source.since, "now": plan.now, "records": source.records,
               "archive": str(workdir / "archive"), "result": str(workdir / "result.json"),
               "profile": str(profile) if profile else None, "label": f"{type_name} {source.records:,}"}
        (workdir / "job.json").write_text(json.dumps(job), encoding="utf-8")
        command = [common.PYTHON, str(Path(__file__).resolve()), "--child", str(workdir / "job.json")]
        process = subprocess.Popen(command, cwd=common.ROOT, env={**os.environ, **source.env}, start_new_session=True)
        common._children.append(process)  # stopped with the benchmark, however it ends
        sampler = RssSampler(process.pid, interval=0.05).start()
        try:
            status = process.wait()
        finally:
            sampler.stop()
            common.stop_process(process)
        if status != 0 or not (workdir / "result.json").exists():
            raise RuntimeError(f"the {type_name} run exited with {status} without a result")
        result = json.loads((workdir / "result.json").read_text(encoding="utf-8"))
        return Run(type_name, source.records, result["fetched"], result["accepted"], result["rejected"],
                   result["status"], result["error_message"], result["wall_seconds"], result["rollup_seconds"],
                   result["rss_before"], result["max_rss"], sampler.peak,
                   [tuple(point) for point in result["commits"]], sampler.samples, source.noun, source.detail,
                   source.note)
    finally:
        source.close()
        shutil.rmtree(workdir, ignore_errors=True)


def child(job_path: Path) -> None:
    """The run itself, in its own process: load the entry as the app would and call run_connector once."""
    import cProfile

    import psutil
    from tqdm import tqdm

    from cityops.catalog import load_catalog
    from connectors.config import load_connectors

    job = json.loads(job_path.read_text(encoding="utf-8"))
    if job["module"]:
        importlib.import_module(job["module"])
    settings = common.settings_for(Path(job["database"]))
    catalog = load_catalog(settings.catalog_path)
    instance = next(i for i in load_connectors(job["connectors"], catalog_keys=catalog.keys,
                                               timezone=settings.timezone) if i.name == job["name"])
    me = psutil.Process()
    rss_before = me.memory_info().rss
    bar = tqdm(total=job["records"], unit="rec", unit_scale=True, desc=job["label"], leave=False, file=sys.stderr)
    progress: list[tuple[float, int]] = []

    def progressed(summary) -> None:
        # Called after each commit inside the loop, and once more when the run is over.
        progress.append((time.monotonic(), me.memory_info().rss))
        bar.update(summary.fetched - bar.n)

    def run():
        return run_connector(settings.database_url, instance, catalog, timezone=settings.timezone, now=job["now"],
                             since=job["since"], archive_root=Path(job["archive"]), progress=progressed)

    started = time.perf_counter()
    if job["profile"]:
        profiler = cProfile.Profile()
        summary = profiler.runcall(run)
        profiler.dump_stats(job["profile"])
    else:
        summary = run()
    seconds = time.perf_counter() - started
    bar.close()
    # VmHWM, not ru_maxrss: the latter keeps the parent's RSS from before exec.
    status = Path("/proc/self/status").read_text()
    high_water = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
    result = {**dataclasses.asdict(summary), "wall_seconds": seconds, "rss_before": rss_before,
              "max_rss": high_water, "commits": progress[:-1]}
    Path(job["result"]).write_text(json.dumps(result, default=str), encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records in each source (default %(default)s); memory is also measured at a tenth")
    parser.add_argument("--types", nargs="+", metavar="TYPE", choices=list(BUILDERS), default=list(BUILDERS),
                        help="connector types to run (default: all): " + ", ".join(BUILDERS))
    parser.add_argument("--quick", action="store_true", help="a smaller run: 100,000-record sources")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-pages", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-kind", default="readings", choices=list(EMPTY_PAGES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.records = min(args.records, 100_000)
    return args


def raw_sample(template: Path, folder: Path, index: int, rows: list[tuple]) -> float:
    import ingest

    return ingest.run_raw(template, folder, index, rows)


def own_raw_sample(template: Path, folder: Path, index: int, baseline: RawBaseline) -> float:
    import ingest

    return ingest.run_raw_table(template, folder, index, baseline.rows, baseline.table_ddl, baseline.table,
                                baseline.columns, label=f"raw {baseline.table}")


def profile_summary(type_name: str, records: int, path: Path) -> str:
    import io
    import pstats

    sections = []
    for order, title in (("cumulative", "top 10 by cumulative time"), ("tottime", "top 10 by own time")):
        text = io.StringIO()
        pstats.Stats(str(path), stream=text).strip_dirs().sort_stats(order).print_stats(10)
        # Keep the totals line and the table; drop the dump's file name and date.
        lines = [line for line in text.getvalue().splitlines() if line.strip() and ".prof" not in line]
        sections.append(f"== {type_name}: run_connector under cProfile, {records:,} records, {title} ==\n"
                        + "\n".join(lines))
    return "\n".join(sections) + "\n"


def memory_notes(runs: list[Run], records: int) -> list[str]:
    """What grows with the source, from the RSS after each commit and the peak after the last one."""
    climbing = [run for run in runs if len(run.commits) >= 2]
    if not climbing:
        return []
    per_commit = np.mean([(run.commits[-1][1] - run.commits[0][1]) / (len(run.commits) - 1) for run in climbing])
    first = np.mean([run.commits[0][1] - run.rss_before for run in climbing])
    final = np.mean([run.final_peak - run.commits[-1][1] for run in climbing])
    return [f"what grows with the source (means over the types, at {records:,} records): the first commit of "
            f"{BATCH_SIZE:,} rows raises RSS by {first / MB:,.0f} MB (one batch in flight: reading, validation, "
            f"upsert); each further commit adds {per_commit / MB:,.0f} MB, mostly the committed rows the runner "
            f"keeps for the roll-ups (_RecentRows, up to RECENT_ROWS_LIMIT = {RECENT_ROWS_LIMIT:,} rows); the "
            f"roll-ups over all those rows at the end of the run then peak {final / MB:,.0f} MB above the last "
            f"commit (the held rows concatenated and de-duplicated, then rolled up). Reading the sources stays "
            f"flat (chunks, pages, batches: RSS after the first commit at {records:,} is about the whole run's "
            f"peak at a tenth, see above); the growth is the runner's, and should stop once a run holds "
            f"{RECENT_ROWS_LIMIT:,} rows (not measured here)"]


def megabytes(size: int) -> str:
    return f"{size / MB:,.0f} MB"


def main(argv=None) -> Report | None:
    args = parse_args(argv)
    if args.serve_pages:
        serve_pages(args.serve_pages, args.port, args.serve_kind)
        return None
    if args.child:
        child(args.child)
        return None
    import ingest
    from tqdm import tqdm

    clock = Stopwatch()
    PROFILE_PATH.unlink(missing_ok=True)  # a profile from an earlier run would describe other code
    folder = common.temp_dir("connectors")
    template = common.city_database(folder, "template.db")
    city = City.load(template)
    now = int(time.time())
    large, small = Plan(args.records, now, city), Plan(max(1, args.records // 10), now, city)

    # Each type is compared with raw inserts of its own source's records where it has a baseline of its own
    # (BASELINES), with the observation rows of the file, database and API sources otherwise.
    own = {type_name: BASELINES[type_name](large) for type_name in args.types if type_name in BASELINES}
    observed = [type_name for type_name in args.types if type_name not in own]
    rows = large.raw_rows() if observed else []
    raw_seconds: list[float] = []
    own_seconds: dict[str, list[float]] = {type_name: [] for type_name in own}
    raw_at = {0, len(args.types) // 2, len(args.types)}  # interleaved with the runs, so drift hits both alike
    runs: dict[tuple[str, int], Run] = {}
    steps = tqdm(total=2 * len(args.types), desc="connector runs", unit="run", file=sys.stderr)
    for position, type_name in enumerate([*args.types, None]):
        if position in raw_at:
            if rows:
                raw_seconds.append(raw_sample(template, folder, len(raw_seconds), rows))
            for baseline_type, baseline in own.items():
                own_seconds[baseline_type].append(own_raw_sample(template, folder, len(own_seconds[baseline_type]),
                                                                 baseline))
        if type_name is None:
            break
        for plan in (small, large):
            run = run_in_child(type_name, plan, folder / f"{type_name}-{plan.records}")
            runs[type_name, plan.records] = run
            steps.update()
            steps.write(f"{type_name} {run.expected:,}: {run.rate:,.0f} {run.unit} ({run.seconds:.1f} s, roll-ups "
                        f"{run.rollup_seconds:.1f} s), peak RSS {megabytes(run.peak_rss)} "
                        f"(before the run {megabytes(run.rss_before)}), {run.status}")
    steps.close()
    raw_rates = {type_name: len(rows) / min(raw_seconds) for type_name in observed}
    raw_rates.update({type_name: len(own[type_name].rows) / min(own_seconds[type_name]) for type_name in own})
    del rows

    figures, notes, profiles = [], [], []
    for type_name in args.types:
        run, tenth = runs[type_name, large.records], runs[type_name, small.records]
        ratio = run.rate / raw_rates[type_name]
        target, passed = common.at_least(ratio, RATE_TARGET)
        compared = f"raw executemany of the same {run.noun}" if type_name in own else "raw executemany"
        figures.append(Figure(f"{type_name}: {run.noun}/s through run_connector ({run.expected:,} {run.noun}"
                              f"{run.detail}) vs {compared}", f"{run.rate:,.0f} {run.unit} ({run.seconds:.1f} s)",
                              f"{raw_rates[type_name]:,.0f} {run.unit if type_name in own else 'rec/s'}", ratio,
                              target, passed and run.clean))
        growth = run.peak_rss / tenth.peak_rss
        flat_target, flat = common.at_most(growth, FLAT_TARGET)
        figures.append(Figure(f"{type_name}: peak RSS of the run's process, {run.expected:,} vs {tenth.expected:,} "
                              f"{run.noun}", f"{megabytes(run.peak_rss)} (+{megabytes(run.peak_rss - run.rss_before)} "
                              f"in the run)", f"{megabytes(tenth.peak_rss)} (+"
                              f"{megabytes(tenth.peak_rss - tenth.rss_before)})", growth, flat_target,
                              flat and run.clean and tenth.clean))
        climb = (" → ".join(f"{rss / MB:,.0f}" for _, rss in run.commits) + " MB after each commit inside the loop"
                 if run.commits else f"no commit inside the loop (under {BATCH_SIZE:,} records)")
        notes.append(f"{type_name}: {tenth.expected:,} {run.noun} at {tenth.rate:,.0f} {run.unit} "
                     f"({tenth.seconds:.1f} s); "
                     f"at {run.expected:,}, roll-ups took {run.rollup_seconds:.1f} s of {run.seconds:.1f} s, and RSS "
                     f"was {megabytes(run.rss_before)} before run_connector, {climb}, "
                     f"{megabytes(run.final_peak)} at most in the final commit and roll-ups (VmHWM "
                     f"{megabytes(run.max_rss)}; at {tenth.expected:,}: {megabytes(tenth.max_rss)})")
        for checked in (run, tenth):
            if not checked.clean:
                notes.append(f"{type_name} at {checked.expected:,}: the run was not clean ({checked.problem})")
        if not passed:
            path = folder / f"{type_name}.prof"
            profiled = run_in_child(type_name, large, folder / f"{type_name}-profile", profile=path)
            profiles.append(profile_summary(type_name, profiled.expected, path))
            print(profiles[-1], file=sys.stderr)
    notes += memory_notes([runs[type_name, large.records] for type_name in args.types], large.records)
    pragmas = ", ".join(f"{k}={v}" for k, v in ingest.app_pragmas(template).items())
    if observed:
        notes.append(
            f"raw (the baseline of {', '.join(observed)}): sqlite3 executemany of (unit_id, indicator_id, "
            f"observed_at, value) rows into a plain WITHOUT ROWID table with the observations key, best of "
            f"{len(raw_seconds)} samples ({', '.join(f'{s:.2f} s' for s in raw_seconds)}) of {large.records:,} rows, "
            f"the same records as the file, database and API sources, in their order, with the app connections' "
            f"pragmas ({pragmas}), 50,000 rows per commit; the simulator's records are its own (14 indicators), of "
            f"the same count")
    notes += [f"{own[type_name].note}; best of {len(samples)} samples ({', '.join(f'{s:.2f} s' for s in samples)}), "
              f"taken at the same points of the run as the others" for type_name, samples in own_seconds.items()]
    notes += [
        f"memory: one child process per run; peak RSS sampled with psutil every 50 ms, imports included; "
        f"(+…) is the growth above the RSS just before run_connector; target ≤ {FLAT_TARGET:.2f}× is our "
        "reading of 'flat'",
    ]
    notes += [runs[type_name, large.records].note for type_name in args.types if runs[type_name, large.records].note]
    if args.quick:
        notes.append("quick run: at this size the runner's fixed costs per run (tree, catalog, current roll-ups) "
                     "weigh more and raw inserts into a small table are faster, so the rate ratios read lower, "
                     "and the interpreter's own RSS dominates the tenth's peak: the full run is the one that counts")
    if profiles:
        common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        PROFILE_PATH.write_text("\n".join(profiles), encoding="utf-8")
        notes.append(f"types below the rate target were profiled at their full size (each profile's header says "
                     f"how many records): top 10 functions by cumulative and by own time in "
                     f"{PROFILE_PATH.relative_to(common.ROOT)} (and on stderr)")
    report = Report("connector_types", "Connector throughput and memory (each type vs raw executemany of its "
                    "baseline's rows)", figures,
                    notes, seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
