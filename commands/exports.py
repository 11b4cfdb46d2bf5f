"""`onescreen exports`: list the exports taken from the screen; draw a report of any unit from the command line."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

import click

from commands import common


@click.group("exports")
def exports_group() -> None:
    """Exports: who took what from the screen, and reports drawn here."""


@exports_group.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--actor", default=None, help="Only this person's exports (the name as recorded).")
@click.option("--days", type=float, default=None, help="Only the last N days.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
def exports_list(limit: int, actor: str | None, days: float | None, as_json: bool) -> None:
    """The newest exports first: when, who, what (panel and format), of which unit, within which scope, rows
    and bytes."""
    settings = common.settings()
    from cityops.db import migrate, session_scope
    from cityops.exports.records import recent_exports
    from cityops.exports.stamp import full_time

    migrate(settings.database_url)
    since = int(time.time() - days * 86400) if days is not None else None
    with session_scope(settings.database_url) as session:
        listed = recent_exports(session, limit=limit, actor=actor, since=since)
    if listed.empty:
        click.echo("no exports recorded")
        return
    for row in listed.itertuples(index=False):
        if as_json:
            record = {column: getattr(row, column) for column in listed.columns}
            record["selection"] = json.loads(record["selection"])
            click.echo(json.dumps(record, ensure_ascii=False, default=_plain))
            continue
        when = full_time(int(row.at), settings.timezone)
        size = "" if row.bytes is None else f"{int(row.bytes):,} B"
        rows = "" if row.rows is None else f"{int(row.rows):,} rows"
        click.echo(f"#{row.id:<6} {when} {row.actor[:28]:28} {row.panel:8} {row.format:5} {row.unit_code:14} "
                   f"{(row.indicator or '-')[:26]:26} scope {row.scope_code:10} {rows:>12} {size:>12}  {row.filename}")


@exports_group.command("report")
@click.option("--unit", "unit_code", default=None, help="The unit's code (default: the city).")
@click.option("--indicator", default=None, help="The indicator on the map, trend and ranking (default: the "
              "screen's first).")
@click.option("--range", "range_key", default="7d", show_default=True, help="24h, 7d, 30d, or custom with "
              "--start and --end (YYYY-MM-DD).")
@click.option("--start", default=None)
@click.option("--end", default=None)
@click.option("--format", "fmt", type=click.Choice(["pdf", "png"]), default="pdf", show_default=True)
@click.option("--language", type=click.Choice(["zh", "en"]), default=None, help="Default: ONESCREEN_LANGUAGE.")
@click.option("--output", "output", type=click.Path(dir_okay=True, path_type=Path), default=Path("."),
              show_default=True, help="A file, or a folder for the file's own name.")
def exports_report(unit_code, indicator, range_key, start, end, fmt, language, output: Path) -> None:
    """Draw the report of one unit (the same page the screen's Report button makes) and record it."""
    settings = common.settings()
    catalog = common.catalog(settings)
    from cityops.db import migrate, session_scope
    from cityops.exports.exporting import report_file
    from cityops.exports.panel_data import ExportContext, ExportView
    from cityops.exports.records import record_export
    from cityops.exports.render import RenderError
    from cityops.scope import scope_of_unit
    from cityops.storage import indicator_ids
    from cityops.time_range import resolve_range
    from cityops.tree import load_tree
    from layouts.page import default_indicator

    migrate(settings.database_url)
    language = language or settings.language
    indicator = indicator or default_indicator(catalog)
    if indicator not in catalog:
        raise click.ClickException(f"no indicator {indicator!r} in {settings.catalog_path}; one of: "
                                   f"{', '.join(catalog.keys)}")
    intervals = {i.name: i.interval_seconds for i in common.instances(settings) if i.enabled}
    actor = f"{getpass.getuser()} (cli)"
    now = int(time.time())
    time_range = resolve_range({"range": range_key, "start": start, "end": end}, now, settings.timezone)
    if time_range.problem is not None:
        raise click.ClickException(f"time range not usable ({time_range.problem.value}): use 24h, 7d, 30d, or "
                                   f"custom with --start and --end as YYYY-MM-DD")
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
        scope = scope_of_unit(tree, tree.root_id)
        unit_id = tree.root_id if unit_code is None else tree.id_by_code.get(unit_code)
        if unit_id is None:
            raise click.ClickException(f"no unit with code {unit_code!r}")
        has_children = not tree.children(unit_id).empty
        map_parent = unit_id if has_children or unit_id == tree.root_id else int(tree.frame.at[unit_id, "parent_id"])
        context = ExportContext(session, scope, catalog, indicator_ids(session, catalog), tree, now,
                                settings.timezone, language)
        city = settings.city_name_zh if language == "zh" else settings.city_name_en
        try:
            exported, entry = report_file(context, ExportView(unit_id, map_parent, indicator, time_range), fmt,
                                          actor=actor, city_name=city, connector_intervals=intervals)
        except RenderError as error:
            raise click.ClickException(str(error)) from None
        target = output / exported.filename if output.is_dir() else output
        target.write_bytes(exported.content)
        record_export(session, entry, now)
    click.echo(f"{target} ({exported.size:,} bytes), recorded as {actor}")


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)
