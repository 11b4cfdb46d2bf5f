"""`onescreen quarantine`: records that failed validation, listed and re-processed after a fix."""

from __future__ import annotations

import sys
import time

import click

from commands import common


@click.group("quarantine")
def quarantine_group() -> None:
    """Records that failed validation: list them, and re-process them after a fix."""


@quarantine_group.command("list")
@click.option("--connector", default=None, help="Only this connector's records.")
@click.option("--all", "include_done", is_flag=True, help="Include records already re-processed.")
@click.option("--limit", type=int, default=50, show_default=True)
def quarantine_list(connector: str | None, include_done: bool, limit: int) -> None:
    """The newest quarantined records with their reasons."""
    settings = common.settings()
    from cityops.db import migrate
    from connectors.quarantine import list_quarantine

    migrate(settings.database_url)
    entries = list_quarantine(settings.database_url, connector, include_done, limit)
    if not entries:
        click.echo("no quarantined records" + (f" for {connector}" if connector else ""))
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created_at))
        click.echo(f"#{entry.id} {when} {entry.connector} run {entry.run_id}"
                   + (f" [{entry.outcome}]" if entry.outcome else "") + f"\n    {entry.reason}\n    {entry.raw[:300]}"
                   + (f"\n    from {entry.source}" if entry.source else ""))


@quarantine_group.command("reprocess")
@click.argument("name")
@click.option("--id", "ids", type=int, multiple=True, help="Only these quarantined records (repeatable).")
def quarantine_reprocess(name: str, ids: tuple[int, ...]) -> None:
    """Run connector NAME's open quarantined records again: what now passes is stored."""
    settings = common.settings()
    from cityops.db import migrate
    from connectors.quarantine import reprocess

    migrate(settings.database_url)
    summary, outcomes = reprocess(settings.database_url, common.instance(settings, name), common.catalog(settings),
                                  timezone=settings.timezone, ids=list(ids) or None)
    click.echo(f"{summary.status}: {outcomes['accepted']} record(s) accepted now, {outcomes['rejected']} still "
               f"rejected (see `onescreen quarantine list --connector {name}`)")
    sys.exit(0 if summary.status in ("ok", "partial") else 1)
