"""The `onescreen` command: set up, load boundaries, run connectors and serve the screen.

    python onescreen.py --help
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from cityops.settings import Settings
from commands import common
from commands.alerts import alerts_group
from commands.exports import exports_group
from commands.quarantine import quarantine_group

log = logging.getLogger("onescreen")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def cli(verbose: bool) -> None:
    """OneScreen: the city-operations command-center screen.

    Settings come from environment variables (DATABASE_URL, ONESCREEN_*); see README.md.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        # Alembic narrates every plugin it loads; a migration that runs still says so.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


cli.add_command(quarantine_group)
cli.add_command(alerts_group)
cli.add_command(exports_group)


@cli.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (Alembic) and register the indicator catalog."""
    settings = common.settings()
    from cityops.db import migrate, session_scope
    from cityops.storage import sync_indicators

    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        ids = sync_indicators(session, common.catalog(settings))
    click.echo(f"schema up to date; {len(ids)} indicators registered")


@cli.command("seed-demo")
@click.option("--seed", type=int, default=None, help="Random seed (default ONESCREEN_DEMO_SEED or 2026).")
@click.option("--force", is_flag=True, help="Replace existing units.")
def seed_demo(seed: int | None, force: bool) -> None:
    """Generate the demo city (16 districts, ~210 streets, ~6,000 communities) and load it."""
    settings = common.settings()
    loaded = load_demo_city(settings, seed=seed, force=force)
    click.echo(f"demo city loaded: {loaded} units" if loaded else "units already loaded (use --force to replace)")


def load_demo_city(settings: Settings, seed: int | None = None, force: bool = False) -> int:
    from cityops.boundaries import has_units, replace_units
    from cityops.db import migrate, session_scope
    from cityops.demo_city import generate_city

    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        if has_units(session) and not force:
            return 0
    click.echo("generating the demo city …")
    records = generate_city(settings.demo_seed if seed is None else seed, progress=True)
    with session_scope(settings.database_url) as session:
        return replace_units(session, records)


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--code-field", default="code", show_default=True, help="Property holding the unit code.")
@click.option("--name-field", default="name", show_default=True, help="Property holding the Chinese name.")
@click.option("--name-en-field", default="name_en", show_default=True, help="Property holding the English name.")
@click.option("--parent-field", default=None, help="Property holding the parent code (default: derived from "
              "6/9/12-digit statistical codes).")
@click.option("--level-field", default=None, help="Property holding the level (city/district/street/community).")
@click.option("--population-field", default="population", show_default=True)
@click.option("--city-code", default=None, help="Code of the city when the file has no city feature.")
def import_command(paths, code_field, name_field, name_en_field, parent_field, level_field, population_field,
                   city_code) -> None:
    """Load a city's administrative boundaries from GeoJSON, all or nothing."""
    settings = common.settings()
    from cityops.boundary_import import BoundaryImportError, FieldMap, import_boundaries

    fields = FieldMap(code=code_field, name_zh=name_field, name_en=name_en_field, parent=parent_field,
                      level=level_field, population=population_field)
    try:
        counts = import_boundaries(settings.database_url, list(paths), fields, city_code=city_code,
                                   city_name_zh=settings.city_name_zh, city_name_en=settings.city_name_en,
                                   progress=True)
    except BoundaryImportError as error:
        raise click.ClickException(f"nothing was loaded:\n{error}") from None
    click.echo("loaded " + ", ".join(f"{count} {level}" for level, count in counts.items()))


@cli.command("connectors")
def list_connectors() -> None:
    """List configured connectors with their health and last run."""
    settings = common.settings()
    from sqlalchemy import select

    from cityops.db import migrate, session_scope
    from cityops.models import ConnectorRun

    migrate(settings.database_url)
    for instance in common.instances(settings):
        health = _check(settings, instance)
        with session_scope(settings.database_url) as session:
            last = session.execute(select(ConnectorRun).where(ConnectorRun.connector == instance.name)
                                   .order_by(ConnectorRun.id.desc()).limit(1)).scalar_one_or_none()
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.started_at)) if last else "never"
        status = f"{last.status}, {last.accepted} accepted, {last.rejected} rejected" if last else "-"
        if last is not None and last.error_message:
            status += f" — {last.error_family}: {last.error_message}"
            if last.error_family == "fatal":
                status += " (the scheduler pauses it until connectors.yaml changes)"
        schedule = f"cron {instance.cron}" if instance.cron else f"every {_duration(instance.interval_seconds)}"
        click.echo(f"{instance.name:24} {instance.type:12} {schedule:18} "
                   f"{'healthy' if health.healthy else 'UNHEALTHY'}: {health.detail}\n"
                   f"{'':24} last run {when}: {status}")


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _check(settings: Settings, instance):
    from cityops.db import session_scope
    from cityops.tree import load_tree
    from connectors.base import ConnectorContext
    from connectors.runner import build_connector

    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
    context = ConnectorContext(catalog=common.catalog(settings), tree=tree, now=time.time(), timezone=settings.timezone)
    try:
        return build_connector(instance, context).check()
    except Exception as error:  # a check must report, not crash the listing
        from connectors.base import Health

        return Health(False, f"{type(error).__name__}: {error}")


@cli.command("check")
@click.argument("name")
def check_command(name: str) -> None:
    """Say whether one connector's source is reachable now, and if not, why."""
    settings = common.settings()
    health = _check(settings, common.instance(settings, name))
    click.echo(("healthy: " if health.healthy else "unhealthy: ") + health.detail)
    sys.exit(0 if health.healthy else 1)


@cli.command("run")
@click.argument("name")
def run_command(name: str) -> None:
    """Run one connector now, from its stored cursor."""
    settings = common.settings()
    summary = run_with_progress(settings, common.instance(settings, name))
    click.echo(f"{summary.status}: {summary.fetched} fetched, {summary.accepted} accepted, "
               f"{summary.rejected} rejected, {summary.duplicates} duplicates in {summary.seconds:.1f}s"
               + (f" — {summary.error_family}: {summary.error_message}" if summary.error_message else ""))
    sys.exit(0 if summary.status in ("ok", "partial") else 1)


@cli.command("backfill")
@click.argument("name")
@click.option("--days", type=float, default=None, help="Fetch from this many days ago until now (default 7).")
@click.option("--from", "start", default=None, help="Start of a time range (ISO 8601, e.g. 2026-11-01 or "
              "2026-11-01T08:00; zone-less times are in the city's zone).")
@click.option("--to", "end", default=None, help="End of the time range (default: now). Records after it are left "
              "for the regular schedule.")
def backfill_command(name: str, days: float | None, start: str | None, end: str | None) -> None:
    """Fetch connector NAME's history for a time range, with a progress bar (idempotent: re-running changes
    nothing). With --to the connector's cursor does not move: its schedule carries on from where it was."""
    settings = common.settings()
    if days is not None and start is not None:
        raise click.UsageError("give --days or --from, not both")
    now = time.time()
    since = _moment(start, settings, "--from") if start else now - (7 if days is None else days) * 86400
    until = _moment(end, settings, "--to") if end else None
    if until is not None and until <= since:
        raise click.UsageError("--to must be after the start of the range")
    summary = run_with_progress(settings, common.instance(settings, name), since=str(int(since)),
                                days=((until or now) - since) / 86400,
                                until=int(until) if until is not None else None)
    click.echo(f"{summary.status}: {summary.accepted} accepted, {summary.rejected} rejected, "
               f"{summary.duplicates} duplicates"
               + (f", {summary.skipped} after the range left for the schedule" if summary.skipped else "")
               + f" in {summary.seconds:.1f}s"
               + (f" — {summary.error_family}: {summary.error_message}" if summary.error_message else ""))
    sys.exit(0 if summary.status in ("ok", "partial") else 1)


def _moment(text: str, settings: Settings, option: str) -> float:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-01T08:00)",
                                 param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment.timestamp()


@cli.command("replay")
@click.argument("name")
@click.option("--run", "run_id", type=int, default=None, help="Replay every payload archived by this run.")
@click.argument("references", nargs=-1)
def replay_command(name: str, run_id: int | None, references: tuple[str, ...]) -> None:
    """Parse archived payloads of connector NAME again (after fixing a mapping, the catalog or the units).

    Give payload REFERENCES (as shown in quarantined records and run records) or --run RUN_ID. Storage is
    idempotent: what was stored before is counted as duplicates; the connector's cursor does not move.
    """
    settings = common.settings()
    from cityops.db import migrate, session_scope
    from cityops.models import ConnectorRun
    from connectors.archive import run_payloads
    from connectors.runner import run_connector

    instance = common.instance(settings, name)
    migrate(settings.database_url)
    refs = list(references)
    if run_id is not None:
        with session_scope(settings.database_url) as session:
            run = session.get(ConnectorRun, run_id)
        if run is None or run.connector != name:
            raise click.ClickException(f"run {run_id} is not a run of {name}; `onescreen connectors` lists runs")
        if not run.archive:
            raise click.ClickException(f"run {run_id} archived no payload (it fetched nothing, or it was a replay)")
        refs += run_payloads(settings.archive_dir, run.archive)
    if not refs:
        raise click.ClickException("nothing to replay: give payload references or --run RUN_ID")
    summary = run_connector(settings.database_url, instance, common.catalog(settings), timezone=settings.timezone,
                            archive_root=settings.archive_dir, replay=refs)
    click.echo(f"{summary.status}: {len(refs)} payload(s), {summary.fetched} records, {summary.accepted} accepted, "
               f"{summary.rejected} rejected, {summary.duplicates} duplicates"
               + (f" — {summary.error_family}: {summary.error_message}" if summary.error_message else ""))
    sys.exit(0 if summary.status in ("ok", "partial") else 1)


def _backfill_days(settings: Settings, instance) -> int:
    """The days of history a connector's first run fetches: its own `backfill_days` (the simulator's config),
    else the deployment's (ONESCREEN_BACKFILL_DAYS)."""
    return int((instance.config or {}).get("backfill_days") or settings.backfill_days)


def run_with_progress(settings: Settings, instance, since: str | None = None, days: float | None = None,
                      until: int | None = None):
    """Run a connector with a progress bar sized from the catalog (an estimate for sources that stream)."""
    from tqdm import tqdm

    from cityops.db import migrate, session_scope
    from cityops.models import ConnectorCursor
    from cityops.tree import load_tree
    from connectors.runner import run_connector

    migrate(settings.database_url)
    catalog = common.catalog(settings)
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
        cursor = session.get(ConnectorCursor, instance.name)
    if days is None and cursor:
        days = (time.time() - float(cursor.cursor)) / 86400
    elif days is None:  # a first run: the simulator's history starts at the city's midnight (first_history_start)
        from zoneinfo import ZoneInfo

        from connectors.simulator import first_history_start

        days = (time.time() - first_history_start(time.time(), ZoneInfo(settings.timezone),
                                                  _backfill_days(settings, instance))) / 86400
    total = int(sum(len(tree.at_level(i.level)) * days * 86400 / i.interval_seconds
                    for i in catalog.reported() if i.level in instance.levels))
    bar = tqdm(total=total, unit="rec", unit_scale=True, desc=instance.name, disable=total < 50_000)

    def progress(summary):
        bar.update(summary.fetched - bar.n)

    try:
        return run_connector(settings.database_url, instance, catalog, timezone=settings.timezone, since=since,
                             progress=progress, archive_root=settings.archive_dir, until=until)
    finally:
        bar.close()


def prepare(settings: Settings) -> None:
    """Everything `make run` needs before serving: schema, catalog, demo city, first history."""
    from cityops.db import migrate, session_scope
    from cityops.models import ConnectorCursor
    from cityops.storage import sync_indicators

    migrate(settings.database_url)
    catalog = common.catalog(settings)
    with session_scope(settings.database_url) as session:
        sync_indicators(session, catalog)
    if load_demo_city(settings):
        click.echo("demo city loaded")
    for instance in common.instances(settings):
        with session_scope(settings.database_url) as session:
            started = session.get(ConnectorCursor, instance.name) is not None
        if not started and instance.enabled:
            click.echo(f"first start: backfilling {_backfill_days(settings, instance)} days from {instance.name} …")
            run_with_progress(settings, instance)


@cli.command("serve")
@click.option("--host", default=None, help="Interface to listen on (default ONESCREEN_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default ONESCREEN_PORT or 8050).")
@click.option("--no-scheduler", is_flag=True, help="Do not run connectors in this process (production runs "
              "`onescreen scheduler` separately).")
@click.option("--skip-setup", is_flag=True, help="Do not migrate, seed or backfill before serving.")
def serve(host, port, no_scheduler, skip_setup) -> None:
    """Set up on first start, start the scheduler once, and serve the screen."""
    from cityops.memory import limit_arenas

    limit_arenas()  # before any thread starts (cityops/memory.py)
    settings = common.settings()
    if not skip_setup:
        prepare(settings)
    handle = None
    if settings.run_scheduler and not no_scheduler:
        from connectors.scheduler import start_scheduler

        handle = start_scheduler(settings, first_run_delay=5)
    from app import create_app

    app = create_app(settings)
    host, port = host or settings.host, port or settings.port
    click.echo(f"\n  OneScreen is serving {settings.city_name_en} at http://{host}:{port}/\n")
    try:
        app.run(host=host, port=port, debug=False, threaded=True)
    finally:
        if handle:
            handle.shutdown()


@cli.command("scheduler")
def scheduler_command() -> None:
    """Run the connector scheduler in the foreground (one per deployment; for production)."""
    from cityops.memory import limit_arenas

    limit_arenas()  # before any thread starts (cityops/memory.py)
    settings = common.settings()
    from connectors.scheduler import start_scheduler

    common.instances(settings)
    click.echo("scheduler running; Ctrl+C stops it")
    if start_scheduler(settings, blocking=True) is None:
        raise click.ClickException("another scheduler holds the lock for this deployment; not starting a second")


if __name__ == "__main__":
    cli()
