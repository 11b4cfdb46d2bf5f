"""The alert panel: the open alerts in the subtree of the unit being viewed, most urgent first.

Each row says what a person on duty needs before clicking: how bad (severity colour and word), where (unit and
level), what (indicator, the judged value and the line it crossed, in the terms of its rule: "≥ 4 件/时",
"+150% vs same hour last week", "z 6.2", "silent 3 h", "differs 28%"), since when, and where it stands (still
firing or recovered, acknowledged by whom, assigned to whom, overdue). Pure builders: the rows come from
cityops.alerts.queries.alert_list, the rules from the alerts file.
"""

from __future__ import annotations

import math

import pandas as pd
from dash import html

from cityops.alerts.rules import Rule, RuleType
from cityops.catalog import Catalog, Direction, Indicator
from cityops.hierarchy import Level
from layouts.headings import named_heading
from layouts.ids import alert_row_id
from layouts.text import format_threshold, format_time, format_value, level_name, name_says_level, status_text, t

# Rows shown at most: the most urgent come first, and past a few dozen a list stops being read.
MAX_ROWS = 60


def alert_title(unit_name: str, open_count: int, overdue_count: int, language: str) -> list:
    """鹤口区 · 告警（3 未结 · 1 超时）: the overdue count in the critical colour, and only when there is one."""
    counts = [html.Span(t("alerts_open", language, n=open_count), className="alerts-open-count")]
    if overdue_count:
        counts += [" · ", html.Span(t("alerts_overdue", language, n=overdue_count), className="alerts-overdue-count")]
    # The words give way before the name, and both before the counts (layouts/headings.py): "(2 open · 2 over…" lost
    # what the 2 counted.
    return [*named_heading("alerts_heading", language, "unit", unit_name),
            html.Span(["（" if language == "zh" else " (", *counts, "）" if language == "zh" else ")"],
                      className="alerts-counts")]


def rule_type_text(rule: Rule | None, language: str) -> str:
    return t(f"rule_{rule.type.value}", language) if rule is not None else ""


def format_age(seconds: float, language: str) -> str:
    """12 分钟 / 3 小时 / 2 天: how long, as a person on duty says it (whole units, rounded down)."""
    seconds = max(0, int(seconds))
    for size, zh, en in ((2 * 86400, "天", "d"), (3600, "小时", "h")):
        if seconds >= size:
            return f"{seconds // size} {zh}" if language == "zh" else f"{seconds // size} {en}"
    minutes = max(1, seconds // 60)
    return f"{minutes} 分钟" if language == "zh" else f"{minutes} min"


def _number(value: float | None, decimals: int) -> str:
    return "—" if value is None or not math.isfinite(value) else format_value(value, decimals)


def judged_value(rule: Rule | None, indicator: Indicator | None, value: float | None, line: float | None,
                 language: str) -> list:
    """The judged value and the line crossed, in the rule's own terms (see cityops/alerts/evaluate.py for what each
    rule type stores as value and line)."""
    value = None if value is None or not math.isfinite(value) else float(value)
    line = None if line is None or not math.isfinite(line) else float(line)
    kind = rule.type if rule is not None else None

    def crossed(text: str) -> html.Span:
        return html.Span(text, className="alert-crossed")

    if kind is RuleType.RATE_OF_CHANGE:
        compare = "vs_same_hour_last_week" if rule.options.get("compare") == "same_hour_last_week" \
            else "vs_previous_period"
        return [html.Span("—" if value is None else f"{value:+.0f}%", className="alert-number"),
                html.Span(t(compare, language), className="alert-unit"),
                *([crossed(t("line", language, line=f"{line:.0f}%"))] if line is not None else [])]
    if kind is RuleType.ANOMALY:
        return [html.Span(f"z {_number(value, 1)}", className="alert-number"),
                *([crossed(t("line", language, line=f"{line:.1f}"))] if line is not None else [])]
    if kind is RuleType.NO_DATA:
        quiet = format_age(value, language) if value is not None else "—"
        return [html.Span(t("silent_for", language, duration=quiet), className="alert-number"),
                *([crossed(f"≥ {format_age(line, language)}")] if line is not None else [])]
    if kind is RuleType.CONSISTENCY:
        return [html.Span(t("differs_by", language, pct="—" if value is None else f"{value:.0f}%"),
                          className="alert-number"),
                *([crossed(t("line", language, line=f"{line:.0f}%"))] if line is not None else [])]
    if indicator is None:  # a rule no longer in the file, about no indicator: the bare numbers
        return [html.Span(_number(value, 2), className="alert-number"),
                *([crossed(t("line", language, line=_number(line, 2)))] if line is not None else [])]
    # A threshold rule (or one gone from the file since it fired: its value is still the indicator's).
    worse_up = indicator.direction == Direction.HIGHER_IS_WORSE
    shown = [html.Span(_number(value, indicator.decimals), className="alert-number"),
             html.Span(indicator.measure(language), className="alert-unit")]
    if line is None:
        return shown
    # The line as the map's legend states it ("≥ 90", not "≥ 90.0" beside a legend saying "≥ 90 %").
    limit = f"{'≥' if worse_up else '≤'} {format_threshold(line, indicator.decimals) if math.isfinite(line) else '—'}"
    # The value is the latest breach's, the line the highest severity's: a critical alert whose latest breach
    # was only a warning has a value short of its line, which crossed it earlier.
    beyond = value is not None and (value >= line if worse_up else value <= line)
    return [*shown, crossed(limit if beyond else t("crossed_earlier", language, line=limit))]


def since(fired_at: int | None, zone: str, now: int, language: str) -> html.Span:
    """12 分钟前 · 10:42: how long ago it fired, and when. Short of room the time of day gives way whole, then the
    age: "5 h ago", or nothing, rather than "5 h ago · 11-2…" or "5 h ag…" (assets/style.css)."""
    if fired_at is None:
        return html.Span("—", className="alert-since")
    ago = t("ago", language, duration=format_age(now - int(fired_at), language))
    when = format_time(int(fired_at), zone, now)
    return html.Span([html.Span(ago, className="since-age"), html.Span(f" · {when}", className="since-clock")],
                     className="alert-since", title=f"{ago} · {when}")


def phase_chips(phase: str, overdue: bool, language: str) -> list:
    """OVERDUE (a solid critical chip, first: it is what needs doing), then still firing or recovered."""
    chips = []
    if overdue:
        chips.append(html.Span(t("alert_overdue", language), className="chip chip-overdue"))
    if phase == "firing":
        chips.append(html.Span(t("alert_firing", language), className="chip chip-firing"))
    elif phase == "resolved":
        chips.append(html.Span(t("alert_recovered", language), className="chip chip-recovered"))
    return chips


def people_chips(acknowledged_by: str | None, assignee: str | None, language: str,
                 closed_by: str | None = None) -> list:
    """Who has taken it up: acknowledged by, assigned to, closed by."""
    chips = []
    if acknowledged_by:
        chips.append(html.Span(t("alert_acknowledged_by", language, name=acknowledged_by), className="chip chip-ack"))
    if assignee:
        chips.append(html.Span(t("alert_assigned_to", language, name=assignee), className="chip chip-assignee"))
    if closed_by:
        chips.append(html.Span(t("alert_closed_by", language, name=closed_by), className="chip chip-closed"))
    return chips


def state_chips(phase: str, acknowledged_by: str | None, assignee: str | None, overdue: bool, language: str,
                closed_by: str | None = None) -> list:
    """Where the alert stands: overdue, firing or recovered, and who has taken it up."""
    return [*phase_chips(phase, overdue, language), *people_chips(acknowledged_by, assignee, language, closed_by)]


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def alert_row(row, rule: Rule | None, indicator: Indicator | None, language: str, zone: str, now: int) -> html.Button:
    """One alert: a button, so a click (or Enter) opens its drawer and drills the map to its unit."""
    severity = str(row.severity)
    unit_name = row.name_zh if language == "zh" else row.name_en
    source = getattr(row, "source", None)
    what = indicator.name(language) if indicator is not None else \
        t("source_named", language, name=source) if _present(source) else row.rule
    fired = row.fired_at if _present(row.fired_at) else row.started_at
    overdue = bool(row.overdue)
    level = Level(int(row.level))
    classes = f"alert-row severity-{severity}" + (" overdue" if overdue else "") + \
        (" recovered" if row.phase == "resolved" else "")
    return html.Button(
        id=alert_row_id(int(row.id)), n_clicks=0, type="button", className=classes,
        title=f"{row.rule} · {rule_type_text(rule, language)}".strip(" ·"),
        **{"data-alert": str(int(row.id)), "data-code": str(row.code), "data-severity": severity,
           "data-phase": str(row.phase)}, children=[
            html.Div(className="alert-line", children=[
                html.Span(status_text(severity, language), className=f"badge badge-{severity}"),
                html.Span(unit_name, className="alert-unit-name"),
                # Only where the name does not say it already (Chengbai Subdistrict · Subdistrict took the room
                # of the chips and the time on an English screen).
                *([] if name_says_level(unit_name, level, language) else
                  [html.Span(level_name(level, language), className="alert-level")]),
                *phase_chips(str(row.phase), overdue, language),
                since(fired, zone, now, language),
            ]),
            html.Div(className="alert-line alert-what", children=[
                html.Span(what, className="alert-indicator"),
                html.Span(judged_value(rule, indicator, row.value, row.line, language), className="alert-value"),
            ]),
            # Only when someone has taken it up: an untouched alert's row stays two lines.
            html.Div(people_chips(row.acknowledged_by if _present(row.acknowledged_by) else None,
                                  row.assignee if _present(row.assignee) else None, language),
                     className="alert-chips"),
        ])


def alert_rows(alerts: pd.DataFrame, rules: dict[str, Rule], catalog: Catalog, unit_name: str, total: int,
               language: str, zone: str, now: int) -> list:
    """The rows, most urgent first (the order alert_list gives), or a calm line saying there are none."""
    if alerts.empty:
        return [html.Div(className="empty-note alert-empty", children=[
            html.Span("✓", className="alert-empty-mark"), t("no_open_alerts", language, unit=unit_name)])]
    rows = [alert_row(row, rules.get(row.rule), catalog[row.indicator] if row.indicator in catalog else None,
                      language, zone, now)
            for row in alerts.head(MAX_ROWS).itertuples(index=False)]
    if total > len(rows):
        rows.append(html.Div(t("alerts_shown", language, n=len(rows), m=total), className="alerts-more"))
    return rows
