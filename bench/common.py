"""Shared plumbing for the benchmarks: temporary databases, child processes and the result table
(the headless browser is in bench/headless.py).

Every benchmark reports RATIOS against a baseline measured in the same run, so the figures hold on any machine.
Results are printed and written as Markdown to bench/results/<name>.md (and .json, which run_all.py combines).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# run_all.py points every benchmark at one folder so the demo databases are built once per run.
CACHE_ENV = "ONESCREEN_BENCH_CACHE"
DEMO_DISTRICTS = 16
DEMO_SEED = 2026


# ------------------------------------------------------------------------------------------------
# Statistics and the result table
# ------------------------------------------------------------------------------------------------


def median(values) -> float:
    return float(statistics.median(values))


@dataclass
class Figure:
    """One row of a benchmark's table."""

    figure: str
    measured: str
    baseline: str
    ratio: float | None
    target: str                 # e.g. "≥ 0.30×", "≤ 1.2×" or "none (info)"
    passed: bool | None = None  # None: informational, no target

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        return [self.figure, self.measured, self.baseline, ratio, self.target, self.verdict]


HEADER = ["figure", "measured", "baseline", "ratio", "target", "result"]


def at_least(ratio: float, target: float) -> tuple[str, bool]:
    return f"≥ {target:.2f}×", ratio >= target


def at_most(ratio: float, target: float) -> tuple[str, bool]:
    return f"≤ {target:.2f}×", ratio <= target


def markdown_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


@dataclass
class Report:
    name: str
    title: str
    figures: list[Figure]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    quick: bool = False

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", markdown_table([f.cells() for f in self.figures]), ""]
        lines += [f"- {note}" for note in self.notes]
        lines.append(f"- {'quick run (--quick)' if self.quick else 'full run'}; benchmark took "
                     f"{self.seconds:.0f} s on {os.cpu_count()} CPU(s).")
        return "\n".join(lines) + "\n"

    def publish(self) -> Path:
        """Print the table and write bench/results/<name>.md and .json."""
        print()
        print(f"== {self.title} ==")
        print(text_table([f.cells() for f in self.figures]))
        for note in self.notes:
            print(f"  * {note}")
        print(f"  ({'quick' if self.quick else 'full'} run, {self.seconds:.0f} s)")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.md"
        path.write_text(self.markdown(), encoding="utf-8")
        data = asdict(self)
        for row, figure in zip(data["figures"], self.figures):
            row["verdict"] = figure.verdict
        (RESULTS_DIR / f"{self.name}.json").write_text(json.dumps(data, ensure_ascii=False, indent=2),
                                                       encoding="utf-8")
        print(f"  written to {path.relative_to(ROOT)}")
        return path


class Stopwatch:
    def __init__(self):
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


# ------------------------------------------------------------------------------------------------
# Temporary folders and child processes, cleaned up however the benchmark ends
# ------------------------------------------------------------------------------------------------

_children: list[subprocess.Popen] = []
_folders: list[Path] = []


def _cleanup() -> None:
    for process in list(_children):
        stop_process(process)
    for folder in list(_folders):
        shutil.rmtree(folder, ignore_errors=True)
        _folders.remove(folder)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
for _signal in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_signal, _on_signal)


def temp_dir(prefix: str) -> Path:
    """A fresh folder under the system temp dir, removed at exit (never var/, never the user's database)."""
    folder = Path(tempfile.mkdtemp(prefix=f"onescreen-bench-{prefix}-"))
    _folders.append(folder)
    return folder


def start_process(command: list[str], env: dict | None = None, log_path: Path | None = None,
                  cwd: Path = ROOT) -> subprocess.Popen:
    """Start a child in its own process group (so its own children go with it), remembered for clean-up."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    _children.append(process)
    return process


def run_visible(command: list[str], env: dict | None = None) -> int:
    """Run a child to completion with its output on our terminal; it is stopped if we are."""
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True)
    _children.append(process)
    try:
        return process.wait()
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate one child we started (and its process group, which only it and its children belong to)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=timeout)
    if process in _children:
        _children.remove(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}\n{detail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log_path: Path


def server_env(database_url: str | None = None) -> dict:
    env = {"DASH_DISABLE_VERSION_CHECK": "true", "ONESCREEN_SCHEDULER": "0", "PYTHONUNBUFFERED": "1"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def start_app_server(database_url: str, folder: Path) -> Server:
    """The real screen, started as `make run` would but on a prepared database: `onescreen.py serve`."""
    port = free_port()
    log_path = folder / f"app-{port}.log"
    process = start_process([PYTHON, str(ROOT / "onescreen.py"), "serve", "--skip-setup", "--no-scheduler",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=server_env(database_url), log_path=log_path)
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, process, log_path=log_path)
    return Server(process, url, log_path)


def start_bare_server(folder: Path, map_geojson: Path | None = None) -> Server:
    """The baseline: a Dash app with one div, served the same way (Flask's threaded server) in a subprocess.
    With `map_geojson`: a plain dash-leaflet map of that FeatureCollection instead (bench/bare_dash.py --map)."""
    port = free_port()
    log_path = folder / f"bare-{port}.log"
    extra = ["--map", str(map_geojson)] if map_geojson else []
    process = start_process([PYTHON, str(BENCH_DIR / "bare_dash.py"), "--port", str(port), *extra],
                            env=server_env(), log_path=log_path)
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, process, log_path=log_path)
    return Server(process, url, log_path)


# ------------------------------------------------------------------------------------------------
# Databases
# ------------------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).as_posix()}"


def release(url: str) -> None:
    """Close the app's pooled connections to a database, so its file can be copied or deleted."""
    from cityops.db import engine_for

    engine_for(url).dispose()


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), through SQLite's backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")  # as the app's engine sets it
    finally:
        dst.close()
        src.close()


def _cache_dir() -> Path | None:
    folder = os.environ.get(CACHE_ENV)
    return Path(folder) if folder else None


def schema_fingerprint() -> str:
    """Short hash of the migrations (migrations/versions/*.py): what the templates' tables were built by."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def _template(name: str, folder: Path, build) -> Path:
    """A read-only template database: from run_all's shared cache when it holds one, else built by `build(path)`
    (into the cache, or into `folder` when there is none). Callers copy it before writing."""
    cache = _cache_dir()
    if cache is None:
        target = folder / f"template-{name}"
        if not target.exists():
            build(target)
        return target
    # Per schema: a template built before a migration would measure the old tables and indexes.
    cache = cache / f"schema-{schema_fingerprint()}"
    target = cache / name
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = folder / f"partial-{name}"
        build(partial)
        copy_sqlite(partial, target)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
    return target


def settings_for(path: Path):
    from cityops.settings import Settings

    return Settings(database_url=sqlite_url(path), run_scheduler=False)


def _build_city(path: Path, seed: int) -> None:
    from cityops.boundaries import replace_units
    from cityops.catalog import load_catalog
    from cityops.db import migrate, session_scope
    from cityops.demo_city import generate_city
    from cityops.storage import sync_indicators

    settings = settings_for(path)
    print(f"building the demo city (seed {seed}) …", file=sys.stderr, flush=True)
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        sync_indicators(session, load_catalog(settings.catalog_path))
    records = generate_city(seed, progress=True)
    with session_scope(settings.database_url) as session:
        replace_units(session, records)
    release(settings.database_url)


def city_database(folder: Path, name: str = "city.db", seed: int = DEMO_SEED) -> Path:
    """`folder/name`: a migrated database with the catalog registered and the demo city (~6,000
    communities), no history."""
    template = _template(f"city-{seed}.db", folder, lambda path: _build_city(path, seed))
    copy_sqlite(template, folder / name)
    return folder / name


def simulator_instance(settings):
    import connectors  # noqa: F401  (registers the connector types)
    from connectors.config import load_connectors

    return next(i for i in load_connectors(settings.connectors_path) if i.type == "simulator")


def run_simulator(settings, since: int, now: float | None = None, desc: str = "simulator"):
    """run_connector with the configured simulator instance from `since`, with a progress bar."""
    from tqdm import tqdm

    from cityops.catalog import load_catalog
    from connectors.runner import run_connector

    catalog = load_catalog(settings.catalog_path)
    now = time.time() if now is None else now
    estimate = int((now - since) * 1_040_000 / 86400)  # the demo city reports ~1.04 M records a day
    bar = tqdm(total=estimate, unit="rec", unit_scale=True, desc=desc, leave=False, file=sys.stderr)
    try:
        return run_connector(settings.database_url, simulator_instance(settings), catalog,
                             timezone=settings.timezone, now=now, since=str(int(since)),
                             progress=lambda summary: bar.update(summary.fetched - bar.n))
    finally:
        bar.close()


def demo_database(folder: Path, hours: float = 24, name: str = "demo.db") -> Path:
    """`folder/name`: the demo city with `hours` of simulator history up to now, ingested through the runner
    (prepare()'s steps with a short backfill window)."""

    def build(path: Path) -> None:
        city_database(folder, name=path.name)
        settings = settings_for(path)
        print(f"ingesting {hours:g} h of simulator history through the runner …", file=sys.stderr, flush=True)
        summary = run_simulator(settings, since=int(time.time() - hours * 3600), desc=f"{hours:g} h history")
        if summary.status != "ok":
            raise RuntimeError(f"simulator backfill failed: {summary}")
        release(settings.database_url)

    template = _template(f"demo-{hours:g}h.db", folder, build)
    copy_sqlite(template, folder / name)
    return folder / name
