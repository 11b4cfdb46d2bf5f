"""`onescreen alerts`: check the alert rules file, evaluate the rules now, list the open alerts."""

from __future__ import annotations

import time

import click

from cityops.settings import Settings
from commands import common


@click.group("alerts")
def alerts_group() -> None:
    """Alert rules and alerts: check the rules file, evaluate now, list what is open."""


def _alert_config(settings: Settings):
    from cityops.alerts.rules import RuleError, load_alert_config

    try:
        return load_alert_config(settings.alerts_path, common.catalog(settings))
    except RuleError as error:
        raise click.ClickException(str(error)) from None


@alerts_group.command("check")
def alerts_check() -> None:
    """Validate the alerts file (ONESCREEN_ALERT_RULES, default data/alerts.yaml) and list its rules."""
    settings = common.settings()
    config = _alert_config(settings)
    for rule in config.rules:
        click.echo(f"{rule.name:28} {rule.type.value:15} {', '.join(rule.indicators)[:70]}")
    targets = config.notifications
    recipients = len(targets.email.to) if targets.email else 0
    click.echo(f"{len(config.rules)} rule(s) valid in {settings.alerts_path}; notifications: "
               f"{len(targets.webhooks)} webhook(s), {recipients} e-mail recipient(s)")


@alerts_group.command("evaluate")
@click.option("--all-indicators", is_flag=True, help="Judge every indicator, not only silence (as after an ingest "
              "of everything). Judged data is never judged twice either way.")
def alerts_evaluate(all_indicators: bool) -> None:
    """Evaluate the alert rules now (the scheduler does this after every ingest and once a minute)."""
    settings = common.settings()
    from cityops.alerts.job import AlertJob
    from cityops.db import migrate

    migrate(settings.database_url)
    _alert_config(settings)  # report a broken file here, with its fix
    job = AlertJob(settings, common.catalog(settings))
    report = job.evaluate(None if all_indicators else set())
    job.deliver()
    changes = ", ".join(f"{count} {change}" for change, count in report.stored.changes.items()) or "no changes"
    click.echo(f"{report.judged} judgements in {report.seconds:.2f} s: {changes}; {report.closed} closed after "
               f"recovery")


@alerts_group.command("list")
@click.option("--unit", "unit_code", default=None, help="Only alerts in this unit's subtree (its code).")
@click.option("--all", "include_closed", is_flag=True, help="Include closed alerts.")
@click.option("--limit", type=int, default=50, show_default=True)
def alerts_list(unit_code: str | None, include_closed: bool, limit: int) -> None:
    """Open alerts, most urgent first (overdue, critical, firing, newest)."""
    settings = common.settings()
    from cityops.alerts.queries import alert_list
    from cityops.db import migrate, session_scope
    from cityops.scope import scope_of_unit
    from cityops.tree import load_tree

    migrate(settings.database_url)
    now = int(time.time())
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
        scope = scope_of_unit(tree, tree.root_id)
        unit_id = tree.root_id if unit_code is None else tree.id_by_code.get(unit_code)
        if unit_id is None:
            raise click.ClickException(f"no unit with code {unit_code!r}")
        listed = alert_list(session, scope, tree, unit_id, now, limit=limit, include_closed=include_closed)
    if listed.empty:
        click.echo("no open alerts" if not include_closed else "no alerts")
    for row in listed.itertuples(index=False):
        when = time.strftime("%m-%d %H:%M", time.localtime(row.fired_at or row.started_at))
        flags = [row.phase] + (["OVERDUE"] if row.overdue else []) + (["closed"] if row.closed_at else []) + (
            [f"ack {row.acknowledged_by}"] if row.acknowledged_by else []) + (
            [f"→ {row.assignee}"] if row.assignee else [])
        click.echo(f"#{row.id:<6} {row.severity:8} {when} {row.code} {row.name_en[:24]:24} {row.indicator or '-':24} "
                   f"{row.rule:24} {row.value if row.value is not None else '':>10.6} [{', '.join(flags)}]")
